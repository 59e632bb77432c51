//! Each active account's row and its campaigns, compiled once (keyword automata included),
//! shared by every event of the account until they change: Postgres notifies every worker on
//! channel `igflow_campaigns` when an account, campaign, rule, action or intent changes
//! (`jobs::cache_listener`). A short TTL bounds the staleness should a notification be
//! missed while the listener reconnects.
//!
//! The same notification evicts the account's access token from the token cache: a reconnect
//! writes a new token and resumes the account, and no worker may go on with the old one.
//!
//! Only active accounts are kept: a paused one is read afresh each time, so its events are
//! taken up again the moment it is resumed, whichever worker sees them first.
//!
//! A key is loaded once however many events miss it together (at start, after a change,
//! after the TTL): the first load holds the key's turn and the others wait for it, then find
//! it cached. Without that, every concurrent first event of an account read the account and
//! its campaigns (measured: 1,253 account reads instead of 900 at 800 events in flight).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use igflow_core::campaign::AccountStatus;
use igflow_core::ids::IgUserId;
use igflow_core::plan::CampaignSet;
use uuid::Uuid;

use crate::clients::secrets::Tokens;
use crate::clients::store::{Account, Store, StoreError};

/// Even without a notification, an entry is reloaded after this long.
const TTL: Duration = Duration::from_secs(60);

/// Entries by key, each with when it was loaded.
type Timed<K, V> = Mutex<HashMap<K, (Arc<V>, Instant)>>;
/// Each key's turn to load, so that concurrent misses wait for one load.
type Turns<K> = Mutex<HashMap<K, Arc<tokio::sync::Mutex<()>>>>;

pub struct AccountCache {
    store: Store,
    tokens: Arc<Tokens>,
    accounts: Timed<IgUserId, Account>,
    campaigns: Timed<Uuid, CampaignSet>,
    account_turns: Turns<IgUserId>,
    campaign_turns: Turns<Uuid>,
    /// Bumped by every change seen, so that a load that raced with one is not kept.
    changes: AtomicU64,
}

fn lock<K, V>(entries: &Timed<K, V>) -> MutexGuard<'_, HashMap<K, (Arc<V>, Instant)>> {
    entries.lock().unwrap_or_else(PoisonError::into_inner)
}

fn turn<K: Eq + Hash + Clone>(turns: &Turns<K>, key: &K) -> Arc<tokio::sync::Mutex<()>> {
    let mut turns = turns.lock().unwrap_or_else(PoisonError::into_inner);
    Arc::clone(turns.entry(key.clone()).or_default())
}

fn fresh<K: Eq + Hash, V>(entries: &Timed<K, V>, key: &K) -> Option<Arc<V>> {
    lock(entries)
        .get(key)
        .filter(|(_, at)| at.elapsed() < TTL)
        .map(|(value, _)| Arc::clone(value))
}

impl AccountCache {
    pub fn new(store: Store, tokens: Arc<Tokens>) -> Arc<Self> {
        Arc::new(Self {
            store,
            tokens,
            accounts: Mutex::default(),
            campaigns: Mutex::default(),
            account_turns: Mutex::default(),
            campaign_turns: Mutex::default(),
            changes: AtomicU64::new(0),
        })
    }

    /// The account igflow manages under this Instagram id, if any.
    pub async fn account(&self, ig_user_id: &IgUserId) -> Result<Option<Arc<Account>>, StoreError> {
        if let Some(account) = fresh(&self.accounts, ig_user_id) {
            return Ok(Some(account));
        }
        let turn = turn(&self.account_turns, ig_user_id);
        let _turn = turn.lock().await;
        // Loaded while this one waited.
        if let Some(account) = fresh(&self.accounts, ig_user_id) {
            return Ok(Some(account));
        }
        let (loaded_at, seen) = (Instant::now(), self.changes.load(Ordering::SeqCst));
        let Some(account) = self.store.account(ig_user_id).await?.map(Arc::new) else {
            return Ok(None);
        };
        if account.status == AccountStatus::Active {
            self.keep(
                &self.accounts,
                ig_user_id.clone(),
                &account,
                loaded_at,
                seen,
            );
        }
        Ok(Some(account))
    }

    /// The account's active campaigns, compiled.
    pub async fn campaigns(&self, account: Uuid) -> Result<Arc<CampaignSet>, StoreError> {
        if let Some(set) = fresh(&self.campaigns, &account) {
            return Ok(set);
        }
        let turn = turn(&self.campaign_turns, &account);
        let _turn = turn.lock().await;
        if let Some(set) = fresh(&self.campaigns, &account) {
            return Ok(set);
        }
        let (loaded_at, seen) = (Instant::now(), self.changes.load(Ordering::SeqCst));
        // A campaign that cannot be compiled is a corrupt row: the account is paused with
        // the reason, as for any row the worker cannot use.
        let set = Arc::new(
            CampaignSet::new(self.store.active_campaigns(account).await?).map_err(|e| {
                StoreError::Corrupt {
                    table: "campaigns",
                    id: e.campaign,
                    problem: e.to_string(),
                }
            })?,
        );
        self.keep(&self.campaigns, account, &set, loaded_at, seen);
        Ok(set)
    }

    /// Keeps what was loaded unless a change was notified while loading: it may not be in
    /// what was read, so it is used once and not kept.
    fn keep<K: Eq + Hash, V>(
        &self,
        entries: &Timed<K, V>,
        key: K,
        value: &Arc<V>,
        loaded_at: Instant,
        seen: u64,
    ) {
        let mut entries = lock(entries);
        if self.changes.load(Ordering::SeqCst) == seen {
            entries.insert(key, (Arc::clone(value), loaded_at));
        }
    }

    /// Drops what is cached for the account (everything for `None`), its token included.
    pub fn forget(&self, account: Option<Uuid>) {
        let (mut accounts, mut campaigns) = (lock(&self.accounts), lock(&self.campaigns));
        self.changes.fetch_add(1, Ordering::SeqCst);
        self.tokens.evict(account);
        match account {
            Some(id) => {
                campaigns.remove(&id);
                accounts.retain(|_, (a, _)| a.id != id);
            }
            None => {
                campaigns.clear();
                accounts.clear();
            }
        }
    }
}
