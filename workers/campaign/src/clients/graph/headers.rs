//! Meta's answer headers: usage percentages, `Retry-After` and the estimated time to regain
//! access after throttling.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};

/// The longest `estimated_time_to_regain_access` (minutes) Meta reports in
/// `X-Business-Use-Case-Usage`: `{"<id>": [{"type": ..., "estimated_time_to_regain_access": 5}]}`.
pub(super) fn regain_access(headers: &HeaderMap) -> Option<Duration> {
    let usage: HashMap<String, Vec<serde_json::Value>> =
        serde_json::from_slice(headers.get("x-business-use-case-usage")?.as_bytes()).ok()?;
    let minutes = usage
        .values()
        .flatten()
        .filter_map(|u| u.get("estimated_time_to_regain_access")?.as_u64())
        .max()?;
    (minutes > 0).then(|| Duration::from_secs(minutes * 60))
}

/// The highest percentage in Meta's usage headers (`X-Business-Use-Case-Usage` per business
/// object, `X-App-Usage` for the app): how close the account is to being throttled.
pub(super) fn usage(headers: &HeaderMap) -> Option<u8> {
    const FIELDS: [&str; 3] = ["call_count", "total_cputime", "total_time"];
    let highest = |v: &serde_json::Value| FIELDS.iter().filter_map(|f| v.get(f)?.as_u64()).max();
    let business = headers
        .get("x-business-use-case-usage")
        .and_then(|h| {
            serde_json::from_slice::<HashMap<String, Vec<serde_json::Value>>>(h.as_bytes()).ok()
        })
        .and_then(|u| u.values().flatten().filter_map(highest).max());
    let app = headers
        .get("x-app-usage")
        .and_then(|h| serde_json::from_slice::<serde_json::Value>(h.as_bytes()).ok())
        .and_then(|v| highest(&v));
    business
        .max(app)
        .map(|p| u8::try_from(p.min(100)).unwrap_or(100))
}

pub(super) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn metas_regain_access_estimate_becomes_the_retry_delay() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-business-use-case-usage",
            HeaderValue::from_static(
                r#"{"17841400000000000":[{"type":"instagram","call_count":100,"total_cputime":25,"total_time":25,"estimated_time_to_regain_access":7}]}"#,
            ),
        );
        assert_eq!(regain_access(&h), Some(Duration::from_secs(420)));
        h.insert("retry-after", HeaderValue::from_static("30"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(30)));
        assert_eq!(regain_access(&HeaderMap::new()), None);
        assert_eq!(usage(&h), Some(100));
        let mut app = HeaderMap::new();
        app.insert(
            "x-app-usage",
            HeaderValue::from_static(r#"{"call_count":95,"total_time":12,"total_cputime":3}"#),
        );
        assert_eq!(usage(&app), Some(95));
        assert_eq!(usage(&HeaderMap::new()), None);
    }
}
