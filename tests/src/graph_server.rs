//! A local stand-in for Meta's Graph API: the two endpoints igflow writes to, Meta's response
//! and error shapes, the rules Meta enforces (valid token, 1,000-byte texts, one private reply
//! per comment), and a log of every call for the tests to inspect.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
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

#[derive(Debug, Clone)]
pub struct Call {
    pub kind: CallKind,
    pub text: String,
    pub token: Option<String>,
    /// The HTTP status the server answered.
    pub status: u16,
}

#[derive(Default)]
struct ServerState {
    calls: Vec<Call>,
    /// Tokens the server accepts; empty accepts any token.
    valid_tokens: HashSet<String>,
    private_replied: HashSet<String>,
    next_id: u64,
}

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<ServerState>>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, ServerState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

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
        (self.status, Json(json!({ "error": error }))).into_response()
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
            .route("/{node}/replies", post(replies))
            .with_state(shared.clone());
        let listener =
            tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
        let url = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self { url, shared })
    }

    /// Only these tokens are accepted from now on (Meta answers others with error 190).
    pub fn accept_only(&self, tokens: &[&str]) {
        self.shared.lock().valid_tokens = tokens.iter().map(|t| (*t).to_owned()).collect();
    }

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
}

/// Checks the call as Meta would; records it either way and, if accepted, returns a fresh id.
fn admit(
    shared: &Shared,
    headers: &HeaderMap,
    kind: CallKind,
    text: String,
) -> Result<u64, Refusal> {
    let token = bearer(headers);
    let mut state = shared.lock();
    let refusal = match &token {
        None => Some(Refusal::new(
            2500,
            None,
            "OAuthException",
            "An active access token must be used to query information about the current user.",
        )),
        Some(t) if !state.valid_tokens.is_empty() && !state.valid_tokens.contains(t) => {
            Some(Refusal::new(
                190,
                Some(460),
                "OAuthException",
                "Error validating access token: The session has been invalidated.",
            ))
        }
        Some(_) if text.len() > 1000 && !matches!(kind, CallKind::PublicReply { .. }) => {
            Some(Refusal::new(
                100,
                None,
                "OAuthException",
                "(#100) Length of param message[text] must be less than or equal to 1000",
            ))
        }
        Some(_) => match &kind {
            CallKind::PrivateReply { comment_id, .. }
                if !state.private_replied.insert(comment_id.clone()) =>
            {
                Some(Refusal::new(
                    100,
                    Some(2_534_025),
                    "IGApiException",
                    "A private reply has already been sent to this comment.",
                ))
            }
            _ => None,
        },
    };
    let status = refusal.as_ref().map_or(200, |r| r.status.as_u16());
    state.calls.push(Call {
        kind,
        text,
        token,
        status,
    });
    match refusal {
        Some(r) => Err(r),
        None => {
            state.next_id += 1;
            Ok(state.next_id)
        }
    }
}

async fn messages(
    State(shared): State<Shared>,
    Path(node): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let text = body["message"]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
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
    match admit(&shared, &headers, kind, text) {
        Ok(n) => Json(json!({
            "recipient_id": recipient_id,
            "message_id": format!("aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQx{n:012}"),
        }))
        .into_response(),
        Err(refusal) => refusal.into_response(),
    }
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
    ) {
        Ok(n) => Json(json!({ "id": format!("1790{:013}", n) })).into_response(),
        Err(refusal) => refusal.into_response(),
    }
}
