//! The fleet's state that on-call alarms watch.

use std::time::Duration;

use super::{Store, StoreError};

/// The fleet's state that on-call alarms watch, read by the metrics reporter.
#[derive(Debug, Clone, Copy, PartialEq, sqlx::FromRow)]
pub struct Health {
    /// Active Instagram Login accounts whose token was written more than
    /// `TOKEN_WARNING_AGE` ago: it expires within a week unless refreshed.
    pub tokens_expiring: i64,
    /// Connections open on the Postgres server (every client, not only this worker) as a
    /// percentage of its `max_connections`.
    pub connections_percent: f64,
    /// Accounts whose events are acted on: while there are any, Meta sends deliveries, and
    /// their absence is alarmed (the `no-deliveries` alarm reads this with the webhook's
    /// `Deliveries`).
    pub active_accounts: i64,
}

/// Instagram Login long-lived tokens last 60 days from issue; warn 7 days before. Facebook
/// Login page tokens derived from a long-lived user token do not expire.
pub const TOKEN_WARNING_AGE: Duration = Duration::from_secs(53 * 24 * 3600);

impl Store {
    #[tracing::instrument(name = "store.health", level = "debug", skip_all)]
    pub async fn health(&self) -> Result<Health, StoreError> {
        Ok(sqlx::query_as(
            "select
               (select count(*) from ig_accounts
                 where status = 'active' and login_flavor = 'instagram'
                   and token_updated_at < now() - make_interval(secs => $1)) as tokens_expiring,
               (select count(*) from pg_stat_activity)::float8 * 100
                 / current_setting('max_connections')::float8 as connections_percent,
               (select count(*) from ig_accounts where status = 'active') as active_accounts",
        )
        .bind(TOKEN_WARNING_AGE.as_secs_f64())
        .fetch_one(&self.pool)
        .await?)
    }
}
