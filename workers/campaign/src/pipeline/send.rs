//! Stage 9's calls to Meta: sending an action (and sharing what Meta says about throttling
//! and usage with the rate limiter), and resolving one whose earlier outcome is unknown
//! without ever sending it twice. Touches the Graph API and Redis.

use std::time::Duration;

use igflow_core::campaign::ActionKind;
use igflow_core::failure::Failure;
use igflow_core::graph_error::{Verdict, is_throttling};
use igflow_core::ids::Igsid;
use igflow_core::plan::PlannedAction;
use igflow_core::runtime::now_ms;
use secrecy::SecretString;

use crate::clients::graph::{CallError, DirectMessage, Sent};
use crate::clients::ratelimit::Throttled;
use crate::clients::store::Account;
use crate::pipeline::attempt::Attempt;
use crate::pipeline::{Pipeline, Target};
use crate::stats::Stats;

/// Meta's code for the app's own rate limit.
const APP_THROTTLED: i64 = 4;

/// How long after a DM call started its outcome is settled at Meta (Unix ms): twice the
/// client's timeout, and at least 10 s for Meta's own processing.
fn dm_settle(timeout: Duration) -> i64 {
    i64::try_from(
        timeout
            .saturating_mul(2)
            .max(Duration::from_secs(10))
            .as_millis(),
    )
    .unwrap_or(i64::MAX)
}

impl Pipeline {
    pub(super) async fn send(
        &self,
        account: &Account,
        token: &SecretString,
        target: &Target,
        action: &PlannedAction,
    ) -> Result<Sent, CallError> {
        let text = &action.text;
        let message = DirectMessage {
            text,
            quick_replies: &action.quick_replies,
            buttons: &action.buttons,
        };
        let result = match (action.kind, target) {
            (ActionKind::PrivateReply, Target::Comment(comment)) => {
                self.graph
                    .private_reply(account, token, comment, &message)
                    .await
            }
            (ActionKind::PublicReply, Target::Comment(comment)) => {
                self.graph.public_reply(account, token, comment, text).await
            }
            (ActionKind::Dm, Target::Sender { igsid, .. }) => {
                self.graph.send_dm(account, token, igsid, &message).await
            }
            // Plans are built for their trigger, so this cannot happen; never guess a recipient.
            (kind, _) => {
                return Err(CallError::not_sent(format!(
                    "{kind} has no recipient in this event"
                )));
            }
        };
        self.share_limits(account, &result).await;
        result
    }

    /// What Meta's answer says about limits, for every worker: a throttle holds the
    /// account's (or the app's) calls, and the usage report paces the account.
    async fn share_limits(&self, account: &Account, result: &Result<Sent, CallError>) {
        if let Err(CallError {
            code,
            status,
            verdict:
                Verdict::Failed(Failure::Retryable {
                    retry_after: Some(wait),
                    ..
                }),
            ..
        }) = result
            && (code.is_some_and(is_throttling) || *status == Some(429))
        {
            Stats::add(&self.stats.throttled);
            // Code 4 is the app's own limit: every account's calls wait.
            let scope = if *code == Some(APP_THROTTLED) {
                Throttled::App
            } else {
                Throttled::Account(&account.ig_user_id)
            };
            tracing::warn!(
                wait_ms = wait.as_millis(),
                ?scope,
                "Meta throttled; holding calls"
            );
            if let Err(e) = self.limiter.block(scope, *wait).await {
                tracing::warn!(error = %e, "throttle not shared; other workers learn it from Meta");
            }
        }
        let usage = match result {
            Ok(sent) => sent.usage,
            Err(e) => e.usage,
        };
        if let Some(percent) = usage
            && let Err(e) = self
                .limiter
                .record_usage(&account.ig_user_id, percent)
                .await
        {
            tracing::warn!(error = %e, "usage not recorded; pacing uses the last known value");
        }
    }

    /// Settles an action whose earlier attempt (its call started at `attempted_at_ms`, where
    /// known) may or may not have reached Meta, without ever sending it twice.
    pub(super) async fn resolve(
        &self,
        account: &Account,
        token: &SecretString,
        target: &Target,
        action: &PlannedAction,
        attempted_at_ms: Option<i64>,
    ) -> Attempt {
        match (action.kind, target) {
            // Meta accepts one private reply per comment and answers any further one with
            // "already replied": sending again is how to find out, and cannot double it.
            (ActionKind::PrivateReply, _) => {
                let sent = self.send(account, token, target, action).await;
                Attempt::from_call(
                    sent,
                    Some(
                        "sent after an unknown outcome (Meta allows one private reply per comment)",
                    ),
                )
            }
            // A public reply could be posted twice: read the comment's replies first. Unlike
            // a DM's thread (only its 20 newest messages, matched by text and time), the
            // comment's replies list every reply of the account, so "not there" after a
            // successful read is an answer: post it, once. If that post's outcome is unknown
            // too, the next attempt reads back again before anything else; an error answer to
            // the read is "could not check" and never leads to a post.
            (ActionKind::PublicReply, Target::Comment(comment)) => {
                match self
                    .graph
                    .find_public_reply(account, token, comment, &action.text)
                    .await
                {
                    Ok(None) => Attempt::from_call(
                        self.send(account, token, target, action).await,
                        Some("posted after an unknown outcome: not among the comment's replies"),
                    ),
                    found => Attempt::read_back(found),
                }
            }
            (ActionKind::Dm, Target::Sender { igsid, .. }) => {
                self.resolve_dm(account, token, target, igsid, action, attempted_at_ms)
                    .await
            }
            // Plans are built for their trigger, so this cannot happen; never guess.
            _ => Attempt::given_up("outcome unknown and no read-back fits it; not re-sent"),
        }
    }

    /// Meta does not dedupe DMs: read the thread with the person instead. Not there, once
    /// any call the earlier attempt made has had time to land (it answers within the
    /// client's timeout, or its connection died with the worker and Meta dropped it), means
    /// never sent: send it, once. Sooner, the event comes back to look again.
    async fn resolve_dm(
        &self,
        account: &Account,
        token: &SecretString,
        target: &Target,
        igsid: &Igsid,
        action: &PlannedAction,
        attempted_at_ms: Option<i64>,
    ) -> Attempt {
        let found = self
            .graph
            .find_dm(account, token, igsid, &action.text, attempted_at_ms)
            .await;
        let settle = dm_settle(self.graph.timeout());
        match (found, attempted_at_ms) {
            (Ok(None), Some(at)) if now_ms().saturating_sub(at) >= settle => Attempt::from_call(
                self.send(account, token, target, action).await,
                Some(
                    "sent after an unknown outcome: not in the thread once the earlier call could have landed",
                ),
            ),
            // Whole seconds, rounded up (SQS delays are whole seconds): back no sooner than due.
            (Ok(None), Some(at)) => Attempt::not_yet(
                "outcome unknown and not in the thread yet; looking again once the earlier call could have landed",
                Duration::from_secs(
                    u64::try_from(settle.saturating_sub(now_ms().saturating_sub(at)) + 500)
                        .unwrap_or(0)
                        .div_ceil(1000),
                ),
            ),
            (found, _) => Attempt::read_back(found),
        }
    }
}
