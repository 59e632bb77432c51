//! Counters of what the worker did, for logs, the demo summary and the tests.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),+ $(,)?) => {
        #[derive(Debug, Default)]
        pub struct Stats {
            $($(#[$doc])* pub $name: AtomicU64,)+
        }

        /// A point-in-time copy of [`Stats`].
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
        pub struct Snapshot {
            $(pub $name: u64,)+
        }

        impl Stats {
            pub fn snapshot(&self) -> Snapshot {
                Snapshot { $($name: self.$name.load(Ordering::Relaxed),)+ }
            }
        }

        impl Snapshot {
            /// Every counter by name, as counted since `earlier`.
            pub fn since(&self, earlier: &Self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name.saturating_sub(earlier.$name)),)+]
            }
        }
    };
}

counters!(
    /// Messages taken from the queue.
    received,
    /// Events handled to the end (acted on, skipped or recorded as permanent).
    handled,
    /// Repeats of events already handled, dropped.
    duplicates,
    /// Copies of events another worker was on, left to come back.
    busy,
    /// Messages handed back to the queue for a later attempt.
    retried,
    /// Events sent back to the queue to wait for their account's next rate slot.
    deferred,
    /// Messages given back unfinished at the shutdown deadline.
    handed_back,
    /// Messages that are not envelopes, left for the DLQ.
    poison,
    /// Graph API writes that succeeded.
    sent,
    /// Actions whose outcome was unknown and had to be resolved.
    uncertain,
    /// Events kept back because their account is paused.
    parked,
    /// Parked events sent back to the queue once their account was active.
    unparked,
    /// Accounts this worker paused (token or permission errors): the alarm metric.
    accounts_paused,
    /// Comments whose intent the model decided.
    classified_by_model,
    /// Comments whose intent came from the classification cache.
    classified_from_cache,
    /// Comments decided on keywords alone because the model gave no answer (none configured,
    /// breaker open, timeout, error).
    classification_fallbacks,
    /// Times the model's circuit breaker opened: an alarm metric (the current state is
    /// `IntentClassifier::breaker_state`).
    breaker_opened,
    /// Actions dropped because Meta's window had closed (or would before their slot), all
    /// accounts together: an alarm metric (per account in `WindowDrops` by `Account`).
    window_drops,
    /// Graph API calls Meta refused for a rate limit (throttling codes or HTTP 429): an alarm
    /// metric, since the budgets are meant to keep every call inside Meta's limits.
    throttled,
    /// Booked rate slots a stalled host missed by more than the lateness tolerance, booked
    /// again instead of sent late (per account in `SlotsMissed`).
    slots_missed,
    /// Long-lived tokens the token refresh job renewed.
    tokens_refreshed,
    /// Token refreshes Meta or Secrets Manager refused (retried at the next round).
    token_refresh_failed,
    /// Failed refreshes of a token that expires within the warning time: an alarm metric.
    token_expiring,
    /// Accounts subscribed again to webhook fields Meta had dropped.
    resubscribed,
    /// Accounts whose subscription could not be renewed (marked on the account): an alarm
    /// metric.
    resubscribe_failed,
    /// Accounts with active campaigns and no event for longer than the quiet time: an alarm
    /// metric.
    account_silent,
    /// Comments reconciliation found that igflow had never seen, enqueued: non-zero means
    /// Meta did not deliver something.
    recovered_events,
    /// Archived deliveries a data deletion removed.
    archive_purged,
    /// Data deletions whose archived deliveries could not be removed (retried): an alarm
    /// metric, since a deletion is owed.
    archive_purge_failed,
);

impl Stats {
    pub fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add_n(counter: &AtomicU64, n: usize) {
        counter.fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}
