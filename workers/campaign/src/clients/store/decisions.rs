//! `activity` decision rows: what the worker decided about each event.

use uuid::Uuid;

use super::{Store, StoreError};

/// A decision about one event, for the activity log.
#[derive(Debug, Clone)]
pub struct DecisionRecord<'a> {
    pub tenant_id: Option<Uuid>,
    pub ig_user_id: &'a str,
    pub event_id: &'a str,
    pub event_kind: &'a str,
    pub campaign_id: Option<Uuid>,
    pub contact: Option<&'a str>,
    pub outcome: &'a str,
    pub detail: Option<String>,
    /// The comment's text, for the dashboard's live feed (stored cut to 140 characters).
    pub excerpt: Option<&'a str>,
    /// This handling of the event: its token on the event's actions, holding their claims
    /// and leases.
    pub attempt: Uuid,
}

impl Store {
    /// Records the decision once; a redelivered event keeps the first record.
    pub async fn record_decision(&self, d: &DecisionRecord<'_>) -> Result<(), StoreError> {
        sqlx::query(
            "insert into activity (tenant_id, ig_user_id, event_id, event_kind, step, campaign_id, contact_igsid, outcome, detail, excerpt)
             values ($1, $2, $3, $4, 'decision', $5, $6, $7, $8, left($9, 140))
             on conflict (ig_user_id, event_id, step) do nothing",
        )
        .bind(d.tenant_id)
        .bind(d.ig_user_id)
        .bind(d.event_id)
        .bind(d.event_kind)
        .bind(d.campaign_id)
        .bind(d.contact)
        .bind(d.outcome)
        .bind(&d.detail)
        .bind(d.excerpt)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
