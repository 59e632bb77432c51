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
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::clients::store::{Store, StoreError};

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
    sqlx::query_scalar(
        "insert into app_callback_requests (request_sha256, callback, ig_user_id)
         values ($1, $2, $3)
         on conflict (request_sha256) do update set callback = app_callback_requests.callback
         returning callback",
    )
    .bind(digest)
    .bind(env.kind.as_str())
    .bind(env.account_id.as_str())
    .fetch_one(store.pool())
    .await
    .map_err(db)
}

/// Records, and does nothing else for, a signed request that already came to the other
/// callback.
async fn refuse_replay(store: &Store, env: &Envelope, first: &str) -> Result<(), Failure> {
    let detail = format!(
        "refused: this signed_request was first sent to the {first} callback; Meta signs a new request for each callback, so this one is a replay. Nothing was changed."
    );
    if env.kind == EventKind::DataDeletion {
        sqlx::query(
            "insert into data_deletion_requests
               (confirmation_code, ig_user_id, requested_at, completed_at, outcome, detail)
             values ($1, $2, to_timestamp($3::bigint / 1000.0), now(), 'refused', $4)
             on conflict (confirmation_code) do nothing",
        )
        .bind(confirmation_code(env)?)
        .bind(env.account_id.as_str())
        .bind(env.occurred_at_ms)
        .bind(&detail)
        .execute(store.pool())
        .await
        .map_err(db)?;
    } else {
        sqlx::query(
            "insert into activity (ig_user_id, event_id, event_kind, step, outcome, detail)
             values ($1, $2, $3, 'decision', 'refused_replay', $4)
             on conflict (ig_user_id, event_id, step) do nothing",
        )
        .bind(env.account_id.as_str())
        .bind(env.event_id.as_str())
        .bind(env.kind.as_str())
        .bind(&detail)
        .execute(store.pool())
        .await
        .map_err(db)?;
    }
    tracing::warn!(first_callback = first, "app callback refused as a replay");
    Ok(())
}

fn db(e: sqlx::Error) -> Failure {
    StoreError::Db(e).into()
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
    let mut tx = store.pool().begin().await.map_err(db)?;
    let account: Option<(Uuid, Uuid)> =
        sqlx::query_as("select id, tenant_id from ig_accounts where ig_user_id = $1 for update")
            .bind(env.account_id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
    let (tenant, outcome, detail) = match account {
        Some((_, tenant)) => (Some(tenant), "app_deauthorized", reason.clone()),
        None => (
            None,
            "unknown_account",
            format!("{reason}; igflow does not manage this account"),
        ),
    };
    // The decision row is the callback's idempotency key: present means already done (an
    // operator may have re-activated the account since, which a repeat must not undo).
    let first: Option<i64> = sqlx::query_scalar(
        "insert into activity (tenant_id, ig_user_id, event_id, event_kind, step, outcome, detail)
         values ($1, $2, $3, $4, 'decision', $5, $6)
         on conflict (ig_user_id, event_id, step) do nothing
         returning id",
    )
    .bind(tenant)
    .bind(env.account_id.as_str())
    .bind(env.event_id.as_str())
    .bind(env.kind.as_str())
    .bind(outcome)
    .bind(&detail)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db)?;
    if first.is_none() {
        tx.commit().await.map_err(db)?;
        tracing::info!("deauthorization already recorded");
        return Ok(());
    }
    if let Some((account_id, _)) = account {
        // Postgres notifies every worker of the change, which drops the cached account.
        sqlx::query(
            "update ig_accounts set status = 'disabled', status_reason = $2, updated_at = now()
             where id = $1",
        )
        .bind(account_id)
        .bind(&reason)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    }
    tx.commit().await.map_err(db)?;
    if account.is_some() {
        tracing::warn!(%reason, "account disabled");
    } else {
        tracing::warn!("deauthorize callback for an account igflow does not manage");
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

/// What one deletion removed.
#[derive(Debug, Default)]
struct Deleted {
    account: bool,
    campaigns: u64,
    contacts: u64,
    activity: u64,
    parked: u64,
    message_errors: u64,
}

impl Deleted {
    fn nothing(&self) -> bool {
        !self.account
            && [
                self.campaigns,
                self.contacts,
                self.activity,
                self.parked,
                self.message_errors,
            ]
            .iter()
            .all(|n| *n == 0)
    }

    /// `data_deletion_requests.outcome`.
    fn outcome(&self) -> &'static str {
        if self.nothing() {
            "nothing_to_delete"
        } else {
            "deleted"
        }
    }
}

/// Deletes everything igflow holds about the account in one transaction and records the
/// request as done. The access token secret in Secrets Manager stays: the worker may only
/// read secrets, so deleting it is the operator's step, named in `detail` and the log.
async fn delete_data(store: &Store, env: &Envelope) -> Result<(), Failure> {
    let code = confirmation_code(env)?;
    let mut tx = store.pool().begin().await.map_err(db)?;
    // Recorded first and locked: a concurrent or later copy of the request waits here and
    // then finds it completed.
    sqlx::query(
        "insert into data_deletion_requests (confirmation_code, ig_user_id, requested_at)
         values ($1, $2, to_timestamp($3::bigint / 1000.0))
         on conflict (confirmation_code) do nothing",
    )
    .bind(&code)
    .bind(env.account_id.as_str())
    .bind(env.occurred_at_ms)
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    let done: bool = sqlx::query_scalar(
        "select completed_at is not null from data_deletion_requests
         where confirmation_code = $1 for update",
    )
    .bind(&code)
    .fetch_one(&mut *tx)
    .await
    .map_err(db)?;
    if done {
        tx.commit().await.map_err(db)?;
        tracing::info!(confirmation_code = %code, "data deletion already carried out");
        return Ok(());
    }

    let account: Option<(Uuid, String)> = sqlx::query_as(
        "select id, token_secret_ref from ig_accounts where ig_user_id = $1 for update",
    )
    .bind(env.account_id.as_str())
    .fetch_optional(&mut *tx)
    .await
    .map_err(db)?;
    let deleted = delete_rows(
        &mut tx,
        env.account_id.as_str(),
        account.as_ref().map(|a| a.0),
    )
    .await
    .map_err(db)?;
    let token_secret = account.map(|(_, secret)| secret);
    let detail = describe(&deleted, token_secret.as_deref());
    sqlx::query(
        "update data_deletion_requests set completed_at = now(), outcome = $2, detail = $3
         where confirmation_code = $1",
    )
    .bind(&code)
    .bind(deleted.outcome())
    .bind(&detail)
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    tx.commit().await.map_err(db)?;
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

async fn delete_rows(
    tx: &mut Transaction<'_, Postgres>,
    ig_user_id: &str,
    account: Option<Uuid>,
) -> Result<Deleted, sqlx::Error> {
    let mut deleted = Deleted {
        // Queue failures name their account; those recorded before they did (null) go
        // if one of the account's events is theirs.
        message_errors: sqlx::query(
            "delete from message_errors where ig_user_id = $1
               or (ig_user_id is null
                   and event_id in (select event_id from activity where ig_user_id = $1))",
        )
        .bind(ig_user_id)
        .execute(&mut **tx)
        .await?
        .rows_affected(),
        // By Instagram id, so that decisions recorded while igflow did not know the
        // account (tenant null) go as well.
        activity: sqlx::query("delete from activity where ig_user_id = $1")
            .bind(ig_user_id)
            .execute(&mut **tx)
            .await?
            .rows_affected(),
        ..Deleted::default()
    };
    let Some(account) = account else {
        return Ok(deleted);
    };
    // The account's row cascades to all of these; deleted one by one for the record's counts.
    let count = |sql: &'static str| sqlx::query(sql).bind(account);
    deleted.contacts = count("delete from contacts where account_id = $1")
        .execute(&mut **tx)
        .await?
        .rows_affected();
    deleted.parked = count("delete from parked_events where account_id = $1")
        .execute(&mut **tx)
        .await?
        .rows_affected();
    // Rules, intents and actions cascade from their campaign.
    deleted.campaigns = count("delete from campaigns where account_id = $1")
        .execute(&mut **tx)
        .await?
        .rows_affected();
    deleted.account = count("delete from ig_accounts where id = $1")
        .execute(&mut **tx)
        .await?
        .rows_affected()
        > 0;
    Ok(deleted)
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
