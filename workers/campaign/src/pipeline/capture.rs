//! Capture steps: a step that asks for an email or phone number starts waiting for the
//! person's next message, and that message is then decided by the step (stored on the
//! contact, then the next step or thanks; a bad answer asked again, a bounded number of
//! times), not by the campaigns. Touches Postgres (`flow_runs`, `contacts`).

use igflow_core::campaign::Capture;
use igflow_core::campaign_file::MAX_STEPS;
use igflow_core::event::{Act, Item};
use igflow_core::failure::Failure;
use igflow_core::ids::EventId;
use igflow_core::plan::{CampaignSet, Decision, MatchedBy};
use igflow_core::window;

use crate::clients::store::{Captured, FlowStep};
use crate::pipeline::{Context, Next, Pipeline, Target};

impl Pipeline {
    /// In `plan`: the person's message, when a capture step waits for it. Consent (STOP)
    /// and skips stand; a campaign or step no longer there leaves the message to the
    /// campaigns.
    pub(super) async fn answer_capture(
        &self,
        cx: &mut Context<'_>,
        campaigns: &CampaignSet,
    ) -> Result<(), Failure> {
        // Without a capture step among the campaigns nobody can be waiting: no query.
        if !campaigns.has_captures()
            || matches!(cx.decision, Decision::Consent(_) | Decision::Skip(_))
        {
            return Ok(());
        }
        let (Item::Messaging(message), Target::Sender { igsid, .. }) = (&cx.item, &cx.target)
        else {
            return Ok(());
        };
        let (Some(text), Act::Message) = (message.text(), message.act()) else {
            return Ok(());
        };
        let (text, sender) = (text.to_owned(), igsid.clone());
        let event = cx.envelope.event_id.as_str();
        let Some(run) = self
            .store
            .awaiting(cx.account.id, sender.as_str(), event)
            .await?
        else {
            return Ok(());
        };
        if let Some(capture) = campaigns.capture_of(run.campaign_id, &run.step) {
            let at = FlowStep {
                account_id: cx.account.id,
                contact: sender.as_str(),
                campaign_id: run.campaign_id,
                step: &run.step,
            };
            let (decision, why) = self.answer(cx, at, capture, &text, campaigns).await?;
            cx.decision = decision;
            cx.why = Some(why);
        }
        Ok(())
    }

    /// The step's decision on `text`: stored and on to the next step or thanks, asked
    /// again, or (past its attempts) no longer asked; and why, for the activity log.
    async fn answer(
        &self,
        cx: &Context<'_>,
        at: FlowStep<'_>,
        capture: &Capture,
        text: &str,
        campaigns: &CampaignSet,
    ) -> Result<(Decision, String), Failure> {
        let (event, step, field) = (cx.envelope.event_id.as_str(), at.step, capture.field);
        if let Some(value) = field.accept(text) {
            let captured = Captured {
                field,
                value: &value,
                tenant_id: cx.account.tenant_id,
                ig_user_id: cx.account.ig_user_id.as_str(),
                campaign_slug: campaigns.slug_of(at.campaign_id).unwrap_or_default(),
            };
            self.store.answered(at, event, Some(captured)).await?;
            let decision = after(campaigns, &cx.envelope.event_id, at, capture);
            return Ok((decision, format!("step {step:?}: {field} captured")));
        }
        let bad = self.store.bad_answer(at, event).await?;
        if bad <= capture.max_attempts {
            return Ok((
                campaigns.step_reply(at.campaign_id, step, &capture.invalid),
                format!(
                    "step {step:?}: not a valid {field}, asked again ({bad} of {})",
                    capture.max_attempts
                ),
            ));
        }
        self.store.answered(at, event, None).await?;
        Ok((
            silent(campaigns.step_reply(at.campaign_id, step, "")),
            format!(
                "step {step:?}: no valid {field} after {} tries; stopped asking",
                capture.max_attempts
            ),
        ))
    }

    /// After the follow gate: a capture step going out starts waiting for the answer, for as
    /// long as the window its tap opened; one whose answer is on record already (and that
    /// says `skip_if_known`) is passed over for its next step, or its thanks.
    pub(super) async fn start_waiting(&self, cx: &mut Context<'_>) -> Result<Next, Failure> {
        // Each pass moves one step on; a flow has at most MAX_STEPS of them.
        for _ in 0..=MAX_STEPS {
            let (Decision::Matched(plan), Target::Sender { igsid, .. }, Some(campaigns)) =
                (&cx.decision, &cx.target, &cx.campaigns)
            else {
                return Ok(Next::Continue);
            };
            let (Some(field), MatchedBy::Step { step }) = (plan.awaits, &plan.matched_by) else {
                return Ok(Next::Continue);
            };
            let campaign = plan.campaign_id;
            let known = match campaigns.capture_of(campaign, step) {
                Some(capture) if capture.skip_if_known => {
                    self.store
                        .contact_detail(cx.account.id, igsid.as_str(), field)
                        .await?
                }
                _ => None,
            };
            let Some(capture) = known.and_then(|_| campaigns.capture_of(campaign, step)) else {
                let at = FlowStep {
                    account_id: cx.account.id,
                    contact: igsid.as_str(),
                    campaign_id: campaign,
                    step,
                };
                self.store
                    .await_answer(at, field.as_str(), window::MESSAGING_WINDOW)
                    .await?;
                return Ok(Next::Continue);
            };
            let at = FlowStep {
                account_id: cx.account.id,
                contact: igsid.as_str(),
                campaign_id: campaign,
                step,
            };
            let decision = after(campaigns, &cx.envelope.event_id, at, capture);
            cx.why = Some(format!(
                "step {step:?}: {field} already on record; not asked again"
            ));
            cx.decision = decision;
        }
        Ok(Next::Continue)
    }
}

/// Where a capture step leads once it has its answer: the next step, or thanks, or nowhere.
fn after(
    campaigns: &CampaignSet,
    event: &EventId,
    at: FlowStep<'_>,
    capture: &Capture,
) -> Decision {
    match (&capture.next, &capture.thanks) {
        (Some(next), _) => campaigns.step(event, at.campaign_id, next),
        (None, Some(thanks)) => campaigns.step_reply(at.campaign_id, at.step, thanks),
        (None, None) => silent(campaigns.step_reply(at.campaign_id, at.step, "")),
    }
}

/// The step's decision with nothing to send (the answer recorded, nothing left to say).
pub(super) fn silent(mut decision: Decision) -> Decision {
    if let Decision::Matched(plan) = &mut decision {
        plan.actions.clear();
    }
    decision
}
