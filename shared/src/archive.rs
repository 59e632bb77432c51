//! The raw archive's layout: one S3 object per verified delivery, its body byte for byte,
//! keyed by the UTC hour it arrived in so that a time window is a handful of prefix listings
//! (`deliveries/2026/11/29/20/`), and within an hour by the receive time in milliseconds, so
//! that a listing comes back in arrival order. Written by the webhook, read by
//! `igflow-worker replay --from --to`. See docs/architecture.md, "Raw archive".

use std::fmt;

use jiff::Timestamp;

/// Every archived delivery lives under this prefix (the bucket's lifecycle rules name it).
pub const PREFIX: &str = "deliveries/";
/// User metadata on each object (S3 sends it as `x-amz-meta-*`).
pub const META_SIGNATURE: &str = "signature";
pub const META_RECEIVED_AT_MS: &str = "received-at-ms";
pub const META_DELIVERY_ID: &str = "delivery-id";

const HOUR_MS: i64 = 3_600_000;

/// Where one delivery is kept: its receive time and its id (the body's SHA-256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveKey {
    pub received_at_ms: i64,
    pub delivery_id: String,
}

impl ArchiveKey {
    pub fn new(received_at_ms: i64, delivery_id: impl Into<String>) -> Self {
        Self {
            received_at_ms,
            delivery_id: delivery_id.into(),
        }
    }

    /// Reads a key this module wrote; anything else (a stray upload) is `None`.
    pub fn parse(key: &str) -> Option<Self> {
        let name = key.strip_prefix(PREFIX)?.rsplit('/').next()?;
        let (ms, id) = name.split_once('-')?;
        let key = Self::new(ms.parse().ok()?, id);
        let well_formed = id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit());
        (well_formed && key.hour_prefix().is_some()).then_some(key)
    }

    fn hour_prefix(&self) -> Option<String> {
        hour_prefix(self.received_at_ms)
    }
}

impl fmt::Display for ArchiveKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Thirteen digits keep the names sorting by time until the year 2286.
        let hour = self
            .hour_prefix()
            .unwrap_or_else(|| format!("{PREFIX}invalid-time/"));
        write!(f, "{hour}{:013}-{}", self.received_at_ms, self.delivery_id)
    }
}

/// `deliveries/YYYY/MM/DD/HH/` of the UTC hour holding `ms`; `None` outside jiff's range.
fn hour_prefix(ms: i64) -> Option<String> {
    let at = Timestamp::from_millisecond(ms).ok()?;
    Some(format!("{PREFIX}{}/", at.strftime("%Y/%m/%d/%H")))
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WindowError {
    #[error("--from ({from}) must be before --to ({to})")]
    Empty { from: Timestamp, to: Timestamp },
}

/// A half-open span of receive times, `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    from_ms: i64,
    to_ms: i64,
}

impl TimeWindow {
    pub fn new(from: Timestamp, to: Timestamp) -> Result<Self, WindowError> {
        if from >= to {
            return Err(WindowError::Empty { from, to });
        }
        Ok(Self {
            from_ms: from.as_millisecond(),
            to_ms: to.as_millisecond(),
        })
    }

    pub fn contains(&self, key: &ArchiveKey) -> bool {
        (self.from_ms..self.to_ms).contains(&key.received_at_ms)
    }

    /// The hour prefixes to list, oldest first: every UTC hour the window touches.
    pub fn hour_prefixes(&self) -> impl Iterator<Item = String> + use<> {
        let first = self.from_ms.div_euclid(HOUR_MS) * HOUR_MS;
        let to = self.to_ms;
        (0..)
            .map(move |n: i64| first + n * HOUR_MS)
            .take_while(move |start| *start < to)
            .filter_map(hour_prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn keys_group_by_utc_hour_and_sort_by_receive_time() {
        let ms = at("2026-11-29T20:59:59.123Z").as_millisecond();
        let key = ArchiveKey::new(ms, ID).to_string();
        assert_eq!(key, format!("deliveries/2026/11/29/20/{ms:013}-{ID}"));
        assert_eq!(ArchiveKey::parse(&key), Some(ArchiveKey::new(ms, ID)));
        let later = ArchiveKey::new(ms + 1, ID).to_string();
        assert!(key < later, "names sort by time within an hour");
        for stray in [
            "deliveries/2026/11/29/20/notes.txt",
            "other/2026/11/29/20/1-x",
            &format!("deliveries/2026/11/29/20/{ms}-{}", &ID[1..]),
        ] {
            assert_eq!(ArchiveKey::parse(stray), None, "{stray}");
        }
    }

    #[test]
    fn a_window_lists_every_hour_it_touches_and_keeps_its_own_ends() {
        let window =
            TimeWindow::new(at("2026-11-29T22:30:00Z"), at("2026-11-30T00:00:00Z")).unwrap();
        assert_eq!(
            window.hour_prefixes().collect::<Vec<_>>(),
            ["deliveries/2026/11/29/22/", "deliveries/2026/11/29/23/"]
        );
        let key = |s: &str| ArchiveKey::new(at(s).as_millisecond(), ID);
        assert!(window.contains(&key("2026-11-29T22:30:00Z")));
        assert!(!window.contains(&key("2026-11-29T22:29:59.999Z")));
        assert!(
            !window.contains(&key("2026-11-30T00:00:00Z")),
            "the end is open"
        );
        assert!(TimeWindow::new(at("2026-11-30T00:00:00Z"), at("2026-11-30T00:00:00Z")).is_err());
    }
}
