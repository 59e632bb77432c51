//! `activity` decision rows: what the worker decided about each event.

use igflow_core::plan::Decision;
use uuid::Uuid;

use super::{Store, StoreError};

/// What became of an event, as its decision row's `activity.outcome` records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecisionOutcome {
    /// What the account's campaigns decided (matched, no match, a skip, a consent change).
    Decided(PlanOutcome),
    /// The event's account is not one igflow manages.
    UnknownAccount,
    /// The item does not have the shape its kind has.
    Malformed,
    /// The account removed the app (Meta's deauthorize callback).
    AppDeauthorized,
    /// An app callback whose signed request another callback reached first.
    RefusedReplay,
}

/// A campaign decision's word, as [`Decision::outcome`] gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanOutcome(&'static str);

impl From<&Decision> for DecisionOutcome {
    fn from(decision: &Decision) -> Self {
        Self::Decided(PlanOutcome(decision.outcome()))
    }
}

impl DecisionOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Decided(PlanOutcome(word)) => word,
            Self::UnknownAccount => "unknown_account",
            Self::Malformed => "malformed",
            Self::AppDeauthorized => "app_deauthorized",
            Self::RefusedReplay => "refused_replay",
        }
    }
}

/// A decision about one event, for the activity log.
#[derive(Debug, Clone)]
pub struct DecisionRecord<'a> {
    pub tenant_id: Option<Uuid>,
    pub ig_user_id: &'a str,
    pub event_id: &'a str,
    pub event_kind: &'a str,
    pub campaign_id: Option<Uuid>,
    pub contact: Option<&'a str>,
    pub outcome: DecisionOutcome,
    pub detail: Option<String>,
    /// The comment's text, for the dashboard's live feed (stored cut to 140 characters).
    pub excerpt: Option<&'a str>,
    /// This handling of the event: its token on the event's actions, holding their claims
    /// and leases.
    pub attempt: Uuid,
}

impl Store {
    /// Records the decision once; a redelivered event keeps the first record. Written together
    /// with other events' decisions and contacts (`batch`), durable when this returns.
    #[tracing::instrument(name = "store.record_decision", level = "debug", skip_all)]
    pub async fn record_decision(&self, d: &DecisionRecord<'_>) -> Result<(), StoreError> {
        self.batches.decide(d).await
    }
}
