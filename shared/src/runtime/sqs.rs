//! SQS errors, classified where they are made: a transient one (throttled, timed out, SQS
//! unavailable, no connection) is retried; a refused one (no such queue, access denied, a
//! request SQS rejects) will be refused again until the configuration is fixed.

use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};

type Source = Box<dyn std::error::Error + Send + Sync>;

/// An SQS call that failed, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum SqsError {
    #[error("SQS {call} failed for now ({code}); retry")]
    Transient {
        call: &'static str,
        code: String,
        #[source]
        source: Source,
    },
    #[error(
        "SQS {call} refused ({code}); retrying will not help: check the queue URL, its permissions and the request"
    )]
    Refused {
        call: &'static str,
        code: String,
        #[source]
        source: Source,
    },
}

/// Error codes SQS answers when it is busy rather than when the request is wrong.
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "RequestThrottled",
    "AWS.SimpleQueueService.RequestThrottled",
    "ServiceUnavailable",
    "InternalError",
    "InternalFailure",
    "KmsThrottled",
];

/// Whether an answer is worth retrying: no answer at all (`status` none: timeout,
/// connection), a 5xx, a 429, or a throttling code.
pub fn is_transient(status: Option<u16>, code: Option<&str>) -> bool {
    match status {
        None => true,
        Some(s) if s >= 500 || s == 429 => true,
        Some(_) => code.is_some_and(|c| TRANSIENT_CODES.contains(&c)),
    }
}

impl SqsError {
    /// Classifies a failed `call`.
    pub fn sdk<E>(call: &'static str, e: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let code = e.code().unwrap_or("no code").to_owned();
        let status = e.raw_response().map(|r| r.status().as_u16());
        let transient = match &e {
            SdkError::ServiceError(_) => is_transient(status, e.code()),
            // The request was never sent: it would be built the same way again.
            SdkError::ConstructionFailure(_) => false,
            _ => true,
        };
        Self::classified(call, transient, code, Box::new(e))
    }

    /// A request igflow could not build: the same request fails again.
    pub fn build(call: &'static str, e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::classified(call, false, "request not built".to_owned(), Box::new(e))
    }

    fn classified(call: &'static str, transient: bool, code: String, source: Source) -> Self {
        if transient {
            Self::Transient { call, code, source }
        } else {
            Self::Refused { call, code, source }
        }
    }

    /// Worth trying again as it is.
    pub fn retryable(&self) -> bool {
        matches!(self, Self::Transient { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_answers_are_retried_and_refusals_are_not() {
        assert!(is_transient(None, None), "no answer: timeout or connection");
        assert!(is_transient(Some(500), Some("InternalError")));
        assert!(is_transient(Some(503), None));
        assert!(is_transient(Some(429), None));
        assert!(is_transient(Some(400), Some("RequestThrottled")));
        assert!(is_transient(Some(400), Some("ThrottlingException")));
        assert!(!is_transient(
            Some(400),
            Some("AWS.SimpleQueueService.NonExistentQueue")
        ));
        assert!(!is_transient(Some(403), Some("AccessDenied")));
        assert!(!is_transient(Some(400), Some("InvalidParameterValue")));
    }
}
