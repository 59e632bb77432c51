//! The contact's DM cooldown per campaign, as one check: Redis holds it for the event that
//! DMs first (so concurrent events for one contact send one DM), and Postgres remembers the
//! DMs sent (what Redis may have forgotten).

use std::sync::Arc;

use igflow_core::failure::Failure;
use igflow_core::ids::EventId;
use igflow_core::plan::Plan;

use crate::clients::ratelimit::RateLimiter;
use crate::clients::store::Store;

pub struct Cooldown {
    pub limiter: Arc<RateLimiter>,
    pub store: Store,
}

impl Cooldown {
    /// True when `event` may DM `contact` for the plan's campaign: nobody else holds the
    /// cooldown (or this same event does: a retry), and no other event's DM was sent within it.
    pub async fn free(&self, plan: &Plan, contact: &str, event: &EventId) -> Result<bool, Failure> {
        // No cooldown (the default): nothing to hold and nothing to look up in Postgres.
        if plan.cooldown.is_zero() {
            return Ok(true);
        }
        let campaign = plan.campaign_id.to_string();
        Ok(self
            .limiter
            .hold_cooldown(&campaign, contact, event, plan.cooldown)
            .await?
            && !self
                .store
                .dm_sent_within(plan.campaign_id, contact, plan.cooldown, event.as_str())
                .await?)
    }
}
