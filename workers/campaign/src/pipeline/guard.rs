//! Stage 8, guard: Meta's rules and the campaign's before an action's first attempt: the
//! messaging window, the contact's cooldown, and (unless the campaign is in shadow mode and
//! sends nothing) the account's rate budgets (a short wait is
//! taken here; a long one defers the event to the moment its booked slot comes). Touches
//! Redis (budgets; the cooldown also reads Postgres, see `cooldown`).

use std::time::Duration;

use igflow_core::campaign::ActionKind;
use igflow_core::envelope::EventKind;
use igflow_core::failure::Failure;
use igflow_core::plan::{Plan, PlannedAction};
use igflow_core::runtime::now_ms;
use igflow_core::window;

use crate::clients::ratelimit::CallClass;
use crate::clients::store::{ActionOutcome, DecisionRecord};
use crate::pipeline::{Context, Dropped, Next, Pipeline, Target};
use crate::stats::Stats;

/// A wait for the rate budget longer than this defers the event instead of holding it.
const INLINE_WAIT: Duration = Duration::from_secs(2);
/// A deferred event comes back this much before its slot and waits the rest here: SQS hides
/// messages for whole seconds and hands them out with some delay, so coming back early is
/// what keeps sends on their booked slots.
const COME_BACK_EARLY: Duration = Duration::from_secs(1);

pub(super) fn class_of(kind: ActionKind) -> CallClass {
    match kind {
        ActionKind::PrivateReply => CallClass::PrivateReply,
        ActionKind::PublicReply => CallClass::PublicReply,
        ActionKind::Dm => CallClass::Message,
    }
}

fn held(outcome: ActionOutcome, detail: String) -> Next {
    Next::Drop(Dropped::Held { outcome, detail })
}

impl Pipeline {
    /// Until when (Unix ms) Meta accepts `kind`: 7 days after the comment for a private
    /// reply, 24 hours after the person's last message for a DM; public replies have no window.
    fn window_closes(&self, cx: &Context<'_>, kind: ActionKind) -> Option<(i64, &'static str)> {
        let env = cx.envelope;
        match (kind, &cx.target) {
            // Meta takes a private reply to a Live comment only during the broadcast, which
            // igflow cannot see end: it assumes the configured span after the comment.
            (ActionKind::PrivateReply, _) if env.kind == EventKind::LiveComment => Some((
                window::closes_at(env.occurred_at_ms, self.live_reply_window),
                "the Live private reply window (the broadcast, IGFLOW_LIVE_REPLY_WINDOW_SECONDS after the comment)",
            )),
            (ActionKind::PrivateReply, _) => Some((
                window::closes_at(env.occurred_at_ms, window::PRIVATE_REPLY_WINDOW),
                "the private reply window (7 days after the comment)",
            )),
            (
                ActionKind::Dm,
                Target::Sender {
                    last_message_ms, ..
                },
            ) => Some((
                window::closes_at(*last_message_ms, window::MESSAGING_WINDOW),
                "the messaging window (24 hours after the person's last message)",
            )),
            _ => None,
        }
    }

    /// Books the action's slot in the account's budgets: how long until it is due.
    async fn reserve(
        &self,
        cx: &Context<'_>,
        action: &PlannedAction,
        closes: Option<i64>,
    ) -> Result<Duration, Failure> {
        let budgets = self.budgets.for_account(&cx.account.limits);
        let (event, kind) = (&cx.envelope.event_id, action.kind.as_str());
        let class = class_of(action.kind);
        self.limiter
            .reserve(event, kind, &cx.account.ig_user_id, class, &budgets, closes)
            .await
            .map_err(Failure::from)
    }

    /// Go on (`Continue`), hold the action back (`Drop(Held)`: window closed, cooldown), or
    /// come back when its booked slot is due (`Defer`).
    #[tracing::instrument(level = "debug", skip_all)]
    pub(super) async fn guard(
        &self,
        cx: &Context<'_>,
        record: &DecisionRecord<'_>,
        plan: &Plan,
        action: &PlannedAction,
    ) -> Result<Next, Failure> {
        let account = &cx.account.ig_user_id;
        let class = class_of(action.kind);
        let window = self.window_closes(cx, action.kind);
        let dropped = |reason: String| {
            Stats::add(&self.stats.window_drops);
            self.limiter
                .meter
                .add(account, class, |c| c.window_drops += 1);
            held(ActionOutcome::Dropped, reason)
        };
        if let Some((closes, name)) = window
            && now_ms() >= closes
        {
            return Ok(dropped(format!("{name} has closed")));
        }
        if action.kind.is_dm()
            && let Some(contact) = record.contact
            && !self
                .cooldown
                .free(plan, contact, &cx.envelope.event_id)
                .await?
        {
            return Ok(held(
                ActionOutcome::Skipped,
                "the contact got a DM from this campaign within its cooldown".into(),
            ));
        }
        // Nothing will be sent: no rate slot is taken from the live campaigns.
        if plan.shadow {
            return Ok(Next::Continue);
        }
        let wait = self
            .reserve(cx, action, window.map(|(closes, _)| closes))
            .await?;
        // Also for a short wait: a slot a second away is too late for a window closing now.
        let send_at = now_ms().saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX));
        if let Some((closes, name)) = window
            && send_at >= closes
        {
            return Ok(dropped(format!(
                "the rate budget frees a slot only after {name} closes"
            )));
        }
        if wait > INLINE_WAIT {
            self.limiter.meter.add(account, class, |c| c.deferred += 1);
            return Ok(Next::Defer(wait.saturating_sub(COME_BACK_EARLY)));
        }
        tokio::time::sleep(wait).await;
        if class != CallClass::PublicReply {
            self.limiter.smooth(account).await;
        }
        Ok(Next::Continue)
    }
}
