//! Meta's per-account limits, enforced fleet-wide. Every Graph API call books a slot in
//! Redis with one atomic Lua script (GCRA over every budget the call draws on, plus a pacing
//! bucket that widens as Meta reports the account's usage rising), so any number of workers
//! together never exceed a budget. Idle time is not banked beyond one call's burst.
//! A governor limiter smooths each process's own sends on top.

mod budgets;
mod contacts;
mod meter;
mod scripts;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use fred::prelude::{Client, Expiration, KeysInterface};
use fred::types::scripts::Script;
use governor::{DefaultKeyedRateLimiter, Quota};
use igflow_core::ids::{EventId, IgUserId};

use crate::clients::redis::{RedisError, RedisKeys};
pub use budgets::{Budgets, CallClass, Rate};
pub use meter::{ClassCounts, ClassCountsByAccount, Meter};
use scripts::{BLOCK, LATEST, RESERVE};

/// The account's id as a Redis Cluster hash tag: only the part in braces picks the hash
/// slot, so all of an account's keys share one and a script may touch them together, while
/// accounts still spread over the cluster. (A prefix with braces of its own would put every
/// key in one slot: correct, but not spread.)
fn account_tag(account: &IgUserId) -> String {
    format!("{{{account}}}")
}

/// How long Meta's usage report stays in force without a newer one.
const USAGE_TTL: Duration = Duration::from_secs(60);
/// How late an event may be for its booked slot and still use it: later, sending would crowd
/// the calls booked after it, so it books again (the missed slot's budget is lost).
pub const LATE_TOLERANCE: Duration = Duration::from_millis(100);
/// A deferred booking due further away than this may give its slot to a call whose window
/// closes sooner: closer, its event may already be back and waiting on it.
const MOVABLE_AFTER: Duration = Duration::from_secs(4);
/// A slot taken over for a closing window is at least this far before the window closes, so
/// a late receive or a slow call does not miss it.
const SEND_MARGIN: Duration = Duration::from_secs(2);
/// A booked slot kept while its event waits in the queue for it, beyond the wait itself.
const SLOT_MEMORY: Duration = Duration::from_secs(3600);

/// Whom Meta throttled: one account (business use case limits), or the app (code 4).
#[derive(Debug, Clone, Copy)]
pub enum Throttled<'a> {
    Account(&'a IgUserId),
    App,
}

pub struct RateLimiter {
    redis: Client,
    keys: RedisKeys,
    reserve: Script,
    latest: Script,
    block: Script,
    /// The spacing of an account's calls once Meta reports 95 percent usage.
    pace_max: Duration,
    /// In-process smoothing of Send API calls per account.
    local: DefaultKeyedRateLimiter<String>,
    pub meter: Meter,
}

impl RateLimiter {
    pub fn new(redis: Client, keys: RedisKeys, budgets: Budgets, pace_max: Duration) -> Arc<Self> {
        // Slots booked in Redis are already spaced; this only keeps a process from firing a
        // pile of overdue slots at once (after an outage, say): at most twice the budget.
        let per_second = NonZeroU32::new(budgets.send_api.limit.saturating_mul(2).max(1))
            .unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::MIN;
        Arc::new(Self {
            redis,
            keys,
            reserve: Script::from_lua(RESERVE),
            latest: Script::from_lua(LATEST),
            block: Script::from_lua(BLOCK),
            pace_max,
            local: governor::RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
            meter: Meter::default(),
        })
    }

    /// The slot for one action of one event: the one booked when the event was deferred, or
    /// a new booking. A booking that must wait is remembered, so the event does not book (and
    /// use up budget) again when it comes back for it. `window_closes_ms` is when Meta stops
    /// accepting the call, if ever: a call whose window closes before its turn takes the slot
    /// of a deferred booking with more time (see [`RESERVE`]).
    #[tracing::instrument(name = "limiter.reserve", level = "debug", skip_all, fields(event = %event, action = %action, account = %account))]
    pub async fn reserve(
        &self,
        event: &EventId,
        action: &str,
        account: &IgUserId,
        class: CallClass,
        budgets: &Budgets,
        window_closes_ms: Option<i64>,
    ) -> Result<Duration, RedisError> {
        // Read apart: it lives in another hash slot than the account's keys.
        let app_blocked: Option<i64> = self
            .redis
            .get(self.blocked_key(Throttled::App))
            .await
            .map_err(RedisError::for_purpose("throttling"))?;
        let buckets = class.buckets(budgets);
        let keys = self.reserve_keys(event, action, account, &buckets);
        let mut args: Vec<String> = buckets
            .iter()
            .map(|(_, rate)| rate.interval_ms().to_string())
            .collect();
        args.extend(self.reserve_settings(window_closes_ms, app_blocked));
        let (wait_ms, usage, took_over): (i64, i64, i64) = self
            .reserve
            .evalsha_with_reload(&self.redis, keys, args)
            .await
            .map_err(RedisError::for_purpose("rate budgets"))?;
        if took_over == 1 {
            self.meter.add(account, class, |c| c.prioritized += 1);
            tracing::info!(
                wait_ms,
                "window closing: took the slot of a booking with more time"
            );
        } else if usage >= 80 {
            tracing::info!(usage, wait_ms, "account paced by Meta's usage report");
        }
        Ok(Duration::from_millis(u64::try_from(wait_ms).unwrap_or(0)))
    }

    /// [`RESERVE`]'s KEYS: the slot memory, the budgets, then the account's usage, pacing,
    /// ledger, block and moved bookings, all in the account's hash slot.
    fn reserve_keys(
        &self,
        event: &EventId,
        action: &str,
        account: &IgUserId,
        buckets: &[(&'static str, Rate)],
    ) -> Vec<String> {
        let tag = account_tag(account);
        let mut keys = vec![self.keys.key(&["slot", &tag, event.as_str(), action])];
        keys.extend(
            buckets
                .iter()
                .map(|(name, _)| self.keys.key(&["rl", &tag, name])),
        );
        keys.push(self.usage_key(account));
        keys.push(self.keys.key(&["rl", &tag, "pace"]));
        keys.push(self.keys.key(&["ledger", &tag]));
        keys.push(self.blocked_key(Throttled::Account(account)));
        keys.push(self.keys.key(&["moved", &tag]));
        keys
    }

    /// [`RESERVE`]'s ARGV after the budgets' intervals, in ms: the pacing maximum, the
    /// lateness tolerance, the slot memory, the call's deadline (0: none), how close a booking
    /// may be and still be moved, and the app's blocked time (0: none).
    fn reserve_settings(
        &self,
        window_closes_ms: Option<i64>,
        app_blocked: Option<i64>,
    ) -> [String; 6] {
        let deadline = window_closes_ms.map_or(0, |closes| {
            closes.saturating_sub(i64::try_from(SEND_MARGIN.as_millis()).unwrap_or(0))
        });
        [
            self.pace_max.as_millis().to_string(),
            LATE_TOLERANCE.as_millis().to_string(),
            SLOT_MEMORY.as_millis().to_string(),
            deadline.max(0).to_string(),
            MOVABLE_AFTER.as_millis().to_string(),
            app_blocked.unwrap_or(0).to_string(),
        ]
    }

    /// Waits for this process's own smoothing before a Send API call.
    #[tracing::instrument(name = "limiter.smooth", level = "debug", skip_all, fields(account = %account))]
    pub async fn smooth(&self, account: &IgUserId) {
        self.local.until_key_ready(&account.to_string()).await;
    }

    fn blocked_key(&self, scope: Throttled<'_>) -> String {
        match scope {
            Throttled::Account(account) => self.keys.key(&["rl", &account_tag(account), "blocked"]),
            Throttled::App => self.keys.key(&["rl", "app", "blocked"]),
        }
    }

    fn usage_key(&self, account: &IgUserId) -> String {
        self.keys.key(&["usage", &account_tag(account)])
    }

    /// Meta throttled the account (or the whole app) for `wait`: no call of it is booked
    /// before then, in any worker, so other events wait in the queue instead of being refused
    /// too.
    #[tracing::instrument(name = "limiter.block", level = "debug", skip_all)]
    pub async fn block(&self, scope: Throttled<'_>, wait: Duration) -> Result<(), RedisError> {
        let wait_ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
        let _: i64 = self
            .block
            .evalsha_with_reload(
                &self.redis,
                vec![self.blocked_key(scope)],
                vec![wait_ms.to_string()],
            )
            .await
            .map_err(RedisError::for_purpose("throttling"))?;
        Ok(())
    }

    /// The usage percentage Meta last reported for the account (within the last minute):
    /// reconciliation, the lowest priority, stops above its share.
    #[tracing::instrument(name = "limiter.reported_usage", level = "debug", skip_all, fields(account = %account))]
    pub async fn reported_usage(&self, account: &IgUserId) -> Result<Option<u8>, RedisError> {
        let percent: Option<i64> = self
            .redis
            .get(self.usage_key(account))
            .await
            .map_err(RedisError::for_purpose("usage"))?;
        Ok(percent.map(|p| u8::try_from(p.clamp(0, 100)).unwrap_or(100)))
    }

    /// Remembers the usage percentage Meta last reported for the account.
    #[tracing::instrument(name = "limiter.record_usage", level = "debug", skip_all, fields(account = %account))]
    pub async fn record_usage(&self, account: &IgUserId, percent: u8) -> Result<(), RedisError> {
        self.meter.usage(account, percent);
        let ttl = i64::try_from(USAGE_TTL.as_secs()).unwrap_or(i64::MAX);
        self.redis
            .set::<(), _, _>(
                self.usage_key(account),
                i64::from(percent),
                Some(Expiration::EX(ttl)),
                None,
                false,
            )
            .await
            .map_err(RedisError::for_purpose("usage"))
    }
}
