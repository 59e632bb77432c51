//! Stage 4, filter: what is skipped before any campaign is asked (the account's own items,
//! kinds igflow does not act on: reactions, reads, edits, handovers; a commenter who opted
//! out). Touches Postgres (`contacts`).

use igflow_core::envelope::EventKind;
use igflow_core::event::Item;
use igflow_core::failure::Failure;
use igflow_core::plan::{Decision, SkipReason};

use crate::pipeline::{Context, Next, Pipeline, Target};

impl Pipeline {
    #[tracing::instrument(level = "debug", skip_all)]
    pub(super) async fn filter(&self, cx: &mut Context<'_>) -> Result<Next, Failure> {
        let own = &cx.account.ig_user_id;
        match &cx.item {
            Item::Comment(comment) => {
                cx.target = Target::Comment(comment.id.clone());
                if comment.is_own(own) {
                    return Ok(Next::Continue);
                }
                let igsid = comment.from.id.as_str();
                cx.contact = Some(igsid.to_owned());
                let username = comment.from.username.as_deref();
                if self
                    .store
                    .touch_contact(cx.account.id, igsid, username, None)
                    .await?
                {
                    cx.decision = Decision::Skip(SkipReason::OptedOut);
                }
            }
            // A message's, tap's or referral's sender is known (and its consent read) only
            // once `plan` decided.
            Item::Messaging(_)
                if matches!(
                    cx.envelope.kind,
                    EventKind::Message | EventKind::Postback | EventKind::Referral
                ) => {}
            Item::Messaging(m) => {
                cx.decision = Decision::Skip(if m.is_own(own) {
                    SkipReason::Own
                } else {
                    SkipReason::KindNotHandled
                });
            }
            Item::Unhandled => cx.decision = Decision::Skip(SkipReason::KindNotHandled),
        }
        Ok(Next::Continue)
    }
}
