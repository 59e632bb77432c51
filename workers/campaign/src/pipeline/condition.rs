//! Stage 6a, condition (after `classify`, before the follow gate): a flow step with `only_if`
//! goes out only when it holds of the person (their email or phone on record or not);
//! otherwise the step `otherwise` names is checked in turn, or nothing is sent. Touches
//! Postgres (`contacts`).

use igflow_core::campaign_file::MAX_STEPS;
use igflow_core::failure::Failure;
use igflow_core::plan::{Decision, MatchedBy};

use crate::pipeline::capture::silent;
use crate::pipeline::{Context, Next, Pipeline, Target};

impl Pipeline {
    #[tracing::instrument(level = "debug", skip_all)]
    pub(super) async fn condition(&self, cx: &mut Context<'_>) -> Result<Next, Failure> {
        let mut why: Vec<String> = Vec::new();
        let mut visited: Vec<String> = Vec::new();
        // Each unmet condition moves one step on, at most once per step: a step met again
        // means the conditions lead round in a circle, and nothing is sent.
        for _ in 0..=MAX_STEPS {
            let (Decision::Matched(plan), Target::Sender { igsid, .. }, Some(campaigns)) =
                (&cx.decision, &cx.target, &cx.campaigns)
            else {
                return Ok(Next::Continue);
            };
            let MatchedBy::Step { step } = &plan.matched_by else {
                return Ok(Next::Continue);
            };
            let Some((condition, otherwise)) = campaigns.condition_of(plan.campaign_id, step)
            else {
                break;
            };
            if visited.contains(step) {
                why.push("the steps' conditions lead round in a circle; nothing sent".into());
                cx.decision = silent(cx.decision.clone());
                break;
            }
            visited.push(step.clone());
            let on_record = self
                .store
                .contact_detail(cx.account.id, igsid.as_str(), condition.field())
                .await?
                .is_some();
            if condition.holds(on_record) {
                why.push(format!("step {step:?}: {}", condition.describe()));
                break;
            }
            why.push(format!(
                "step {step:?}: not sent, as it needs {}",
                condition.describe()
            ));
            cx.decision = match otherwise {
                Some(other) => campaigns.step(&cx.envelope.event_id, plan.campaign_id, other),
                None => silent(cx.decision.clone()),
            };
            if otherwise.is_none() {
                break;
            }
        }
        if !why.is_empty() {
            let said = why.join("; ");
            cx.why = Some(
                cx.why
                    .take()
                    .map_or(said.clone(), |w| format!("{w}; {said}")),
            );
        }
        Ok(Next::Continue)
    }
}
