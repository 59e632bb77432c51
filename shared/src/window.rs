//! Meta's messaging windows: a private reply within 7 days of the comment, any other DM within
//! 24 hours of the person's last message to the account.

use std::time::Duration;

pub const PRIVATE_REPLY_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);
pub const MESSAGING_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// Until when (Unix ms) a send that the window opened at `opened_ms` is allowed.
pub fn closes_at(opened_ms: i64, window: Duration) -> i64 {
    opened_ms.saturating_add(i64::try_from(window.as_millis()).unwrap_or(i64::MAX))
}

/// Whether a send at `send_ms` still falls inside the window.
pub fn is_open(opened_ms: i64, window: Duration, send_ms: i64) -> bool {
    send_ms < closes_at(opened_ms, window)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seven_days_and_24_hours() {
        let comment = 1_732_200_000_000;
        assert!(is_open(
            comment,
            PRIVATE_REPLY_WINDOW,
            comment + 6 * 86_400_000
        ));
        assert!(!is_open(
            comment,
            PRIVATE_REPLY_WINDOW,
            comment + 7 * 86_400_000
        ));
        assert!(!is_open(comment, MESSAGING_WINDOW, comment + 86_400_001));
    }
}
