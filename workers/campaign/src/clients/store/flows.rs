//! `flow_runs`: where a person is in a campaign's flow, across restarts.

use std::time::Duration;

use uuid::Uuid;

use super::{Store, StoreError};

/// One person at one step of one campaign's flow.
#[derive(Debug, Clone, Copy)]
pub struct FlowStep<'a> {
    pub account_id: Uuid,
    pub contact: &'a str,
    pub campaign_id: Uuid,
    pub step: &'a str,
}

impl Store {
    /// Records that a follow gate turned back the tap `event_id` (once, however often Meta
    /// delivers it) and returns how many of the person's taps it turned back in all, while the
    /// run lives: `window` from this tap.
    #[tracing::instrument(name = "store.turned_back", level = "debug", skip_all, fields(campaign_id = %at.campaign_id))]
    pub async fn turned_back(
        &self,
        at: FlowStep<'_>,
        event_id: &str,
        window: Duration,
    ) -> Result<u32, StoreError> {
        let count: i32 = sqlx::query_scalar(
            "insert into flow_runs (account_id, contact_igsid, campaign_id, step, turned_back, expires_at)
             values ($1, $2, $3, $4, array[$5], now() + make_interval(secs => $6))
             on conflict (account_id, contact_igsid, campaign_id, step) do update set
               turned_back = case
                 when flow_runs.expires_at < now() then array[$5]
                 when $5 = any(flow_runs.turned_back) then flow_runs.turned_back
                 else flow_runs.turned_back || $5 end,
               expires_at = excluded.expires_at, updated_at = now()
             returning cardinality(turned_back)",
        )
        .bind(at.account_id)
        .bind(at.contact)
        .bind(at.campaign_id)
        .bind(at.step)
        .bind(event_id)
        .bind(window.as_secs_f64())
        .fetch_one(&self.pool)
        .await?;
        Ok(u32::try_from(count).unwrap_or(0))
    }
}
