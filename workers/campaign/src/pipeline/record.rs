//! Stage 7, record: the event's decision row in the activity log, one per event. Touches
//! Postgres (`activity`).

use igflow_core::envelope::Envelope;
use igflow_core::event::Item;
use igflow_core::failure::Failure;
use igflow_core::plan::Decision;
use uuid::Uuid;

use crate::clients::store::{DecisionOutcome, DecisionRecord};
use crate::pipeline::{Context, Next, Pipeline};

/// A decision row about `env` with this outcome and nothing else known yet.
pub(super) fn decision_row(
    env: &Envelope,
    tenant_id: Option<Uuid>,
    attempt: Uuid,
    outcome: DecisionOutcome,
) -> DecisionRecord<'_> {
    DecisionRecord {
        attempt,
        tenant_id,
        ig_user_id: env.account_id.as_str(),
        event_id: env.event_id.as_str(),
        event_kind: env.kind.as_str(),
        campaign_id: None,
        contact: None,
        outcome,
        detail: None,
        excerpt: None,
    }
}

impl Context<'_> {
    /// The event's decision row as the stages have it now; its actions' rows share its keys.
    pub(super) fn decision_record(&self) -> DecisionRecord<'_> {
        let plan = match &self.decision {
            Decision::Matched(plan) => Some(plan),
            _ => None,
        };
        DecisionRecord {
            contact: self.contact.as_deref(),
            excerpt: match &self.item {
                Item::Comment(comment) => comment.text.as_deref(),
                _ => None,
            },
            campaign_id: plan.map(|p| p.campaign_id),
            detail: match plan {
                Some(plan) => Some(
                    self.why
                        .clone()
                        .unwrap_or_else(|| plan.matched_by.describe()),
                ),
                None => self.why.clone(),
            },
            ..decision_row(
                self.envelope,
                Some(self.account.tenant_id),
                self.attempt,
                DecisionOutcome::from(&self.decision),
            )
        }
    }
}

impl Pipeline {
    /// Records the decision; a plan goes on to its actions, anything else is done.
    #[tracing::instrument(level = "debug", skip_all)]
    pub(super) async fn record(&self, cx: &mut Context<'_>) -> Result<Next, Failure> {
        let record = cx.decision_record();
        self.store.record_decision(&record).await?;
        let Decision::Matched(plan) = &cx.decision else {
            tracing::info!(outcome = record.outcome.as_str(), "no action");
            return Ok(Next::Done);
        };
        tracing::Span::current().record("campaign_id", tracing::field::display(plan.campaign_id));
        tracing::info!(campaign = %plan.campaign_slug, "campaign matched");
        Ok(Next::Continue)
    }
}
