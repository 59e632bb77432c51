//! What every stage returns ([`Next`]), and the one place that turns the last of them into
//! the event's Redis claim (complete or release) and its queue message (delete, requeue,
//! hide or leave).

use std::time::Duration;

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::Message;
use igflow_core::envelope::Envelope;
use igflow_core::failure::Failure;

use crate::clients::dedupe::ClaimToken;
use crate::clients::store::ActionOutcome;
use crate::pipeline::Worked;
use crate::pipeline::consumer::{Consumer, receive_count};
use crate::pipeline::heartbeat::with_heartbeat;
use crate::stats::Stats;

/// How long a copy of an event another handling holds stays hidden: most events are done
/// within it (an LLM call takes at most 2 s, a rate-limit wait is paced within seconds).
const BUSY_RECHECK: Duration = Duration::from_secs(5);

/// Retries back off from `backoff_base` (5 s by default), doubling per receive, up to this.
const BACKOFF_CAP: Duration = Duration::from_secs(15 * 60);

/// What a stage made of the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// On to the next stage.
    Continue,
    /// Handled for good: repeats of the event are dropped from now on.
    Done,
    /// Waiting, due in this long: for the account's next rate slot, for another attempt's
    /// lease on an action to run out, or for a call whose outcome is unknown to have had
    /// time to land. Back in the queue as a new message, since a wait is not a failed
    /// attempt and must not count towards the DLQ's receive limit.
    Defer(Duration),
    /// Its account is not active: kept in Postgres until it is again.
    Park,
    /// Not done yet: the message shows again after `after` (a backoff on the receive count
    /// when `None`) and, after the queue's `maxReceiveCount`, moves to the DLQ.
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    /// Not worked, or not fully, for a reason that retrying does not change.
    Drop(Dropped),
}

/// Why a message, or one action of its event, is not worked (further).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dropped {
    /// A repeat of an event already done.
    Duplicate,
    /// Another worker holds the event right now. This copy may be the very message it holds
    /// (SQS delivers at least once, even concurrently), so deleting it could delete the
    /// holder's: it is left to come back once the holder is done, when the done-marker
    /// drops it.
    Busy,
    /// Not an envelope: left for the DLQ.
    Poison(String),
    /// Given up for good (a permanent failure, or an outcome unknown after every check);
    /// recorded as such.
    GivenUp(String),
    /// One action held back by a rule (its window closed, the contact's cooldown), recorded
    /// with this outcome; the event goes on with its other actions.
    Held {
        outcome: ActionOutcome,
        detail: String,
    },
}

impl Next {
    /// What a failure leaves to do with the event. The stages pause the account and park the
    /// event on an account failure met while acting; one that reaches here had no account
    /// to pause: recorded for `dlq list` and retried. (A corrupt account row is
    /// `StoreError::CorruptAccount`, retryable.)
    pub fn failed(f: Failure) -> Self {
        tracing::warn!(failure = %f, "event not completed");
        match f {
            Failure::Permanent { reason } | Failure::Ambiguous { reason } => {
                Self::Drop(Dropped::GivenUp(reason))
            }
            Failure::Retryable {
                retry_after,
                reason,
            } => Self::Retry {
                after: retry_after,
                reason,
            },
            Failure::Account { reason } => Self::Retry {
                after: None,
                reason,
            },
        }
    }

    pub fn goes_on(&self) -> bool {
        *self == Self::Continue
    }

    /// What becomes of the event's Redis claim.
    fn claim_action(&self) -> ClaimAction {
        match self {
            Self::Continue
            | Self::Done
            | Self::Drop(Dropped::GivenUp(_) | Dropped::Held { .. }) => ClaimAction::Complete,
            Self::Defer(_) | Self::Park | Self::Retry { .. } => ClaimAction::Release,
            Self::Drop(Dropped::Duplicate | Dropped::Busy | Dropped::Poison(_)) => {
                ClaimAction::Keep
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClaimAction {
    /// Recorded for good: repeats are dropped from now on.
    Complete,
    /// The event must be claimable again when it comes back.
    Release,
    /// Not this handling's claim.
    Keep,
}

/// How a message was settled: its event's last `Next`, and the receipt left to delete
/// (deletes go out in batches).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    pub next: Next,
    pub delete: Option<String>,
}

/// Capped exponential backoff on the receive count, with "equal jitter" (half fixed, half
/// random): retries spread out, yet with the default 5 s base the first four span at least
/// 37 s, so a database or Redis outage of half a minute does not push events to the DLQ.
fn backoff(base: Duration, receive_count: u32) -> Duration {
    let exp = base
        .saturating_mul(1 << receive_count.saturating_sub(1).min(16))
        .min(BACKOFF_CAP);
    exp / 2 + (exp / 2).mul_f64(fastrand::f64())
}

impl Consumer {
    /// Settles the message `m` (its event `env`, when it decoded) by what its stages
    /// returned: first the event (its claim; the error, for `dlq list`), keeping the message
    /// hidden meanwhile since Postgres or Redis may answer slowly, then the message.
    #[tracing::instrument(level = "debug", skip_all)]
    pub(super) async fn settle(
        &self,
        m: &Message,
        env: Option<&Envelope>,
        worked: Worked,
    ) -> Settled {
        let Some(receipt) = m.receipt_handle() else {
            return Settled {
                next: worked.next,
                delete: None,
            };
        };
        let receipts = [receipt];
        let next = with_heartbeat(
            self.settle_event(m, env, worked),
            self.visibility / 3,
            || self.set_visibility(&receipts, self.visibility),
        )
        .await;
        let delete = self.settle_message(m, receipt, &next).await;
        Settled {
            delete: delete.then(|| receipt.to_owned()),
            next,
        }
    }

    async fn settle_event(&self, m: &Message, env: Option<&Envelope>, worked: Worked) -> Next {
        let next = match (env, &worked.claim) {
            (Some(env), Some(token)) => self.settle_claim(env, token, worked.next).await,
            _ => worked.next,
        };
        self.count(&next);
        match &next {
            Next::Drop(Dropped::Poison(error)) => self.record_error(m, None, error).await,
            Next::Retry { reason, .. } => self.record_error(m, env, reason).await,
            _ => {}
        }
        next
    }

    /// Hides, requeues or leaves the message; true when it is to be deleted.
    async fn settle_message(&self, m: &Message, receipt: &str, next: &Next) -> bool {
        match next {
            Next::Continue
            | Next::Done
            | Next::Park
            | Next::Drop(Dropped::Duplicate | Dropped::GivenUp(_) | Dropped::Held { .. }) => true,
            // Left: it reappears after its visibility timeout, and after the queue's
            // `maxReceiveCount` in the DLQ.
            Next::Drop(Dropped::Poison(_)) => false,
            // Back soon, when the holder has most likely finished and the done-marker drops
            // it: the copy is kept in case the holder's own message is not.
            Next::Drop(Dropped::Busy) => {
                self.set_visibility(&[receipt], self.visibility.min(BUSY_RECHECK))
                    .await;
                false
            }
            Next::Retry { after, .. } => {
                let delay = after.unwrap_or_else(|| backoff(self.backoff_base, receive_count(m)));
                self.set_visibility(&[receipt], delay).await;
                false
            }
            Next::Defer(wait) => match self.requeue(m, *wait).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(error = %DisplayErrorContext(&e), "deferred copy not enqueued; hiding the message instead");
                    self.set_visibility(&[receipt], *wait).await;
                    false
                }
            },
        }
    }

    /// Completes or releases the event's claim; a completion that fails retries the event
    /// (the action keys make the repeat a no-op).
    async fn settle_claim(&self, env: &Envelope, token: &ClaimToken, next: Next) -> Next {
        let dedupe = &self.pipeline.dedupe;
        match next.claim_action() {
            ClaimAction::Complete => match dedupe.complete(&env.account_id, &env.event_id).await {
                Ok(()) => next,
                Err(e) => Next::failed(e.into()),
            },
            ClaimAction::Release => {
                if let Err(e) = dedupe.release(&env.account_id, &env.event_id, token).await {
                    // The lease runs out on its own; the retry just waits for it.
                    tracing::warn!(error = %e, "claim not released");
                }
                next
            }
            ClaimAction::Keep => next,
        }
    }

    fn count(&self, next: &Next) {
        let counter = match next {
            Next::Continue
            | Next::Done
            | Next::Drop(Dropped::GivenUp(_) | Dropped::Held { .. }) => &self.stats.handled,
            Next::Defer(_) => &self.stats.deferred,
            Next::Park => &self.stats.parked,
            Next::Retry { .. } => &self.stats.retried,
            Next::Drop(Dropped::Duplicate) => &self.stats.duplicates,
            Next::Drop(Dropped::Busy) => &self.stats.busy,
            Next::Drop(Dropped::Poison(_)) => &self.stats.poison,
        };
        Stats::add(counter);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_spans_outages() {
        let base = Duration::from_secs(5);
        for count in [1, 2, 5, 30, u32::MAX] {
            let d = backoff(base, count);
            assert!(d >= base / 2 && d <= BACKOFF_CAP, "{count}: {d:?}");
        }
        let first = (0..200).map(|_| backoff(base, 1)).max().unwrap_or_default();
        assert!(first <= base);
        let least: Duration = (1..=4).map(|n| base.saturating_mul(1 << (n - 1)) / 2).sum();
        assert_eq!(least, Duration::from_millis(37_500));
    }

    #[test]
    fn done_and_given_up_complete_waits_release_and_foreign_claims_stay() {
        let complete = [Next::Done, Next::Drop(Dropped::GivenUp("551".into()))];
        let release = [
            Next::Defer(Duration::from_secs(3)),
            Next::Park,
            Next::Retry {
                after: None,
                reason: "redis down".into(),
            },
        ];
        let keep = [
            Next::Drop(Dropped::Duplicate),
            Next::Drop(Dropped::Busy),
            Next::Drop(Dropped::Poison("not json".into())),
        ];
        assert!(
            complete
                .iter()
                .all(|n| n.claim_action() == ClaimAction::Complete)
        );
        assert!(
            release
                .iter()
                .all(|n| n.claim_action() == ClaimAction::Release)
        );
        assert!(keep.iter().all(|n| n.claim_action() == ClaimAction::Keep));
    }

    #[test]
    fn failures_map_to_their_next() {
        let after = Some(Duration::from_secs(60));
        assert_eq!(
            Next::failed(Failure::Retryable {
                retry_after: after,
                reason: "throttled".into()
            }),
            Next::Retry {
                after,
                reason: "throttled".into()
            }
        );
        assert_eq!(
            Next::failed(Failure::Account {
                reason: "corrupt row".into()
            }),
            Next::Retry {
                after: None,
                reason: "corrupt row".into()
            }
        );
        assert_eq!(
            Next::failed(Failure::Ambiguous {
                reason: "timeout".into()
            }),
            Next::Drop(Dropped::GivenUp("timeout".into()))
        );
    }
}
