//! Meta's app callbacks, as the webhook enqueued them: an account removed the app
//! (`app_deauthorized`) or asked for its data to be deleted (`data_deletion`). They concern
//! the account itself, so they are handled before (and whether or not) igflow knows it.
//!
//! The envelope's account is the signed request's `user_id`, matched against
//! `ig_accounts.ig_user_id`: with Instagram Login the app user is the professional account.
//! To be confirmed with a real app before launch.
//!
//! Each runs in one transaction with its own idempotency record (the activity decision row,
//! the `data_deletion_requests` row), so a redelivery that slips past the Redis done-marker
//! changes nothing.
//!
//! Meta's signed request does not say which callback it is for, so the first callback a
//! request reaches claims it (`app_callback_requests`, by the request's SHA-256, which the
//! webhook puts in `delivery_id`) and the other callback refuses it: a captured deauthorize
//! request cannot delete an account's data.

use igflow_core::envelope::{Envelope, EventKind};
use igflow_core::failure::Failure;
use serde::Deserialize;

use crate::clients::store::{Deauthorized, Deleted, DeletionDone, Store};

/// Handles an `app_deauthorized` or `data_deletion` envelope; other kinds are not for here.
pub async fn handle(store: &Store, env: &Envelope) -> Result<(), Failure> {
    if !matches!(
        env.kind,
        EventKind::AppDeauthorized | EventKind::DataDeletion
    ) {
        return Ok(());
    }
    let first = first_callback(store, env).await?;
    if first != env.kind.as_str() {
        return refuse_replay(store, env, &first).await;
    }
    match env.kind {
        EventKind::AppDeauthorized => deauthorize(store, env).await,
        _ => delete_data(store, env).await,
    }
}

/// The callback this envelope's signed request reached first: this one, or the other.
async fn first_callback(store: &Store, env: &Envelope) -> Result<String, Failure> {
    let digest = env.delivery_id.as_str();
    if digest.len() != 64
        || !digest
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(Failure::permanent(
            "app callback envelope has no signed_request SHA-256 in delivery_id; only the webhook's envelopes are handled",
        ));
    }
    Ok(store.claim_app_callback(digest, env).await?)
}

/// Records, and does nothing else for, a signed request that already came to the other
/// callback.
async fn refuse_replay(store: &Store, env: &Envelope, first: &str) -> Result<(), Failure> {
    let detail = format!(
        "refused: this signed_request was first sent to the {first} callback; Meta signs a new request for each callback, so this one is a replay. Nothing was changed."
    );
    if env.kind == EventKind::DataDeletion {
        store
            .refuse_deletion(env, &confirmation_code(env)?, &detail)
            .await?;
    } else {
        store.refuse_callback(env, &detail).await?;
    }
    tracing::warn!(first_callback = first, "app callback refused as a replay");
    Ok(())
}

/// When Meta issued the callback, for people to read.
fn when(env: &Envelope) -> String {
    jiff::Timestamp::from_millisecond(env.occurred_at_ms)
        .map_or_else(|_| format!("{} ms", env.occurred_at_ms), |t| t.to_string())
}

/// Disables the account: nothing is sent for it any more, its events are parked. Only an
/// operator re-activates it (`apply` resumes paused accounts, not disabled ones).
async fn deauthorize(store: &Store, env: &Envelope) -> Result<(), Failure> {
    let reason = format!(
        "the account removed the app on {} (Meta's deauthorize callback)",
        when(env)
    );
    match store.deauthorize(env, &reason).await? {
        Deauthorized::AlreadyRecorded => tracing::info!("deauthorization already recorded"),
        Deauthorized::Disabled => tracing::warn!(%reason, "account disabled"),
        Deauthorized::UnknownAccount => {
            tracing::warn!("deauthorize callback for an account igflow does not manage");
        }
    }
    Ok(())
}

#[derive(Deserialize)]
struct DeletionItem {
    confirmation_code: String,
}

fn confirmation_code(env: &Envelope) -> Result<String, Failure> {
    serde_json::from_str::<DeletionItem>(env.item.get())
        .map(|i| i.confirmation_code)
        .ok()
        .filter(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_alphanumeric()))
        .ok_or_else(|| {
            Failure::permanent("data deletion envelope has no alphanumeric confirmation_code")
        })
}

/// Deletes everything igflow holds about the account in one transaction and records the
/// request as done. The access token secret in Secrets Manager stays: the worker may only
/// read secrets, so deleting it is the operator's step, named in `detail` and the log.
async fn delete_data(store: &Store, env: &Envelope) -> Result<(), Failure> {
    let code = confirmation_code(env)?;
    let (deleted, token_secret) = match store.delete_account_data(env, &code, describe).await? {
        DeletionDone::AlreadyDone => {
            tracing::info!(confirmation_code = %code, "data deletion already carried out");
            return Ok(());
        }
        DeletionDone::Deleted {
            deleted,
            token_secret,
        } => (deleted, token_secret),
    };
    tracing::warn!(confirmation_code = %code, ?deleted, "account data deleted");
    if let Some(secret) = token_secret {
        tracing::warn!(
            %secret,
            operator_step = "delete_token_secret",
            "delete this token secret in Secrets Manager: the worker cannot"
        );
    }
    Ok(())
}

/// The request's `detail`, shown to operators (and, as far as they choose, on the status page).
fn describe(d: &Deleted, token_secret: Option<&str>) -> String {
    let rows = format!(
        "{} campaigns (with their rules, intents and actions), {} contacts, {} activity rows, {} parked events, {} queue errors",
        d.campaigns, d.contacts, d.activity, d.parked, d.message_errors
    );
    match (d.account, token_secret) {
        _ if d.nothing() => "igflow held nothing for this Instagram id (no account, no activity): nothing to delete.".to_owned(),
        (true, Some(secret)) => format!(
            "deleted the account and {rows}. Operator step left: delete the access token secret {secret:?} in Secrets Manager (the worker may only read secrets)."
        ),
        _ => format!(
            "igflow held no account for this Instagram id; deleted {rows}. No token secret to delete."
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_detail_names_the_operator_step() {
        let d = Deleted {
            account: true,
            campaigns: 2,
            contacts: 3,
            activity: 4,
            ..Deleted::default()
        };
        let text = describe(&d, Some("igflow/accounts/1/access-token"));
        assert!(
            text.starts_with("deleted the account and 2 campaigns"),
            "{text}"
        );
        assert!(
            text.contains(r#"delete the access token secret "igflow/accounts/1/access-token" in Secrets Manager"#),
            "{text}"
        );
        let none = describe(&Deleted::default(), None);
        assert!(none.contains("nothing to delete"), "{none}");
        assert_eq!(Deleted::default().outcome(), "nothing_to_delete");
        let decisions = Deleted {
            activity: 1,
            ..Deleted::default()
        };
        assert_eq!(decisions.outcome(), "deleted");
        let text = describe(&decisions, None);
        assert!(text.starts_with("igflow held no account"), "{text}");
    }
}
