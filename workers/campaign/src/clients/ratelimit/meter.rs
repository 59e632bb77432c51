//! Per-account counts of what the limiter did, for the metrics reporter.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use igflow_core::ids::IgUserId;

use super::CallClass;

/// What happened per account and call class since the last metrics flush.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClassCounts {
    pub sent: u64,
    pub deferred: u64,
    pub window_drops: u64,
    /// Calls moved ahead of bookings with more time because their window was closing.
    pub prioritized: u64,
    /// Booked slots missed because the host stalled, booked again.
    pub slots_missed: u64,
}

/// Counts by (account, call class).
pub type ClassCountsByAccount = HashMap<(String, &'static str), ClassCounts>;

/// Per-account counts for the metrics (one EMF document per account and class).
#[derive(Debug, Default)]
pub struct Meter {
    counts: Mutex<ClassCountsByAccount>,
    usage: Mutex<HashMap<String, u8>>,
}

impl Meter {
    pub fn add(&self, account: &IgUserId, class: CallClass, f: impl FnOnce(&mut ClassCounts)) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        f(counts
            .entry((account.to_string(), class.as_str()))
            .or_default());
    }

    pub(super) fn usage(&self, account: &IgUserId, percent: u8) {
        self.usage
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(account.to_string(), percent);
    }

    /// Takes the counts since the last call, and the last usage seen per account.
    pub fn take(&self) -> (ClassCountsByAccount, HashMap<String, u8>) {
        let counts =
            std::mem::take(&mut *self.counts.lock().unwrap_or_else(PoisonError::into_inner));
        let usage = std::mem::take(&mut *self.usage.lock().unwrap_or_else(PoisonError::into_inner));
        (counts, usage)
    }

    pub fn peek(&self, account: &IgUserId, class: CallClass) -> ClassCounts {
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts
            .get(&(account.to_string(), class.as_str()))
            .copied()
            .unwrap_or_default()
    }
}
