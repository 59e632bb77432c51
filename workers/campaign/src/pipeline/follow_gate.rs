//! Stage 7, follow gate: a follow-gated step goes only to people who follow the account; the
//! others get the gate's message with a button to try again, a bounded number of times, and
//! then nothing. Touches the Graph API (User Profile) and Postgres (`flow_runs`).

use igflow_core::failure::Failure;
use igflow_core::plan::{Decision, MatchedBy};
use igflow_core::window;

use crate::clients::store::FlowStep;
use crate::pipeline::{Context, Next, Pipeline, Target};

impl Pipeline {
    #[tracing::instrument(level = "debug", skip_all)]
    pub(super) async fn follow_gate(&self, cx: &mut Context<'_>) -> Result<Next, Failure> {
        let Decision::Matched(plan) = &mut cx.decision else {
            return Ok(Next::Continue);
        };
        let (Some(gate), Target::Sender { igsid, .. }) = (plan.gate.take(), &cx.target) else {
            return Ok(Next::Continue);
        };
        let token = self
            .tokens
            .get(cx.account.id, &cx.account.token_secret_ref)
            .await?;
        let follows = self
            .graph
            .user_follows(&cx.account, &token, igsid)
            .await
            .map_err(|e| e.read_failure("the profile read"))?;
        let step = match &plan.matched_by {
            MatchedBy::Step { step } => step.clone(),
            other => other.describe(),
        };
        if follows {
            cx.why = Some(format!("step {step:?}: follows the account"));
            return Ok(Next::Continue);
        }
        let at = FlowStep {
            account_id: cx.account.id,
            contact: igsid.as_str(),
            campaign_id: plan.campaign_id,
            step: &step,
        };
        let turned_back = self
            .store
            .turned_back(at, cx.envelope.event_id.as_str(), window::MESSAGING_WINDOW)
            .await?;
        if turned_back <= gate.max_retries {
            plan.actions = vec![gate.not_following];
            cx.why = Some(format!(
                "step {step:?}: does not follow the account yet (turned back {turned_back} of {} times)",
                gate.max_retries
            ));
        } else {
            plan.actions.clear();
            cx.why = Some(format!(
                "step {step:?}: still does not follow the account after {} tries; not answered",
                gate.max_retries
            ));
        }
        Ok(Next::Continue)
    }
}
