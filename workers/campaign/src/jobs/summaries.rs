//! Sums the dashboard's per-day activity deltas every minute, so that a day's results read a
//! few hundred summary rows however many events it had (see `Store::compact_activity_daily`).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::clients::store::Store;

const EVERY: Duration = Duration::from_secs(60);

/// Compacts every minute until `shutdown`; a failed run is logged and the next one retries
/// (until then the dashboard reads the deltas, only more rows of them).
pub async fn run(store: Store, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(EVERY) => {}
        }
        match store.compact_activity_daily().await {
            Ok(replaced) => tracing::debug!(replaced, "activity summaries compacted"),
            Err(e) => {
                tracing::warn!(error = %e, "compacting activity summaries failed; next run in a minute")
            }
        }
    }
}
