//! Per-contact state in Redis: a campaign's cooldown per contact, and when each person last
//! wrote (the 24-hour messaging window runs from it).

use std::time::Duration;

use fred::prelude::{Expiration, KeysInterface, SetOptions};
use igflow_core::ids::{EventId, IgUserId, Igsid};
use igflow_core::window;

use super::RateLimiter;
use crate::clients::redis::RedisError;

impl RateLimiter {
    /// Holds the contact's cooldown for this campaign for `event`. True when the event may
    /// DM the contact: nobody held it, or this same event did (a retry).
    #[tracing::instrument(name = "limiter.hold_cooldown", level = "debug", skip_all, fields(campaign = %campaign, event = %event))]
    pub async fn hold_cooldown(
        &self,
        campaign: &str,
        contact: &str,
        event: &EventId,
        cooldown: Duration,
    ) -> Result<bool, RedisError> {
        if cooldown.is_zero() {
            return Ok(true);
        }
        let key = self.keys.key(&["cool", campaign, contact]);
        let ttl = i64::try_from(cooldown.as_millis()).unwrap_or(i64::MAX);
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
            .map_err(RedisError::for_purpose("cooldowns"))?;
        if set.is_some() {
            return Ok(true);
        }
        let holder: Option<String> = self
            .redis
            .get(&key)
            .await
            .map_err(RedisError::for_purpose("cooldowns"))?;
        Ok(holder.as_deref() == Some(event.as_str()))
    }

    /// Remembers that `person` wrote to the account at `at_ms`; returns the latest time they
    /// wrote that Redis knows of (the 24-hour messaging window runs from it).
    #[tracing::instrument(name = "limiter.note_user_message", level = "debug", skip_all, fields(account = %account))]
    pub async fn note_user_message(
        &self,
        account: &IgUserId,
        person: &Igsid,
        at_ms: i64,
    ) -> Result<i64, RedisError> {
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
            .map_err(RedisError::for_purpose("messaging windows"))
    }
}
