//! The stages one event goes through: claim, load, filter, decide, act, record.

pub mod account_events;
pub mod classify;
pub mod consumer;
pub mod heartbeat;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use igflow_core::campaign::{AccountStatus, ActionKind};
use igflow_core::envelope::{Envelope, EventKind};
use igflow_core::event::{Comment, Item, MessagingItem};
use igflow_core::failure::Failure;
use igflow_core::graph_error::{Verdict, is_throttling};
use igflow_core::ids::Igsid;
use igflow_core::plan::{CampaignSet, Decision, Plan, PlannedAction, SkipReason};
use igflow_core::runtime::now_ms;
use igflow_core::window;
use secrecy::SecretString;
use tracing::Instrument;
use uuid::Uuid;

use crate::clients::cache::AccountCache;
use crate::clients::dedupe::{Claim, ClaimToken, Dedupe};
use crate::clients::graph::{CallError, DirectMessage, GraphClient, Sent};
use crate::clients::ratelimit::{Budgets, CallClass, RateLimiter, Throttled};
use crate::clients::secrets::Tokens;
use crate::clients::store::{
    Account, ActionClaim, ActionOutcome, ActionRecord, DecisionRecord, Store,
};
use crate::jobs::metrics::Latencies;
use crate::pipeline::classify::{IntentClassifier, Source};
use crate::pipeline::heartbeat::with_heartbeat;
use crate::stats::Stats;

/// How an event ended when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    Done,
    Duplicate,
    /// Another worker holds the event; this copy is left to come back.
    Busy,
    /// Its account is paused: kept in Postgres until the account is active again.
    Parked,
    /// Waiting for the account's next rate slot, due in this long.
    Deferred(Duration),
}

/// What `process` made of an event it owned.
enum Outcome {
    Done,
    Parked,
    /// Waiting for a rate slot: back in the queue until then.
    Deferred(Duration),
}

/// A `pending` action's lease outlasts the Graph API call by this much.
const ACTION_LEASE_MARGIN: Duration = Duration::from_secs(5);
/// Meta's code for the app's own rate limit.
const APP_THROTTLED: i64 = 4;
/// A wait for the rate budget longer than this defers the event instead of holding it.
const INLINE_WAIT: Duration = Duration::from_secs(2);
/// A deferred event comes back this much before its slot and waits the rest here: SQS hides
/// messages for whole seconds and hands them out with some delay, so coming back early is
/// what keeps sends on their booked slots.
const COME_BACK_EARLY: Duration = Duration::from_secs(1);

/// What the rules say about a first attempt.
enum Gate {
    Go,
    /// Not sent, for a reason recorded as the action's outcome.
    Stop(Attempt),
    /// Come back when the booked slot is due.
    Defer(Duration),
}

impl Gate {
    fn stop(outcome: ActionOutcome, detail: String) -> Self {
        Self::Stop(Attempt {
            record: ActionRecord {
                detail: Some(detail),
                ..ActionRecord::new(outcome)
            },
            failure: None,
        })
    }
}

/// Who an event's actions go to.
enum Target<'a> {
    /// The comment: private and public replies.
    Comment(&'a Comment),
    /// The person who wrote a DM, and when they last wrote (the 24-hour window).
    Sender { igsid: Igsid, last_message_ms: i64 },
    /// Nobody: the event plans no action.
    Nobody,
}

fn class_of(kind: ActionKind) -> CallClass {
    match kind {
        ActionKind::PrivateReply => CallClass::PrivateReply,
        ActionKind::PublicReply => CallClass::PublicReply,
        ActionKind::Dm => CallClass::Message,
    }
}

/// One attempt at one action: what to record, and the failure if it did not succeed.
struct Attempt {
    record: ActionRecord,
    failure: Option<Failure>,
}

impl Attempt {
    fn given_up(reason: &str) -> Self {
        Self {
            record: ActionRecord {
                detail: Some(reason.to_owned()),
                ..ActionRecord::new(ActionOutcome::Failed)
            },
            failure: Some(Failure::permanent(reason)),
        }
    }

    /// What a read-back found: the action is there (sent), is not (given up, never re-sent
    /// blindly), or the read-back could not tell.
    fn read_back(found: Result<Option<String>, CallError>) -> Self {
        match found {
            Ok(Some(id)) => Self {
                record: ActionRecord {
                    detail: Some("found on read-back after an unknown outcome".into()),
                    response_id: Some(id),
                    ..ActionRecord::new(ActionOutcome::Sent)
                },
                failure: None,
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
        }
    }

    fn from_call(result: Result<Sent, CallError>, detail: Option<&str>) -> Self {
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
                }
            }
        }
    }
}

pub struct Pipeline {
    pub store: Store,
    pub dedupe: Dedupe,
    pub tokens: Arc<Tokens>,
    pub graph: GraphClient,
    pub stats: Arc<Stats>,
    /// How long a claim holds: the message's visibility timeout. Renewed every third of it.
    pub lease: Duration,
    pub limiter: Arc<RateLimiter>,
    pub budgets: Budgets,
    /// How long after a Live comment its private reply is still sent.
    pub live_reply_window: Duration,
    pub classifier: Arc<IntentClassifier>,
    pub accounts: Arc<AccountCache>,
    pub latencies: Arc<Latencies>,
}

impl Pipeline {
    pub async fn handle(&self, env: &Envelope) -> Result<Handled, Failure> {
        let span = tracing::info_span!(
            "event",
            event_id = %env.event_id,
            account_id = %env.account_id,
            kind = env.kind.as_str(),
            campaign_id = tracing::field::Empty,
        );
        async {
            let token = match self
                .dedupe
                .claim(&env.account_id, &env.event_id, self.lease)
                .await?
            {
                Claim::Acquired(token) => token,
                Claim::Done => {
                    Stats::add(&self.stats.duplicates);
                    tracing::info!("duplicate event dropped");
                    return Ok(Handled::Duplicate);
                }
                // Another worker is on this event right now. This copy may be the very message
                // it holds (SQS delivers at least once, even concurrently), so deleting it could
                // delete the holder's: leave it to come back once the holder is done, when the
                // done-marker drops it.
                Claim::Busy => {
                    tracing::info!("event in progress elsewhere; this copy comes back later");
                    return Ok(Handled::Busy);
                }
            };
            // This handling's token on the event's actions (their claims and leases).
            let attempt = Uuid::new_v4();
            let result = self
                .holding_claim(env, &token, attempt, self.process(env, attempt))
                .await;
            match &result {
                // Recorded for good: repeats of this event are dropped from now on.
                Ok(Outcome::Done) | Err(Failure::Permanent { .. } | Failure::Ambiguous { .. }) => {
                    self.dedupe.complete(&env.account_id, &env.event_id).await?;
                }
                // Parked or failed: the event must be claimable again when it comes back.
                Ok(Outcome::Parked | Outcome::Deferred(_))
                | Err(Failure::Retryable { .. } | Failure::Account { .. }) => {
                    if let Err(e) = self
                        .dedupe
                        .release(&env.account_id, &env.event_id, &token)
                        .await
                    {
                        // The lease runs out on its own; the retry just waits for it.
                        tracing::warn!(error = %e, "claim not released");
                    }
                }
            }
            result.map(|o| match o {
                Outcome::Done => Handled::Done,
                Outcome::Parked => Handled::Parked,
                Outcome::Deferred(wait) => Handled::Deferred(wait),
            })
        }
        .instrument(span)
        .await
    }

    /// Runs `work` while renewing the claim and the attempt's action leases, so a slow event
    /// (an LLM call, a rate-limit wait, a slow Graph answer) keeps them for as long as the
    /// message's visibility is renewed too.
    async fn holding_claim<T>(
        &self,
        env: &Envelope,
        token: &ClaimToken,
        attempt: Uuid,
        work: impl Future<Output = T>,
    ) -> T {
        with_heartbeat(work, self.lease / 3, || async {
            if let Err(e) = self
                .store
                .renew_leases(
                    env.account_id.as_str(),
                    env.event_id.as_str(),
                    attempt,
                    self.action_lease(),
                )
                .await
            {
                tracing::warn!(error = %e, "action leases not renewed");
            }
            match self
                .dedupe
                .extend(&env.account_id, &env.event_id, token, self.lease)
                .await
            {
                Ok(true) => {}
                Ok(false) => tracing::warn!(
                    "claim expired and was taken over; the action keys still prevent doubles"
                ),
                Err(e) => tracing::warn!(error = %e, "claim not renewed"),
            }
        })
        .await
    }

    /// How long a `pending` or resolving action is held for its attempt without a renewal:
    /// at least one Graph API call and a margin, so that only a dead attempt loses it.
    fn action_lease(&self) -> Duration {
        self.lease.max(self.graph.timeout() + ACTION_LEASE_MARGIN)
    }

    fn decision<'a>(
        &self,
        env: &'a Envelope,
        account: Option<&Account>,
        attempt: Uuid,
    ) -> DecisionRecord<'a> {
        DecisionRecord {
            attempt,
            tenant_id: account.map(|a| a.tenant_id),
            ig_user_id: env.account_id.as_str(),
            event_id: env.event_id.as_str(),
            event_kind: env.kind.as_str(),
            campaign_id: None,
            contact: None,
            outcome: "",
            detail: None,
            excerpt: None,
        }
    }

    async fn process(&self, env: &Envelope, attempt: Uuid) -> Result<Outcome, Failure> {
        // Meta's app callbacks concern the account itself: handled (and done) whether or not
        // igflow knows it, and whatever its status.
        if matches!(
            env.kind,
            EventKind::AppDeauthorized | EventKind::DataDeletion
        ) {
            account_events::handle(&self.store, env).await?;
            return Ok(Outcome::Done);
        }
        let Some(account) = self.accounts.account(&env.account_id).await? else {
            tracing::warn!("event for an account igflow does not manage");
            let record = DecisionRecord {
                outcome: "unknown_account",
                ..self.decision(env, None, attempt)
            };
            self.store.record_decision(&record).await?;
            return Ok(Outcome::Done);
        };
        if account.status != AccountStatus::Active {
            return self
                .park(env, &account, &format!("account is {}", account.status))
                .await;
        }
        let base = self.decision(env, Some(&account), attempt);
        let item = match Item::from_envelope(env) {
            Ok(item) => item,
            Err(e) => {
                let record = DecisionRecord {
                    outcome: "malformed",
                    detail: Some(e.to_string()),
                    ..base
                };
                self.store.record_decision(&record).await?;
                return Err(Failure::permanent(e.to_string()));
            }
        };
        let acted = match item {
            Item::Comment(comment) => {
                let base = DecisionRecord {
                    excerpt: comment.text.as_deref(),
                    ..base
                };
                self.on_comment(env, &account, base, &comment).await
            }
            Item::Messaging(m) if env.kind == EventKind::Message => {
                self.on_message(env, &account, base, &m).await
            }
            Item::Messaging(m) => {
                let reason = if m.is_own(&account.ig_user_id) {
                    SkipReason::Own
                } else {
                    SkipReason::KindNotHandled
                };
                self.store
                    .record_decision(&DecisionRecord {
                        outcome: reason.as_str(),
                        ..base
                    })
                    .await?;
                Ok(None)
            }
            Item::Unhandled => {
                let outcome = SkipReason::KindNotHandled.as_str();
                self.store
                    .record_decision(&DecisionRecord { outcome, ..base })
                    .await?;
                Ok(None)
            }
        };
        match acted {
            Ok(None) => Ok(Outcome::Done),
            Ok(Some(wait)) => Ok(Outcome::Deferred(wait)),
            // Token invalid, permission gone: stop the whole account, keep its events.
            Err(Failure::Account { reason }) => {
                // The token may be what Meta refused: the next use reads the secret again.
                self.tokens.evict(Some(account.id));
                self.store.pause_account(account.id, &reason).await?;
                Stats::add(&self.stats.accounts_paused);
                tracing::error!(%reason, alarm = "account_paused", "account paused");
                self.park(env, &account, &reason).await
            }
            Err(f) => Err(f),
        }
    }

    async fn park(
        &self,
        env: &Envelope,
        account: &Account,
        reason: &str,
    ) -> Result<Outcome, Failure> {
        self.store
            .park(account.id, env.event_id.as_str(), &env.encode(), reason)
            .await?;
        Stats::add(&self.stats.parked);
        tracing::info!(reason, "event parked until the account is active");
        Ok(Outcome::Parked)
    }

    async fn on_comment(
        &self,
        env: &Envelope,
        account: &Account,
        base: DecisionRecord<'_>,
        comment: &Comment,
    ) -> Result<Option<Duration>, Failure> {
        let target = Target::Comment(comment);
        let contact = (!comment.is_own(&account.ig_user_id)).then_some(comment.from.id.as_str());
        if let Some(igsid) = contact {
            let username = comment.from.username.as_deref();
            if self
                .store
                .touch_contact(account.id, igsid, username, None)
                .await?
            {
                let decision = Decision::Skip(SkipReason::OptedOut);
                return self
                    .decided(env, account, base, contact, decision, None, &target)
                    .await;
            }
        }
        let campaigns = self.accounts.campaigns(account.id).await?;
        let mut decision = campaigns.decide_comment(
            &env.event_id,
            &account.ig_user_id,
            comment,
            env.occurred_at_ms,
        );
        let mut why = None;
        if decision == Decision::NoMatch {
            (decision, why) = self
                .by_intent(env, account.tenant_id, &campaigns, comment)
                .await;
        }
        self.decided(env, account, base, contact, decision, why, &target)
            .await
    }

    /// When no keyword matched, asks the model about the intents of the campaigns that have
    /// some, highest priority first. With the model unavailable the decision stays keyword
    /// only, and the record says so.
    async fn by_intent(
        &self,
        env: &Envelope,
        tenant: Uuid,
        campaigns: &CampaignSet,
        comment: &Comment,
    ) -> (Decision, Option<String>) {
        let text = comment.text.as_deref().unwrap_or_default();
        let mut why = None;
        for campaign in campaigns.intent_candidates(comment, env.occurred_at_ms) {
            let c = self
                .classifier
                .classify(tenant, text, &campaign.intents)
                .await;
            match (c.intent, c.source) {
                (Some(intent), source) => {
                    let detail = format!("intent {intent:?} ({})", source.as_str());
                    return (
                        Decision::Matched(CampaignSet::plan_intent(
                            &env.event_id,
                            campaign,
                            intent,
                            comment,
                        )),
                        Some(detail),
                    );
                }
                (None, Source::Fallback { reason }) => {
                    // The tenant's breaker is shared by its campaigns: the next one would fall back
                    // the same way.
                    return (
                        Decision::NoMatch,
                        Some(format!(
                            "model not asked ({}); keyword rules only",
                            reason.as_str()
                        )),
                    );
                }
                (None, source) => why = Some(format!("no intent ({})", source.as_str())),
            }
        }
        (Decision::NoMatch, why)
    }

    async fn on_message(
        &self,
        env: &Envelope,
        account: &Account,
        base: DecisionRecord<'_>,
        message: &MessagingItem,
    ) -> Result<Option<Duration>, Failure> {
        let campaigns = self.accounts.campaigns(account.id).await?;
        let mut decision = campaigns.decide_message(
            &env.event_id,
            &account.ig_user_id,
            message,
            env.occurred_at_ms,
        );
        let sender = message
            .sender()
            .filter(|_| !matches!(decision, Decision::Skip(SkipReason::Own)));
        let Some(sender) = sender else {
            return self
                .decided(env, account, base, None, decision, None, &Target::Nobody)
                .await;
        };
        let consent = match decision {
            Decision::Consent(c) => Some(c.opted_out()),
            _ => None,
        };
        let opted_out = self
            .store
            .touch_contact(account.id, sender.as_str(), None, consent)
            .await?;
        if opted_out && consent.is_none() {
            decision = Decision::Skip(SkipReason::OptedOut);
        }
        // The 24-hour window runs from the person's latest message, whichever event told us.
        let last = self
            .limiter
            .note_user_message(&account.ig_user_id, &sender, env.occurred_at_ms)
            .await?;
        let target = Target::Sender {
            igsid: sender.clone(),
            last_message_ms: last,
        };
        self.decided(
            env,
            account,
            base,
            Some(sender.as_str()),
            decision,
            None,
            &target,
        )
        .await
    }

    /// Records the decision and carries out its plan.
    #[allow(clippy::too_many_arguments)]
    async fn decided(
        &self,
        env: &Envelope,
        account: &Account,
        base: DecisionRecord<'_>,
        contact: Option<&str>,
        decision: Decision,
        why: Option<String>,
        target: &Target<'_>,
    ) -> Result<Option<Duration>, Failure> {
        let record = DecisionRecord {
            contact,
            outcome: decision.outcome(),
            campaign_id: match &decision {
                Decision::Matched(plan) => Some(plan.campaign_id),
                _ => None,
            },
            detail: match &decision {
                Decision::Matched(plan) => Some(why.unwrap_or_else(|| plan.matched_by.describe())),
                _ => why,
            },
            ..base
        };
        self.store.record_decision(&record).await?;
        let Decision::Matched(plan) = decision else {
            tracing::info!(outcome = record.outcome, "no action");
            return Ok(None);
        };
        tracing::Span::current().record("campaign_id", tracing::field::display(plan.campaign_id));
        tracing::info!(campaign = %plan.campaign_slug, "campaign matched");
        self.act(env, account, &record, target, &plan).await
    }

    /// Sends the plan's actions, each at most once. A permanent failure of one action does
    /// not stop the others; a retryable or unresolved one retries the event later, where the
    /// actions already done are skipped. `Some(wait)`: deferred for a rate slot.
    async fn act(
        &self,
        env: &Envelope,
        account: &Account,
        record: &DecisionRecord<'_>,
        target: &Target<'_>,
        plan: &Plan,
    ) -> Result<Option<Duration>, Failure> {
        let token = self
            .tokens
            .get(account.id, &account.token_secret_ref)
            .await?;
        let mut unresolved = None;
        for action in &plan.actions {
            let claim = self
                .store
                .claim_action(record, action.kind, action.variant, self.action_lease())
                .await?;
            let attempt = match claim {
                ActionClaim::Done => continue,
                // Another worker may be sending it right now: resolving it here could send
                // it a second time. Come back once its lease has run out.
                ActionClaim::Busy { retry_in } => {
                    Stats::add(&self.stats.busy);
                    tracing::info!(
                        action = action.kind.as_str(),
                        retry_in_ms = retry_in.as_millis(),
                        "action in flight elsewhere; this copy comes back after its lease"
                    );
                    return Err(Failure::Retryable {
                        retry_after: Some(retry_in + Duration::from_secs(1)),
                        reason: format!("another worker is sending its {}", action.kind),
                    });
                }
                ActionClaim::Fresh => match self
                    .gate(env, account, record, target, plan, action)
                    .await?
                {
                    Gate::Go => {
                        if !self
                            .store
                            .start_sending(record, action.kind, self.action_lease())
                            .await?
                        {
                            Stats::add(&self.stats.busy);
                            return Err(Failure::retry(format!(
                                "another copy of this event took over its {}",
                                action.kind
                            )));
                        }
                        let started_ms = now_ms();
                        let attempt = Attempt::from_call(
                            self.send(account, &token, target, action).await,
                            None,
                        );
                        if matches!(attempt.failure, Some(Failure::Ambiguous { .. })) {
                            Stats::add(&self.stats.uncertain);
                            self.resolve(account, &token, target, action, Some(started_ms))
                                .await
                        } else {
                            attempt
                        }
                    }
                    Gate::Stop(attempt) => attempt,
                    Gate::Defer(wait) => {
                        let deferred = ActionRecord {
                            detail: Some(format!(
                                "deferred {} ms for the account's rate budget",
                                wait.as_millis()
                            )),
                            ..ActionRecord::new(ActionOutcome::Retry)
                        };
                        if !self
                            .store
                            .finish_action(record, action.kind, &deferred)
                            .await?
                        {
                            return Err(self.taken_over(action.kind));
                        }
                        tracing::info!(
                            action = action.kind.as_str(),
                            wait_ms = wait.as_millis(),
                            "deferred for the rate budget"
                        );
                        return Ok(Some(wait));
                    }
                },
                ActionClaim::Unresolved { attempted_at_ms } => {
                    Stats::add(&self.stats.uncertain);
                    self.resolve(account, &token, target, action, attempted_at_ms)
                        .await
                }
            };
            if !self
                .store
                .finish_action(record, action.kind, &attempt.record)
                .await?
            {
                return Err(self.taken_over(action.kind));
            }
            let outcome = attempt.record.outcome;
            tracing::info!(
                action = action.kind.as_str(),
                outcome = outcome.as_str(),
                graph_status = attempt.record.graph_status,
                "action done"
            );
            if outcome == ActionOutcome::Sent && attempt.record.response_id.is_some() {
                Stats::add(&self.stats.sent);
                let class = class_of(action.kind);
                self.limiter
                    .meter
                    .add(&account.ig_user_id, class, |c| c.sent += 1);
                let since_received = now_ms().saturating_sub(env.received_at_ms);
                self.latencies.record(
                    class,
                    Duration::from_millis(u64::try_from(since_received).unwrap_or(0)),
                );
            }
            match attempt.failure {
                None | Some(Failure::Permanent { .. }) => {}
                Some(Failure::Ambiguous { reason }) => unresolved = Some(reason),
                Some(f @ (Failure::Retryable { .. } | Failure::Account { .. })) => return Err(f),
            }
        }
        match unresolved {
            // Resolved on a later attempt (read back, or re-sent where Meta dedupes).
            Some(reason) => Err(Failure::retry(format!(
                "action outcome still unknown: {reason}"
            ))),
            None => Ok(None),
        }
    }

    /// This attempt lost the action's claim to another copy of the event (its lease ran
    /// out): that copy's outcome stands, and this one's is not written over it.
    fn taken_over(&self, kind: ActionKind) -> Failure {
        Stats::add(&self.stats.busy);
        tracing::warn!(
            action = kind.as_str(),
            "action taken over by another attempt; its outcome stands"
        );
        Failure::retry(format!("another copy of this event took over its {kind}"))
    }

    /// Until when (Unix ms) Meta accepts `kind`: 7 days after the comment for a private
    /// reply, 24 hours after the person's last message for a DM; public replies have no window.
    fn window_closes(
        &self,
        env: &Envelope,
        target: &Target<'_>,
        kind: ActionKind,
    ) -> Option<(i64, &'static str)> {
        match (kind, target) {
            // Meta takes a private reply to a Live comment only during the broadcast, which
            // igflow cannot see end: it assumes the configured span after the comment.
            (ActionKind::PrivateReply, _) if env.kind == EventKind::LiveComment => Some((
                window::closes_at(env.occurred_at_ms, self.live_reply_window),
                "the Live private reply window (the broadcast, IGFLOW_LIVE_REPLY_WINDOW_SECONDS after the comment)",
            )),
            (ActionKind::PrivateReply, _) => Some((
                window::closes_at(env.occurred_at_ms, window::PRIVATE_REPLY_WINDOW),
                "the private reply window (7 days after the comment)",
            )),
            (
                ActionKind::Dm,
                Target::Sender {
                    last_message_ms, ..
                },
            ) => Some((
                window::closes_at(*last_message_ms, window::MESSAGING_WINDOW),
                "the messaging window (24 hours after the person's last message)",
            )),
            _ => None,
        }
    }

    /// Meta's rules before a first attempt: the messaging window, the contact's cooldown,
    /// and the account's rate budgets (a short wait is taken here; a long one defers the
    /// event to the moment its booked slot comes).
    async fn gate(
        &self,
        env: &Envelope,
        account: &Account,
        record: &DecisionRecord<'_>,
        target: &Target<'_>,
        plan: &Plan,
        action: &PlannedAction,
    ) -> Result<Gate, Failure> {
        let class = class_of(action.kind);
        let window = self.window_closes(env, target, action.kind);
        let dropped = |reason: String| {
            Stats::add(&self.stats.window_drops);
            self.limiter
                .meter
                .add(&account.ig_user_id, class, |c| c.window_drops += 1);
            Gate::stop(ActionOutcome::Dropped, reason)
        };
        if let Some((closes, name)) = window
            && now_ms() >= closes
        {
            return Ok(dropped(format!("{name} has closed")));
        }
        if action.kind.is_dm()
            && let Some(contact) = record.contact
        {
            let campaign = plan.campaign_id.to_string();
            let free = self
                .limiter
                .hold_cooldown(&campaign, contact, &env.event_id, plan.cooldown)
                .await?
                && !self
                    .store
                    .dm_sent_within(plan.campaign_id, contact, plan.cooldown, record.event_id)
                    .await?;
            if !free {
                return Ok(Gate::stop(
                    ActionOutcome::Skipped,
                    "the contact got a DM from this campaign within its cooldown".into(),
                ));
            }
        }
        let budgets = self.budgets.for_account(&account.limits);
        let wait = self
            .limiter
            .reserve(
                &env.event_id,
                action.kind.as_str(),
                &account.ig_user_id,
                class,
                &budgets,
                window.map(|(closes, _)| closes),
            )
            .await?;
        // Also for a short wait: a slot a second away is too late for a window closing now.
        let send_at = now_ms().saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX));
        if let Some((closes, name)) = window
            && send_at >= closes
        {
            return Ok(dropped(format!(
                "the rate budget frees a slot only after {name} closes"
            )));
        }
        if wait > INLINE_WAIT {
            self.limiter
                .meter
                .add(&account.ig_user_id, class, |c| c.deferred += 1);
            return Ok(Gate::Defer(wait.saturating_sub(COME_BACK_EARLY)));
        }
        tokio::time::sleep(wait).await;
        if class != CallClass::PublicReply {
            self.limiter.smooth(&account.ig_user_id).await;
        }
        Ok(Gate::Go)
    }

    async fn send(
        &self,
        account: &Account,
        token: &SecretString,
        target: &Target<'_>,
        action: &PlannedAction,
    ) -> Result<Sent, CallError> {
        let text = &action.text;
        let message = DirectMessage {
            text,
            quick_replies: &action.quick_replies,
        };
        let result = match (action.kind, target) {
            (ActionKind::PrivateReply, Target::Comment(c)) => {
                self.graph
                    .private_reply(account, token, &c.id, &message)
                    .await
            }
            (ActionKind::PublicReply, Target::Comment(c)) => {
                self.graph.public_reply(account, token, &c.id, text).await
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
        if let Err(CallError {
            code,
            status,
            verdict:
                Verdict::Failed(Failure::Retryable {
                    retry_after: Some(wait),
                    ..
                }),
            ..
        }) = &result
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
        let usage = match &result {
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
        result
    }

    /// Settles an action whose earlier attempt (its call started at `attempted_at_ms`, where
    /// known) may or may not have reached Meta, without ever sending it twice.
    async fn resolve(
        &self,
        account: &Account,
        token: &SecretString,
        target: &Target<'_>,
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
                    .find_public_reply(account, token, &comment.id, &action.text)
                    .await
                {
                    Ok(None) => Attempt::from_call(
                        self.send(account, token, target, action).await,
                        Some("posted after an unknown outcome: not among the comment's replies"),
                    ),
                    found => Attempt::read_back(found),
                }
            }
            // Meta does not dedupe DMs: read the thread with the person instead.
            (ActionKind::Dm, Target::Sender { igsid, .. }) => Attempt::read_back(
                self.graph
                    .find_dm(account, token, igsid, &action.text, attempted_at_ms)
                    .await,
            ),
            // Plans are built for their trigger, so this cannot happen; never guess.
            _ => Attempt::given_up("outcome unknown and no read-back fits it; not re-sent"),
        }
    }
}
