//! Event dedupe in Redis, on the Powertools idempotency model: a claim with a lease (the
//! message's visibility deadline), a done-marker that outlives Meta's 36-hour retry horizon,
//! and a release when an attempt fails so the retry can claim again.

use std::time::Duration;

use fred::prelude::{Client, Expiration, KeysInterface};
use fred::types::scripts::Script;

use igflow_core::ids::{EventId, IgUserId};

use crate::clients::redis::{RedisError, RedisKeys};

/// Longer than Meta's 36 hours of redelivery and SQS's 14 days is not needed: 7 days.
pub const DONE_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
const DONE: &str = "done";

/// SET NX with a lease, else report what holds the key (`done` or another claim).
const CLAIM: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 'claimed' end
return redis.call('GET', KEYS[1]) or 'claimed-now-expired'
";

/// Deletes the key only if it still holds our claim (a lease may have passed to another).
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// Renews our claim's lease, only if it is still ours.
const EXTEND: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This worker holds the event until the lease ends.
    Acquired(ClaimToken),
    /// The event was fully handled before: drop the repeat.
    Done,
    /// Another worker is on it right now.
    Busy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimToken(String);

#[derive(Clone)]
pub struct Dedupe {
    redis: Client,
    keys: RedisKeys,
    claim: Script,
    release: Script,
    extend: Script,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl Dedupe {
    pub fn new(redis: Client, keys: RedisKeys) -> Self {
        Self {
            redis,
            keys,
            claim: Script::from_lua(CLAIM),
            release: Script::from_lua(RELEASE),
            extend: Script::from_lua(EXTEND),
        }
    }

    /// Meta's event ids are not unique across accounts (a DM between two igflow accounts is
    /// one mid in both): the key is the account's.
    fn key(&self, account: &IgUserId, event: &EventId) -> String {
        self.keys.key(&["evt", account.as_str(), event.as_str()])
    }

    pub async fn claim(
        &self,
        account: &IgUserId,
        event: &EventId,
        lease: Duration,
    ) -> Result<Claim, RedisError> {
        let token = ClaimToken(format!("claim:{:016x}", fastrand::u64(..)));
        let lease_ms = millis(lease);
        let held: String = self
            .claim
            .evalsha_with_reload(
                &self.redis,
                self.key(account, event),
                vec![token.0.clone(), lease_ms.to_string()],
            )
            .await
            .map_err(RedisError::for_purpose("dedupe"))?;
        Ok(match held.as_str() {
            "claimed" => Claim::Acquired(token),
            DONE => Claim::Done,
            _ => Claim::Busy,
        })
    }

    /// Marks the event handled for [`DONE_TTL`]; repeats are dropped from now on.
    pub async fn complete(&self, account: &IgUserId, event: &EventId) -> Result<(), RedisError> {
        self.redis
            .set::<(), _, _>(
                self.key(account, event),
                DONE,
                Some(Expiration::EX(
                    DONE_TTL.as_secs().try_into().unwrap_or(i64::MAX),
                )),
                None,
                false,
            )
            .await
            .map_err(RedisError::for_purpose("dedupe"))
    }

    /// Renews the lease while the event is still being worked on. False if the claim is no
    /// longer ours (it expired and another worker took it).
    pub async fn extend(
        &self,
        account: &IgUserId,
        event: &EventId,
        token: &ClaimToken,
        lease: Duration,
    ) -> Result<bool, RedisError> {
        self.extend
            .evalsha_with_reload::<i64, _, _>(
                &self.redis,
                self.key(account, event),
                vec![token.0.clone(), millis(lease).to_string()],
            )
            .await
            .map(|n| n == 1)
            .map_err(RedisError::for_purpose("dedupe"))
    }

    /// Gives the event back after a failed attempt so that the retry can claim it at once.
    pub async fn release(
        &self,
        account: &IgUserId,
        event: &EventId,
        token: &ClaimToken,
    ) -> Result<(), RedisError> {
        self.release
            .evalsha_with_reload::<i64, _, _>(
                &self.redis,
                self.key(account, event),
                vec![token.0.clone()],
            )
            .await
            .map(drop)
            .map_err(RedisError::for_purpose("dedupe"))
    }
}
