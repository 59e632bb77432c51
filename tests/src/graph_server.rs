//! A local stand-in for Meta's Graph API: the two endpoints igflow writes to, the read-back of
//! public replies, Meta's response and error shapes, the rules Meta enforces (valid token,
//! 1,000-byte texts, one private reply per comment), injectable faults (server errors,
//! throttling, answers slower than the client waits), and a log of every write for the tests
//! to inspect; and Business Login for Instagram's OAuth endpoints (`graph_oauth.rs`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use crate::locked::Locked;
use axum::extract::Query;

#[path = "graph_lifecycle.rs"]
mod lifecycle;
pub use lifecycle::APP_TOKEN;
#[path = "graph_oauth.rs"]
mod oauth;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

/// What a recorded call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallKind {
    /// `POST /{ig-user-id or page-id}/messages` with `recipient.comment_id`.
    PrivateReply { sender: String, comment_id: String },
    /// `POST /{ig-user-id or page-id}/messages` with `recipient.id`.
    Message { sender: String, recipient: String },
    /// `POST /{comment-id}/replies`.
    PublicReply { comment_id: String },
}

impl CallKind {
    /// The node the call is made on: the sender, or the comment replied to.
    fn node(&self) -> &str {
        match self {
            Self::PrivateReply { sender, .. } | Self::Message { sender, .. } => sender,
            Self::PublicReply { comment_id } => comment_id,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Call {
    pub kind: CallKind,
    pub text: String,
    /// The quick-reply titles sent with a message.
    pub quick_replies: Vec<String>,
    /// The button template's buttons, as sent (`type`, `title`, `payload` or `url`).
    pub buttons: Vec<Value>,
    pub token: Option<String>,
    /// The HTTP status the server answered.
    pub status: u16,
    /// When the server received it.
    pub at: Instant,
    /// Meta's error code when it refused the call.
    pub code: Option<i64>,
}

/// Meta's rate limits, as the test configures them (small, so tests run in seconds).
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// The Send API's limit per sending account: `calls` per `per`. Meta does not count to
    /// the millisecond: `tolerance` extra calls pass before it throttles.
    pub send_api: Option<(u32, Duration, u32)>,
    /// Business use case usage per account: `calls` per `per` is 100 percent; every answer
    /// reports the percentage in `X-Business-Use-Case-Usage`, and at 100 Meta throttles.
    pub usage: Option<(u32, Duration)>,
    /// Reports at least this usage, as when the account's other apps use most of the budget.
    pub usage_floor: u8,
}

/// Calls in the last `per`, per account.
#[derive(Default)]
struct Windows(HashMap<String, VecDeque<Instant>>);

impl Windows {
    fn count(&mut self, key: &str, per: Duration, now: Instant) -> u32 {
        let calls = self.0.entry(key.to_owned()).or_default();
        while calls.front().is_some_and(|t| now.duration_since(*t) >= per) {
            calls.pop_front();
        }
        u32::try_from(calls.len()).unwrap_or(u32::MAX)
    }

    fn add(&mut self, key: &str, now: Instant) {
        self.0.entry(key.to_owned()).or_default().push_back(now);
    }
}

/// Faults injected into writes that Meta would otherwise accept (reads fail only as
/// [`GraphTestServer::fail_reads`] says). One draw per
/// call picks at most one fault: the first `server_error_share` of the unit interval is a
/// server error, the next `throttle_share` throttling, the next `slow_share` a slow answer.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Answered 500 with Meta's transient error (code 2); the write does not happen.
    pub server_error_share: f64,
    /// Performed and recorded as accepted, but answered only after `slow_delay`: past the
    /// client's timeout, Meta has acted although the client saw no answer.
    pub slow_share: f64,
    pub slow_delay: Duration,
    /// Answered 400 with Meta's throttling error (80002); the write does not happen.
    pub throttle_share: f64,
    /// `estimated_time_to_regain_access` in the throttled answer's usage header.
    pub regain_access_minutes: u64,
    /// Performed and recorded as accepted, but answered 504 by a gateway, without a Graph
    /// error body: Meta acted, the client sees a server error.
    pub gateway_error_share: f64,
    /// Answered 400 with the app's own rate limit error (code 4); the write does not happen.
    pub app_throttle_share: f64,
    /// Performed and recorded as accepted, but answered 500 with Meta's transient error
    /// (code 2): nothing in the answer says the write happened.
    pub written_server_error_share: f64,
    /// Every write is answered this long after it arrives (Meta's typical is about 50 ms);
    /// it is judged and performed on arrival.
    pub latency: Duration,
}

enum Fault {
    ServerError,
    Throttle,
    Slow,
    Gateway,
    AppThrottle,
    WrittenServerError,
}

/// How an accepted write is answered.
enum Answer {
    Now,
    After(Duration),
    GatewayError,
    ServerError,
}

impl Faults {
    fn draw(&self) -> Option<Fault> {
        let roll = fastrand::f64();
        let mut bound = 0.0;
        [
            (self.server_error_share, Fault::ServerError),
            (self.throttle_share, Fault::Throttle),
            (self.slow_share, Fault::Slow),
            (self.gateway_error_share, Fault::Gateway),
            (self.app_throttle_share, Fault::AppThrottle),
            (self.written_server_error_share, Fault::WrittenServerError),
        ]
        .into_iter()
        .find(|(share, _)| {
            bound += share;
            roll < bound
        })
        .map(|(_, fault)| fault)
    }
}

/// Author of a public reply whose token no account was registered for (`token_belongs_to`).
const UNKNOWN_AUTHOR: &str = "self";
/// Every conversation's `updated_time`; no test orders threads by time.
const THREAD_UPDATED: &str = "2026-11-22T00:00:00+0000";

#[derive(Default)]
struct ServerState {
    calls: Vec<Call>,
    /// Tokens the server accepts; empty accepts any token.
    valid_tokens: HashSet<String>,
    faults: Faults,
    private_replied: HashSet<String>,
    /// The account each token acts for: Meta knows who posts a reply from the token alone.
    token_owners: HashMap<String, String>,
    /// Replies by comment id, oldest first, as `GET /{comment-id}/replies` lists them: the
    /// public replies accepted, and people's (`add_reply`).
    replies: HashMap<String, Vec<Value>>,
    next_id: u64,
    limits: Limits,
    send_windows: Windows,
    usage_windows: Windows,
    /// Reads still to be answered 500 (code 2) before reads work again.
    failing_reads: u32,
    /// Writes still to be answered 500 (code 2), unwritten, before writes work again.
    failing_writes: u32,
    /// Accepted DMs by thread (sender, recipient), oldest first, as the Conversations API
    /// lists them.
    threads: HashMap<(String, String), Vec<Value>>,
    /// People (IGSIDs) who follow the accounts, for the User Profile API.
    followers: HashSet<String>,
    /// How often the User Profile API was asked.
    profile_reads: u32,
    oauth: oauth::OAuthState,
    lifecycle: lifecycle::LifecycleState,
}

type Shared = Locked<ServerState>;

pub struct GraphTestServer {
    pub url: String,
    shared: Shared,
}

/// An error as Meta reports it.
struct Refusal {
    status: StatusCode,
    code: i64,
    subcode: Option<i64>,
    kind: &'static str,
    message: &'static str,
    /// Meta's `is_transient`: the same call may succeed later.
    transient: bool,
    /// Meta's `X-Business-Use-Case-Usage` header, sent when it throttles.
    usage: Option<Box<Value>>,
}

impl Refusal {
    const fn new(
        code: i64,
        subcode: Option<i64>,
        kind: &'static str,
        message: &'static str,
    ) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code,
            subcode,
            kind,
            message,
            transient: false,
            usage: None,
        }
    }

    fn server_error() -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            transient: true,
            ..Self::new(
                2,
                None,
                "OAuthException",
                "An unexpected error has occurred. Please retry your request later.",
            )
        }
    }

    /// Business-use-case throttling of `node`, with Meta's usage report for it.
    fn throttled(node: &str, regain_access_minutes: u64) -> Self {
        let usage = json!({ node: [{
            "type": "instagram",
            "call_count": 100,
            "total_cputime": 25,
            "total_time": 25,
            "estimated_time_to_regain_access": regain_access_minutes,
        }] });
        Self {
            usage: Some(Box::new(usage)),
            ..Self::new(
                80002,
                None,
                "OAuthException",
                "(#80002) There have been too many calls to this Instagram account. Wait a bit and try again.",
            )
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut error = json!({
            "message": self.message,
            "type": self.kind,
            "code": self.code,
            "fbtrace_id": format!("A{:020X}", fastrand::u128(..)),
        });
        if let Some(sub) = self.subcode {
            error["error_subcode"] = json!(sub);
        }
        if self.transient {
            error["is_transient"] = json!(true);
        }
        let usage = self
            .usage
            .map(|u| [("x-business-use-case-usage", u.to_string())]);
        (self.status, usage, Json(json!({ "error": error }))).into_response()
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::to_owned)
}

impl GraphTestServer {
    /// Serves on 127.0.0.1 at `port` (0 picks a free one) until the runtime ends.
    pub async fn start(port: u16) -> std::io::Result<Self> {
        let shared = Shared::default();
        let app = Router::new()
            .route("/{node}/messages", post(messages))
            .route(
                "/{node}/replies",
                post(replies).get(lifecycle::list_replies),
            )
            .route("/{node}/conversations", get(conversations))
            .route("/{node}", get(thread))
            .merge(oauth::routes())
            .merge(lifecycle::routes())
            .with_state(shared.clone());
        let url = crate::serve_local(app, port).await?;
        Ok(Self { url, shared })
    }

    /// Replies posted with `token` are authored by `account` (as `from.id` on read-back).
    pub fn token_belongs_to(&self, token: &str, account: &str) {
        self.shared
            .lock()
            .token_owners
            .insert(token.to_owned(), account.to_owned());
    }

    /// Enforces Meta's rate limits from now on.
    pub fn set_limits(&self, limits: Limits) {
        self.shared.lock().limits = limits;
    }

    /// Only these tokens are accepted from now on (Meta answers others with error 190).
    pub fn accept_only(&self, tokens: &[&str]) {
        self.shared.lock().valid_tokens = tokens.iter().map(|t| (*t).to_owned()).collect();
    }

    /// Whether `igsid` follows the account, as the User Profile API answers from now on.
    pub fn set_following(&self, igsid: &str, follows: bool) {
        let mut state = self.shared.lock();
        if follows {
            state.followers.insert(igsid.to_owned());
        } else {
            state.followers.remove(igsid);
        }
    }

    /// How often the User Profile API was asked.
    pub fn profile_reads(&self) -> u32 {
        self.shared.lock().profile_reads
    }

    /// Injects these faults into writes from now on; `Faults::default()` stops them.
    pub fn set_faults(&self, faults: Faults) {
        self.shared.lock().faults = faults;
    }

    /// Answers the next `n` reads 500 with Meta's transient error (code 2), as when a read
    /// back lands on a bad moment; reads work again after them.
    pub fn fail_reads(&self, n: u32) {
        self.shared.lock().failing_reads = n;
    }

    /// Answers the next `n` writes 500 with Meta's transient error (code 2) without writing
    /// them; writes work again after them.
    pub fn fail_writes(&self, n: u32) {
        self.shared.lock().failing_writes = n;
    }

    /// Every write, refused ones included; reads are not recorded.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.lock().calls.clone()
    }

    /// Calls Meta accepted, of one kind.
    pub fn accepted(&self, pred: impl Fn(&CallKind) -> bool) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.status == 200 && pred(&c.kind))
            .collect()
    }

    /// The DMs Meta accepted for `igsid`, in order.
    pub fn dms_to(&self, igsid: &str) -> Vec<Call> {
        self.accepted(|k| matches!(k, CallKind::Message { recipient, .. } if recipient == igsid))
    }

    /// Their texts.
    pub fn dm_texts_to(&self, igsid: &str) -> Vec<String> {
        self.dms_to(igsid).into_iter().map(|c| c.text).collect()
    }
}

impl ServerState {
    /// Meta's checks of a read: the token, and the read faults.
    fn admit_read(&mut self, token: Option<&str>) -> Result<(), Refusal> {
        if self.failing_reads > 0 {
            self.failing_reads -= 1;
            return Err(Refusal::server_error());
        }
        self.authorize(token)
    }

    /// Meta's token check, the same for reads and writes.
    fn authorize(&self, token: Option<&str>) -> Result<(), Refusal> {
        match token {
            None => Err(Refusal::new(
                2500,
                None,
                "OAuthException",
                "An active access token must be used to query information about the current user.",
            )),
            Some(t) if !self.valid_tokens.is_empty() && !self.valid_tokens.contains(t) => {
                Err(Refusal::new(
                    190,
                    Some(460),
                    "OAuthException",
                    "Error validating access token: The session has been invalidated.",
                ))
            }
            Some(_) => Ok(()),
        }
    }

    /// Refuses a write as Meta would, or says how long to hold back its answer.
    fn judge(
        &mut self,
        token: Option<&str>,
        kind: &CallKind,
        text: &str,
        account: &str,
    ) -> Result<Answer, Refusal> {
        self.authorize(token)?;
        if self.failing_writes > 0 {
            self.failing_writes -= 1;
            return Err(Refusal::server_error());
        }
        if text.len() > 1000 && !matches!(kind, CallKind::PublicReply { .. }) {
            return Err(Refusal::new(
                100,
                None,
                "OAuthException",
                "(#100) Length of param message[text] must be less than or equal to 1000",
            ));
        }
        if let CallKind::PrivateReply { comment_id, .. } = kind
            && self.private_replied.contains(comment_id)
        {
            return Err(Refusal::new(
                100,
                Some(2_534_025),
                "IGApiException",
                "A private reply has already been sent to this comment.",
            ));
        }
        let now = Instant::now();
        let sends = !matches!(kind, CallKind::PublicReply { .. });
        if let Some((calls, per, tolerance)) = self.limits.send_api
            && sends
            && self.send_windows.count(kind.node(), per, now) >= calls + tolerance
        {
            return Err(Refusal::new(
                613,
                None,
                "OAuthException",
                "(#613) Calls to this api have exceeded the rate limit.",
            ));
        }
        if let Some((calls, per)) = self.limits.usage
            && self.usage_windows.count(account, per, now) >= calls
        {
            return Err(Refusal::throttled(account, 1));
        }
        let fault = self.faults.draw();
        if fault.is_none()
            || matches!(
                fault,
                Some(Fault::Slow | Fault::Gateway | Fault::WrittenServerError)
            )
        {
            if sends {
                self.send_windows.add(kind.node(), now);
            }
            self.usage_windows.add(account, now);
        }
        match fault {
            Some(Fault::ServerError) => Err(Refusal::server_error()),
            Some(Fault::Throttle) => Err(Refusal::throttled(
                kind.node(),
                self.faults.regain_access_minutes,
            )),
            Some(Fault::Slow) => Ok(Answer::After(self.faults.slow_delay)),
            Some(Fault::Gateway) => Ok(Answer::GatewayError),
            Some(Fault::WrittenServerError) => Ok(Answer::ServerError),
            Some(Fault::AppThrottle) => Err(Refusal::new(
                4,
                None,
                "OAuthException",
                "(#4) Application request limit reached",
            )),
            None => Ok(Answer::Now),
        }
    }

    /// The usage header Meta sends with every answer once usage limits are configured.
    fn usage_report(&mut self, account: &str) -> Option<Value> {
        let (calls, per) = self.limits.usage?;
        let used = self.usage_windows.count(account, per, Instant::now());
        let percent = (u64::from(used) * 100 / u64::from(calls.max(1)))
            .max(u64::from(self.limits.usage_floor))
            .min(100);
        Some(json!({ account: [{
            "type": "instagram",
            "call_count": percent,
            "total_cputime": percent / 4,
            "total_time": percent / 4,
            "estimated_time_to_regain_access": 0,
        }] }))
    }

    /// Performs an accepted write and returns the id Meta gives what it wrote.
    fn perform(&mut self, kind: &CallKind, text: &str, author: &str) -> String {
        self.next_id += 1;
        let n = self.next_id;
        match kind {
            CallKind::PrivateReply { comment_id, .. } => {
                self.private_replied.insert(comment_id.clone());
            }
            CallKind::PublicReply { comment_id } => {
                let id = format!("1790{n:013}");
                self.replies
                    .entry(comment_id.clone())
                    .or_default()
                    .push(json!({
                        "id": id,
                        "text": text,
                        "from": { "id": author, "username": author },
                        "timestamp": lifecycle::meta_time(jiff::Timestamp::now()),
                    }));
                return id;
            }
            CallKind::Message { sender, recipient } => {
                let id = format!("aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQx{n:012}");
                let created = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%z");
                self.threads
                    .entry((sender.clone(), recipient.clone()))
                    .or_default()
                    .push(json!({
                        "id": id,
                        "message": text,
                        "from": { "id": author_id(sender, author), "username": author },
                        "created_time": created.to_string(),
                    }));
                return id;
            }
        }
        format!("aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQx{n:012}")
    }
}

/// Who a message comes from: the account the token belongs to, else the sending node.
fn author_id<'a>(sender: &'a str, author: &'a str) -> &'a str {
    if author == UNKNOWN_AUTHOR {
        sender
    } else {
        author
    }
}

/// A thread's id as the Conversations API gives it, and back.
fn thread_id(sender: &str, recipient: &str) -> String {
    format!("aWdfdGhyZWFk_{sender}_{recipient}")
}

fn thread_of(id: &str) -> Option<(String, String)> {
    let (sender, recipient) = id.strip_prefix("aWdfdGhyZWFk_")?.split_once('_')?;
    Some((sender.to_owned(), recipient.to_owned()))
}

/// Checks a write as Meta would and lets the faults strike; records it either way. When
/// accepted, the write happens at once, so a client that gives up on a slow answer still
/// finds it done; the id comes back after the slow fault's delay, if any.
async fn admit(
    shared: &Shared,
    headers: &HeaderMap,
    kind: CallKind,
    text: String,
    attached: Attached,
) -> Result<Admitted, Refusal> {
    let token = bearer(headers);
    // The guard must go before the await: the handler's future has to be `Send`.
    let (outcome, latency) = {
        let mut state = shared.lock();
        let author = token
            .as_ref()
            .and_then(|t| state.token_owners.get(t))
            .map_or_else(|| UNKNOWN_AUTHOR.to_owned(), Clone::clone);
        let author = author.as_str();
        let judged = state.judge(token.as_deref(), &kind, &text, author);
        let status = judged.as_ref().map_or_else(|r| r.status.as_u16(), |_| 200);
        let code = judged.as_ref().err().map(|r| r.code);
        let usage = state.usage_report(author);
        let outcome = judged
            .map(|delay| (state.perform(&kind, &text, author), delay))
            .map_err(|r| Refusal {
                usage: r.usage.or_else(|| usage.clone().map(Box::new)),
                ..r
            });
        state.calls.push(Call {
            kind,
            text,
            quick_replies: attached.quick_replies,
            buttons: attached.buttons,
            token,
            status,
            at: Instant::now(),
            code,
        });
        (
            outcome.map(|(id, answer)| (id, answer, usage)),
            state.faults.latency,
        )
    };
    tokio::time::sleep(latency).await;
    let (id, answer, usage) = outcome?;
    if let Answer::After(delay) = answer {
        tokio::time::sleep(delay).await;
    }
    Ok(Admitted { id, usage, answer })
}

/// An accepted write: Meta's id for it, and the usage header to answer with.
struct Admitted {
    id: String,
    usage: Option<Value>,
    /// Written, but perhaps answered with an error instead.
    answer: Answer,
}

impl Admitted {
    fn respond(self, body: Value) -> Response {
        match self.answer {
            Answer::GatewayError => {
                return (
                    StatusCode::GATEWAY_TIMEOUT,
                    "<html><body><h1>504 Gateway Time-out</h1></body></html>",
                )
                    .into_response();
            }
            Answer::ServerError => return Refusal::server_error().into_response(),
            Answer::Now | Answer::After(_) => {}
        }
        let mut response = Json(body).into_response();
        if let Some(value) = self
            .usage
            .and_then(|u| header::HeaderValue::from_str(&u.to_string()).ok())
        {
            response
                .headers_mut()
                .insert("x-business-use-case-usage", value);
        }
        response
    }
}

/// What a message carries besides its text.
#[derive(Default)]
struct Attached {
    quick_replies: Vec<String>,
    buttons: Vec<Value>,
}

/// A button template's text and buttons, refused as Meta does: 1 to 3 postback or web_url
/// buttons with titles of at most 20 characters, at most 640 characters of text.
fn button_template(message: &Value) -> Result<Option<(String, Vec<Value>)>, &'static str> {
    let attachment = &message["attachment"];
    if attachment.is_null() {
        return Ok(None);
    }
    let payload = &attachment["payload"];
    if attachment["type"] != "template" || payload["template_type"] != "button" {
        return Err("(#100) Unsupported attachment");
    }
    let text = payload["text"].as_str().unwrap_or_default();
    if text.is_empty() || text.chars().count() > 640 {
        return Err("(#100) Param message[attachment][payload][text] must be 1 to 640 characters");
    }
    let buttons = payload["buttons"].as_array().cloned().unwrap_or_default();
    if !(1..=3).contains(&buttons.len()) {
        return Err("(#100) Param message[attachment][payload][buttons] must have 1 to 3 elements");
    }
    for b in &buttons {
        let title = b["title"].as_str().unwrap_or_default();
        let target = match b["type"].as_str() {
            Some("postback") => b["payload"].as_str(),
            Some("web_url") => b["url"].as_str().filter(|u| u.starts_with("http")),
            _ => None,
        };
        if title.is_empty() || title.chars().count() > 20 || target.is_none_or(str::is_empty) {
            return Err(
                "(#100) A button needs a type, a title of at most 20 characters and a payload or url",
            );
        }
    }
    Ok(Some((text.to_owned(), buttons)))
}

async fn messages(
    State(shared): State<Shared>,
    Path(node): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let (text, buttons) = match button_template(&body["message"]) {
        Ok(Some(template)) => template,
        Ok(None) => (
            body["message"]["text"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            Vec::new(),
        ),
        Err(problem) => return Refusal::new(100, None, "OAuthException", problem).into_response(),
    };
    let recipient = &body["recipient"];
    let kind = match (recipient["comment_id"].as_str(), recipient["id"].as_str()) {
        (Some(comment), _) => CallKind::PrivateReply {
            sender: node,
            comment_id: comment.to_owned(),
        },
        (None, Some(id)) => CallKind::Message {
            sender: node,
            recipient: id.to_owned(),
        },
        (None, None) => {
            return Refusal::new(
                100,
                None,
                "OAuthException",
                "(#100) The parameter recipient is required",
            )
            .into_response();
        }
    };
    let recipient_id = recipient["id"]
        .as_str()
        .unwrap_or("17840000000000001")
        .to_owned();
    let quick_replies = match quick_reply_titles(&body["message"]["quick_replies"]) {
        Ok(titles) => titles,
        Err(problem) => {
            return Refusal::new(100, None, "OAuthException", problem).into_response();
        }
    };
    let attached = Attached {
        quick_replies,
        buttons,
    };
    match admit(&shared, &headers, kind, text, attached).await {
        Ok(admitted) => {
            let id = admitted.id.clone();
            admitted.respond(json!({ "recipient_id": recipient_id, "message_id": id }))
        }
        Err(refusal) => refusal.into_response(),
    }
}

/// The titles of a message's quick replies, refused as Meta does past 13 or without a
/// text content type, title and payload.
fn quick_reply_titles(quick_replies: &Value) -> Result<Vec<String>, &'static str> {
    let Some(list) = quick_replies.as_array() else {
        return Ok(Vec::new());
    };
    if list.len() > 13 {
        return Err("(#100) Param message[quick_replies] must contain at most 13 elements");
    }
    list.iter()
        .map(|q| {
            let fields = (
                q["content_type"].as_str(),
                q["title"].as_str(),
                q["payload"].as_str(),
            );
            match fields {
                (Some("text"), Some(title), Some(payload))
                    if !title.is_empty() && !payload.is_empty() =>
                {
                    Ok(title.to_owned())
                }
                _ => Err("(#100) A text quick reply needs a title and a payload"),
            }
        })
        .collect()
}

async fn replies(
    State(shared): State<Shared>,
    Path(comment_id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let Some(text) = body["message"].as_str().map(str::to_owned) else {
        return Refusal::new(
            100,
            None,
            "OAuthException",
            "(#100) The parameter message is required",
        )
        .into_response();
    };
    match admit(
        &shared,
        &headers,
        CallKind::PublicReply { comment_id },
        text,
        Attached::default(),
    )
    .await
    {
        Ok(admitted) => {
            let id = admitted.id.clone();
            admitted.respond(json!({ "id": id }))
        }
        Err(refusal) => refusal.into_response(),
    }
}

#[derive(serde::Deserialize)]
struct ThreadQuery {
    user_id: String,
}

/// `GET /{ig-user-id}/conversations?platform=instagram&user_id=...`: the account's thread
/// with that person, if they have written to each other.
async fn conversations(
    State(shared): State<Shared>,
    Path(node): Path<String>,
    Query(q): Query<ThreadQuery>,
    headers: HeaderMap,
) -> Response {
    let mut state = shared.lock();
    if let Err(refusal) = state.admit_read(bearer(&headers).as_deref()) {
        return refusal.into_response();
    }
    let data: Vec<Value> = state
        .threads
        .contains_key(&(node.clone(), q.user_id.clone()))
        .then(|| json!({ "id": thread_id(&node, &q.user_id), "updated_time": THREAD_UPDATED }))
        .into_iter()
        .collect();
    Json(json!({ "data": data })).into_response()
}

/// `GET /{conversation-id}?fields=messages{message,from,created_time}`: the thread's 20
/// newest messages, newest first.
/// `GET /{id}`: a conversation's messages, or a person's profile (User Profile API).
async fn thread(
    State(shared): State<Shared>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut state = shared.lock();
    if let Err(refusal) = state.admit_read(bearer(&headers).as_deref()) {
        return refusal.into_response();
    }
    let fields = query.get("fields").map(String::as_str).unwrap_or_default();
    if fields.contains("is_user_follow_business") {
        state.profile_reads += 1;
        let follows = state.followers.contains(&id);
        return Json(json!({ "is_user_follow_business": follows, "id": id })).into_response();
    }
    if fields.contains("timestamp")
        && let Some(media) = state.lifecycle.media_node(&id)
    {
        return Json(media).into_response();
    }
    let Some(messages) = thread_of(&id).and_then(|key| state.threads.get(&key)) else {
        return Refusal::new(
            100,
            Some(33),
            "GraphMethodException",
            "Unsupported get request. Object does not exist or cannot be loaded.",
        )
        .into_response();
    };
    let data: Vec<Value> = messages.iter().rev().take(20).cloned().collect();
    Json(json!({ "id": id, "messages": { "data": data } })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn server_with(faults: Faults) -> GraphTestServer {
        let server = GraphTestServer::start(0).await.expect("server starts");
        server.set_faults(faults);
        server
    }

    fn public_reply(client: &reqwest::Client, server: &GraphTestServer) -> reqwest::RequestBuilder {
        client
            .post(format!("{}/c1/replies", server.url))
            .bearer_auth("token")
            .json(&json!({ "message": "Sent you a DM" }))
    }

    fn private_reply(
        client: &reqwest::Client,
        server: &GraphTestServer,
    ) -> reqwest::RequestBuilder {
        client
            .post(format!("{}/17841400000000001/messages", server.url))
            .bearer_auth("token")
            .json(&json!({ "recipient": { "comment_id": "c1" }, "message": { "text": "hi" } }))
    }

    async fn read_replies(client: &reqwest::Client, server: &GraphTestServer) -> Value {
        client
            .get(format!("{}/c1/replies", server.url))
            .bearer_auth("token")
            .send()
            .await
            .expect("read answered")
            .json()
            .await
            .expect("read is JSON")
    }

    #[tokio::test]
    async fn quick_replies_are_recorded_and_refused_past_thirteen() {
        let server = server_with(Faults::default()).await;
        let client = reqwest::Client::new();
        let send = |n: usize, recipient: &str| {
            let buttons: Vec<Value> = (0..n)
                .map(
                    |i| json!({ "content_type": "text", "title": format!("b{i}"), "payload": "p" }),
                )
                .collect();
            client
                .post(format!("{}/17841400000000001/messages", server.url))
                .bearer_auth("token")
                .json(&json!({ "recipient": { "id": recipient },
                               "message": { "text": "hi", "quick_replies": buttons } }))
                .send()
        };
        let too_many = send(14, "7").await.expect("answered");
        assert_eq!(too_many.status(), StatusCode::BAD_REQUEST);
        let body: Value = too_many.json().await.expect("JSON body");
        assert_eq!(body["error"]["code"], 100);
        assert_eq!(
            send(2, "8").await.expect("answered").status(),
            StatusCode::OK
        );
        assert_eq!(server.accepted(|_| true)[0].quick_replies, ["b0", "b1"]);
    }

    #[tokio::test]
    async fn button_templates_are_recorded_and_refused_as_meta_does() {
        let server = server_with(Faults::default()).await;
        let client = reqwest::Client::new();
        let send = |text: String, buttons: Vec<Value>| {
            let template = json!({ "attachment": { "type": "template", "payload": {
                "template_type": "button", "text": text, "buttons": buttons } } });
            client
                .post(format!("{}/17841400000000001/messages", server.url))
                .bearer_auth("token")
                .json(&json!({ "recipient": { "id": "7" }, "message": template }))
                .send()
        };
        let tap = json!({ "type": "postback", "title": "Send the link", "payload": "igflow:step:x:link" });
        let site = json!({ "type": "web_url", "title": "Our shop", "url": "https://shop.example" });
        for (text, buttons) in [
            ("hi".to_owned(), vec![tap.clone(); 4]),
            ("hi".to_owned(), vec![]),
            ("x".repeat(641), vec![tap.clone()]),
            (
                "hi".to_owned(),
                vec![json!({ "type": "postback", "title": "t".repeat(21), "payload": "p" })],
            ),
            (
                "hi".to_owned(),
                vec![json!({ "type": "web_url", "title": "t" })],
            ),
        ] {
            let refused = send(text, buttons).await.expect("answered");
            assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
            let body: Value = refused.json().await.expect("JSON body");
            assert_eq!(body["error"]["code"], 100);
        }
        let sent = send("Tap below".into(), vec![tap.clone(), site.clone()])
            .await
            .expect("answered");
        assert_eq!(sent.status(), StatusCode::OK);
        let accepted = server.accepted(|_| true);
        assert_eq!(accepted.len(), 1);
        assert_eq!(
            (accepted[0].text.as_str(), &accepted[0].buttons),
            ("Tap below", &vec![tap, site])
        );
    }

    #[tokio::test]
    async fn server_error_refuses_without_writing() {
        let server = server_with(Faults {
            server_error_share: 1.0,
            ..Faults::default()
        })
        .await;
        let client = reqwest::Client::new();
        let response = public_reply(&client, &server)
            .send()
            .await
            .expect("answered");
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body: Value = response.json().await.expect("JSON body");
        assert_eq!(body["error"]["code"], 2);
        assert_eq!(body["error"]["is_transient"], true);

        assert_eq!(read_replies(&client, &server).await["data"], json!([]));
        assert_eq!(server.calls().len(), 1);
        assert_eq!(server.calls()[0].status, 500);
        assert!(server.accepted(|_| true).is_empty());
    }

    #[tokio::test]
    async fn slow_write_times_out_but_happens() {
        let server = server_with(Faults {
            slow_share: 1.0,
            slow_delay: Duration::from_millis(300),
            ..Faults::default()
        })
        .await;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(100))
            .build()
            .expect("client builds");
        let error = private_reply(&client, &server)
            .send()
            .await
            .expect_err("the answer comes after the timeout");
        assert!(error.is_timeout(), "{error}");
        let accepted = server.accepted(|k| matches!(k, CallKind::PrivateReply { .. }));
        assert_eq!(accepted.len(), 1);

        // The write counted: Meta refuses a second private reply to the same comment.
        server.set_faults(Faults::default());
        let retry = private_reply(&client, &server)
            .send()
            .await
            .expect("answered");
        assert_eq!(retry.status(), StatusCode::BAD_REQUEST);
        let body: Value = retry.json().await.expect("JSON body");
        assert_eq!(body["error"]["error_subcode"], 2_534_025);
    }

    #[tokio::test]
    async fn throttling_reports_when_access_returns() {
        let server = server_with(Faults {
            throttle_share: 1.0,
            regain_access_minutes: 7,
            ..Faults::default()
        })
        .await;
        let client = reqwest::Client::new();
        let response = private_reply(&client, &server)
            .send()
            .await
            .expect("answered");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let usage: Value = serde_json::from_str(
            response.headers()["x-business-use-case-usage"]
                .to_str()
                .expect("ASCII header"),
        )
        .expect("JSON header");
        assert_eq!(
            usage["17841400000000001"][0]["estimated_time_to_regain_access"],
            7
        );
        let body: Value = response.json().await.expect("JSON body");
        assert_eq!(body["error"]["code"], 80002);
        assert_eq!(server.calls()[0].status, 400);
        assert!(server.accepted(|_| true).is_empty());
    }

    #[tokio::test]
    async fn replies_read_back_with_their_author_and_need_a_token() {
        let server = server_with(Faults::default()).await;
        server.accept_only(&["token"]);
        let client = reqwest::Client::new();
        server.token_belongs_to("token", "17841400000000001");
        let sent: Value = public_reply(&client, &server)
            .send()
            .await
            .expect("answered")
            .json()
            .await
            .expect("JSON body");
        server.accept_only(&["token", "other"]);
        client
            .post(format!("{}/c1/replies", server.url))
            .bearer_auth("other")
            .json(&json!({ "message": "Sent you a DM" }))
            .send()
            .await
            .expect("answered");

        let read = read_replies(&client, &server).await;
        assert_eq!(read["data"][0]["id"], sent["id"]);
        assert_eq!(read["data"][0]["text"], "Sent you a DM");
        assert_eq!(read["data"][0]["from"]["id"], "17841400000000001");
        assert_eq!(
            read["data"][1]["from"]["id"], "self",
            "a token nobody registered"
        );

        let url = format!("{}/c1/replies", server.url);
        let anonymous: Value = client
            .get(&url)
            .send()
            .await
            .expect("answered")
            .json()
            .await
            .expect("JSON");
        assert_eq!(anonymous["error"]["code"], 2500);
        let stale: Value = client
            .get(&url)
            .bearer_auth("old")
            .send()
            .await
            .expect("answered")
            .json()
            .await
            .expect("JSON");
        assert_eq!(stale["error"]["code"], 190);
    }
}
