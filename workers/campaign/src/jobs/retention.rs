//! Old activity, queue errors, contacts and parked events are deleted after the retention
//! period, so the database stays the size of its recent traffic. (An event parked that long,
//! say of an account disabled months ago, is past every window Meta allows a DM in.) Kept
//! whatever their age: a sent DM a campaign's cooldown still counts (the cooldown's durable
//! side), and a contact who opted out (forgetting them would let automated messages reach
//! them again). The queries are `Store::prune`'s.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::clients::store::Store;

/// At least this long: activity rows are the idempotency keys of events SQS may still
/// deliver (it keeps a message 14 days at most).
pub const MIN_DAYS: u32 = 15;
/// How often a running worker prunes.
const EVERY: Duration = Duration::from_secs(3600);

/// Prunes every hour until `shutdown`; failures are logged and retried at the next round.
pub async fn run(store: Store, days: u32, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(EVERY) => {}
        }
        match store.prune(days).await {
            Ok(p) => tracing::info!(
                days,
                activity = p.activity,
                message_errors = p.message_errors,
                contacts = p.contacts,
                parked_events = p.parked_events,
                flow_runs = p.flow_runs,
                "retention: old rows deleted"
            ),
            Err(e) => tracing::warn!(error = %e, "retention pass failed; next one in an hour"),
        }
    }
}
