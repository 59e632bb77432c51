//! Meta's per-account limits, enforced fleet-wide. Every Graph API call books a slot in
//! Redis with one atomic Lua script (GCRA over every budget the call draws on, plus a pacing
//! bucket that widens as Meta reports the account's usage rising), so any number of workers
//! together never exceed a budget. Idle time is not banked beyond one call's burst.
//! A governor limiter smooths each process's own sends on top.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use fred::prelude::{Client, Expiration, KeysInterface, SetOptions};
use fred::types::scripts::Script;
use governor::{DefaultKeyedRateLimiter, Quota};
use igflow_core::campaign::AccountLimits;
use igflow_core::failure::Failure;
use igflow_core::ids::{EventId, IgUserId, Igsid};
use igflow_core::window;

use crate::clients::redis::RedisKeys;

/// A budget: `limit` calls per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub limit: u32,
    pub per: Duration,
}

impl Rate {
    pub const fn per_hour(limit: u32) -> Self {
        Self {
            limit,
            per: Duration::from_secs(3600),
        }
    }

    pub const fn per_second(limit: u32) -> Self {
        Self {
            limit,
            per: Duration::from_secs(1),
        }
    }

    /// GCRA's emission interval, in milliseconds (at least 1).
    fn interval_ms(&self) -> u64 {
        (u64::try_from(self.per.as_millis()).unwrap_or(u64::MAX) / u64::from(self.limit.max(1)))
            .max(1)
    }
}

/// The budgets of one account (docs/architecture.md, "Meta's rules the worker obeys").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budgets {
    /// Private replies: 750 per hour.
    pub private_replies: Rate,
    /// Send API calls (every POST to /messages): 100 per second.
    pub send_api: Rate,
    /// igflow's own ceiling on automated DMs: 200 per hour.
    pub automated_dms: Rate,
}

impl Budgets {
    /// These budgets with the account's own where it has any.
    pub fn for_account(&self, limits: &AccountLimits) -> Self {
        Self {
            private_replies: limits
                .private_replies_per_hour
                .map_or(self.private_replies, Rate::per_hour),
            send_api: limits
                .send_api_per_second
                .map_or(self.send_api, Rate::per_second),
            automated_dms: limits
                .automated_dms_per_hour
                .map_or(self.automated_dms, Rate::per_hour),
        }
    }
}

impl Default for Budgets {
    fn default() -> Self {
        Self {
            private_replies: Rate::per_hour(750),
            send_api: Rate::per_second(100),
            automated_dms: Rate::per_hour(200),
        }
    }
}

/// The budgets a call draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallClass {
    /// A private reply: a DM through the Send API, once per comment.
    PrivateReply,
    /// A DM to someone who wrote to the account.
    Message,
    /// A public reply under a comment: paced by Meta's usage only.
    PublicReply,
}

impl CallClass {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PrivateReply => "private_reply",
            Self::Message => "message",
            Self::PublicReply => "public_reply",
        }
    }

    fn buckets(self, b: &Budgets) -> Vec<(&'static str, Rate)> {
        match self {
            Self::PrivateReply => vec![
                ("send_api", b.send_api),
                ("private_replies", b.private_replies),
                ("automated_dms", b.automated_dms),
            ],
            Self::Message => vec![("send_api", b.send_api), ("automated_dms", b.automated_dms)],
            Self::PublicReply => Vec::new(),
        }
    }
}

/// Reserves the next call of an account in one round trip, on Redis's clock so that
/// workers' clocks do not matter:
/// 1. a slot this event booked before and is back for (not missed by more than a moment) is
///    kept, so coming back for it uses no budget again;
/// 2. otherwise the earliest slot every budget allows is booked (GCRA without burst
///    tolerance: calls are spaced evenly at each budget's rate);
/// 3. if that slot falls after the call's window closes, the call takes instead the latest
///    slot before its deadline held by a deferred booking that can still make its own window
///    from the end of the queue, and that booking moves to the end (it finds its new slot
///    when it comes back);
/// 4. then the account's pacing by Meta's usage report: none below 80 percent, 250 ms per
///    point above 79, and the pacing maximum from 95 percent;
/// 5. a slot in the future is remembered for the event; one far enough ahead to be moved is
///    listed in the account's ledger of deferred bookings.
///
/// Nothing is booked before the account's or the app's `blocked` time (Meta throttled it).
///
/// Cluster-safe (Redis Cluster, ElastiCache Serverless): every key it touches is in KEYS and
/// all of them are the account's, one hash slot (see [`account_tag`]). A booking moved for a
/// closing window is not its own key (not known beforehand, so not declarable) but a field
/// of the account's `moved` hash, which its event finds when it comes back. The app-wide
/// block lives in another slot: the caller reads it first and passes it in ARGV.
///
/// KEYS: slot memory, the budgets, usage, pacing, ledger, blocked (account), moved bookings.
/// ARGV: the budgets' intervals in ms, then the pacing maximum, the lateness tolerance, how
/// long to remember a slot, the call's deadline (0: none), how close a booking may be and
/// still be moved, in ms, and the app's blocked time (0: none).
/// Returns the wait in ms, the usage percentage (-1 for a remembered slot) and 1 when the
/// slot was taken over from a booking with more time.
const RESERVE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = #KEYS - 6
local pace_max = tonumber(ARGV[n + 1])
local tolerance = tonumber(ARGV[n + 2])
local memory = tonumber(ARGV[n + 3])
local deadline = tonumber(ARGV[n + 4])
local margin = tonumber(ARGV[n + 5])
local ledger = KEYS[n + 4]
local moved = KEYS[n + 6]
local blocked = math.max(tonumber(redis.call('GET', KEYS[n + 5]) or '0'), tonumber(ARGV[n + 6]))
local moved_to = redis.call('HGET', moved, KEYS[1])
if moved_to then
  redis.call('HDEL', moved, KEYS[1])
  redis.call('SET', KEYS[1], moved_to, 'PX', math.max(tonumber(moved_to) - now + memory, 1))
end
local booked = tonumber(redis.call('GET', KEYS[1]) or '-1')
if booked >= 0 and now - booked <= tolerance then
  return {math.max(booked - now, 0), -1, 0}
end
redis.call('ZREMRANGEBYSCORE', ledger, '-inf', now + margin)
local slot = math.max(now, blocked)
for i = 1, n do
  local tat = tonumber(redis.call('GET', KEYS[i + 1]) or '0')
  if tat > slot then slot = tat end
end
for i = 1, n do
  local next_tat = slot + tonumber(ARGV[i])
  redis.call('SET', KEYS[i + 1], next_tat, 'PX', next_tat - now + 1000)
end
local function list(key, at, own_deadline)
  if at - now > margin then
    redis.call('ZADD', ledger, at, own_deadline .. '|' .. key)
    redis.call('PEXPIRE', ledger, at - now + memory)
  end
end
local function remember(at, own_deadline)
  redis.call('SET', KEYS[1], at, 'PX', at - now + memory)
  list(KEYS[1], at, own_deadline)
end
local function move(key, at, own_deadline)
  redis.call('HSET', moved, key, at)
  if redis.call('PTTL', moved) < at - now + memory then
    redis.call('PEXPIRE', moved, at - now + memory)
  end
  list(key, at, own_deadline)
end
if deadline > 0 and slot >= deadline then
  local candidates = redis.call('ZREVRANGEBYSCORE', ledger, deadline - 1, '(' .. (now + margin), 'WITHSCORES', 'LIMIT', 0, 50)
  for i = 1, #candidates, 2 do
    local member = candidates[i]
    local their_deadline, their_key = string.match(member, '^(%d+)|(.+)$')
    their_deadline = tonumber(their_deadline)
    if their_deadline == 0 or their_deadline > slot then
      local theirs = tonumber(candidates[i + 1])
      redis.call('ZREM', ledger, member)
      move(their_key, slot, their_deadline)
      remember(theirs, deadline)
      return {theirs - now, 0, 1}
    end
  end
end
local usage = tonumber(redis.call('GET', KEYS[n + 2]) or '0')
if usage >= 80 then
  local interval = 250 * (usage - 79)
  if usage >= 95 then interval = pace_max end
  local tat = tonumber(redis.call('GET', KEYS[n + 3]) or '0')
  if tat > slot then slot = tat end
  redis.call('SET', KEYS[n + 3], slot + interval, 'PX', slot + interval - now + 1000)
end
if slot > now then
  remember(slot, deadline)
end
return {slot - now, usage, 0}
";

/// Keeps the later of the stored time and `ARGV[1]`, for `ARGV[2]` ms after it; returns it.
const LATEST: &str = r"
local stored = tonumber(redis.call('GET', KEYS[1]) or '0')
local given = tonumber(ARGV[1])
if given > stored then
  redis.call('SET', KEYS[1], given, 'PX', ARGV[2])
  return given
end
return stored
";

/// Blocks the account's bookings for `ARGV[1]` ms from now on Redis's clock, the clock the
/// slots are booked on; an earlier, longer block stays.
const BLOCK: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local wait = tonumber(ARGV[1])
local stored = tonumber(redis.call('GET', KEYS[1]) or '0')
if now + wait > stored then
  redis.call('SET', KEYS[1], now + wait, 'PX', wait + 1000)
end
return 0
";

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
const LATE_TOLERANCE: Duration = Duration::from_millis(100);
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

/// What happened per account and call class since the last metrics flush.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClassCounts {
    pub sent: u64,
    pub deferred: u64,
    pub window_drops: u64,
    /// Calls moved ahead of bookings with more time because their window was closing.
    pub prioritized: u64,
}

/// Counts by (account, call class).
pub type ClassCountsByAccount = HashMap<(String, &'static str), ClassCounts>;

/// Per-account counts for the metrics (one EMF document per account and class).
#[derive(Debug, Default)]
pub struct Meter {
    counts: Mutex<ClassCountsByAccount>,
    usage: Mutex<HashMap<String, u8>>,
}

impl Meter {
    pub fn add(&self, account: &IgUserId, class: CallClass, f: impl FnOnce(&mut ClassCounts)) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        f(counts
            .entry((account.to_string(), class.as_str()))
            .or_default());
    }

    fn usage(&self, account: &IgUserId, percent: u8) {
        self.usage
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(account.to_string(), percent);
    }

    /// Takes the counts since the last call, and the last usage seen per account.
    pub fn take(&self) -> (ClassCountsByAccount, HashMap<String, u8>) {
        let counts =
            std::mem::take(&mut *self.counts.lock().unwrap_or_else(PoisonError::into_inner));
        let usage = std::mem::take(&mut *self.usage.lock().unwrap_or_else(PoisonError::into_inner));
        (counts, usage)
    }

    pub fn peek(&self, account: &IgUserId, class: CallClass) -> ClassCounts {
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts
            .get(&(account.to_string(), class.as_str()))
            .copied()
            .unwrap_or_default()
    }
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
    pub async fn reserve(
        &self,
        event: &EventId,
        action: &str,
        account: &IgUserId,
        class: CallClass,
        budgets: &Budgets,
        window_closes_ms: Option<i64>,
    ) -> Result<Duration, Failure> {
        // Read apart: it lives in another hash slot than the account's keys.
        let app_blocked: Option<i64> = self
            .redis
            .get(self.blocked_key(Throttled::App))
            .await
            .map_err(|e| Failure::retry(format!("redis unavailable for throttling: {e}")))?;
        let buckets = class.buckets(budgets);
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
        let mut args: Vec<String> = buckets
            .iter()
            .map(|(_, rate)| rate.interval_ms().to_string())
            .collect();
        args.extend(
            [
                self.pace_max.as_millis(),
                LATE_TOLERANCE.as_millis(),
                SLOT_MEMORY.as_millis(),
            ]
            .map(|ms| ms.to_string()),
        );
        let deadline = window_closes_ms.map_or(0, |closes| {
            closes.saturating_sub(i64::try_from(SEND_MARGIN.as_millis()).unwrap_or(0))
        });
        args.push(deadline.max(0).to_string());
        args.push(MOVABLE_AFTER.as_millis().to_string());
        args.push(app_blocked.unwrap_or(0).to_string());
        let (wait_ms, usage, took_over): (i64, i64, i64) = self
            .reserve
            .evalsha_with_reload(&self.redis, keys, args)
            .await
            .map_err(|e| Failure::retry(format!("redis unavailable for rate budgets: {e}")))?;
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

    /// Holds the contact's cooldown for this campaign for `event`. True when the event may
    /// DM the contact: nobody held it, or this same event did (a retry).
    pub async fn hold_cooldown(
        &self,
        campaign: &str,
        contact: &str,
        event: &EventId,
        cooldown: Duration,
    ) -> Result<bool, Failure> {
        if cooldown.is_zero() {
            return Ok(true);
        }
        let key = self.keys.key(&["cool", campaign, contact]);
        let ttl = i64::try_from(cooldown.as_millis()).unwrap_or(i64::MAX);
        let unavailable =
            |e: fred::error::Error| Failure::retry(format!("redis unavailable for cooldowns: {e}"));
        let set: Option<String> = self
            .redis
            .set(
                &key,
                event.as_str(),
                Some(Expiration::PX(ttl)),
                Some(SetOptions::NX),
                false,
            )
            .await
            .map_err(unavailable)?;
        if set.is_some() {
            return Ok(true);
        }
        let holder: Option<String> = self.redis.get(&key).await.map_err(unavailable)?;
        Ok(holder.as_deref() == Some(event.as_str()))
    }

    /// Remembers that `person` wrote to the account at `at_ms`; returns the latest time they
    /// wrote that Redis knows of (the 24-hour messaging window runs from it).
    pub async fn note_user_message(
        &self,
        account: &IgUserId,
        person: &Igsid,
        at_ms: i64,
    ) -> Result<i64, Failure> {
        let key = self
            .keys
            .key(&["lastmsg", account.as_str(), person.as_str()]);
        let ttl_ms = i64::try_from(window::MESSAGING_WINDOW.as_millis()).unwrap_or(i64::MAX);
        self.latest
            .evalsha_with_reload::<i64, _, _>(
                &self.redis,
                key,
                vec![at_ms.to_string(), ttl_ms.to_string()],
            )
            .await
            .map_err(|e| Failure::retry(format!("redis unavailable for messaging windows: {e}")))
    }

    /// Waits for this process's own smoothing before a Send API call.
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
    pub async fn block(&self, scope: Throttled<'_>, wait: Duration) -> Result<(), Failure> {
        let wait_ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
        let _: i64 = self
            .block
            .evalsha_with_reload(
                &self.redis,
                vec![self.blocked_key(scope)],
                vec![wait_ms.to_string()],
            )
            .await
            .map_err(|e| Failure::retry(format!("redis unavailable for throttling: {e}")))?;
        Ok(())
    }

    /// The usage percentage Meta last reported for the account (within the last minute):
    /// reconciliation, the lowest priority, stops above its share.
    pub async fn reported_usage(&self, account: &IgUserId) -> Result<Option<u8>, Failure> {
        let percent: Option<i64> = self
            .redis
            .get(self.usage_key(account))
            .await
            .map_err(|e| Failure::retry(format!("redis unavailable for usage: {e}")))?;
        Ok(percent.map(|p| u8::try_from(p.clamp(0, 100)).unwrap_or(100)))
    }

    /// Remembers the usage percentage Meta last reported for the account.
    pub async fn record_usage(&self, account: &IgUserId, percent: u8) -> Result<(), Failure> {
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
            .map_err(|e| Failure::retry(format!("redis unavailable for usage: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_and_classes() {
        assert_eq!(Rate::per_hour(750).interval_ms(), 4800);
        assert_eq!(Rate::per_second(100).interval_ms(), 10);
        assert_eq!(Rate::per_second(0).interval_ms(), 1000);
        let b = Budgets::default();
        assert_eq!(CallClass::PrivateReply.buckets(&b).len(), 3);
        assert!(CallClass::PublicReply.buckets(&b).is_empty());
    }
}
