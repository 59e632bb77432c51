//! The archive half of a data deletion: once the worker has deleted an account's rows
//! (`pipeline::account_events`), this job removes the account's deliveries from the webhook's
//! raw archive (`ops::archive::Archive::purge`). The request row is its queue and its lease,
//! so any number of workers purge each request once; a failure is kept on the row, counted
//! (`ArchivePurgeFailed`, alarmed) and retried, as the deletion is owed.

use std::time::Duration;

use tracing::Instrument;

use crate::clients::store::StoreError;
use crate::jobs::lifecycle::Lifecycle;
use crate::stats::Stats;

/// A purge lists the whole archive (its lifecycle rules keep it to `ArchiveRetentionDays`);
/// the lease outlives a long one.
const HOLD: Duration = Duration::from_secs(30 * 60);
/// A purge that failed is tried again after this.
const RETRY: Duration = Duration::from_secs(15 * 60);

/// Purges every due deletion this worker takes; stops at the first failure (S3 is likely
/// down for the others too).
pub async fn round(ctx: &Lifecycle) -> Result<(), StoreError> {
    let Some(archive) = &ctx.archive else {
        return Ok(());
    };
    while let Some(due) = ctx.store.claim_archive_purge(HOLD).await? {
        let span = tracing::info_span!(
            "archive_purge",
            account_id = %due.ig_user_id,
            confirmation_code = %due.confirmation_code
        );
        let outcome = archive
            .purge(&due.ig_user_id)
            .instrument(span.clone())
            .await;
        let _entered = span.enter();
        match outcome {
            Ok(done) => {
                Stats::add_n(&ctx.stats.archive_purged, done.deleted);
                tracing::info!(
                    deleted = done.deleted,
                    listed = done.listed,
                    read = done.read,
                    "the account's archived deliveries are deleted"
                );
                ctx.store
                    .archive_purge_done(&due.confirmation_code, Ok(done.deleted), Duration::ZERO)
                    .await?;
            }
            Err(e) => {
                Stats::add(&ctx.stats.archive_purge_failed);
                tracing::error!(alarm = "archive_purge_failed", error = %e, "archived deliveries of a deleted account not removed");
                ctx.store
                    .archive_purge_done(&due.confirmation_code, Err(e.to_string()), RETRY)
                    .await?;
                break;
            }
        }
    }
    Ok(())
}
