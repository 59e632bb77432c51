//! Keeps every worker's account cache current: each change Postgres notifies drops the
//! account's cached row, campaigns and token at once, not after the cache's TTL.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::clients::cache::AccountCache;
use crate::clients::store::Store;

/// Listens for changes until `shutdown`, reconnecting after errors (and then forgetting
/// everything, as notifications may have been missed).
pub async fn run(cache: Arc<AccountCache>, store: Store, shutdown: CancellationToken) {
    loop {
        let mut changes = match store.changes().await {
            Ok(changes) => changes,
            Err(e) => {
                tracing::warn!(error = %e, "change listener not connected; retrying in 5 s");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(5)) => continue,
                }
            }
        };
        cache.forget(None);
        loop {
            let change = tokio::select! {
                () = shutdown.cancelled() => return,
                c = changes.next() => c,
            };
            match change {
                Ok(account) => cache.forget(account),
                Err(e) => {
                    tracing::warn!(error = %e, "change listener lost its connection");
                    cache.forget(None);
                    break;
                }
            }
        }
    }
}
