//! Stage 5, plan: the account's campaigns decide by keywords, story, payload or referral
//! (and, for a message, by a STOP or START); the sender of a message, tap or referral is
//! recorded with their consent and the time they acted, which opens the 24-hour window; a
//! message a capture step waits for is decided by that step (`capture`); a comment on a new
//! post may bind campaigns waiting for the next post first (`next_post`). Touches Postgres
//! (campaigns, cached; `contacts`; `flow_runs`) and Redis (the sender's last message).

use igflow_core::event::Item;
use igflow_core::failure::Failure;
use igflow_core::ids::Igsid;
use igflow_core::plan::{Decision, SkipReason};

use crate::pipeline::{Context, Next, Pipeline, Target};

impl Pipeline {
    #[tracing::instrument(level = "debug", skip_all)]
    pub(super) async fn plan(&self, cx: &mut Context<'_>) -> Result<Next, Failure> {
        // `filter` skipped it already.
        if matches!(cx.decision, Decision::Skip(_)) {
            return Ok(Next::Continue);
        }
        let mut campaigns = self.accounts.campaigns(cx.account.id).await?;
        if let Item::Comment(c) = &cx.item
            && let Some(media) = &c.media
        {
            campaigns = self.with_next_post(cx, &media.id, campaigns).await?;
        }
        let (env, own) = (cx.envelope, &cx.account.ig_user_id);
        cx.decision = match &cx.item {
            Item::Comment(c) => campaigns.decide_comment(&env.event_id, own, c, env.occurred_at_ms),
            Item::Messaging(m) => {
                campaigns.decide_messaging(&env.event_id, own, m, env.occurred_at_ms)
            }
            Item::Unhandled => Decision::Skip(SkipReason::KindNotHandled),
        };
        cx.campaigns = Some(campaigns.clone());
        let sender = match &cx.item {
            Item::Messaging(m) => m.sender(),
            _ => None,
        };
        if let Some(sender) = sender {
            self.note_sender(cx, sender).await?;
            self.answer_capture(cx, &campaigns).await?;
        }
        Ok(Next::Continue)
    }

    /// Records the sender of a message (not the account's own): their consent, whether they
    /// opted out, and when they last wrote.
    async fn note_sender(&self, cx: &mut Context<'_>, sender: Igsid) -> Result<(), Failure> {
        if matches!(cx.decision, Decision::Skip(SkipReason::Own)) {
            return Ok(());
        }
        let consent = match cx.decision {
            Decision::Consent(c) => Some(c.opted_out()),
            _ => None,
        };
        let opted_out = self
            .store
            .touch_contact(cx.account.id, sender.as_str(), None, consent)
            .await?;
        if opted_out && consent.is_none() {
            cx.decision = Decision::Skip(SkipReason::OptedOut);
        }
        // The 24-hour window runs from the person's latest message, whichever event told us.
        let last = self
            .limiter
            .note_user_message(&cx.account.ig_user_id, &sender, cx.envelope.occurred_at_ms)
            .await?;
        cx.contact = Some(sender.as_str().to_owned());
        cx.target = Target::Sender {
            igsid: sender,
            last_message_ms: last,
        };
        Ok(())
    }
}
