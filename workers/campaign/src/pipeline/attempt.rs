//! One attempt at one action, as `execute` records it: from the Graph API's answer, a
//! read-back, or a rule that held it back.

use std::time::Duration;

use igflow_core::failure::Failure;
use igflow_core::graph_error::Verdict;

use crate::clients::graph::{CallError, Sent};
use crate::clients::store::{ActionOutcome, ActionRecord};

/// One attempt at one action: what to record, and the failure if it did not succeed, or
/// how long to wait before looking again if it cannot be told yet.
pub(super) struct Attempt {
    pub record: ActionRecord,
    pub failure: Option<Failure>,
    pub wait: Option<Duration>,
}

impl Attempt {
    /// An action a rule held back, with the outcome and reason to record.
    pub(super) fn held(outcome: ActionOutcome, detail: String) -> Self {
        Self {
            record: ActionRecord {
                detail: Some(detail),
                ..ActionRecord::new(outcome)
            },
            failure: None,
            wait: None,
        }
    }

    /// An outcome that cannot be told for `wait` yet: the action stays `uncertain`, and the
    /// event comes back after the wait to look again (a wait, not a failed attempt).
    pub(super) fn not_yet(reason: &str, wait: Duration) -> Self {
        Self {
            record: ActionRecord {
                detail: Some(reason.to_owned()),
                ..ActionRecord::new(ActionOutcome::Uncertain)
            },
            failure: None,
            wait: Some(wait),
        }
    }

    pub(super) fn given_up(reason: &str) -> Self {
        Self {
            record: ActionRecord {
                detail: Some(reason.to_owned()),
                ..ActionRecord::new(ActionOutcome::Failed)
            },
            failure: Some(Failure::permanent(reason)),
            wait: None,
        }
    }

    /// What a read-back found: the action is there (sent), is not (given up, never re-sent
    /// blindly), or the read-back could not tell.
    pub(super) fn read_back(found: Result<Option<String>, CallError>) -> Self {
        match found {
            Ok(Some(id)) => Self {
                record: ActionRecord {
                    detail: Some("found on read-back after an unknown outcome".into()),
                    response_id: Some(id),
                    ..ActionRecord::new(ActionOutcome::Sent)
                },
                failure: None,
                wait: None,
            },
            Ok(None) => Self::given_up("outcome unknown and not found on read-back; not re-sent"),
            Err(e) => Self::unchecked(&e),
        }
    }

    /// A read-back that could not tell: the action stays `uncertain` and is checked again
    /// later (a token error pauses the account first), never taken for "not there".
    fn unchecked(e: &CallError) -> Self {
        let reason = format!("read-back failed, will check again: {}", e.reason());
        let failure = match &e.verdict {
            Verdict::Failed(Failure::Account { reason }) => Failure::Account {
                reason: reason.clone(),
            },
            _ => Failure::Ambiguous {
                reason: reason.clone(),
            },
        };
        Self {
            record: ActionRecord {
                detail: Some(reason),
                graph_status: e.status,
                graph_code: e.code,
                graph_subcode: e.subcode,
                latency: Some(e.latency),
                ..ActionRecord::new(ActionOutcome::Uncertain)
            },
            failure: Some(failure),
            wait: None,
        }
    }

    pub(super) fn from_call(result: Result<Sent, CallError>, detail: Option<&str>) -> Self {
        match result {
            Ok(sent) => Self {
                record: ActionRecord {
                    detail: detail.map(str::to_owned),
                    graph_status: Some(sent.status),
                    response_id: sent.id,
                    latency: Some(sent.latency),
                    ..ActionRecord::new(ActionOutcome::Sent)
                },
                failure: None,
                wait: None,
            },
            Err(e) => {
                let (outcome, failure) = match e.verdict {
                    Verdict::AlreadyDone => (ActionOutcome::AlreadyDone, None),
                    Verdict::Failed(f @ Failure::Permanent { .. }) => {
                        (ActionOutcome::Failed, Some(f))
                    }
                    Verdict::Failed(f @ Failure::Ambiguous { .. }) => {
                        (ActionOutcome::Uncertain, Some(f))
                    }
                    Verdict::Failed(f @ (Failure::Retryable { .. } | Failure::Account { .. })) => {
                        (ActionOutcome::Retry, Some(f))
                    }
                };
                Self {
                    record: ActionRecord {
                        detail: failure
                            .as_ref()
                            .map(ToString::to_string)
                            .or_else(|| detail.map(str::to_owned)),
                        graph_status: e.status,
                        graph_code: e.code,
                        graph_subcode: e.subcode,
                        latency: Some(e.latency),
                        ..ActionRecord::new(outcome)
                    },
                    failure,
                    wait: None,
                }
            }
        }
    }
}
