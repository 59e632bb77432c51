//! The Instagram Graph API client: private replies and public comment replies, for both
//! login flavors. Every outcome maps onto the failure taxonomy.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use igflow_core::campaign::LoginFlavor;
use igflow_core::failure::Failure;
use igflow_core::graph_error::{GraphErrorBody, Verdict, is_throttling};
use igflow_core::ids::{CommentId, Igsid};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::clients::store::Account;
use crate::config::GraphConfig;

/// A call Meta accepted.
#[derive(Debug, Clone)]
pub struct Sent {
    /// `message_id` of a message, `id` of a comment.
    pub id: Option<String>,
    pub status: u16,
    pub latency: Duration,
    /// The highest usage percentage Meta reported with the answer.
    pub usage: Option<u8>,
}

/// A call that did not succeed, with what Meta said.
#[derive(Debug, Clone)]
pub struct CallError {
    pub status: Option<u16>,
    pub code: Option<i64>,
    pub subcode: Option<i64>,
    pub verdict: Verdict,
    pub latency: Duration,
    pub usage: Option<u8>,
}

#[derive(Deserialize)]
struct Accepted {
    #[serde(default)]
    message_id: Option<String>,
    #[serde(default)]
    id: Option<String>,
}

#[derive(Deserialize)]
struct RepliesPage {
    #[serde(default)]
    data: Vec<Reply>,
    #[serde(default)]
    paging: Option<Paging>,
}

#[derive(Deserialize)]
struct Reply {
    id: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    from: Option<ReplyAuthor>,
}

#[derive(Deserialize)]
struct ReplyAuthor {
    id: String,
}

#[derive(Deserialize)]
pub(crate) struct Paging {
    #[serde(default)]
    pub(crate) next: Option<String>,
}

/// `GET /{ig-user-id}/conversations?user_id=...`: the account's thread with one person.
#[derive(Deserialize)]
struct Conversations {
    #[serde(default)]
    data: Vec<Conversation>,
}

#[derive(Deserialize)]
struct Conversation {
    id: String,
}

/// `GET /{conversation-id}?fields=messages{message,from,created_time}`: its recent messages
/// (Meta returns the 20 newest).
#[derive(Deserialize)]
struct Thread {
    #[serde(default)]
    messages: Option<ThreadMessages>,
}

#[derive(Deserialize)]
struct ThreadMessages {
    #[serde(default)]
    data: Vec<ThreadMessage>,
}

#[derive(Deserialize)]
struct ThreadMessage {
    id: String,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    from: Option<ReplyAuthor>,
    /// `2026-11-29T17:30:00+0000`.
    #[serde(default)]
    created_time: Option<String>,
}

/// Meta's clock and ours differ a little: a message this much older than the attempt may
/// still be its.
const CLOCK_SKEW_MS: i64 = 60_000;

impl ThreadMessage {
    /// Whether this is the account's message with exactly `text`, written at or after
    /// `since_ms` (when known). A time that does not parse counts as recent: taking a DM for
    /// sent is the safe mistake, sending it twice is not.
    fn is(&self, senders: &[&str], text: &str, since_ms: Option<i64>) -> bool {
        let recent = match (since_ms, &self.created_time) {
            (Some(since), Some(at)) => jiff::Timestamp::strptime("%Y-%m-%dT%H:%M:%S%z", at)
                .map_or(true, |t| {
                    t.as_millisecond() >= since.saturating_sub(CLOCK_SKEW_MS)
                }),
            _ => true,
        };
        recent
            && self.message.as_deref() == Some(text)
            && self
                .from
                .as_ref()
                .is_some_and(|f| senders.contains(&f.id.as_str()))
    }
}

/// Pages of replies read back before giving up.
const READ_BACK_PAGES: usize = 5;

impl CallError {
    /// For a write Meta does not dedupe (a DM, a public reply): a server error (or a 429 with
    /// Meta's transient codes 1 or 2) once the request left may come after Meta wrote it.
    /// Nobody has shown it never does, so the outcome is unknown and resolved by reading back
    /// (the thread, the comment's replies). Throttling refusals stay retryable: Meta throttles
    /// instead of writing.
    fn unknown_after_server_error(self) -> Self {
        let transient_body = matches!(self.code, Some(1 | 2));
        let server_error =
            self.status.is_some_and(|s| s >= 500) || (self.status == Some(429) && transient_body);
        match self.verdict {
            Verdict::Failed(Failure::Retryable { reason, .. })
                if server_error && !self.code.is_some_and(is_throttling) =>
            {
                Self {
                    verdict: Verdict::Failed(Failure::Ambiguous {
                        reason: format!(
                            "{reason}, after the request left: Meta may have written it"
                        ),
                    }),
                    ..self
                }
            }
            _ => self,
        }
    }

    /// Why the call failed, in words.
    pub fn reason(&self) -> String {
        match &self.verdict {
            Verdict::AlreadyDone => "already done".to_owned(),
            Verdict::Failed(f) => f.to_string(),
        }
    }

    /// A call that was never made, for a reason that will not change.
    pub fn not_sent(reason: String) -> Self {
        Self {
            status: None,
            code: None,
            subcode: None,
            verdict: Verdict::Failed(Failure::permanent(reason)),
            latency: Duration::ZERO,
            usage: None,
        }
    }
}

/// A read that failed: nothing was written, so it is simply retried later.
fn read_error(reason: String, status: Option<u16>, started: Instant) -> CallError {
    CallError {
        status,
        code: None,
        subcode: None,
        verdict: Verdict::Failed(Failure::retry(reason)),
        latency: started.elapsed(),
        usage: None,
    }
}

/// A text message to one person, optionally with quick-reply buttons.
#[derive(Debug, Clone, Copy)]
pub struct DirectMessage<'a> {
    pub text: &'a str,
    /// Button titles; tapping one sends its title back as the person's message, which a
    /// `trigger: message` campaign can answer. The title is also the payload.
    pub quick_replies: &'a [String],
}

impl DirectMessage<'_> {
    fn body(&self) -> Value {
        let mut body = json!({ "text": self.text });
        if !self.quick_replies.is_empty() {
            body["quick_replies"] = self
                .quick_replies
                .iter()
                .map(|title| json!({ "content_type": "text", "title": title, "payload": title }))
                .collect();
        }
        body
    }
}

#[derive(Clone)]
pub struct GraphClient {
    pub(crate) http: reqwest::Client,
    config: GraphConfig,
}

impl GraphClient {
    pub fn new(config: GraphConfig) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(Duration::from_secs(3))
            .user_agent(concat!("igflow/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { http, config })
    }

    /// How long one call may take.
    pub fn timeout(&self) -> Duration {
        self.config.timeout
    }

    pub(crate) fn base(&self, login: LoginFlavor) -> &str {
        match login {
            LoginFlavor::Instagram => &self.config.instagram_url,
            LoginFlavor::Facebook => &self.config.facebook_url,
        }
    }

    /// Who sends messages: the IG user with Instagram Login, the linked Page with Facebook Login.
    pub(crate) fn sender(account: &Account) -> &str {
        match (&account.login, &account.page_id) {
            (LoginFlavor::Facebook, Some(page)) => page.as_str(),
            _ => account.ig_user_id.as_str(),
        }
    }

    /// The one private reply Meta allows per comment, sent as a DM to its author.
    pub async fn private_reply(
        &self,
        account: &Account,
        token: &SecretString,
        comment: &CommentId,
        message: &DirectMessage<'_>,
    ) -> Result<Sent, CallError> {
        let recipient = json!({ "comment_id": comment });
        self.message(account, token, recipient, message).await
    }

    /// A direct message in the thread of someone who wrote to the account.
    pub async fn send_dm(
        &self,
        account: &Account,
        token: &SecretString,
        recipient: &Igsid,
        message: &DirectMessage<'_>,
    ) -> Result<Sent, CallError> {
        self.message(account, token, json!({ "id": recipient }), message)
            .await
            .map_err(CallError::unknown_after_server_error)
    }

    /// One Send API call: a message to `recipient` (a comment or a person).
    async fn message(
        &self,
        account: &Account,
        token: &SecretString,
        recipient: Value,
        message: &DirectMessage<'_>,
    ) -> Result<Sent, CallError> {
        let sender = Self::sender(account);
        let url = format!("{}/{sender}/messages", self.base(account.login));
        let body = json!({ "recipient": recipient, "message": message.body() });
        self.post(&url, token, &body).await
    }

    /// A public reply under the comment.
    pub async fn public_reply(
        &self,
        account: &Account,
        token: &SecretString,
        comment: &CommentId,
        text: &str,
    ) -> Result<Sent, CallError> {
        let url = format!("{}/{comment}/replies", self.base(account.login));
        self.post(&url, token, &json!({ "message": text }))
            .await
            .map_err(CallError::unknown_after_server_error)
    }

    /// Looks for the account's reply with exactly `text` under the comment: the read-back for
    /// a public reply whose outcome was unknown. Returns the reply's id if it is there; an
    /// error answer is an error ("could not check"), never "not there".
    pub async fn find_public_reply(
        &self,
        account: &Account,
        token: &SecretString,
        comment: &CommentId,
        text: &str,
    ) -> Result<Option<String>, CallError> {
        let mut url = format!(
            "{}/{comment}/replies?fields=id,text,from&limit=100",
            self.base(account.login)
        );
        // A viral comment has many replies; ours is recent, a few pages are enough.
        for _ in 0..READ_BACK_PAGES {
            let page: RepliesPage = self.read(&url, token).await?;
            let ours = page.data.into_iter().find(|r| {
                r.text.as_deref() == Some(text)
                    && r.from
                        .as_ref()
                        .is_some_and(|f| f.id == account.ig_user_id.as_str())
            });
            if let Some(reply) = ours {
                return Ok(Some(reply.id));
            }
            match page.paging.and_then(|p| p.next) {
                Some(next) => url = next,
                None => break,
            }
        }
        Ok(None)
    }

    /// Looks for the account's DM with exactly `text` to `recipient`, written since
    /// `since_ms`: the read-back for a DM whose outcome was unknown (Conversations API).
    /// Returns the message's id if it is there; an error answer is an error, never "not there".
    pub async fn find_dm(
        &self,
        account: &Account,
        token: &SecretString,
        recipient: &Igsid,
        text: &str,
        since_ms: Option<i64>,
    ) -> Result<Option<String>, CallError> {
        let base = self.base(account.login);
        let sender = Self::sender(account);
        let threads: Conversations = self
            .read(
                &format!("{base}/{sender}/conversations?platform=instagram&user_id={recipient}"),
                token,
            )
            .await?;
        let senders = [sender, account.ig_user_id.as_str()];
        for thread in threads.data {
            let thread: Thread = self
                .read(
                    &format!(
                        "{base}/{}?fields=messages{{message,from,created_time}}",
                        thread.id
                    ),
                    token,
                )
                .await?;
            let ours = thread
                .messages
                .into_iter()
                .flat_map(|m| m.data)
                .find(|m| m.is(&senders, text, since_ms));
            if let Some(message) = ours {
                return Ok(Some(message.id));
            }
        }
        Ok(None)
    }

    /// One Graph API read. Only a 2xx answer with the expected body is an answer: an error
    /// status (a 500, a throttle, a token error) is returned as the error Meta gave.
    pub(crate) async fn read<T: DeserializeOwned>(
        &self,
        url: &str,
        token: &SecretString,
    ) -> Result<T, CallError> {
        self.read_request(self.http.get(url).bearer_auth(token.expose_secret()))
            .await
    }

    /// A GET that writes nothing: an error answer is retryable unless it concerns the account.
    pub(crate) async fn read_request<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, CallError> {
        let started = Instant::now();
        let response = request.send().await.map_err(|e| {
            read_error(
                format!("graph API read failed: {}", e.without_url()),
                None,
                started,
            )
        })?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await;
        if !(200..300).contains(&status) {
            let latency = started.elapsed();
            let mut error = self.refused(status, &headers, bytes.ok().as_deref(), latency);
            // Nothing was written: anything but a token or permission error is worth
            // checking again later.
            if !matches!(error.verdict, Verdict::Failed(Failure::Account { .. })) {
                error.verdict = Verdict::Failed(Failure::retry(format!(
                    "graph API read answered HTTP {status}: {}",
                    error.reason()
                )));
            }
            return Err(error);
        }
        bytes
            .map_err(|e| e.without_url().to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
            .map_err(|e| {
                read_error(
                    format!("graph API read gave an unreadable body: {e}"),
                    Some(status),
                    started,
                )
            })
    }

    pub(crate) async fn post(
        &self,
        url: &str,
        token: &SecretString,
        body: &serde_json::Value,
    ) -> Result<Sent, CallError> {
        let started = Instant::now();
        let response = self
            .http
            .post(url)
            .bearer_auth(token.expose_secret())
            .json(body)
            .send()
            .await;
        let response = match response {
            Ok(r) => r,
            Err(e) => return Err(transport_error(e, started.elapsed())),
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let usage = usage(&headers);
        let bytes = response.bytes().await;
        let latency = started.elapsed();
        if (200..300).contains(&status) {
            // The write happened even if the body cannot be read.
            let id = bytes
                .ok()
                .and_then(|b| serde_json::from_slice::<Accepted>(&b).ok())
                .and_then(|a| a.message_id.or(a.id));
            return Ok(Sent {
                id,
                status,
                latency,
                usage,
            });
        }
        Err(self.refused(status, &headers, bytes.ok().as_deref(), latency))
    }

    /// What a non-2xx answer means, from Meta's error body if it sent one.
    fn refused(
        &self,
        status: u16,
        headers: &HeaderMap,
        body: Option<&[u8]>,
        latency: Duration,
    ) -> CallError {
        let retry_after = retry_after(headers).or_else(|| regain_access(headers));
        let usage = usage(headers);
        let parsed = body.and_then(|b| serde_json::from_slice::<GraphErrorBody>(b).ok());
        match parsed {
            Some(GraphErrorBody { error }) => CallError {
                status: Some(status),
                code: Some(error.code),
                subcode: error.error_subcode,
                verdict: error.verdict(status, retry_after, self.config.throttle_pause),
                latency,
                usage,
            },
            None => CallError {
                status: Some(status),
                code: None,
                subcode: None,
                // No Graph error body: a gateway answered, and a 500, 502 or 504 may come
                // after Meta already wrote. Resolved like a timeout, never sent blindly again.
                verdict: Verdict::Failed(if matches!(status, 500 | 502 | 504) {
                    Failure::Ambiguous {
                        reason: format!(
                            "graph HTTP {status} without an error body: the write may have happened"
                        ),
                    }
                } else if status >= 500 || status == 429 {
                    Failure::Retryable {
                        retry_after,
                        reason: format!("graph HTTP {status}"),
                    }
                } else {
                    Failure::permanent(format!("graph HTTP {status} without an error body"))
                }),
                latency,
                usage,
            },
        }
    }
}

/// A request that never got an answer. Before the connection existed nothing was sent and a
/// retry is safe; after that, Meta may have acted, so the outcome is ambiguous.
/// reqwest's errors print their URL, and `paging.next` URLs carry the access token: every
/// reqwest error loses its URL (`without_url`) before it becomes text.
fn transport_error(e: reqwest::Error, latency: Duration) -> CallError {
    let e = e.without_url();
    let failure = if e.is_connect() || e.is_builder() {
        Failure::retry(format!("graph API unreachable: {e}"))
    } else {
        Failure::Ambiguous {
            reason: format!("graph API call interrupted after sending: {e}"),
        }
    };
    CallError {
        status: None,
        code: None,
        subcode: None,
        verdict: Verdict::Failed(failure),
        latency,
        usage: None,
    }
}

/// The longest `estimated_time_to_regain_access` (minutes) Meta reports in
/// `X-Business-Use-Case-Usage`: `{"<id>": [{"type": ..., "estimated_time_to_regain_access": 5}]}`.
fn regain_access(headers: &HeaderMap) -> Option<Duration> {
    let usage: HashMap<String, Vec<serde_json::Value>> =
        serde_json::from_slice(headers.get("x-business-use-case-usage")?.as_bytes()).ok()?;
    let minutes = usage
        .values()
        .flatten()
        .filter_map(|u| u.get("estimated_time_to_regain_access")?.as_u64())
        .max()?;
    (minutes > 0).then(|| Duration::from_secs(minutes * 60))
}

/// The highest percentage in Meta's usage headers (`X-Business-Use-Case-Usage` per business
/// object, `X-App-Usage` for the app): how close the account is to being throttled.
fn usage(headers: &HeaderMap) -> Option<u8> {
    const FIELDS: [&str; 3] = ["call_count", "total_cputime", "total_time"];
    let highest = |v: &serde_json::Value| FIELDS.iter().filter_map(|f| v.get(f)?.as_u64()).max();
    let business = headers
        .get("x-business-use-case-usage")
        .and_then(|h| {
            serde_json::from_slice::<HashMap<String, Vec<serde_json::Value>>>(h.as_bytes()).ok()
        })
        .and_then(|u| u.values().flatten().filter_map(highest).max());
    let app = headers
        .get("x-app-usage")
        .and_then(|h| serde_json::from_slice::<serde_json::Value>(h.as_bytes()).ok())
        .and_then(|v| highest(&v));
    business
        .max(app)
        .map(|p| u8::try_from(p.min(100)).unwrap_or(100))
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[tokio::test]
    async fn transport_errors_do_not_carry_the_url_or_its_token() {
        // Nothing listens on port 1: the request fails before anything is sent.
        let e = reqwest::Client::new()
            .get("http://127.0.0.1:1/v24.0/1/replies?access_token=IGQWRsecret")
            .send()
            .await
            .unwrap_err();
        let text = format!("{:?}", transport_error(e, Duration::ZERO));
        assert!(!text.contains("IGQWRsecret"), "{text}");
        assert!(!text.contains("access_token"), "{text}");
        assert!(text.contains("unreachable"), "{text}");
    }

    fn answered(status: u16, code: i64) -> CallError {
        let error = serde_json::from_value::<GraphErrorBody>(
            json!({ "error": { "message": "m", "code": code, "is_transient": true } }),
        )
        .expect("error body")
        .error;
        CallError {
            status: Some(status),
            code: Some(code),
            subcode: None,
            verdict: error.verdict(status, None, Duration::from_secs(60)),
            latency: Duration::ZERO,
            usage: None,
        }
    }

    #[test]
    fn a_write_answered_with_a_server_error_has_an_unknown_outcome() {
        let unknown = |status, code| {
            matches!(
                answered(status, code).unknown_after_server_error().verdict,
                Verdict::Failed(Failure::Ambiguous { .. })
            )
        };
        assert!(unknown(500, 2));
        assert!(unknown(503, 1));
        assert!(unknown(429, 2));
        assert!(!unknown(429, 80002), "throttled: not written");
        assert!(!unknown(400, 2), "a refusal before writing");
        assert!(!unknown(400, 100));
    }

    #[test]
    fn metas_regain_access_estimate_becomes_the_retry_delay() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-business-use-case-usage",
            HeaderValue::from_static(
                r#"{"17841400000000000":[{"type":"instagram","call_count":100,"total_cputime":25,"total_time":25,"estimated_time_to_regain_access":7}]}"#,
            ),
        );
        assert_eq!(regain_access(&h), Some(Duration::from_secs(420)));
        h.insert("retry-after", HeaderValue::from_static("30"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(30)));
        assert_eq!(regain_access(&HeaderMap::new()), None);
        assert_eq!(usage(&h), Some(100));
        let mut app = HeaderMap::new();
        app.insert(
            "x-app-usage",
            HeaderValue::from_static(r#"{"call_count":95,"total_time":12,"total_cputime":3}"#),
        );
        assert_eq!(usage(&app), Some(95));
        assert_eq!(usage(&HeaderMap::new()), None);
    }
}
