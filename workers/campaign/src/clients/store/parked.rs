//! `parked_events`: events kept back while their account was not active.

use uuid::Uuid;

use super::{Store, StoreError};

/// An event kept back while its account was not active.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Parked {
    pub account_id: Uuid,
    pub event_id: String,
    pub envelope: String,
    /// When it was parked, in Unix microseconds: which parking this is.
    pub parked_at_us: i64,
}

impl Store {
    /// Keeps a paused account's event until the account is active again.
    #[tracing::instrument(name = "store.park", level = "debug", skip_all, fields(account_id = %account_id, event_id = %event_id))]
    pub async fn park(
        &self,
        account_id: Uuid,
        event_id: &str,
        envelope: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        // Parked again (the account was resumed too early): a new parking, which an unparker
        // still holding the old one must not delete.
        sqlx::query(
            "insert into parked_events (event_id, account_id, envelope, reason) values ($1, $2, $3, $4)
             on conflict (account_id, event_id) do update
               set reason = excluded.reason, parked_at = clock_timestamp()",
        )
        .bind(event_id)
        .bind(account_id)
        .bind(envelope)
        .bind(reason)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Parked events whose account is active again, oldest first. Read per active account
    /// through its index, so the events of paused or disabled accounts are never scanned.
    #[tracing::instrument(name = "store.parked_ready", level = "debug", skip_all)]
    pub async fn parked_ready(&self, limit: i64) -> Result<Vec<Parked>, StoreError> {
        Ok(sqlx::query_as(
            "select a.id as account_id, p.event_id, p.envelope, (extract(epoch from p.parked_at) * 1000000)::bigint as parked_at_us
             from ig_accounts a
             cross join lateral (
               select event_id, envelope, parked_at from parked_events
               where account_id = a.id order by parked_at limit $1) p
             where a.status = 'active'
             order by p.parked_at limit $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Forgets parked events sent back to the queue, unless one was parked again since.
    #[tracing::instrument(name = "store.unpark", level = "debug", skip_all)]
    pub async fn unpark(&self, parked: &[Parked]) -> Result<(), StoreError> {
        let accounts: Vec<Uuid> = parked.iter().map(|p| p.account_id).collect();
        let ids: Vec<&str> = parked.iter().map(|p| p.event_id.as_str()).collect();
        let at: Vec<i64> = parked.iter().map(|p| p.parked_at_us).collect();
        sqlx::query(
            "delete from parked_events p
             using unnest($3::uuid[], $1::text[], $2::bigint[]) as u (account_id, event_id, at)
             where p.account_id = u.account_id and p.event_id = u.event_id
               and (extract(epoch from p.parked_at) * 1000000)::bigint = u.at",
        )
        .bind(&ids)
        .bind(&at)
        .bind(&accounts)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
