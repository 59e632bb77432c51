//! The Lua scripts that book, remember and block slots atomically on Redis's clock.

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
///    point above 79, and the pacing maximum from 95 percent, counted from the account's
///    latest booked call (kept whatever the usage, so the first call after a high report
///    waits too);
/// 5. a slot in the future is remembered for the event; one far enough ahead to be moved is
///    listed in the account's ledger of deferred bookings.
///
/// Nothing is booked before the account's or the app's `blocked` time (Meta throttled it).
///
/// Cluster-safe (Redis Cluster, ElastiCache Serverless): every key it touches is in KEYS and
/// all of them are the account's, one hash slot (see `account_tag`). A booking moved for a
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
pub(super) const RESERVE: &str = r"
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
local last = tonumber(redis.call('GET', KEYS[n + 3]) or '-1')
if usage >= 80 and last >= 0 then
  local interval = 250 * (usage - 79)
  if usage >= 95 then interval = pace_max end
  if last + interval > slot then slot = last + interval end
end
if slot > last then
  redis.call('SET', KEYS[n + 3], slot, 'PX', slot - now + pace_max + 1000)
end
if slot > now then
  remember(slot, deadline)
end
return {slot - now, usage, 0}
";

/// Keeps the later of the stored time and `ARGV[1]`, for `ARGV[2]` ms after it; returns it.
pub(super) const LATEST: &str = r"
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
pub(super) const BLOCK: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local wait = tonumber(ARGV[1])
local stored = tonumber(redis.call('GET', KEYS[1]) or '0')
if now + wait > stored then
  redis.call('SET', KEYS[1], now + wait, 'PX', wait + 1000)
end
return 0
";
