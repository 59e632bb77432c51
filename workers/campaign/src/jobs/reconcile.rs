//! Reconciliation of comments Meta did not deliver: for each active comment campaign's media
//! (and the account's recent media when a campaign listens on every post), the recent
//! comments are read through the Graph API, and each one igflow has never seen is enqueued as
//! the ordinary envelope the webhook would have made of it (the same splitter, so the same
//! event id: enqueueing one twice is absorbed by the dedupe). Only comments still inside the
//! 7-day private-reply window, and older than a grace time (their webhook may be on its way).
//! Reads are spaced to reconciliation's share of the account's calls and stop while Meta
//! reports the account's usage above `IGFLOW_RECONCILE_MAX_USAGE`, so live traffic goes first.

use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use igflow_core::envelope::Envelope;
use igflow_core::failure::Failure;
use igflow_core::graph_error::Verdict;
use igflow_core::ids::IgUserId;
use igflow_core::signature::VerifiedDelivery;
use igflow_core::splitter::{SplitError, split};
use igflow_core::window::PRIVATE_REPLY_WINDOW;
use secrecy::SecretString;
use serde_json::json;
use tracing::Instrument;

use crate::clients::graph::CallError;
use crate::clients::graph_lifecycle::ListedComment;
use crate::clients::redis::RedisError;
use crate::clients::secrets::SecretsError;
use crate::clients::store::{Account, StoreError};
use crate::jobs::lease::{Job, Lease};
use crate::jobs::lifecycle::Lifecycle;
use crate::stats::Stats;

/// A scheduled run may take this long; the lease outlives it.
const HOLD: Duration = Duration::from_secs(15 * 60);
/// Media read for an account with an "all posts" campaign: its most recent ones.
const RECENT_MEDIA: u32 = 25;
/// Pages of comments read per media and run (50 each).
const MAX_PAGES: usize = 40;

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("the account's token could not be read: {0}")]
    Token(#[source] SecretsError),
    #[error("Graph API read failed: {}; retried at the next run", .0.reason())]
    Graph(CallError),
    #[error("usage of the account could not be read; retried at the next run")]
    Usage(#[source] RedisError),
    #[error("a recovered comment could not be split: {0}; report it, the comment is skipped")]
    Split(#[from] SplitError),
    #[error("{failed} recovered comment(s) were not enqueued: {detail}; retried at the next run")]
    Queue { failed: usize, detail: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reconciled {
    pub media: usize,
    pub comments_read: usize,
    /// Comments igflow had never seen, enqueued.
    pub recovered: usize,
    /// Why the run stopped early, if it did (Meta's usage above reconciliation's share).
    pub yielded: Option<String>,
}

/// Reconciles every active account whose lease this worker takes.
pub async fn round(ctx: &Lifecycle) -> Result<(), StoreError> {
    let config = &ctx.config.reconcile;
    for ig_user_id in ctx.store.active_accounts().await? {
        let Ok(ig_user_id) = IgUserId::parse(ig_user_id) else {
            continue;
        };
        let Some(account) = ctx.store.account(&ig_user_id).await? else {
            continue;
        };
        let Some(lease) = Lease::take(&ctx.store, Job::Reconcile, account.id, HOLD).await? else {
            continue;
        };
        let lookback_ms = i64::try_from(config.lookback.as_millis()).unwrap_or(i64::MAX);
        let since_ms = igflow_core::runtime::now_ms().saturating_sub(lookback_ms);
        let span = tracing::info_span!("reconcile", account_id = %ig_user_id);
        match reconcile(ctx, &account, since_ms)
            .instrument(span.clone())
            .await
        {
            Ok(done) => span.in_scope(|| log(&done)),
            Err(e) => span.in_scope(|| tracing::warn!(error = %e, "reconciliation failed")),
        }
        lease.finish(&ctx.store, config.every).await?;
    }
    Ok(())
}

fn log(done: &Reconciled) {
    if done.recovered > 0 {
        tracing::warn!(
            recovered = done.recovered,
            comments_read = done.comments_read,
            "comments Meta did not deliver were recovered and enqueued"
        );
    } else {
        tracing::info!(
            comments_read = done.comments_read,
            media = done.media,
            yielded = done.yielded.as_deref(),
            "reconciled"
        );
    }
}

/// Spaces reconciliation's reads to its share and yields to live traffic.
struct Pacer<'a> {
    ctx: &'a Lifecycle,
    account: &'a IgUserId,
    spacing: Duration,
    last: Option<Instant>,
}

impl Pacer<'_> {
    /// Waits for the next read's turn; `Some(reason)` when the run should stop instead.
    async fn turn(&mut self) -> Result<Option<String>, ReconcileError> {
        if let Some(last) = self.last {
            tokio::time::sleep(self.spacing.saturating_sub(last.elapsed())).await;
        }
        self.last = Some(Instant::now());
        let usage = self
            .ctx
            .limiter
            .reported_usage(self.account)
            .await
            .map_err(ReconcileError::Usage)?;
        let max = self.ctx.config.reconcile.max_usage;
        Ok(usage.filter(|u| *u >= max).map(|u| {
            format!("Meta reports {u} percent usage, at or above reconciliation's share of {max}")
        }))
    }
}

/// Reads the account's recent comments written since `since_ms` (at most 7 days ago) and
/// enqueues those igflow has never seen.
pub async fn reconcile(
    ctx: &Lifecycle,
    account: &Account,
    since_ms: i64,
) -> Result<Reconciled, ReconcileError> {
    let config = &ctx.config.reconcile;
    let now_ms = igflow_core::runtime::now_ms();
    let window_ms = i64::try_from(PRIVATE_REPLY_WINDOW.as_millis()).unwrap_or(i64::MAX);
    let grace_ms = i64::try_from(config.grace.as_millis()).unwrap_or(i64::MAX);
    let token = ctx
        .tokens
        .get(account.id, &account.token_secret_ref)
        .await
        .map_err(ReconcileError::Token)?;
    let mut run = Run {
        ctx,
        account,
        token,
        pacer: Pacer {
            ctx,
            account: &account.ig_user_id,
            spacing: Duration::from_secs(3600) / config.reads_per_hour,
            last: None,
        },
        written: since_ms.max(now_ms - window_ms)..=now_ms - grace_ms,
        now_ms,
        done: Reconciled::default(),
    };
    if let Err(reason) = run.read_all().await? {
        run.done.yielded = Some(reason);
    }
    Ok(run.done)
}

/// One account's reconciliation under way.
struct Run<'a> {
    ctx: &'a Lifecycle,
    account: &'a Account,
    token: SecretString,
    pacer: Pacer<'a>,
    /// When the comments to recover were written, in ms: inside the private-reply window,
    /// since the run's start, and old enough that their webhook had its chance.
    written: RangeInclusive<i64>,
    now_ms: i64,
    done: Reconciled,
}

/// `Err(reason)`: the run stopped early, to leave the account's budget to live traffic.
type Yielded = Result<(), String>;

impl Run<'_> {
    async fn read_all(&mut self) -> Result<Yielded, ReconcileError> {
        let scope = self.ctx.store.campaign_media(self.account.id).await?;
        let mut media = scope.media;
        if scope.all_posts {
            if let Some(reason) = self.pacer.turn().await? {
                return Ok(Err(reason));
            }
            let recent = self
                .ctx
                .graph
                .recent_media(self.account, &self.token, RECENT_MEDIA)
                .await
                .map_err(ReconcileError::Graph)?;
            media.extend(recent.into_iter().map(|m| m.id));
            media.sort();
            media.dedup();
        }
        self.done.media = media.len();
        for media_id in &media {
            if let Err(reason) = self.read_media(media_id).await? {
                return Ok(Err(reason));
            }
        }
        Ok(Ok(()))
    }

    /// One media's comments, newest first, page by page until the oldest wanted.
    async fn read_media(&mut self, media_id: &str) -> Result<Yielded, ReconcileError> {
        let mut next: Option<String> = None;
        for _ in 0..MAX_PAGES {
            if let Some(reason) = self.pacer.turn().await? {
                return Ok(Err(reason));
            }
            let page = match self
                .ctx
                .graph
                .comments(self.account, &self.token, media_id, next.as_deref())
                .await
            {
                Ok(page) => page,
                // The token or the account: nothing else will read either.
                Err(e) if matches!(e.verdict, Verdict::Failed(Failure::Account { .. })) => {
                    return Err(ReconcileError::Graph(e));
                }
                // A media deleted since the campaign named it must not stop the others.
                Err(e) => {
                    tracing::warn!(media_id = %media_id, error = %e.reason(), "comments not read; media skipped this run");
                    return Ok(Ok(()));
                }
            };
            self.done.comments_read += page.comments.len();
            // Newest first: a comment older than the window's start ends this media.
            let reached_floor = page.comments.iter().any(|c| {
                c.written_at_ms()
                    .is_some_and(|at| at < *self.written.start())
            });
            let candidates: Vec<(ListedComment, i64)> = page
                .comments
                .into_iter()
                .filter_map(|c| c.written_at_ms().map(|at| (c, at)))
                .filter(|(_, at)| self.written.contains(at))
                .collect();
            self.done.recovered +=
                recover(self.ctx, self.account, media_id, &candidates, self.now_ms).await?;
            match page.next {
                Some(url) if !reached_floor => next = Some(url),
                _ => break,
            }
        }
        Ok(Ok(()))
    }
}

/// Enqueues the comments of `candidates` igflow has never seen; returns how many.
async fn recover(
    ctx: &Lifecycle,
    account: &Account,
    media: &str,
    candidates: &[(ListedComment, i64)],
    now_ms: i64,
) -> Result<usize, ReconcileError> {
    if candidates.is_empty() {
        return Ok(0);
    }
    let mut envelopes: Vec<Envelope> = Vec::new();
    for (comment, at_ms) in candidates {
        let body = delivery(&account.ig_user_id, comment, media, *at_ms);
        envelopes.extend(split(
            VerifiedDelivery::read_from_graph(body.as_bytes()),
            now_ms,
        )?);
    }
    let ids: Vec<String> = envelopes
        .iter()
        .map(|e| e.event_id.as_str().to_owned())
        .collect();
    let unseen = ctx
        .store
        .unseen_events(account.id, account.ig_user_id.as_str(), &ids)
        .await?;
    envelopes.retain(|e| unseen.iter().any(|u| u == e.event_id.as_str()));
    if envelopes.is_empty() {
        return Ok(0);
    }
    let report = ctx.queue.send(&envelopes).await;
    let failed = report.failed + report.oversized.len();
    if failed > 0 {
        return Err(ReconcileError::Queue {
            failed,
            detail: report
                .last_error
                .unwrap_or_else(|| "too large for SQS".to_owned()),
        });
    }
    for e in &envelopes {
        Stats::add(&ctx.stats.recovered_events);
        tracing::info!(event_id = %e.event_id.as_str(), "comment recovered");
    }
    Ok(envelopes.len())
}

/// The `comments` delivery Meta would have sent for the comment: the webhook's shape
/// (`id`, `from`, `text`, `media.id`), at the comment's time, so its private-reply window
/// is measured from when it was written.
fn delivery(account: &IgUserId, comment: &ListedComment, media: &str, at_ms: i64) -> String {
    let mut value = json!({ "id": comment.id, "media": { "id": media } });
    if let Some(text) = &comment.text {
        value["text"] = json!(text);
    }
    if let Some(from) = &comment.from {
        value["from"] = json!({ "id": from.id, "username": from.username });
    }
    json!({
        "object": "instagram",
        "entry": [{ "id": account, "time": at_ms / 1000, "changes": [{ "field": "comments", "value": value }] }],
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use igflow_core::envelope::EventKind;

    #[test]
    fn a_recovered_comment_gets_the_webhooks_event_id_and_its_own_time() {
        let comment = ListedComment {
            id: "17900000000000042".to_owned(),
            text: Some("price?".to_owned()),
            timestamp: "2026-11-29T10:00:00+0000".to_owned(),
            from: None,
        };
        let account = IgUserId::parse("17841400000000000").unwrap();
        let at = comment.written_at_ms().unwrap();
        let body = delivery(&account, &comment, "18000000000000001", at);
        let envs = split(VerifiedDelivery::read_from_graph(body.as_bytes()), 5).unwrap();
        assert_eq!(envs.len(), 1);
        assert_eq!(envs[0].event_id.as_str(), "comment:17900000000000042");
        assert_eq!(envs[0].kind, EventKind::Comment);
        assert_eq!(envs[0].occurred_at_ms, at);
        assert_eq!(envs[0].account_id, account);
    }
}
