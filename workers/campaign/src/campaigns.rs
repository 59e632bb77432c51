//! Each account's campaigns, compiled once (keyword automata included) and shared by every
//! event of the account until they change: Postgres notifies every worker on channel
//! `igflow_campaigns` when a campaign, rule, action or intent changes. A short TTL bounds the
//! staleness should a notification be missed while the listener reconnects.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use igflow_core::plan::CampaignSet;
use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::store::{Store, StoreError};

pub const CHANNEL: &str = "igflow_campaigns";
/// Even without a notification, a compiled set is reloaded after this long.
const TTL: Duration = Duration::from_secs(60);

pub struct CampaignCache {
    store: Store,
    entries: Mutex<HashMap<Uuid, (Arc<CampaignSet>, Instant)>>,
    /// Bumped by every change seen, so that a load that raced with one is not kept.
    changes: AtomicU64,
}

impl CampaignCache {
    pub fn new(store: Store) -> Arc<Self> {
        Arc::new(Self {
            store,
            entries: Mutex::default(),
            changes: AtomicU64::new(0),
        })
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, (Arc<CampaignSet>, Instant)>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The account's active campaigns, compiled.
    pub async fn get(&self, account: Uuid) -> Result<Arc<CampaignSet>, StoreError> {
        if let Some((set, at)) = self.entries().get(&account)
            && at.elapsed() < TTL
        {
            return Ok(Arc::clone(set));
        }
        let (loaded_at, seen) = (Instant::now(), self.changes.load(Ordering::SeqCst));
        let set = Arc::new(CampaignSet::new(
            self.store.active_campaigns(account).await?,
        ));
        // A change notified while loading may not be in what was read: use it, don't keep it.
        let mut entries = self.entries();
        if self.changes.load(Ordering::SeqCst) == seen {
            entries.insert(account, (Arc::clone(&set), loaded_at));
        }
        Ok(set)
    }

    fn forget(&self, account: Option<Uuid>) {
        let mut entries = self.entries();
        self.changes.fetch_add(1, Ordering::SeqCst);
        match account {
            Some(account) => {
                entries.remove(&account);
            }
            None => entries.clear(),
        }
    }

    /// Listens for campaign changes until `shutdown`, reconnecting after errors (and then
    /// forgetting everything, as notifications may have been missed).
    pub async fn listen(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            let mut listener = match PgListener::connect_with(self.store.pool()).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "campaign change listener not connected; retrying in 5 s");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_secs(5)) => continue,
                    }
                }
            };
            if let Err(e) = listener.listen(CHANNEL).await {
                tracing::warn!(error = %e, "LISTEN failed; retrying");
                continue;
            }
            self.forget(None);
            loop {
                let notification = tokio::select! {
                    () = shutdown.cancelled() => return,
                    n = listener.recv() => n,
                };
                match notification {
                    Ok(n) => self.forget(
                        Some(n.payload().parse().unwrap_or_default())
                            .filter(|id: &Uuid| !id.is_nil()),
                    ),
                    Err(e) => {
                        tracing::warn!(error = %e, "campaign change listener lost its connection");
                        self.forget(None);
                        break;
                    }
                }
            }
        }
    }
}
