//! Stage 9, execute: the plan's actions, each at most once. An action's key in the activity
//! log is claimed first, then `guard` rules on it, then it is sent (or, when an earlier
//! attempt's outcome is unknown, resolved) and its outcome written back under the attempt's
//! token. Touches Postgres (the action rows), Secrets Manager (the token) and, through
//! `send`, the Graph API.

use std::time::Duration;

use igflow_core::campaign::ActionKind;
use igflow_core::failure::Failure;
use igflow_core::plan::{Decision, Plan, PlannedAction};
use igflow_core::runtime::now_ms;
use secrecy::SecretString;
use tokio::time::Instant;

use crate::clients::store::{ActionClaim, ActionOutcome, ActionRecord, DecisionRecord};
use crate::pipeline::attempt::Attempt;
use crate::pipeline::guard::{Guarded, NotSent, class_of};
use crate::pipeline::{Context, Next, Pipeline};
use crate::stats::Stats;

/// What every action of one event shares.
struct Acting<'a> {
    cx: &'a Context<'a>,
    record: &'a DecisionRecord<'a>,
    plan: &'a Plan,
    token: &'a SecretString,
}

/// One action's end, for `execute` and the actions after it.
struct Acted {
    next: Next,
    /// How it ended, where it did.
    outcome: Option<ActionOutcome>,
}

impl Acted {
    /// Not ended: the event comes back for it (or the account was paused).
    fn pending(next: Next) -> Self {
        Self {
            next,
            outcome: None,
        }
    }
}

impl Pipeline {
    /// A permanent failure of one action does not stop the others; a retryable or unresolved
    /// one retries the event later, where the actions already done are skipped.
    #[tracing::instrument(level = "debug", skip_all)]
    pub(super) async fn execute(&self, cx: &Context<'_>) -> Result<Next, Failure> {
        let Decision::Matched(plan) = &cx.decision else {
            return Ok(Next::Done);
        };
        let record = cx.decision_record();
        let token = self
            .tokens
            .get(cx.account.id, &cx.account.token_secret_ref)
            .await?;
        let acting = Acting {
            cx,
            record: &record,
            plan,
            token: &token,
        };
        let mut unresolved = None;
        // What became of the private reply, when the public reply follows it.
        let mut private_reply = None;
        for action in &plan.actions {
            let follows = action.kind == ActionKind::PublicReply && plan.public_follows_private;
            // The private reply's outcome is still unknown: the public reply waits for it.
            if follows && unresolved.is_some() {
                continue;
            }
            let held_back = private_reply
                .filter(|o: &ActionOutcome| follows && !o.went_out())
                .map(|o| {
                    format!(
                        "not posted: the private reply was {} and the public reply follows it (public_reply_when: private_reply_sent)",
                        o.as_str()
                    )
                });
            let acted = self.act(&acting, action, held_back).await?;
            match acted.next {
                Next::Continue => {}
                // Resolved on a later attempt (read back, or re-sent where Meta dedupes);
                // the other actions go on meanwhile.
                retry @ Next::Retry { .. } => unresolved = Some(retry),
                next => return Ok(next),
            }
            if action.kind == ActionKind::PrivateReply {
                private_reply = acted.outcome;
            }
        }
        Ok(unresolved.unwrap_or(Next::Done))
    }

    /// One action to its end: `Continue` when it is (sent, done before, held back, given up),
    /// `Retry` when its outcome is still unknown, `Defer` when it waits (for a rate slot,
    /// another attempt's lease, a call that may still land).
    /// `held_back` records it as skipped, for that reason, instead of sending it.
    #[tracing::instrument(skip_all, fields(action = action.kind.as_str()))]
    async fn act(
        &self,
        a: &Acting<'_>,
        action: &PlannedAction,
        held_back: Option<String>,
    ) -> Result<Acted, Failure> {
        // Another event may have paused the account since this one was loaded (Meta refused
        // its token): no more calls with it. The cache answers at once while it is active.
        if let Some(account) = self.accounts.account(&a.cx.envelope.account_id).await?
            && let Some(parked) = self.park_unless_active(a.cx.envelope, &account).await?
        {
            return Ok(Acted::pending(parked));
        }
        let lease = self.action_lease();
        let claim = self
            .store
            .claim_action(a.record, action.kind, action.variant, lease)
            .await?;
        let attempt = match claim {
            ActionClaim::Done { outcome } => {
                return Ok(Acted {
                    next: Next::Continue,
                    outcome,
                });
            }
            // Another worker may be sending it right now: resolving it here could send
            // it a second time. Come back once its lease has run out: a wait (a worker
            // killed mid-send leaves one), not a failed attempt.
            ActionClaim::Busy { retry_in } => {
                Stats::add(&self.stats.busy);
                tracing::info!(
                    action = action.kind.as_str(),
                    retry_in_ms = retry_in.as_millis(),
                    "action in flight elsewhere; this copy comes back after its lease"
                );
                return Ok(Acted::pending(Next::Defer(
                    retry_in + Duration::from_secs(1),
                )));
            }
            ActionClaim::Fresh if let Some(why) = held_back => {
                Attempt::held(ActionOutcome::Skipped, why)
            }
            ActionClaim::Fresh => match self.guarded(a, action).await? {
                Ok(attempt) => attempt,
                Err(pending) => return Ok(pending),
            },
            ActionClaim::Unresolved { attempted_at_ms } => {
                Stats::add(&self.stats.uncertain);
                let target = &a.cx.target;
                self.resolve(&a.cx.account, a.token, target, action, attempted_at_ms)
                    .await
            }
        };
        self.finish(a, action, attempt).await
    }

    /// A freshly claimed action past `guard`: sent (or, in shadow mode, recorded as it would
    /// have been), held back by a rule, or not yet (`Err`: deferred to its rate slot, parked).
    async fn guarded(
        &self,
        a: &Acting<'_>,
        action: &PlannedAction,
    ) -> Result<Result<Attempt, Acted>, Failure> {
        match self.guard(a.cx, a.record, a.plan, action).await? {
            Guarded::At(_) if a.plan.shadow => Ok(Ok(Attempt::held(
                ActionOutcome::Shadow,
                format!("shadow mode, not sent: {}", action.text),
            ))),
            Guarded::At(due) => self.first_attempt(a, action, due).await,
            Guarded::Not(not_now) => self.not_sent(a, action, not_now).await,
        }
    }

    /// An action `guard` did not let go now: held back for good, or deferred to its slot.
    async fn not_sent(
        &self,
        a: &Acting<'_>,
        action: &PlannedAction,
        not_now: NotSent,
    ) -> Result<Result<Attempt, Acted>, Failure> {
        match not_now {
            NotSent::Held { outcome, detail } => Ok(Ok(Attempt::held(outcome, detail))),
            NotSent::Defer(wait) => Ok(Err(Acted::pending(
                self.defer(a.record, action.kind, wait).await?,
            ))),
        }
    }

    /// Marks the action `pending` under this attempt's lease, waits for its booked slot and
    /// sends it; an unknown outcome is resolved right away. The write comes before the wait
    /// so that nothing slow lies between the slot and the call.
    async fn first_attempt(
        &self,
        a: &Acting<'_>,
        action: &PlannedAction,
        due: Instant,
    ) -> Result<Result<Attempt, Acted>, Failure> {
        let lease = self.action_lease() + due.saturating_duration_since(Instant::now());
        if !self
            .store
            .start_sending(a.record, action.kind, lease)
            .await?
        {
            Stats::add(&self.stats.busy);
            return Err(Failure::retry(format!(
                "another copy of this event took over its {}",
                action.kind
            )));
        }
        if let Some(not_now) = self.until_slot(a.cx, action, due).await? {
            return self.not_sent(a, action, not_now).await;
        }
        let (account, target) = (&a.cx.account, &a.cx.target);
        let started_ms = now_ms();
        let sent = self.send(account, a.token, target, action).await;
        let attempt = Attempt::from_call(sent, None);
        if !matches!(attempt.failure, Some(Failure::Ambiguous { .. })) {
            return Ok(Ok(attempt));
        }
        Stats::add(&self.stats.uncertain);
        Ok(Ok(self
            .resolve(account, a.token, target, action, Some(started_ms))
            .await))
    }

    /// Gives the action back (`retry`) until its booked slot: the event comes back then.
    async fn defer(
        &self,
        record: &DecisionRecord<'_>,
        kind: ActionKind,
        wait: Duration,
    ) -> Result<Next, Failure> {
        let deferred = ActionRecord {
            detail: Some(format!(
                "deferred {} ms for the account's rate budget",
                wait.as_millis()
            )),
            ..ActionRecord::new(ActionOutcome::Retry)
        };
        if !self.store.finish_action(record, kind, &deferred).await? {
            return Err(self.taken_over(kind));
        }
        tracing::info!(
            action = kind.as_str(),
            wait_ms = wait.as_millis(),
            "deferred for the rate budget"
        );
        Ok(Next::Defer(wait))
    }

    /// Writes the attempt's outcome (unless another attempt took the action over) and says
    /// what it leaves to do.
    async fn finish(
        &self,
        a: &Acting<'_>,
        action: &PlannedAction,
        attempt: Attempt,
    ) -> Result<Acted, Failure> {
        if !self
            .store
            .finish_action(a.record, action.kind, &attempt.record)
            .await?
        {
            return Err(self.taken_over(action.kind));
        }
        let outcome = attempt.record.outcome;
        tracing::info!(
            action = action.kind.as_str(),
            outcome = outcome.as_str(),
            graph_status = attempt.record.graph_status,
            "action done"
        );
        if outcome == ActionOutcome::Sent && attempt.record.response_id.is_some() {
            self.count_sent(a.cx, action.kind);
        }
        let next = match attempt.failure {
            None if let Some(wait) = attempt.wait => Next::Defer(wait),
            None | Some(Failure::Permanent { .. }) => Next::Continue,
            Some(Failure::Ambiguous { reason }) => Next::Retry {
                after: None,
                reason: format!("action outcome still unknown: {reason}"),
            },
            Some(f @ (Failure::Retryable { .. } | Failure::Account { .. })) => return Err(f),
        };
        Ok(Acted {
            next,
            outcome: Some(outcome),
        })
    }

    fn count_sent(&self, cx: &Context<'_>, kind: ActionKind) {
        Stats::add(&self.stats.sent);
        let class = class_of(kind);
        self.limiter
            .meter
            .add(&cx.account.ig_user_id, class, |c| c.sent += 1);
        let since_received = now_ms().saturating_sub(cx.envelope.received_at_ms);
        self.latencies.record(
            class,
            Duration::from_millis(u64::try_from(since_received).unwrap_or(0)),
        );
    }

    /// This attempt lost the action's claim to another copy of the event (its lease ran
    /// out): that copy's outcome stands, and this one's is not written over it.
    fn taken_over(&self, kind: ActionKind) -> Failure {
        Stats::add(&self.stats.busy);
        tracing::warn!(
            action = kind.as_str(),
            "action taken over by another attempt; its outcome stands"
        );
        Failure::retry(format!("another copy of this event took over its {kind}"))
    }
}
