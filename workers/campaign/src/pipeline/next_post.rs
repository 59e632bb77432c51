//! Stage 5a, next post (from `plan`): "the next post I publish". Meta sends no webhook when
//! the account publishes, so a campaign waiting for its next post learns of it from a
//! comment: a comment on a post not placed yet reads when that post was published; one
//! published since the earliest arming reads the account's media list (newest first, back to
//! that arming) and binds each waiting campaign to the earliest post published at or after it
//! was armed. Posts older than every waiting campaign are remembered, so comments on them
//! cost no further reads. Touches the Graph API (the post, the media list) and Postgres (the
//! binding, which notifies every worker's cache).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use igflow_core::failure::Failure;
use igflow_core::ids::MediaId;
use igflow_core::plan::CampaignSet;
use secrecy::SecretString;
use uuid::Uuid;

use crate::pipeline::{Context, Pipeline};

/// Media read per page, and the pages read: more posts than this since a campaign was armed
/// and it binds to the oldest of them that was read.
const MEDIA_PER_PAGE: u32 = 25;
const MAX_PAGES: usize = 4;
/// Old posts remembered per process before the memory starts over.
const MAX_OLD_POSTS: usize = 100_000;

/// Posts known to be older than the next post every waiting campaign is after: a post
/// published before one arming is published before any later arming too.
#[derive(Default)]
pub struct OldPosts(Mutex<HashSet<(Uuid, MediaId)>>);

impl OldPosts {
    fn contains(&self, account: Uuid, media: &MediaId) -> bool {
        self.lock().contains(&(account, media.clone()))
    }

    fn insert(&self, account: Uuid, media: &MediaId) {
        let mut old = self.lock();
        if old.len() >= MAX_OLD_POSTS {
            old.clear();
        }
        old.insert((account, media.clone()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<(Uuid, MediaId)>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Pipeline {
    /// The account's campaigns for a comment on `media`: as loaded, or reloaded after this
    /// comment's post let waiting campaigns find their next post.
    pub(super) async fn with_next_post(
        &self,
        cx: &Context<'_>,
        media: &MediaId,
        campaigns: Arc<CampaignSet>,
    ) -> Result<Arc<CampaignSet>, Failure> {
        // Meta's times are whole seconds: a post of the arming's own second counts as after it.
        let waiting: Vec<(Uuid, i64)> = campaigns
            .waiting_for_next_post()
            .into_iter()
            .map(|(campaign, after)| (campaign, after - after.rem_euclid(1000)))
            .collect();
        let Some(earliest) = waiting.iter().map(|(_, after)| *after).min() else {
            return Ok(campaigns);
        };
        let account = cx.account.id;
        if self.old_posts.contains(account, media) {
            return Ok(campaigns);
        }
        let token = self
            .tokens
            .get(account, &cx.account.token_secret_ref)
            .await?;
        let Some(published) = self
            .graph
            .media_node(&cx.account, &token, media.as_str())
            .await
            .map_err(|e| e.read_failure("the post's read"))?
            .published_at_ms()
        else {
            return Ok(campaigns);
        };
        if published < earliest {
            self.old_posts.insert(account, media);
            return Ok(campaigns);
        }
        // The earliest post since arming may be another; a post just published may not be in
        // Meta's list yet, so this one is a candidate whatever the list says.
        let mut posts = self.posts_since(cx, &token, earliest).await?;
        if !posts.iter().any(|(id, _)| id == media) {
            posts.push((media.clone(), published));
            posts.sort_by_key(|(_, at)| *at);
        }
        let (found, still_waiting) = self.bind(waiting, &posts).await?;
        if still_waiting.is_some_and(|after| published < after) {
            self.old_posts.insert(account, media);
        }
        if !found {
            return Ok(campaigns);
        }
        // The binding's change notification reaches every worker; this one reloads now.
        self.accounts.forget(Some(account));
        Ok(self.accounts.campaigns(account).await?)
    }

    /// Binds each waiting campaign to the earliest of `posts` (oldest first) published at or
    /// after it was armed: whether any found one, and the earliest arming of those still
    /// waiting.
    async fn bind(
        &self,
        waiting: Vec<(Uuid, i64)>,
        posts: &[(MediaId, i64)],
    ) -> Result<(bool, Option<i64>), Failure> {
        let mut still_waiting: Option<i64> = None;
        let mut found = false;
        for (campaign, after) in waiting {
            let Some((post, _)) = posts.iter().find(|(_, at)| *at >= after) else {
                still_waiting = Some(still_waiting.map_or(after, |s| s.min(after)));
                continue;
            };
            found = true;
            if self.store.bind_next_post(campaign, post).await? {
                tracing::info!(%campaign, %post, "campaign bound to the next post published");
            }
        }
        Ok((found, still_waiting))
    }

    /// The account's posts published at or after `since_ms`, oldest first.
    async fn posts_since(
        &self,
        cx: &Context<'_>,
        token: &SecretString,
        since_ms: i64,
    ) -> Result<Vec<(MediaId, i64)>, Failure> {
        let mut posts = Vec::new();
        let mut next = None;
        for _ in 0..MAX_PAGES {
            let page = self
                .graph
                .media(&cx.account, token, MEDIA_PER_PAGE, next.as_deref())
                .await
                .map_err(|e| e.read_failure("the account's media list"))?;
            let mut reached_older = false;
            for item in page.items {
                let (Some(at), Ok(id)) = (item.published_at_ms(), MediaId::parse(item.id)) else {
                    continue;
                };
                if at < since_ms {
                    reached_older = true;
                } else {
                    posts.push((id, at));
                }
            }
            next = page.next;
            if reached_older || next.is_none() {
                break;
            }
        }
        posts.sort_by_key(|(_, at)| *at);
        Ok(posts)
    }
}
