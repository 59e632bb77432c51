//! The dashboard's per-day activity summaries (`activity_daily`): the triggers on `activity`
//! insert deltas, which lock nothing a worker waits for; they are summed here.

use super::{Store, StoreError};

impl Store {
    /// Sums each tenant-day's deltas into one row per key; how many rows it replaced (0 when
    /// another worker's run holds the summaries).
    #[tracing::instrument(name = "store.compact_activity_daily", level = "debug", skip_all)]
    pub async fn compact_activity_daily(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("select igflow_compact_activity_daily()")
            .fetch_one(self.pool())
            .await?)
    }
}
