//! Meta's app callbacks (`app_deauthorized`, `data_deletion`): each written in one
//! transaction with its own idempotency record, so a redelivery changes nothing. What they
//! mean is `pipeline::account_events`'s; this is their SQL.

use igflow_core::envelope::Envelope;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::{DecisionOutcome, Store, StoreError};

/// What a deauthorize callback did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deauthorized {
    /// A copy of the callback was recorded before: nothing changed.
    AlreadyRecorded,
    /// The account is disabled.
    Disabled,
    /// igflow does not manage the account: only the decision was recorded.
    UnknownAccount,
}

/// What one deletion removed.
#[derive(Debug, Default)]
pub struct Deleted {
    pub account: bool,
    pub campaigns: u64,
    pub contacts: u64,
    pub activity: u64,
    pub parked: u64,
    pub message_errors: u64,
}

impl Deleted {
    pub fn nothing(&self) -> bool {
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
    pub fn outcome(&self) -> &'static str {
        if self.nothing() {
            "nothing_to_delete"
        } else {
            "deleted"
        }
    }
}

/// What a data deletion request did.
#[derive(Debug)]
pub enum DeletionDone {
    /// A copy of the request was carried out before: nothing changed.
    AlreadyDone,
    /// These rows are gone; the account's token secret (if it had one) is the operator's
    /// to delete.
    Deleted {
        deleted: Deleted,
        token_secret: Option<String>,
    },
}

impl Store {
    /// Claims the signed request (by its SHA-256) for this envelope's callback, unless another
    /// callback claimed it first. Returns the callback that holds it.
    #[tracing::instrument(name = "store.claim_app_callback", level = "debug", skip_all)]
    pub async fn claim_app_callback(
        &self,
        request_sha256: &str,
        env: &Envelope,
    ) -> Result<String, StoreError> {
        Ok(sqlx::query_scalar(
            "insert into app_callback_requests (request_sha256, callback, ig_user_id)
             values ($1, $2, $3)
             on conflict (request_sha256) do update set callback = app_callback_requests.callback
             returning callback",
        )
        .bind(request_sha256)
        .bind(env.kind.as_str())
        .bind(env.account_id.as_str())
        .fetch_one(&self.pool)
        .await?)
    }

    /// Records a data deletion request refused as a replay (once per confirmation code).
    #[tracing::instrument(name = "store.refuse_deletion", level = "debug", skip_all)]
    pub async fn refuse_deletion(
        &self,
        env: &Envelope,
        confirmation_code: &str,
        detail: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "insert into data_deletion_requests
               (confirmation_code, ig_user_id, requested_at, completed_at, outcome, detail)
             values ($1, $2, to_timestamp($3::bigint / 1000.0), now(), 'refused', $4)
             on conflict (confirmation_code) do nothing",
        )
        .bind(confirmation_code)
        .bind(env.account_id.as_str())
        .bind(env.occurred_at_ms)
        .bind(detail)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records a callback refused as a replay, as the event's decision (once).
    #[tracing::instrument(name = "store.refuse_callback", level = "debug", skip_all)]
    pub async fn refuse_callback(&self, env: &Envelope, detail: &str) -> Result<(), StoreError> {
        sqlx::query(
            "insert into activity (ig_user_id, event_id, event_kind, step, outcome, detail)
             values ($1, $2, $3, 'decision', $4, $5)
             on conflict (ig_user_id, event_id, step) do nothing",
        )
        .bind(env.account_id.as_str())
        .bind(env.event_id.as_str())
        .bind(env.kind.as_str())
        .bind(DecisionOutcome::RefusedReplay.as_str())
        .bind(detail)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Disables the envelope's account with `reason`, recording the decision; once per event.
    #[tracing::instrument(name = "store.deauthorize", level = "debug", skip_all)]
    pub async fn deauthorize(
        &self,
        env: &Envelope,
        reason: &str,
    ) -> Result<Deauthorized, StoreError> {
        let mut tx = self.pool.begin().await?;
        let account: Option<(Uuid, Uuid)> = sqlx::query_as(
            "select id, tenant_id from ig_accounts where ig_user_id = $1 for update",
        )
        .bind(env.account_id.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let (tenant, outcome, detail) = match account {
            Some((_, tenant)) => (
                Some(tenant),
                DecisionOutcome::AppDeauthorized,
                reason.to_owned(),
            ),
            None => (
                None,
                DecisionOutcome::UnknownAccount,
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
        .bind(outcome.as_str())
        .bind(&detail)
        .fetch_optional(&mut *tx)
        .await?;
        let done = match (first, account) {
            (None, _) => Deauthorized::AlreadyRecorded,
            (Some(_), None) => Deauthorized::UnknownAccount,
            (Some(_), Some((account_id, _))) => {
                // Postgres notifies every worker of the change, which drops the cached account.
                sqlx::query(
                    "update ig_accounts set status = 'disabled', status_reason = $2, updated_at = now()
                     where id = $1",
                )
                .bind(account_id)
                .bind(reason)
                .execute(&mut *tx)
                .await?;
                Deauthorized::Disabled
            }
        };
        tx.commit().await?;
        Ok(done)
    }

    /// Deletes everything igflow holds about the envelope's account in one transaction and
    /// records the request (by `confirmation_code`) as done, with the `detail` that
    /// `describe` writes. A request already carried out changes nothing.
    #[tracing::instrument(name = "store.delete_account_data", level = "debug", skip_all)]
    pub async fn delete_account_data(
        &self,
        env: &Envelope,
        confirmation_code: &str,
        describe: impl FnOnce(&Deleted, Option<&str>) -> String,
    ) -> Result<DeletionDone, StoreError> {
        let mut tx = self.pool.begin().await?;
        if !take_deletion_request(&mut tx, env, confirmation_code).await? {
            tx.commit().await?;
            return Ok(DeletionDone::AlreadyDone);
        }
        let account: Option<(Uuid, String)> = sqlx::query_as(
            "select id, token_secret_ref from ig_accounts where ig_user_id = $1 for update",
        )
        .bind(env.account_id.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let deleted = delete_rows(
            &mut tx,
            env.account_id.as_str(),
            account.as_ref().map(|a| a.0),
        )
        .await?;
        let token_secret = account.map(|(_, secret)| secret);
        sqlx::query(
            "update data_deletion_requests set completed_at = now(), outcome = $2, detail = $3
             where confirmation_code = $1",
        )
        .bind(confirmation_code)
        .bind(deleted.outcome())
        .bind(describe(&deleted, token_secret.as_deref()))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(DeletionDone::Deleted {
            deleted,
            token_secret,
        })
    }
}

/// Records the request and locks it; false when it was already carried out. A concurrent or
/// later copy of the request waits on the lock and then finds it completed.
async fn take_deletion_request(
    tx: &mut Transaction<'_, Postgres>,
    env: &Envelope,
    confirmation_code: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query(
        "insert into data_deletion_requests (confirmation_code, ig_user_id, requested_at)
         values ($1, $2, to_timestamp($3::bigint / 1000.0))
         on conflict (confirmation_code) do nothing",
    )
    .bind(confirmation_code)
    .bind(env.account_id.as_str())
    .bind(env.occurred_at_ms)
    .execute(&mut **tx)
    .await?;
    let done: bool = sqlx::query_scalar(
        "select completed_at is not null from data_deletion_requests
         where confirmation_code = $1 for update",
    )
    .bind(confirmation_code)
    .fetch_one(&mut **tx)
    .await?;
    Ok(!done)
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
