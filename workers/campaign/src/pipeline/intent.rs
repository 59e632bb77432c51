//! Stage 6, classify: when no keyword matched a comment, the model is asked about the
//! intents of the campaigns that have some, highest priority first. With the model
//! unavailable the decision stays keyword only, and the record says so. Touches Ollama and
//! Redis (the answer cache), through the classifier.

use igflow_core::event::{Comment, Item};
use igflow_core::failure::Failure;
use igflow_core::plan::{CampaignSet, Decision};

use crate::pipeline::classify::Source;
use crate::pipeline::{Context, Next, Pipeline};

impl Pipeline {
    #[tracing::instrument(level = "debug", skip_all)]
    pub(super) async fn classify(&self, cx: &mut Context<'_>) -> Result<Next, Failure> {
        if let (Decision::NoMatch, Item::Comment(comment), Some(campaigns)) =
            (&cx.decision, &cx.item, &cx.campaigns)
        {
            (cx.decision, cx.why) = self.by_intent(cx, campaigns, comment).await;
        }
        Ok(Next::Continue)
    }

    async fn by_intent(
        &self,
        cx: &Context<'_>,
        campaigns: &CampaignSet,
        comment: &Comment,
    ) -> (Decision, Option<String>) {
        let env = cx.envelope;
        let text = comment.text.as_deref().unwrap_or_default();
        let mut why = None;
        for campaign in campaigns.intent_candidates(comment, env.occurred_at_ms) {
            let c = self
                .classifier
                .classify(cx.account.tenant_id, text, &campaign.intents)
                .await;
            match (c.intent, c.source) {
                (Some(intent), source) => {
                    let detail = format!("intent {intent:?} ({})", source.as_str());
                    let plan = CampaignSet::plan_intent(&env.event_id, campaign, intent, comment);
                    return (Decision::Matched(plan), Some(detail));
                }
                (None, Source::Fallback { reason }) => {
                    // The tenant's breaker is shared by its campaigns: the next one would
                    // fall back the same way.
                    let why = format!("model not asked ({}); keyword rules only", reason.as_str());
                    return (Decision::NoMatch, Some(why));
                }
                (None, source) => why = Some(format!("no intent ({})", source.as_str())),
            }
        }
        (Decision::NoMatch, why)
    }
}
