//! What a failed Graph API call means: the status, Meta's code and the verdict (retry, give
//! up, unknown outcome, pause the account).

use std::time::{Duration, Instant};

use igflow_core::failure::Failure;
use igflow_core::graph_error::{GraphErrorBody, Verdict, is_throttling};
use reqwest::header::HeaderMap;

use super::headers::{regain_access, retry_after, usage};

/// A call that did not succeed, with what Meta said.
#[derive(Debug, Clone)]
pub struct CallError {
    pub status: Option<u16>,
    pub code: Option<i64>,
    pub subcode: Option<i64>,
    pub verdict: Verdict,
    pub latency: Duration,
    pub usage: Option<u8>,
}

impl CallError {
    /// For a write Meta does not dedupe (a DM, a public reply): a server error (or a 429 with
    /// Meta's transient codes 1 or 2) once the request left may come after Meta wrote it.
    /// Nobody has shown it never does, so the outcome is unknown and resolved by reading back
    /// (the thread, the comment's replies). Throttling refusals stay retryable: Meta throttles
    /// instead of writing.
    pub(super) fn unknown_after_server_error(self) -> Self {
        let transient_body = matches!(self.code, Some(1 | 2));
        let server_error =
            self.status.is_some_and(|s| s >= 500) || (self.status == Some(429) && transient_body);
        match self.verdict {
            Verdict::Failed(Failure::Retryable { reason, .. })
                if server_error && !self.code.is_some_and(is_throttling) =>
            {
                Self {
                    verdict: Verdict::Failed(Failure::Ambiguous {
                        reason: format!(
                            "{reason}, after the request left: Meta may have written it"
                        ),
                    }),
                    ..self
                }
            }
            _ => self,
        }
    }

    /// Why the call failed, in words.
    pub fn reason(&self) -> String {
        match &self.verdict {
            Verdict::AlreadyDone => "already done".to_owned(),
            Verdict::Failed(f) => f.to_string(),
        }
    }

    /// A read's failure, as the stage that read it fails: a read writes nothing, so "already
    /// done" is an odd answer to retry.
    pub fn read_failure(self, what: &str) -> Failure {
        match self.verdict {
            Verdict::Failed(failure) => failure,
            Verdict::AlreadyDone => Failure::retry(format!("{what} answered oddly")),
        }
    }

    /// A call that was never made, for a reason that will not change.
    pub fn not_sent(reason: String) -> Self {
        Self {
            status: None,
            code: None,
            subcode: None,
            verdict: Verdict::Failed(Failure::permanent(reason)),
            latency: Duration::ZERO,
            usage: None,
        }
    }
}

/// A read that failed: nothing was written, so it is simply retried later.
pub(super) fn read_error(reason: String, status: Option<u16>, started: Instant) -> CallError {
    CallError {
        status,
        code: None,
        subcode: None,
        verdict: Verdict::Failed(Failure::retry(reason)),
        latency: started.elapsed(),
        usage: None,
    }
}

/// A request that never got an answer. Before the connection existed nothing was sent and a
/// retry is safe; after that, Meta may have acted, so the outcome is ambiguous.
/// reqwest's errors print their URL, and `paging.next` URLs carry the access token: every
/// reqwest error loses its URL (`without_url`) before it becomes text.
pub(super) fn transport_error(e: reqwest::Error, latency: Duration) -> CallError {
    let e = e.without_url();
    let failure = if e.is_connect() || e.is_builder() {
        Failure::retry(format!("graph API unreachable: {e}"))
    } else {
        Failure::Ambiguous {
            reason: format!("graph API call interrupted after sending: {e}"),
        }
    };
    CallError {
        status: None,
        code: None,
        subcode: None,
        verdict: Verdict::Failed(failure),
        latency,
        usage: None,
    }
}

/// What a non-2xx answer means, from Meta's error body if it sent one.
pub(super) fn refused(
    status: u16,
    headers: &HeaderMap,
    body: Option<&[u8]>,
    latency: Duration,
    throttle_pause: Duration,
) -> CallError {
    let retry_after = retry_after(headers).or_else(|| regain_access(headers));
    let usage = usage(headers);
    let parsed = body.and_then(|b| serde_json::from_slice::<GraphErrorBody>(b).ok());
    match parsed {
        Some(GraphErrorBody { error }) => CallError {
            status: Some(status),
            code: Some(error.code),
            subcode: error.error_subcode,
            verdict: error.verdict(status, retry_after, throttle_pause),
            latency,
            usage,
        },
        None => CallError {
            status: Some(status),
            code: None,
            subcode: None,
            // No Graph error body: a gateway answered, and a 500, 502 or 504 may come
            // after Meta already wrote. Resolved like a timeout, never sent blindly again.
            verdict: Verdict::Failed(if matches!(status, 500 | 502 | 504) {
                Failure::Ambiguous {
                    reason: format!(
                        "graph HTTP {status} without an error body: the write may have happened"
                    ),
                }
            } else if status >= 500 || status == 429 {
                Failure::Retryable {
                    retry_after,
                    reason: format!("graph HTTP {status}"),
                }
            } else {
                Failure::permanent(format!("graph HTTP {status} without an error body"))
            }),
            latency,
            usage,
        },
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[tokio::test]
    async fn transport_errors_do_not_carry_the_url_or_its_token() {
        // Nothing listens on port 1: the request fails before anything is sent.
        let e = reqwest::Client::new()
            .get("http://127.0.0.1:1/v24.0/1/replies?access_token=IGQWRsecret")
            .send()
            .await
            .unwrap_err();
        let text = format!("{:?}", transport_error(e, Duration::ZERO));
        assert!(!text.contains("IGQWRsecret"), "{text}");
        assert!(!text.contains("access_token"), "{text}");
        assert!(text.contains("unreachable"), "{text}");
    }

    fn answered(status: u16, code: i64) -> CallError {
        let error = serde_json::from_value::<GraphErrorBody>(
            json!({ "error": { "message": "m", "code": code, "is_transient": true } }),
        )
        .expect("error body")
        .error;
        CallError {
            status: Some(status),
            code: Some(code),
            subcode: None,
            verdict: error.verdict(status, None, Duration::from_secs(60)),
            latency: Duration::ZERO,
            usage: None,
        }
    }

    #[test]
    fn a_write_answered_with_a_server_error_has_an_unknown_outcome() {
        let unknown = |status, code| {
            matches!(
                answered(status, code).unknown_after_server_error().verdict,
                Verdict::Failed(Failure::Ambiguous { .. })
            )
        };
        assert!(unknown(500, 2));
        assert!(unknown(503, 1));
        assert!(unknown(429, 2));
        assert!(!unknown(429, 80002), "throttled: not written");
        assert!(!unknown(400, 2), "a refusal before writing");
        assert!(!unknown(400, 100));
    }
}
