//! Sends parked events back to the queue once their account is active again (after its
//! token was fixed with `apply`, or the dashboard resumed it).

use std::sync::Arc;
use std::time::Duration;

use igflow_core::runtime::queue::QueueSender;
use tokio_util::sync::CancellationToken;

use crate::clients::store::Store;
use crate::stats::Stats;

/// Events moved per round.
const BATCH: i64 = 200;

pub struct Unparker {
    pub store: Store,
    pub queue: QueueSender,
    pub every: Duration,
    pub stats: Arc<Stats>,
}

impl Unparker {
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.every) => {}
            }
            // Keep going while full rounds come back: a long pause leaves many events.
            while let Ok(n) = self.round().await
                && n == usize::try_from(BATCH).unwrap_or(usize::MAX)
            {}
        }
    }

    /// Moves one round of parked events; returns how many.
    async fn round(&self) -> Result<usize, ()> {
        let parked = self
            .store
            .parked_ready(BATCH)
            .await
            .map_err(|e| tracing::warn!(error = %e, "parked events not read"))?;
        if parked.is_empty() {
            return Ok(0);
        }
        let bodies: Vec<&str> = parked.iter().map(|p| p.envelope.as_str()).collect();
        let report = self.queue.send_raw(&bodies).await;
        if report.failed > 0 {
            // Nothing is removed: a second send of some is absorbed by the dedupe.
            tracing::warn!(failed = report.failed, error = ?report.last_error, "parked events not re-enqueued; next round retries");
            return Err(());
        }
        self.store
            .unpark(&parked)
            .await
            .map_err(|e| tracing::warn!(error = %e, "re-enqueued events still parked; they will be sent again and deduped"))?;
        for _ in &parked {
            Stats::add(&self.stats.unparked);
        }
        tracing::info!(
            events = parked.len(),
            "parked events sent back to the queue"
        );
        Ok(parked.len())
    }
}
