//! Reconciliation of comments Meta did not deliver: for each active comment campaign's media
//! (and the account's `IGFLOW_RECONCILE_RECENT_MEDIA` newest media when a campaign listens on
//! every post), the recent comments and their replies are read through the Graph API, and
//! each one igflow has never seen (and did not write itself) is enqueued as
//! the ordinary envelope the webhook would have made of it (the same splitter, so the same
//! event id: enqueueing one twice is absorbed by the dedupe). Only comments still inside the
//! 7-day private-reply window, and older than a grace time (their webhook may be on its way).
//! Reads are spaced to reconciliation's share of the account's calls and stop while Meta
//! reports the account's usage above `IGFLOW_RECONCILE_MAX_USAGE`, so live traffic goes first.

use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use igflow_core::failure::Failure;
use igflow_core::graph_error::Verdict;
use igflow_core::ids::IgUserId;
use igflow_core::splitter::SplitError;
use igflow_core::window::PRIVATE_REPLY_WINDOW;
use secrecy::SecretString;
use tracing::Instrument;

use crate::clients::graph::CallError;
use crate::clients::graph_lifecycle::{Listed, ListedComment};
use crate::clients::redis::RedisError;
use crate::clients::secrets::SecretsError;
use crate::clients::store::{Account, StoreError};
use crate::jobs::lease::{Job, Lease};
use crate::jobs::lifecycle::Lifecycle;

mod recover;
use recover::{Found, recover};

/// A scheduled run may take this long; the lease outlives it.
const HOLD: Duration = Duration::from_secs(15 * 60);
/// Pages of comments read per media and run (50 each).
const MAX_PAGES: usize = 40;
/// Further pages of one comment's replies read per run (50 each), after the first.
const MAX_REPLY_PAGES: usize = 10;
/// Media asked for per page when listing an account's newest.
const MEDIA_PER_PAGE: u32 = 50;

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

/// A read of one media's comments or one comment's replies: `None` when it failed for that
/// item alone (logged, left for the next run); a token or account failure ends the run, as
/// nothing else will read either.
fn for_this_item<T>(read: Result<T, CallError>, what: &str) -> Result<Option<T>, ReconcileError> {
    match read {
        Ok(page) => Ok(Some(page)),
        Err(e) if matches!(e.verdict, Verdict::Failed(Failure::Account { .. })) => {
            Err(ReconcileError::Graph(e))
        }
        Err(e) => {
            tracing::warn!(item = what, error = %e.reason(), "not read; left for the next run");
            Ok(None)
        }
    }
}

impl Run<'_> {
    async fn read_all(&mut self) -> Result<Yielded, ReconcileError> {
        let scope = self.ctx.store.campaign_media(self.account.id).await?;
        let mut media = scope.media;
        if scope.all_posts {
            match self.recent_media().await? {
                Ok(recent) => media.extend(recent),
                Err(reason) => return Ok(Err(reason)),
            }
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

    /// The account's newest media ids, as many as configured, page by page.
    async fn recent_media(&mut self) -> Result<Result<Vec<String>, String>, ReconcileError> {
        let want = self.ctx.config.reconcile.recent_media;
        let mut ids: Vec<String> = Vec::new();
        let mut next: Option<String> = None;
        while ids.len() < want as usize {
            if let Some(reason) = self.pacer.turn().await? {
                return Ok(Err(reason));
            }
            let left = want.saturating_sub(u32::try_from(ids.len()).unwrap_or(u32::MAX));
            let page = self
                .ctx
                .graph
                .media(
                    self.account,
                    &self.token,
                    left.min(MEDIA_PER_PAGE),
                    next.as_deref(),
                )
                .await
                .map_err(ReconcileError::Graph)?;
            ids.extend(page.items.into_iter().map(|m| m.id));
            match page.next {
                Some(url) => next = Some(url),
                None => break,
            }
        }
        ids.truncate(want as usize);
        Ok(Ok(ids))
    }

    /// One media's comments, newest first, page by page until the oldest wanted, with every
    /// reply to a comment read (replies come in their own order, and a reply can be new under
    /// an old comment).
    async fn read_media(&mut self, media_id: &str) -> Result<Yielded, ReconcileError> {
        let mut next: Option<String> = None;
        for _ in 0..MAX_PAGES {
            if let Some(reason) = self.pacer.turn().await? {
                return Ok(Err(reason));
            }
            let read = self
                .ctx
                .graph
                .comments(self.account, &self.token, media_id, next.as_deref())
                .await;
            // A media deleted since the campaign named it must not stop the others.
            let Some(page) = for_this_item(read, "comments of a media")? else {
                return Ok(Ok(()));
            };
            // Newest first: a comment older than the window's start ends this media.
            let reached_floor = page.items.iter().any(|c| {
                c.written_at_ms()
                    .is_some_and(|at| at < *self.written.start())
            });
            let mut found = Vec::new();
            let read = self.gather(page.items, &mut found).await;
            self.done.recovered +=
                recover(self.ctx, self.account, media_id, &found, self.now_ms).await?;
            if let Err(reason) = read? {
                return Ok(Err(reason));
            }
            match page.next {
                Some(url) if !reached_floor => next = Some(url),
                _ => break,
            }
        }
        Ok(Ok(()))
    }

    /// Keeps the page's comments and their replies that are to be recovered.
    async fn gather(
        &mut self,
        comments: Vec<ListedComment>,
        found: &mut Vec<Found>,
    ) -> Result<Yielded, ReconcileError> {
        for mut comment in comments {
            let mut replies = comment.take_replies();
            let id = comment.id.clone();
            self.keep(comment, None, found);
            for page in 0..=MAX_REPLY_PAGES {
                for reply in std::mem::take(&mut replies.items) {
                    self.keep(reply, Some(&id), found);
                }
                let Some(url) = replies.next.take().filter(|_| page < MAX_REPLY_PAGES) else {
                    break;
                };
                if let Some(reason) = self.pacer.turn().await? {
                    return Ok(Err(reason));
                }
                replies = self.more_replies(&url).await?;
            }
        }
        Ok(Ok(()))
    }

    /// The next page of a comment's replies; one that cannot be read is left for the next run.
    async fn more_replies(&self, url: &str) -> Result<Listed<ListedComment>, ReconcileError> {
        let read = self.ctx.graph.replies(&self.token, url).await;
        Ok(for_this_item(read, "replies of a comment")?.unwrap_or_default())
    }

    /// Counts the comment as read and keeps it if it was written in the run's span by
    /// someone other than the account (its own replies are never answered).
    fn keep(&mut self, comment: ListedComment, parent: Option<&str>, found: &mut Vec<Found>) {
        self.done.comments_read += 1;
        let own = comment
            .from
            .as_ref()
            .is_some_and(|f| f.id == self.account.ig_user_id.as_str());
        if let Some(at_ms) = comment
            .written_at_ms()
            .filter(|at| self.written.contains(at))
            && !own
        {
            found.push(Found {
                comment,
                at_ms,
                parent: parent.map(str::to_owned),
            });
        }
    }
}
