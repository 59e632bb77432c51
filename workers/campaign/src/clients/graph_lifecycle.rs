//! The Graph API calls of the account lifecycle jobs: refreshing a long-lived token, reading
//! and renewing the app's webhook subscription, and reading recent media and comments for
//! reconciliation. All but the subscription are reads: an error answer writes nothing.

use std::time::Duration;

use igflow_core::subscription;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use crate::clients::graph::{CallError, GraphClient, Paging};
use crate::clients::store::Account;

/// `GET /refresh_access_token`: a new long-lived token and its lifetime.
#[derive(Deserialize)]
struct Refreshed {
    access_token: String,
    expires_in: u64,
}

/// `GET /debug_token`: what Meta knows of a token.
#[derive(Deserialize)]
struct Debugged {
    data: TokenInfo,
}

#[derive(Deserialize)]
struct TokenInfo {
    /// Unix seconds; 0 for a token that does not expire (a Page token).
    #[serde(default)]
    expires_at: i64,
}

/// A refreshed token.
pub struct NewToken {
    pub token: SecretString,
    pub lifetime: Duration,
}

/// `GET /{ig-user-id or page-id}/subscribed_apps`: the apps subscribed, with their fields.
#[derive(Deserialize)]
struct SubscribedApps {
    #[serde(default)]
    data: Vec<SubscribedApp>,
}

#[derive(Deserialize)]
struct SubscribedApp {
    #[serde(default)]
    subscribed_fields: Vec<String>,
}

/// One page of an edge (`/media`, `/comments`, `/replies`), as Meta answers it.
#[derive(Debug, Deserialize)]
struct Page<T> {
    #[serde(default = "Vec::new")]
    data: Vec<T>,
    #[serde(default)]
    paging: Option<Paging>,
}

impl<T> From<Page<T>> for Listed<T> {
    fn from(page: Page<T>) -> Self {
        Self {
            items: page.data,
            next: page.paging.and_then(|p| p.next),
        }
    }
}

/// A page of an edge and the URL of the next one (Meta's cursor URL), if there is one.
#[derive(Debug, Clone)]
pub struct Listed<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

impl<T> Default for Listed<T> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            next: None,
        }
    }
}

/// A media of the account (`GET /{ig-user-id}/media?fields=id,timestamp`).
#[derive(Debug, Deserialize)]
pub struct Media {
    pub id: String,
    /// When it was published: `2026-11-29T17:30:00+0000`.
    #[serde(default)]
    pub timestamp: Option<String>,
}

/// Meta's time format, in Unix milliseconds, if it parses.
fn meta_time_ms(time: &str) -> Option<i64> {
    jiff::Timestamp::strptime("%Y-%m-%dT%H:%M:%S%z", time)
        .ok()
        .map(jiff::Timestamp::as_millisecond)
}

impl Media {
    /// When it was published, in Unix milliseconds, if Meta's time parses.
    pub fn published_at_ms(&self) -> Option<i64> {
        self.timestamp.as_deref().and_then(meta_time_ms)
    }
}

/// A comment as `GET /{media-id}/comments` gives it (with its first replies expanded), or a
/// reply as `GET /{comment-id}/replies` does.
#[derive(Debug, Deserialize)]
pub struct ListedComment {
    pub id: String,
    #[serde(default)]
    pub text: Option<String>,
    /// `2026-11-29T17:30:00+0000`.
    pub timestamp: String,
    #[serde(default)]
    pub from: Option<CommentAuthor>,
    /// The first page of a top-level comment's replies (absent when it has none).
    #[serde(default)]
    replies: Option<Page<ListedComment>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CommentAuthor {
    pub id: String,
    #[serde(default)]
    pub username: Option<String>,
}

impl ListedComment {
    /// When it was written, in Unix milliseconds, if Meta's time parses.
    pub fn written_at_ms(&self) -> Option<i64> {
        meta_time_ms(&self.timestamp)
    }

    /// Takes the first page of the comment's replies out of it.
    pub fn take_replies(&mut self) -> Listed<ListedComment> {
        self.replies.take().map(Listed::from).unwrap_or_default()
    }
}

/// Comments and replies asked for per page (Meta's maximum for the edges is 50).
const COMMENTS_PER_PAGE: u32 = 50;
/// What a comment or a reply is read with.
const COMMENT_FIELDS: &str = "id,text,timestamp,from";

impl GraphClient {
    /// Refreshes an Instagram Login long-lived token: Meta takes one at least 24 hours old
    /// and not expired, and answers a new one valid for 60 days.
    #[tracing::instrument(name = "graph.refresh_token", level = "debug", skip_all)]
    pub async fn refresh_token(&self, token: &SecretString) -> Result<NewToken, CallError> {
        let url = format!(
            "{}/refresh_access_token",
            self.base(igflow_core::campaign::LoginFlavor::Instagram)
        );
        let request = self.http.get(url).query(&[
            ("grant_type", "ig_refresh_token"),
            ("access_token", token.expose_secret()),
        ]);
        let refreshed: Refreshed = self.read_request(request).await?;
        Ok(NewToken {
            token: SecretString::from(refreshed.access_token),
            lifetime: Duration::from_secs(refreshed.expires_in),
        })
    }

    /// When a Facebook Login token expires (Unix milliseconds), `None` if never, from
    /// `GET /debug_token`, asked with the app's token; without one the token asks about
    /// itself, which Meta answers only for the app's developers' tokens.
    #[tracing::instrument(name = "graph.token_expiry", level = "debug", skip_all)]
    pub async fn token_expiry(
        &self,
        token: &SecretString,
        app_token: Option<&SecretString>,
    ) -> Result<Option<i64>, CallError> {
        let url = format!(
            "{}/debug_token",
            self.base(igflow_core::campaign::LoginFlavor::Facebook)
        );
        let request = self
            .http
            .get(url)
            .query(&[("input_token", token.expose_secret())])
            .bearer_auth(app_token.unwrap_or(token).expose_secret());
        let debugged: Debugged = self.read_request(request).await?;
        Ok((debugged.data.expires_at > 0).then(|| debugged.data.expires_at.saturating_mul(1000)))
    }

    /// The webhook fields the account has subscribed igflow's app to.
    #[tracing::instrument(name = "graph.subscribed_fields", level = "debug", skip_all, fields(account = %account.ig_user_id))]
    pub async fn subscribed_fields(
        &self,
        account: &Account,
        token: &SecretString,
    ) -> Result<Vec<String>, CallError> {
        let url = format!(
            "{}/{}/subscribed_apps",
            self.base(account.login),
            Self::sender(account)
        );
        let apps: SubscribedApps = self.read(&url, token).await?;
        Ok(apps
            .data
            .into_iter()
            .flat_map(|a| a.subscribed_fields)
            .collect())
    }

    /// Subscribes the app to every field igflow acts on (Meta replaces the set).
    #[tracing::instrument(name = "graph.subscribe", level = "debug", skip_all, fields(account = %account.ig_user_id))]
    pub async fn subscribe(
        &self,
        account: &Account,
        token: &SecretString,
    ) -> Result<(), CallError> {
        let mut url = reqwest::Url::parse(&format!(
            "{}/{}/subscribed_apps",
            self.base(account.login),
            Self::sender(account)
        ))
        .map_err(|e| CallError::not_sent(format!("subscription URL: {e}")))?;
        url.query_pairs_mut()
            .append_pair("subscribed_fields", &subscription::parameter());
        self.post(url.as_str(), token, &json!({})).await.map(drop)
    }

    /// A page of the account's media, newest first: the first page (of at most `limit`) for
    /// `None`, else the page at `next`.
    #[tracing::instrument(name = "graph.media", level = "debug", skip_all, fields(account = %account.ig_user_id))]
    pub async fn media(
        &self,
        account: &Account,
        token: &SecretString,
        limit: u32,
        next: Option<&str>,
    ) -> Result<Listed<Media>, CallError> {
        let url = next.map_or_else(
            || {
                format!(
                    "{}/{}/media?fields=id,timestamp&limit={limit}",
                    self.base(account.login),
                    account.ig_user_id
                )
            },
            str::to_owned,
        );
        self.listed(&url, token).await
    }

    /// One media of the account, with when it was published (`GET /{media-id}`).
    #[tracing::instrument(name = "graph.media_node", level = "debug", skip_all, fields(media = %media))]
    pub async fn media_node(
        &self,
        account: &Account,
        token: &SecretString,
        media: &str,
    ) -> Result<Media, CallError> {
        let url = format!("{}/{media}?fields=id,timestamp", self.base(account.login));
        self.read(&url, token).await
    }

    /// A page of the media's top-level comments, newest first, each with its first page of
    /// replies: the first page for `None`, else the page at `next`.
    #[tracing::instrument(name = "graph.comments", level = "debug", skip_all, fields(account = %account.ig_user_id, media = %media))]
    pub async fn comments(
        &self,
        account: &Account,
        token: &SecretString,
        media: &str,
        next: Option<&str>,
    ) -> Result<Listed<ListedComment>, CallError> {
        let url = next.map_or_else(
            || {
                format!(
                    "{}/{media}/comments?fields={COMMENT_FIELDS},replies.limit({COMMENTS_PER_PAGE}){{{COMMENT_FIELDS}}}&limit={COMMENTS_PER_PAGE}",
                    self.base(account.login)
                )
            },
            str::to_owned,
        );
        self.listed(&url, token).await
    }

    /// The page of a comment's replies at `next` (the cursor URL of an earlier page).
    #[tracing::instrument(name = "graph.replies", level = "debug", skip_all)]
    pub async fn replies(
        &self,
        token: &SecretString,
        next: &str,
    ) -> Result<Listed<ListedComment>, CallError> {
        self.listed(next, token).await
    }

    async fn listed<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        token: &SecretString,
    ) -> Result<Listed<T>, CallError> {
        let page: Page<T> = self.read(url, token).await?;
        Ok(page.into())
    }
}
