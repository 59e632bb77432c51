//! The budgets Meta allows an account, and which of them each kind of call draws on.

use std::time::Duration;

use igflow_core::campaign::AccountLimits;

/// A budget: `limit` calls per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub limit: u32,
    pub per: Duration,
}

impl Rate {
    pub const fn per_hour(limit: u32) -> Self {
        Self {
            limit,
            per: Duration::from_secs(3600),
        }
    }

    pub const fn per_second(limit: u32) -> Self {
        Self {
            limit,
            per: Duration::from_secs(1),
        }
    }

    /// GCRA's emission interval, in milliseconds (at least 1).
    pub(super) fn interval_ms(&self) -> u64 {
        (u64::try_from(self.per.as_millis()).unwrap_or(u64::MAX) / u64::from(self.limit.max(1)))
            .max(1)
    }
}

/// The budgets of one account (docs/architecture.md, "Meta's rules the worker obeys").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budgets {
    /// Private replies: 750 per hour.
    pub private_replies: Rate,
    /// Send API calls (every POST to /messages): 100 per second.
    pub send_api: Rate,
    /// igflow's own ceiling on automated DMs: 200 per hour.
    pub automated_dms: Rate,
}

impl Budgets {
    /// These budgets with the account's own where it has any.
    pub fn for_account(&self, limits: &AccountLimits) -> Self {
        Self {
            private_replies: limits
                .private_replies_per_hour
                .map_or(self.private_replies, Rate::per_hour),
            send_api: limits
                .send_api_per_second
                .map_or(self.send_api, Rate::per_second),
            automated_dms: limits
                .automated_dms_per_hour
                .map_or(self.automated_dms, Rate::per_hour),
        }
    }
}

impl Default for Budgets {
    fn default() -> Self {
        Self {
            private_replies: Rate::per_hour(750),
            // 10 percent under Meta's 100 calls/s: the slots are spaced exactly, but Meta
            // counts arrivals, which a loaded host or network bunches (tests/rate_limits.rs).
            send_api: Rate::per_second(90),
            automated_dms: Rate::per_hour(200),
        }
    }
}

/// The budgets a call draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallClass {
    /// A private reply: a DM through the Send API, once per comment.
    PrivateReply,
    /// A DM to someone who wrote to the account.
    Message,
    /// A public reply under a comment: paced by Meta's usage only.
    PublicReply,
}

impl CallClass {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PrivateReply => "private_reply",
            Self::Message => "message",
            Self::PublicReply => "public_reply",
        }
    }

    pub(super) fn buckets(self, b: &Budgets) -> Vec<(&'static str, Rate)> {
        match self {
            Self::PrivateReply => vec![
                ("send_api", b.send_api),
                ("private_replies", b.private_replies),
                ("automated_dms", b.automated_dms),
            ],
            Self::Message => vec![("send_api", b.send_api), ("automated_dms", b.automated_dms)],
            Self::PublicReply => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_and_classes() {
        assert_eq!(Rate::per_hour(750).interval_ms(), 4800);
        assert_eq!(Rate::per_second(100).interval_ms(), 10);
        assert_eq!(Rate::per_second(0).interval_ms(), 1000);
        let b = Budgets::default();
        assert_eq!(CallClass::PrivateReply.buckets(&b).len(), 3);
        assert!(CallClass::PublicReply.buckets(&b).is_empty());
    }
}
