//! What the account lifecycle jobs call, as Meta answers it: refreshing a long-lived token
//! (`GET /refresh_access_token`: at least 24 hours old and not expired, a new one for 60
//! days), reading and setting an account's webhook subscription (`/{id}/subscribed_apps`),
//! and reading an account's media and a media's comments, newest first, in pages with
//! Meta's cursors and `next` URLs, each comment's first replies expanded on asking
//! (`replies.limit(n){...}`), the rest at `/{comment-id}/replies`.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{GraphTestServer, Refusal, Shared, bearer};

/// Meta's long-lived tokens last 60 days from their issue or refresh.
const LONG_LIVED: Duration = Duration::from_secs(60 * 24 * 3600);
/// The app's access token (`{app-id}|{app-secret}`), the one `debug_token` answers.
pub const APP_TOKEN: &str = "1234567890|test-app-secret";
/// Meta refreshes only tokens at least this old.
const REFRESHABLE_AFTER: Duration = Duration::from_secs(24 * 3600);

#[derive(Default)]
pub(super) struct LifecycleState {
    /// Long-lived tokens with a known life: (issued, expires) in Unix milliseconds.
    lives: HashMap<String, (i64, i64)>,
    /// Tokens refreshed, in order (the old token of each refresh).
    refreshed: Vec<String>,
    /// Subscription writes accepted, by account.
    subscribes: HashMap<String, usize>,
    /// Subscription writes still to be refused.
    failing_subscribes: u32,
    /// Media by account, newest first: (id, published in Unix ms).
    media: HashMap<String, Vec<(String, i64)>>,
    /// Reads of an account's media answered (list pages and single media), by account.
    media_reads: HashMap<String, usize>,
    /// Media published but not in their account's list yet (Meta's list lags a new post).
    unlisted: std::collections::HashSet<String>,
    /// Comments by media, newest first.
    comments: HashMap<String, Vec<Value>>,
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route("/refresh_access_token", get(refresh))
        .route("/debug_token", get(debug_token))
        .route(
            "/{node}/subscribed_apps",
            get(subscribed_apps).post(subscribe),
        )
        .route("/{node}/media", get(media))
        .route("/{node}/comments", get(comments))
}

impl GraphTestServer {
    /// A long-lived token for `account`, issued `age` ago and expiring `expires_in` from now.
    pub fn issue_token(&self, token: &str, account: &str, age: Duration, expires_in: Duration) {
        let mut s = self.shared.lock();
        let now = now_ms();
        s.lifecycle
            .lives
            .insert(token.to_owned(), (now - ms(age), now + ms(expires_in)));
        s.token_owners.insert(token.to_owned(), account.to_owned());
    }

    /// The tokens refreshed so far (each refresh's old token).
    pub fn refreshed(&self) -> Vec<String> {
        self.shared.lock().lifecycle.refreshed.clone()
    }

    /// Meta forgets the account's subscription (a disabled app, a Meta-side reset).
    pub fn unsubscribe(&self, account: &str) {
        self.shared.lock().oauth.subscribed.remove(account);
    }

    /// Subscription writes accepted for the account.
    pub fn subscribes(&self, account: &str) -> usize {
        let s = self.shared.lock();
        s.lifecycle.subscribes.get(account).copied().unwrap_or(0)
    }

    /// Refuses the next `n` subscription writes with a permission error.
    pub fn fail_subscribes(&self, n: u32) {
        self.shared.lock().lifecycle.failing_subscribes = n;
    }

    /// Reads of the account's media answered so far: list pages and single media.
    pub fn media_reads(&self, account: &str) -> usize {
        let s = self.shared.lock();
        s.lifecycle.media_reads.get(account).copied().unwrap_or(0)
    }

    /// A media of the account, published now: its newest.
    pub fn add_media(&self, account: &str, media: &str) {
        self.add_media_published(account, media, Duration::ZERO);
    }

    /// A media of the account published now, that its media list does not show yet.
    pub fn add_media_unlisted(&self, account: &str, media: &str) {
        self.add_media(account, media);
        self.shared
            .lock()
            .lifecycle
            .unlisted
            .insert(media.to_owned());
    }

    /// A media of the account, published `ago`.
    pub fn add_media_published(&self, account: &str, media: &str, ago: Duration) {
        let mut s = self.shared.lock();
        let listed = s.lifecycle.media.entry(account.to_owned()).or_default();
        // Newest first; of media published in one millisecond, the one added last.
        let at = now_ms() - ms(ago);
        let place = listed.iter().position(|(_, t)| *t <= at);
        listed.insert(place.unwrap_or(listed.len()), (media.to_owned(), at));
    }

    /// A top-level comment on the media, written `ago`; comments must be added oldest first.
    pub fn add_comment(&self, media: &str, comment: &str, from: &str, text: &str, ago: Duration) {
        self.shared
            .lock()
            .lifecycle
            .comments
            .entry(media.to_owned())
            .or_default()
            .insert(0, written(comment, from, text, ago));
    }

    /// A person's reply under a comment, written `ago`; replies must be added oldest first.
    pub fn add_reply(&self, parent: &str, reply: &str, from: &str, text: &str, ago: Duration) {
        self.shared
            .lock()
            .replies
            .entry(parent.to_owned())
            .or_default()
            .push(written(reply, from, text, ago));
    }
}

impl LifecycleState {
    /// `GET /{media-id}?fields=timestamp`'s answer for a media of any account, if known.
    pub(super) fn media_node(&mut self, id: &str) -> Option<Value> {
        let (account, at) = self.media.iter().find_map(|(account, media)| {
            let (_, at) = media.iter().find(|(m, _)| m == id)?;
            Some((account.clone(), *at))
        })?;
        *self.media_reads.entry(account).or_default() += 1;
        let published = jiff::Timestamp::from_millisecond(at).unwrap_or_default();
        Some(json!({ "id": id, "timestamp": meta_time(published) }))
    }
}

/// Meta's time format: `2026-11-29T17:30:00+0000`.
pub(super) fn meta_time(at: jiff::Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%S%z").to_string()
}

/// A comment or reply as Meta lists it, written `ago`.
fn written(id: &str, from: &str, text: &str, ago: Duration) -> Value {
    let at = jiff::Timestamp::from_millisecond(now_ms() - ms(ago))
        .unwrap_or_else(|_| jiff::Timestamp::now());
    json!({
        "id": id,
        "text": text,
        "timestamp": meta_time(at),
        "from": { "id": from, "username": format!("user{from}") },
    })
}

#[derive(Deserialize)]
struct RefreshQuery {
    grant_type: String,
    access_token: String,
}

/// `GET /refresh_access_token?grant_type=ig_refresh_token&access_token=...`.
async fn refresh(
    State(shared): State<Shared>,
    Query(q): Query<RefreshQuery>,
) -> Result<Response, Refusal> {
    let mut s = shared.lock();
    if q.grant_type != "ig_refresh_token" {
        return Err(Refusal::new(
            100,
            None,
            "OAuthException",
            "(#100) Unsupported grant_type: ig_refresh_token is required",
        ));
    }
    let now = now_ms();
    let Some(&(issued, expires)) = s.lifecycle.lives.get(&q.access_token) else {
        return Err(Refusal::new(
            190,
            None,
            "OAuthException",
            "Invalid OAuth access token - Cannot parse access token",
        ));
    };
    if expires <= now {
        return Err(Refusal::new(
            190,
            Some(463),
            "OAuthException",
            "Error validating access token: Session has expired.",
        ));
    }
    // Meta documents the 24-hour rule but not its error; this is the shape of its other
    // parameter refusals.
    if now - issued < ms(REFRESHABLE_AFTER) {
        return Err(Refusal::new(
            100,
            None,
            "OAuthException",
            "(#100) The access token must be at least 24 hours old to be refreshed.",
        ));
    }
    let token = format!("IGAArefreshed{:016x}", fastrand::u64(..));
    s.lifecycle
        .lives
        .insert(token.clone(), (now, now + ms(LONG_LIVED)));
    s.lifecycle.refreshed.push(q.access_token.clone());
    if let Some(owner) = s.token_owners.get(&q.access_token).cloned() {
        s.token_owners.insert(token.clone(), owner);
    }
    if !s.valid_tokens.is_empty() {
        s.valid_tokens.insert(token.clone());
    }
    Ok(Json(json!({
        "access_token": token,
        "token_type": "bearer",
        "expires_in": LONG_LIVED.as_secs(),
    }))
    .into_response())
}

#[derive(Deserialize)]
struct DebugQuery {
    input_token: String,
}

/// `GET /debug_token?input_token=...`, asked with the app's token (`APP_TOKEN`; Meta answers
/// a user token only for the app's developers, which no test token is): the token's expiry
/// (Unix seconds), 0 for one whose life the test did not set (a Page token, which does not
/// expire).
async fn debug_token(
    State(shared): State<Shared>,
    Query(q): Query<DebugQuery>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    if bearer(&headers).as_deref() != Some(APP_TOKEN) {
        return Err(Refusal::new(
            100,
            None,
            "OAuthException",
            "(#100) You must provide an app access token, or a user access token that is an owner or developer of the app",
        ));
    }
    let s = shared.lock();
    let (issued, expires) = s
        .lifecycle
        .lives
        .get(&q.input_token)
        .map_or((0, 0), |(issued, expires)| (issued / 1000, expires / 1000));
    Ok(Json(json!({ "data": {
        "app_id": "1234567890",
        "type": "PAGE",
        "application": "igflow",
        "expires_at": expires,
        "issued_at": issued,
        "is_valid": true,
        "scopes": ["instagram_basic", "instagram_manage_comments", "instagram_manage_messages"],
        "user_id": s.token_owners.get(&q.input_token),
    } }))
    .into_response())
}

/// `GET /{ig-user-id}/subscribed_apps`: this app, with its fields, if it is subscribed.
async fn subscribed_apps(
    State(shared): State<Shared>,
    Path(node): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let s = admitted(&shared, &headers)?;
    let data: Vec<Value> = s
        .oauth
        .subscribed
        .get(&node)
        .map(|fields| json!({ "id": "1234567890", "name": "igflow", "subscribed_fields": fields }))
        .into_iter()
        .collect();
    Ok(Json(json!({ "data": data })).into_response())
}

#[derive(Deserialize)]
struct SubscribeQuery {
    subscribed_fields: String,
}

/// `POST /{ig-user-id}/subscribed_apps?subscribed_fields=...`: replaces the account's fields.
async fn subscribe(
    State(shared): State<Shared>,
    Path(node): Path<String>,
    headers: HeaderMap,
    Query(q): Query<SubscribeQuery>,
) -> Result<Response, Refusal> {
    let mut s = shared.lock();
    s.authorize(bearer(&headers).as_deref())?;
    if s.lifecycle.failing_subscribes > 0 {
        s.lifecycle.failing_subscribes -= 1;
        return Err(Refusal::new(
            200,
            None,
            "OAuthException",
            "(#200) Requires instagram_business_manage_messages permission to manage the object",
        ));
    }
    let fields = q.subscribed_fields.split(',').map(str::to_owned).collect();
    s.oauth.subscribed.insert(node.clone(), fields);
    *s.lifecycle.subscribes.entry(node).or_default() += 1;
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"success":true}"#,
    )
        .into_response())
}

#[derive(Deserialize)]
pub(super) struct EdgeQuery {
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    fields: Option<String>,
}

/// One page of `items` with Meta's `paging` (cursors, and `next` while more remain).
fn page(items: &[Value], q: &EdgeQuery, host: &str, path: &str) -> Value {
    let start = q
        .after
        .as_deref()
        .and_then(|c| c.strip_prefix("QVFI"))
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(0)
        .min(items.len());
    let end = (start + q.limit.unwrap_or(25).clamp(1, 100)).min(items.len());
    let mut paging =
        json!({ "cursors": { "before": format!("QVFI{start}"), "after": format!("QVFI{end}") } });
    if end < items.len() {
        let fields = q.fields.as_deref().unwrap_or("id");
        paging["next"] = json!(format!(
            "http://{host}{path}?fields={fields}&limit={}&after=QVFI{end}",
            end - start
        ));
    }
    json!({ "data": &items[start..end], "paging": paging })
}

/// The state, once the read passed Meta's token check and the read faults.
fn admitted<'a>(
    shared: &'a Shared,
    headers: &HeaderMap,
) -> Result<std::sync::MutexGuard<'a, super::ServerState>, Refusal> {
    let mut s = shared.lock();
    s.admit_read(bearer(headers).as_deref())?;
    Ok(s)
}

fn host(headers: &HeaderMap) -> &str {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
}

/// `GET /{ig-user-id}/media?fields=id[,timestamp]`: the account's media, newest first, with
/// the fields asked for.
async fn media(
    State(shared): State<Shared>,
    Path(node): Path<String>,
    Query(q): Query<EdgeQuery>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let mut s = admitted(&shared, &headers)?;
    *s.lifecycle.media_reads.entry(node.clone()).or_default() += 1;
    let items: Vec<Value> = s
        .lifecycle
        .media
        .get(&node)
        .into_iter()
        .flatten()
        .filter(|(id, _)| !s.lifecycle.unlisted.contains(id))
        .map(|(id, at)| {
            let published = jiff::Timestamp::from_millisecond(*at).unwrap_or_default();
            let mut item = json!({ "id": id });
            if q.fields.as_deref().is_some_and(|f| f.contains("timestamp")) {
                item["timestamp"] = json!(meta_time(published));
            }
            item
        })
        .collect();
    Ok(Json(page(&items, &q, host(&headers), &format!("/{node}/media"))).into_response())
}

/// `GET /{media-id}/comments?fields=id,text,timestamp,from[,replies.limit(n){...}]`:
/// top-level comments, newest first; asked for, each comment's first `n` replies (25 unless
/// said) with a `next` URL while more remain, and no `replies` key for a comment without any.
async fn comments(
    State(shared): State<Shared>,
    Path(node): Path<String>,
    Query(q): Query<EdgeQuery>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let s = admitted(&shared, &headers)?;
    let host = host(&headers);
    let mut listed = page(
        &s.lifecycle.comments.get(&node).cloned().unwrap_or_default(),
        &q,
        host,
        &format!("/{node}/comments"),
    );
    if let Some(limit) = q.fields.as_deref().and_then(replies_limit) {
        let first = EdgeQuery {
            limit: Some(limit),
            after: None,
            fields: Some("id,text,timestamp,from".to_owned()),
        };
        for comment in listed["data"].as_array_mut().into_iter().flatten() {
            let id = comment["id"].as_str().unwrap_or_default().to_owned();
            if let Some(replies) = s.replies.get(&id).filter(|r| !r.is_empty()) {
                comment["replies"] = page(replies, &first, host, &format!("/{id}/replies"));
            }
        }
    }
    Ok(Json(listed).into_response())
}

/// How many replies `fields` asks to expand per comment: `replies` alone is Meta's 25,
/// `replies.limit(n){...}` is `n`; `None` when it asks for none.
fn replies_limit(fields: &str) -> Option<usize> {
    let rest = &fields[fields.find("replies")? + "replies".len()..];
    Some(
        rest.strip_prefix(".limit(")
            .and_then(|r| r.split_once(')'))
            .and_then(|(n, _)| n.parse().ok())
            .unwrap_or(25),
    )
}

/// `GET /{comment-id}/replies`: the replies under the comment, oldest first, paged.
pub(super) async fn list_replies(
    State(shared): State<Shared>,
    Path(comment): Path<String>,
    Query(q): Query<EdgeQuery>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let s = admitted(&shared, &headers)?;
    let items = s.replies.get(&comment).cloned().unwrap_or_default();
    Ok(Json(page(
        &items,
        &q,
        host(&headers),
        &format!("/{comment}/replies"),
    ))
    .into_response())
}
