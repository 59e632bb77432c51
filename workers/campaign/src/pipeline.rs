//! The stages one event goes through: claim, load, filter, decide, act, record.

use std::sync::Arc;
use std::time::Duration;

use igflow_core::campaign::{AccountStatus, ActionKind};
use igflow_core::envelope::Envelope;
use igflow_core::event::{Comment, Item};
use igflow_core::failure::Failure;
use igflow_core::graph_error::Verdict;
use igflow_core::plan::{CampaignSet, Decision, Plan, SkipReason};
use tracing::Instrument;

use crate::dedupe::{Claim, Dedupe};
use crate::graph::GraphClient;
use crate::secrets::Tokens;
use crate::stats::Stats;
use crate::store::{Account, ActionClaim, ActionRecord, DecisionRecord, Store};

/// How an event ended when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    Done,
    Duplicate,
}

pub struct Pipeline {
    pub store: Store,
    pub dedupe: Dedupe,
    pub tokens: Arc<Tokens>,
    pub graph: GraphClient,
    pub stats: Arc<Stats>,
    /// How long a claim holds: the message's visibility timeout.
    pub lease: Duration,
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
            let token = match self.dedupe.claim(&env.event_id, self.lease).await? {
                Claim::Acquired(token) => token,
                Claim::Done => {
                    Stats::add(&self.stats.duplicates);
                    tracing::info!("duplicate event dropped");
                    return Ok(Handled::Duplicate);
                }
                // Another worker holds this event through its own copy of the message, which
                // it deletes only once the event is done and otherwise retries or hands back
                // to the queue. This copy adds nothing: dropping it loses nothing, while
                // retrying it would only burn receive counts towards the DLQ.
                Claim::Busy => {
                    Stats::add(&self.stats.duplicates);
                    tracing::info!("event in progress elsewhere; this copy dropped");
                    return Ok(Handled::Duplicate);
                }
            };
            let result = self.process(env).await;
            match &result {
                // Recorded for good: repeats of this event are dropped from now on.
                Ok(()) | Err(Failure::Permanent { .. } | Failure::Ambiguous { .. }) => {
                    self.dedupe.complete(&env.event_id).await?;
                }
                Err(Failure::Retryable { .. } | Failure::Account { .. }) => {
                    if let Err(e) = self.dedupe.release(&env.event_id, &token).await {
                        // The lease runs out on its own; the retry just waits for it.
                        tracing::warn!(error = %e, "claim not released");
                    }
                }
            }
            result.map(|()| Handled::Done)
        }
        .instrument(span)
        .await
    }

    fn decision<'a>(&self, env: &'a Envelope, account: Option<&Account>) -> DecisionRecord<'a> {
        DecisionRecord {
            tenant_id: account.map(|a| a.tenant_id),
            ig_user_id: env.account_id.as_str(),
            event_id: env.event_id.as_str(),
            event_kind: env.kind.as_str(),
            campaign_id: None,
            contact: None,
            outcome: "",
            detail: None,
        }
    }

    async fn process(&self, env: &Envelope) -> Result<(), Failure> {
        let Some(account) = self.store.account(&env.account_id).await? else {
            tracing::warn!("event for an account igflow does not manage");
            let record = DecisionRecord {
                outcome: "unknown_account",
                ..self.decision(env, None)
            };
            return Ok(self.store.record_decision(&record).await?);
        };
        if account.status != AccountStatus::Active {
            return Err(Failure::Account {
                reason: format!("account is {}", account.status),
            });
        }
        let base = self.decision(env, Some(&account));
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
        match item {
            Item::Comment(comment) => self.on_comment(env, &account, base, &comment).await,
            Item::Messaging(m) => {
                let reason = if m.is_own(&account.ig_user_id) {
                    SkipReason::Own
                } else {
                    SkipReason::KindNotHandled
                };
                Ok(self
                    .store
                    .record_decision(&DecisionRecord {
                        outcome: reason.as_str(),
                        ..base
                    })
                    .await?)
            }
            Item::Unhandled => {
                let outcome = SkipReason::KindNotHandled.as_str();
                Ok(self
                    .store
                    .record_decision(&DecisionRecord { outcome, ..base })
                    .await?)
            }
        }
    }

    async fn on_comment(
        &self,
        env: &Envelope,
        account: &Account,
        base: DecisionRecord<'_>,
        comment: &Comment,
    ) -> Result<(), Failure> {
        let campaigns = CampaignSet::new(self.store.active_campaigns(account.id).await?);
        let decision = campaigns.decide_comment(&env.event_id, &account.ig_user_id, comment);
        let own = matches!(decision, Decision::Skip(SkipReason::Own));
        let record = DecisionRecord {
            contact: (!own).then_some(comment.from.id.as_str()),
            outcome: decision.outcome(),
            campaign_id: match &decision {
                Decision::Matched(plan) => Some(plan.campaign_id),
                _ => None,
            },
            detail: match &decision {
                Decision::Matched(plan) => Some(format!(
                    "rule {} matched keyword {:?}",
                    plan.rule, plan.keyword
                )),
                _ => None,
            },
            ..base
        };
        if !own {
            self.store
                .touch_contact(
                    account.id,
                    comment.from.id.as_str(),
                    comment.from.username.as_deref(),
                )
                .await?;
        }
        self.store.record_decision(&record).await?;
        let Decision::Matched(plan) = decision else {
            tracing::info!(outcome = record.outcome, "no action");
            return Ok(());
        };
        tracing::Span::current().record("campaign_id", tracing::field::display(plan.campaign_id));
        tracing::info!(campaign = %plan.campaign_slug, "campaign matched");
        self.act(account, &record, comment, &plan).await
    }

    /// Sends the plan's actions, each at most once. Permanent and ambiguous failures of one
    /// action do not stop the others; a retryable one stops here and retries the event.
    async fn act(
        &self,
        account: &Account,
        record: &DecisionRecord<'_>,
        comment: &Comment,
        plan: &Plan,
    ) -> Result<(), Failure> {
        let token = self.tokens.get(&account.token_secret_ref).await?;
        for action in &plan.actions {
            match self.store.claim_action(record, action.kind).await? {
                ActionClaim::Proceed => {}
                ActionClaim::Uncertain => {
                    Stats::add(&self.stats.uncertain);
                    tracing::warn!(
                        action = action.kind.as_str(),
                        "earlier attempt has no result; not re-sent"
                    );
                    continue;
                }
                ActionClaim::AlreadySent | ActionClaim::Settled => continue,
            }
            let result = match action.kind {
                ActionKind::PrivateReply => {
                    self.graph
                        .private_reply(account, &token, &comment.id, &action.text)
                        .await
                }
                ActionKind::PublicReply => {
                    self.graph
                        .public_reply(account, &token, &comment.id, &action.text)
                        .await
                }
            };
            let (outcome, failure) = match &result {
                Ok(_) => ("sent", None),
                Err(e) => match &e.verdict {
                    Verdict::AlreadyDone => ("already_done", None),
                    Verdict::Failed(f @ Failure::Permanent { .. }) => ("failed", Some(f)),
                    Verdict::Failed(f @ Failure::Ambiguous { .. }) => ("uncertain", Some(f)),
                    Verdict::Failed(f @ (Failure::Retryable { .. } | Failure::Account { .. })) => {
                        ("retry", Some(f))
                    }
                },
            };
            let entry = match &result {
                Ok(sent) => ActionRecord {
                    outcome,
                    graph_status: Some(sent.status),
                    response_id: sent.id.clone(),
                    latency: Some(sent.latency),
                    ..ActionRecord::default()
                },
                Err(e) => ActionRecord {
                    outcome,
                    detail: failure.map(ToString::to_string),
                    graph_status: e.status,
                    graph_code: e.code,
                    graph_subcode: e.subcode,
                    latency: Some(e.latency),
                    ..ActionRecord::default()
                },
            };
            self.store
                .finish_action(record.event_id, action.kind, &entry)
                .await?;
            tracing::info!(
                action = action.kind.as_str(),
                outcome,
                graph_status = entry.graph_status,
                "action done"
            );
            match failure {
                None if result.is_ok() => Stats::add(&self.stats.sent),
                Some(Failure::Ambiguous { .. }) => Stats::add(&self.stats.uncertain),
                None | Some(Failure::Permanent { .. }) => {}
                Some(f @ Failure::Account { reason }) => {
                    self.store.pause_account(account.id, reason).await?;
                    tracing::error!(reason, "account paused");
                    return Err(f.clone());
                }
                Some(f @ Failure::Retryable { .. }) => return Err(f.clone()),
            }
        }
        Ok(())
    }
}
