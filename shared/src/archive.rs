//! The raw archive's layout: one S3 object per verified delivery, its body byte for byte,
//! keyed by the UTC hour it arrived in so that a time window is a handful of prefix listings
//! (`deliveries/2026/11/29/20/`), and within an hour by the receive time in milliseconds, so
//! that a listing comes back in arrival order. The name ends with the accounts whose events
//! the delivery carries, so a data deletion finds an account's deliveries from listings alone
//! (`deliveries/2026/11/29/20/{ms}-{sha256}-17841400000000000`). Written by the webhook, read
//! by `igflow-worker replay --from --to` and purged by the worker's data deletion. See
//! docs/architecture.md, "Raw archive".

use std::fmt;

use jiff::Timestamp;

/// Every archived delivery lives under this prefix (the bucket's lifecycle rules name it).
pub const PREFIX: &str = "deliveries/";
/// User metadata on each object (S3 sends it as `x-amz-meta-*`).
pub const META_SIGNATURE: &str = "signature";
pub const META_RECEIVED_AT_MS: &str = "received-at-ms";
pub const META_DELIVERY_ID: &str = "delivery-id";

const HOUR_MS: i64 = 3_600_000;
/// Past this many accounts a name says `many` (S3 keys end at 1,024 bytes).
const MAX_NAMED: usize = 20;
const MANY: &str = "many";

/// Whose events a delivery carries, as its name tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accounts {
    /// The name does not say (a delivery that did not split, or one archived before names
    /// carried accounts): only its body tells.
    Unknown,
    /// These accounts (Instagram user ids), sorted.
    Named(Vec<String>),
    /// More than a name holds: only its body tells.
    Many,
}

/// Where one delivery is kept: its receive time, its id (the body's SHA-256) and the
/// accounts it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveKey {
    pub received_at_ms: i64,
    pub delivery_id: String,
    pub accounts: Accounts,
}

impl ArchiveKey {
    pub fn new(received_at_ms: i64, delivery_id: impl Into<String>) -> Self {
        Self {
            received_at_ms,
            delivery_id: delivery_id.into(),
            accounts: Accounts::Unknown,
        }
    }

    /// The key naming the accounts whose events the delivery carries (none named: unknown).
    #[must_use]
    pub fn naming<'a>(mut self, accounts: impl IntoIterator<Item = &'a str>) -> Self {
        let mut named: Vec<String> = accounts.into_iter().map(str::to_owned).collect();
        named.sort();
        named.dedup();
        self.accounts = match named.len() {
            0 => Accounts::Unknown,
            n if n > MAX_NAMED => Accounts::Many,
            _ if named.iter().all(|a| is_digits(a)) => Accounts::Named(named),
            _ => Accounts::Unknown,
        };
        self
    }

    /// Whether the delivery carries the account's events: `None` when the name does not say.
    pub fn concerns(&self, account: &str) -> Option<bool> {
        match &self.accounts {
            Accounts::Named(named) => Some(named.iter().any(|a| a == account)),
            Accounts::Unknown | Accounts::Many => None,
        }
    }

    /// Reads a key this module wrote (with or without accounts); anything else (a stray
    /// upload) is `None`.
    pub fn parse(key: &str) -> Option<Self> {
        let name = key.strip_prefix(PREFIX)?.rsplit('/').next()?;
        let (ms, rest) = name.split_once('-')?;
        let (id, accounts) = match rest.split_once('-') {
            None => (rest, Accounts::Unknown),
            Some((id, MANY)) => (id, Accounts::Many),
            Some((id, named)) => {
                let named: Vec<String> = named.split('.').map(str::to_owned).collect();
                if !named.iter().all(|a| is_digits(a)) {
                    return None;
                }
                (id, Accounts::Named(named))
            }
        };
        let mut key = Self::new(ms.parse().ok()?, id);
        key.accounts = accounts;
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
        write!(f, "{hour}{:013}-{}", self.received_at_ms, self.delivery_id)?;
        match &self.accounts {
            Accounts::Unknown => Ok(()),
            Accounts::Many => write!(f, "-{MANY}"),
            Accounts::Named(named) => write!(f, "-{}", named.join(".")),
        }
    }
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Whether an archived body carries the account's events, for a key whose name does not
/// say: one of its entries is the account's (Meta's `entry[].id`). A body that is not a Meta
/// payload concerns every account whose id it contains, so a deletion errs toward removing.
pub fn body_concerns(body: &[u8], account: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Delivery {
        entry: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        id: serde_json::Value,
    }
    match serde_json::from_slice::<Delivery>(body) {
        Ok(d) => d.entry.iter().any(|e| match &e.id {
            serde_json::Value::String(id) => id == account,
            serde_json::Value::Number(id) => id.to_string() == account,
            _ => false,
        }),
        Err(_) => body.windows(account.len()).any(|w| w == account.as_bytes()),
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
    fn a_name_carries_the_deliverys_accounts_up_to_twenty() {
        let ms = at("2026-11-29T20:00:00Z").as_millisecond();
        let key = ArchiveKey::new(ms, ID).naming([
            "17841400000000002",
            "17841400000000001",
            "17841400000000002",
        ]);
        let name = key.to_string();
        assert!(
            name.ends_with(&format!("{ID}-17841400000000001.17841400000000002")),
            "{name}"
        );
        assert_eq!(ArchiveKey::parse(&name), Some(key.clone()));
        assert_eq!(key.concerns("17841400000000001"), Some(true));
        assert_eq!(key.concerns("17841400000000003"), Some(false));

        let ids: Vec<String> = (0..21).map(|n| format!("178414000000000{n:02}")).collect();
        let many = ArchiveKey::new(ms, ID).naming(ids.iter().map(String::as_str));
        assert!(many.to_string().ends_with("-many"));
        assert_eq!(ArchiveKey::parse(&many.to_string()), Some(many.clone()));
        assert_eq!(many.concerns("17841400000000000"), None, "the body tells");
        let old = ArchiveKey::parse(&format!("deliveries/2026/11/29/20/{ms:013}-{ID}")).unwrap();
        assert_eq!(
            old.concerns("17841400000000000"),
            None,
            "written before names said"
        );
        assert_eq!(
            ArchiveKey::new(ms, ID).naming(["../x"]).accounts,
            Accounts::Unknown
        );
        assert_eq!(
            ArchiveKey::parse(&format!("deliveries/2026/11/29/20/{ms:013}-{ID}-1.x")),
            None
        );
    }

    #[test]
    fn a_body_concerns_the_accounts_of_its_entries() {
        let body = br#"{"object":"instagram","entry":[{"id":"17841400000000001","time":1},{"id":17841400000000002,"time":1}]}"#;
        assert!(body_concerns(body, "17841400000000001"));
        assert!(body_concerns(body, "17841400000000002"));
        assert!(
            !body_concerns(body, "1784140000000000"),
            "a prefix is not the id"
        );
        assert!(body_concerns(
            b"not json 17841400000000009",
            "17841400000000009"
        ));
        assert!(!body_concerns(b"not json", "17841400000000009"));
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
