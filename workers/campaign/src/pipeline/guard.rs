//! Stage 8, guard: Meta's rules and the campaign's before an action's first attempt: the
//! messaging window, the contact's cooldown, and (unless the campaign is in shadow mode and
//! sends nothing) the account's rate budgets: a slot within a short wait is kept for the
//! send (`until_slot` waits for it once the action is marked pending, so no write lies
//! between the slot and the call); a later one defers the event to the moment it comes.
//! Touches Redis (budgets; the cooldown also reads Postgres, see `cooldown`).

use std::time::Duration;

use igflow_core::campaign::ActionKind;
use igflow_core::envelope::EventKind;
use igflow_core::failure::Failure;
use igflow_core::plan::{Plan, PlannedAction};
use igflow_core::runtime::now_ms;
use igflow_core::window;
use tokio::time::Instant;

use crate::clients::ratelimit::{CallClass, LATE_TOLERANCE};
use crate::clients::store::{ActionOutcome, DecisionRecord};
use crate::pipeline::{Context, Pipeline, Target};
use crate::stats::Stats;

/// A wait for the rate budget longer than this defers the event instead of holding it.
const INLINE_WAIT: Duration = Duration::from_secs(2);
/// Slots missed in a row (the host stalled each time) before the event goes back to the queue.
const MAX_REBOOKINGS: usize = 3;
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

/// What `guard` made of an action's first attempt.
pub(super) enum Guarded {
    /// Send it at this instant (its booked slot).
    At(Instant),
    /// Not now.
    Not(NotSent),
}

/// Why an action is not sent now.
pub(super) enum NotSent {
    /// A rule holds it back, recorded with this outcome and reason.
    Held {
        outcome: ActionOutcome,
        detail: String,
    },
    /// Its slot is this far off: the event comes back for it.
    Defer(Duration),
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

    /// Holds the action back because Meta's window for it has closed, or will before its slot.
    fn window_drop(&self, cx: &Context<'_>, kind: ActionKind, reason: String) -> Guarded {
        Stats::add(&self.stats.window_drops);
        self.limiter
            .meter
            .add(&cx.account.ig_user_id, class_of(kind), |c| {
                c.window_drops += 1;
            });
        Guarded::Not(NotSent::Held {
            outcome: ActionOutcome::Dropped,
            detail: reason,
        })
    }

    /// Send it when its slot comes (`At`, at once in shadow mode, which books nothing),
    /// hold it back (`Held`: window closed, cooldown), or come back for a slot further off
    /// than an inline wait (`Defer`).
    #[tracing::instrument(level = "debug", skip_all)]
    pub(super) async fn guard(
        &self,
        cx: &Context<'_>,
        record: &DecisionRecord<'_>,
        plan: &Plan,
        action: &PlannedAction,
    ) -> Result<Guarded, Failure> {
        if let Some((closes, name)) = self.window_closes(cx, action.kind)
            && now_ms() >= closes
        {
            let reason = format!("{name} has closed");
            return Ok(self.window_drop(cx, action.kind, reason));
        }
        if action.kind.is_dm()
            && let Some(contact) = record.contact
            && !self
                .cooldown
                .free(plan, contact, &cx.envelope.event_id)
                .await?
        {
            return Ok(Guarded::Not(NotSent::Held {
                outcome: ActionOutcome::Skipped,
                detail: "the contact got a DM from this campaign within its cooldown".into(),
            }));
        }
        // Nothing will be sent: no rate slot is taken from the live campaigns.
        if plan.shadow {
            return Ok(Guarded::At(Instant::now()));
        }
        self.book(cx, action).await
    }

    /// Books the action's rate slot: `At` it when it is an inline wait away, `Defer` past
    /// that, `Held` when Meta's window closes before it.
    async fn book(&self, cx: &Context<'_>, action: &PlannedAction) -> Result<Guarded, Failure> {
        let window = self.window_closes(cx, action.kind);
        let wait = self
            .reserve(cx, action, window.map(|(closes, _)| closes))
            .await?;
        // Also for a short wait: a slot a second away is too late for a window closing now.
        let send_at = now_ms().saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX));
        if let Some((closes, name)) = window
            && send_at >= closes
        {
            let reason = format!("the rate budget frees a slot only after {name} closes");
            return Ok(self.window_drop(cx, action.kind, reason));
        }
        if wait > INLINE_WAIT {
            let class = class_of(action.kind);
            self.limiter
                .meter
                .add(&cx.account.ig_user_id, class, |c| c.deferred += 1);
            return Ok(Guarded::Not(NotSent::Defer(
                wait.saturating_sub(COME_BACK_EARLY),
            )));
        }
        Ok(Guarded::At(Instant::now() + wait))
    }

    /// Waits for the booked slot, then for this process's smoothing. `None`: send now.
    /// A host that stalled past the slot by more than [`LATE_TOLERANCE`] books again instead
    /// of sending late: Meta counts arrivals, and a late call lands among the calls booked
    /// after it (the missed slot's budget is lost). After [`MAX_REBOOKINGS`] the event comes
    /// back through the queue.
    pub(super) async fn until_slot(
        &self,
        cx: &Context<'_>,
        action: &PlannedAction,
        mut due: Instant,
    ) -> Result<Option<NotSent>, Failure> {
        for _ in 0..MAX_REBOOKINGS {
            tokio::time::sleep_until(due).await;
            if class_of(action.kind) != CallClass::PublicReply {
                self.limiter.smooth(&cx.account.ig_user_id).await;
            }
            let late = Instant::now().saturating_duration_since(due);
            if late <= LATE_TOLERANCE {
                return Ok(None);
            }
            Stats::add(&self.stats.slots_missed);
            let class = class_of(action.kind);
            self.limiter
                .meter
                .add(&cx.account.ig_user_id, class, |c| c.slots_missed += 1);
            tracing::warn!(
                late_ms = late.as_millis(),
                "the host stalled past the booked slot; booking again"
            );
            match self.book(cx, action).await? {
                Guarded::At(next) => due = next,
                Guarded::Not(not_now) => return Ok(Some(not_now)),
            }
        }
        Ok(Some(NotSent::Defer(Duration::ZERO)))
    }
}
