//! The failure taxonomy every stage returns (docs/architecture.md, "Failure taxonomy"): each
//! variant says what the consumer must do with the message next.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// Transient: hide the message for `retry_after` (or a backoff) and try again.
    #[error("retryable: {reason}")]
    Retryable {
        retry_after: Option<Duration>,
        reason: String,
    },
    /// Will never succeed: record the reason and delete the message.
    #[error("permanent: {reason}")]
    Permanent { reason: String },
    /// An outbound write whose outcome is unknown: never re-send it blindly.
    #[error("ambiguous: {reason}")]
    Ambiguous { reason: String },
    /// The account cannot act (token invalid, restricted): pause it and keep its messages.
    #[error("account must be paused: {reason}")]
    Account { reason: String },
}

impl Failure {
    pub fn retry(reason: impl Into<String>) -> Self {
        Self::Retryable {
            retry_after: None,
            reason: reason.into(),
        }
    }

    pub fn permanent(reason: impl Into<String>) -> Self {
        Self::Permanent {
            reason: reason.into(),
        }
    }
}
