//! Meta's Graph API error bodies and what each code means for igflow.

use std::time::Duration;

use serde::Deserialize;

use crate::failure::Failure;

/// `{"error": {...}}` as the Graph API returns it.
#[derive(Debug, Clone, Deserialize)]
pub struct GraphErrorBody {
    pub error: MetaError,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MetaError {
    #[serde(default)]
    pub message: String,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    pub code: i64,
    #[serde(default)]
    pub error_subcode: Option<i64>,
    #[serde(default)]
    pub fbtrace_id: Option<String>,
}

/// Throttling codes: application (4), user (17), page (32), custom (613), business use case.
const THROTTLING: &[i64] = &[4, 17, 32, 613, 80001, 80002, 80003, 80004, 80005, 80006];
/// Used when Meta throttles without saying for how long.
pub const DEFAULT_THROTTLE_PAUSE: Duration = Duration::from_secs(60);

/// What a Graph API error means for the action that caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Meta says the action already happened (one private reply per comment).
    AlreadyDone,
    Failed(Failure),
}

/// Whether Meta's code says the caller is being throttled (rate or usage limits).
pub fn is_throttling(code: i64) -> bool {
    THROTTLING.contains(&code)
}

impl MetaError {
    fn describe(&self) -> String {
        match self.error_subcode {
            Some(sub) => format!("graph error {}/{sub}: {}", self.code, self.message),
            None => format!("graph error {}: {}", self.code, self.message),
        }
    }

    /// Classifies by Meta's code first, the HTTP status second. `retry_after` is Meta's own
    /// hint (`Retry-After` or `estimated_time_to_regain_access`) when it sent one;
    /// `throttle_pause` is the wait when Meta throttles without one.
    pub fn verdict(
        &self,
        http_status: u16,
        retry_after: Option<Duration>,
        throttle_pause: Duration,
    ) -> Verdict {
        let reason = self.describe();
        let failure = match (self.code, self.error_subcode) {
            (100, Some(2_534_025)) => return Verdict::AlreadyDone,
            (code, _) if is_throttling(code) => Failure::Retryable {
                retry_after: Some(retry_after.unwrap_or(throttle_pause)),
                reason,
            },
            (190, _) | (102, _) => Failure::Account {
                reason: format!("access token invalid: {reason}"),
            },
            (10, Some(2_534_022)) | (551, _) => Failure::Permanent { reason },
            (10, _) | (200..=299, _) => Failure::Account {
                reason: format!("permission missing: {reason}"),
            },
            (1 | 2, _) => Failure::Retryable {
                retry_after,
                reason,
            },
            _ if http_status >= 500 || http_status == 429 => Failure::Retryable {
                retry_after,
                reason,
            },
            _ => Failure::Permanent { reason },
        };
        Verdict::Failed(failure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> MetaError {
        serde_json::from_str::<GraphErrorBody>(s).unwrap().error
    }

    #[test]
    fn meta_fixture_bodies_classify_by_code() {
        let window = parse(include_str!(
            "../fixtures/meta/errors/error_10_2534022_ig_outside_allowed_window__issue_composio_3604.json"
        ));
        assert!(matches!(
            window.verdict(400, None, DEFAULT_THROTTLE_PAUSE),
            Verdict::Failed(Failure::Permanent { .. })
        ));
        let token = parse(include_str!(
            "../fixtures/meta/errors/error_190_460_generic__restfb_exampleErrorNew_same_as_meta_docs.json"
        ));
        assert!(matches!(
            token.verdict(400, None, DEFAULT_THROTTLE_PAUSE),
            Verdict::Failed(Failure::Account { .. })
        ));
        let page = parse(include_str!(
            "../fixtures/meta/errors/error_32_page_request_limit__meta_docs_rate_limiting.json"
        ));
        assert_eq!(
            page.verdict(400, None, DEFAULT_THROTTLE_PAUSE),
            Verdict::Failed(Failure::Retryable {
                retry_after: Some(DEFAULT_THROTTLE_PAUSE),
                reason: "graph error 32: (#32) Page request limit reached".into()
            })
        );
        let buc = parse(include_str!(
            "../fixtures/meta/errors/error_80001_buc_rate_limit__meta_docs_rate_limiting.json"
        ));
        let hint = Some(Duration::from_secs(300));
        assert!(
            matches!(buc.verdict(400, hint, DEFAULT_THROTTLE_PAUSE), Verdict::Failed(Failure::Retryable { retry_after, .. }) if retry_after == hint)
        );
    }

    #[test]
    fn already_answered_and_server_errors() {
        let done =
            parse(r#"{"error":{"message":"already replied","code":100,"error_subcode":2534025}}"#);
        assert_eq!(
            done.verdict(400, None, DEFAULT_THROTTLE_PAUSE),
            Verdict::AlreadyDone
        );
        let unknown = parse(r#"{"error":{"message":"oops","code":1}}"#);
        assert!(matches!(
            unknown.verdict(500, None, DEFAULT_THROTTLE_PAUSE),
            Verdict::Failed(Failure::Retryable { .. })
        ));
        let bad = parse(r#"{"error":{"message":"Invalid parameter","code":100}}"#);
        assert!(matches!(
            bad.verdict(400, None, DEFAULT_THROTTLE_PAUSE),
            Verdict::Failed(Failure::Permanent { .. })
        ));
    }
}
