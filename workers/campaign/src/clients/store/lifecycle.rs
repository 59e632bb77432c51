//! Postgres for the account lifecycle jobs: which tokens are due for a refresh and what came
//! of it, the subscription audit's marks, silent accounts, and what reconciliation reads
//! (the media of comment campaigns, the comments igflow has already seen), and the archive
//! purges data deletions owe.

use std::time::Duration;

use uuid::Uuid;

use crate::clients::store::{Store, StoreError};

/// Meta refreshes a long-lived token only once it is 24 hours old: a token written less
/// than this ago may be younger.
const REFRESHABLE_AGE: Duration = Duration::from_secs(24 * 3600);

/// An active Instagram Login account whose token is due for a refresh.
#[derive(Debug, sqlx::FromRow)]
pub struct TokenDue {
    pub id: Uuid,
    pub ig_user_id: String,
    /// Unix milliseconds; `None` for a token a file gave, whose expiry Meta has not told.
    pub expires_at_ms: Option<i64>,
}

/// The media an account's active comment campaigns listen on.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CampaignMedia {
    /// A campaign listens on every media: its recent media are read.
    pub all_posts: bool,
    pub media: Vec<String>,
}

/// A data deletion carried out in Postgres whose archived deliveries are still to go.
#[derive(Debug, sqlx::FromRow)]
pub struct PurgeDue {
    pub confirmation_code: String,
    pub ig_user_id: String,
}

impl Store {
    /// Takes the oldest data deletion whose archive purge is due, for `hold`, unless another
    /// worker holds it.
    #[tracing::instrument(name = "store.claim_archive_purge", level = "debug", skip_all)]
    pub async fn claim_archive_purge(
        &self,
        hold: Duration,
    ) -> Result<Option<PurgeDue>, StoreError> {
        Ok(sqlx::query_as(
            "update data_deletion_requests
                set archive_held_until = now() + make_interval(secs => $1)
              where confirmation_code = (
                    select confirmation_code from data_deletion_requests
                     where archive_purged_at is null and completed_at is not null
                       and outcome in ('deleted', 'nothing_to_delete')
                       and archive_held_until < now()
                     order by archive_held_until, requested_at
                     limit 1 for update skip locked)
              returning confirmation_code, ig_user_id",
        )
        .bind(hold.as_secs_f64())
        .fetch_optional(self.pool())
        .await?)
    }

    /// Records the purge: `Ok(objects deleted)`, or the error and when to try again.
    #[tracing::instrument(name = "store.archive_purge_done", level = "debug", skip_all)]
    pub async fn archive_purge_done(
        &self,
        confirmation_code: &str,
        outcome: Result<usize, String>,
        retry_in: Duration,
    ) -> Result<(), StoreError> {
        let (objects, error) = match outcome {
            Ok(n) => (Some(i32::try_from(n).unwrap_or(i32::MAX)), None),
            Err(e) => (None, Some(e)),
        };
        sqlx::query(
            "update data_deletion_requests
                set archive_purged_at = case when $2::int is null then null else now() end,
                    archive_objects = coalesce($2, archive_objects),
                    archive_purge_error = $3,
                    archive_held_until = now() + make_interval(secs => $4)
              where confirmation_code = $1",
        )
        .bind(confirmation_code)
        .bind(objects)
        .bind(error)
        .bind(retry_in.as_secs_f64())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Active Instagram Login accounts whose token expires within `before`, or whose expiry
    /// is unknown, and which Meta would refresh (written at least 24 hours ago); the soonest
    /// first.
    #[tracing::instrument(name = "store.tokens_due", level = "debug", skip_all)]
    pub async fn tokens_due(&self, before: Duration) -> Result<Vec<TokenDue>, StoreError> {
        Ok(sqlx::query_as(
            "select id, ig_user_id, (extract(epoch from token_expires_at) * 1000)::int8 as expires_at_ms
             from ig_accounts
             where status = 'active' and login_flavor = 'instagram'
               and token_updated_at < now() - make_interval(secs => $2)
               and (token_expires_at is null or token_expires_at < now() + make_interval(secs => $1))
             order by token_expires_at nulls first",
        )
        .bind(before.as_secs_f64())
        .bind(REFRESHABLE_AGE.as_secs_f64())
        .fetch_all(self.pool())
        .await?)
    }

    /// Active Facebook Login accounts whose token's expiry is not known (a file gave it):
    /// Meta's debug endpoint tells it.
    #[tracing::instrument(name = "store.expiries_unknown", level = "debug", skip_all)]
    pub async fn expiries_unknown(&self) -> Result<Vec<TokenDue>, StoreError> {
        Ok(sqlx::query_as(
            "select id, ig_user_id, null::int8 as expires_at_ms from ig_accounts
             where status = 'active' and login_flavor = 'facebook' and token_expires_at is null
             order by ig_user_id",
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// Records the expiry Meta gave for a token (Unix milliseconds).
    #[tracing::instrument(name = "store.token_expiry_learned", level = "debug", skip_all, fields(account = %account))]
    pub async fn token_expiry_learned(&self, account: Uuid, at_ms: i64) -> Result<(), StoreError> {
        sqlx::query(
            "update ig_accounts set token_expires_at = to_timestamp($2::float8 / 1000) where id = $1",
        )
        .bind(account)
        .bind(at_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Records a refreshed token's expiry and clears a previous failure.
    #[tracing::instrument(name = "store.token_refreshed", level = "debug", skip_all, fields(account = %account))]
    pub async fn token_refreshed(
        &self,
        account: Uuid,
        lifetime: Duration,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "update ig_accounts
             set token_expires_at = now() + make_interval(secs => $2), token_updated_at = now(),
                 token_refresh_error = null, token_refresh_failed_at = null, updated_at = now()
             where id = $1",
        )
        .bind(account)
        .bind(lifetime.as_secs_f64())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Shows a failed refresh on the account until one succeeds.
    #[tracing::instrument(name = "store.token_refresh_failed", level = "debug", skip_all, fields(account = %account))]
    pub async fn token_refresh_failed(
        &self,
        account: Uuid,
        reason: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "update ig_accounts set token_refresh_error = $2, token_refresh_failed_at = now()
             where id = $1",
        )
        .bind(account)
        .bind(reason)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The active accounts, by Instagram id.
    #[tracing::instrument(name = "store.active_accounts", level = "debug", skip_all)]
    pub async fn active_accounts(&self) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "select ig_user_id from ig_accounts where status = 'active' order by ig_user_id",
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// Records the audit's result: the fields now subscribed (when known) and the error a
    /// failed subscription left, or none.
    #[tracing::instrument(name = "store.subscription_checked", level = "debug", skip_all, fields(account = %account))]
    pub async fn subscription_checked(
        &self,
        account: Uuid,
        fields: Option<&[String]>,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "update ig_accounts
             set webhook_fields = coalesce($2, webhook_fields), subscription_error = $3,
                 subscription_checked_at = now()
             where id = $1",
        )
        .bind(account)
        .bind(fields)
        .bind(error)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Whether the account has active campaigns and no event for longer than `quiet` (since
    /// it was added, if it never had one).
    #[tracing::instrument(name = "store.is_silent", level = "debug", skip_all, fields(account = %account))]
    pub async fn is_silent(&self, account: Uuid, quiet: Duration) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar(
            "select exists (select 1 from campaigns c where c.account_id = a.id and c.status = 'active')
                and coalesce((select max(x.created_at) from activity x
                              where x.ig_user_id = a.ig_user_id and x.step = 'decision'),
                             a.created_at) < now() - make_interval(secs => $2)
             from ig_accounts a where a.id = $1",
        )
        .bind(account)
        .bind(quiet.as_secs_f64())
        .fetch_optional(self.pool())
        .await?
        .unwrap_or(false))
    }

    /// The media the account's active comment campaigns listen on. A campaign still waiting
    /// for the next post counts as all posts: a comment on it that Meta did not deliver is
    /// found among the recent media, and binds it when it is worked.
    #[tracing::instrument(name = "store.campaign_media", level = "debug", skip_all, fields(account = %account))]
    pub async fn campaign_media(&self, account: Uuid) -> Result<CampaignMedia, StoreError> {
        let scopes: Vec<Vec<String>> = sqlx::query_scalar(
            "select case when next_post_media is not null then array[next_post_media]
                         when next_post_after is not null then '{}'::text[]
                         else media_ids end
             from campaigns
             where account_id = $1 and status = 'active' and trigger = 'comment'",
        )
        .bind(account)
        .fetch_all(self.pool())
        .await?;
        let mut media = CampaignMedia {
            all_posts: scopes.iter().any(Vec::is_empty),
            media: scopes.into_iter().flatten().collect(),
        };
        media.media.sort();
        media.media.dedup();
        Ok(media)
    }

    /// The events of `event_ids` igflow has never seen for the account: no decision recorded
    /// and not parked.
    #[tracing::instrument(name = "store.unseen_events", level = "debug", skip_all, fields(account = %account))]
    pub async fn unseen_events(
        &self,
        account: Uuid,
        ig_user_id: &str,
        event_ids: &[String],
    ) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "select e from unnest($3::text[]) e
             where not exists (select 1 from activity x where x.ig_user_id = $2 and x.event_id = e)
               and not exists (select 1 from parked_events p where p.account_id = $1 and p.event_id = e)",
        )
        .bind(account)
        .bind(ig_user_id)
        .bind(event_ids)
        .fetch_all(self.pool())
        .await?)
    }
}
