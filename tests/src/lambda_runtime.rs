//! The Lambda Runtime API (`2018-06-01`) as Lambda serves it to a custom runtime
//! (`provided.al2023`), so a function binary runs here exactly as it does in AWS: it long-polls
//! `GET /runtime/invocation/next` for an event (with the request id, deadline, function ARN
//! and trace id headers), then posts its answer to `/runtime/invocation/{id}/response`
//! (buffered JSON, or a chunked stream with `Lambda-Runtime-Function-Response-Mode:
//! streaming`) or `/error`. A second answer to one request id is refused with Lambda's 400
//! `InvalidStateTransition`, an unknown id with `InvalidRequestID`, and a buffered answer over
//! 6 MB with 413 `RequestEntityTooLarge`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// Lambda's limit on a buffered response.
const MAX_BUFFERED: usize = 6 * 1024 * 1024;
const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:igflow-test";

/// One invocation's answer, as the function sends it.
#[derive(Debug)]
pub enum Answer {
    /// The response mode header (`streaming`, or none for buffered) and content type.
    Started {
        streaming: bool,
        content_type: Option<String>,
    },
    /// A piece of the response body as it arrived.
    Chunk(Bytes),
    /// The function reported an error (`/error`).
    Error(Value),
    /// The response is complete.
    Done,
}

struct Pending {
    request_id: String,
    event: Value,
    answers: mpsc::UnboundedSender<Answer>,
}

#[derive(Default)]
struct RuntimeState {
    queue: Vec<Pending>,
    /// Handed to the function, not yet answered.
    in_flight: HashMap<String, mpsc::UnboundedSender<Answer>>,
    answered: Vec<String>,
}

#[derive(Clone)]
pub struct LambdaRuntime {
    /// `host:port`: what `AWS_LAMBDA_RUNTIME_API` holds.
    pub address: String,
    state: Arc<Mutex<RuntimeState>>,
    ready: Arc<tokio::sync::Notify>,
}

type Shared = (Arc<Mutex<RuntimeState>>, Arc<tokio::sync::Notify>);

fn lock(state: &Mutex<RuntimeState>) -> MutexGuard<'_, RuntimeState> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl LambdaRuntime {
    pub async fn start() -> std::io::Result<Self> {
        let state = Arc::new(Mutex::new(RuntimeState::default()));
        let ready = Arc::new(tokio::sync::Notify::new());
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state((Arc::clone(&state), Arc::clone(&ready)));
        let url = crate::serve_local(app, 0).await?;
        Ok(Self {
            address: url.trim_start_matches("http://").to_owned(),
            state,
            ready,
        })
    }

    /// Queues `event` for the function; its answer arrives on the receiver as it is sent.
    pub fn invoke(&self, event: Value) -> mpsc::UnboundedReceiver<Answer> {
        let (answers, rx) = mpsc::unbounded_channel();
        lock(&self.state).queue.push(Pending {
            request_id: uuid::Uuid::new_v4().to_string(),
            event,
            answers,
        });
        self.ready.notify_one();
        rx
    }

    /// The environment Lambda gives a function (beside its own variables).
    pub fn function_env(&self) -> [(&'static str, String); 5] {
        [
            ("AWS_LAMBDA_RUNTIME_API", self.address.clone()),
            ("AWS_LAMBDA_FUNCTION_NAME", "igflow-test".into()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".into()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "test".into()),
        ]
    }
}

async fn next(State((state, ready)): State<Shared>) -> Response {
    loop {
        let notified = ready.notified();
        let pending = {
            let mut s = lock(&state);
            if s.queue.is_empty() {
                None
            } else {
                Some(s.queue.remove(0))
            }
        };
        if let Some(p) = pending {
            lock(&state)
                .in_flight
                .insert(p.request_id.clone(), p.answers);
            let deadline = jiff::Timestamp::now().as_millisecond() + 900_000;
            let headers = [
                ("lambda-runtime-aws-request-id", p.request_id),
                ("lambda-runtime-deadline-ms", deadline.to_string()),
                ("lambda-runtime-invoked-function-arn", FUNCTION_ARN.into()),
                (
                    "lambda-runtime-trace-id",
                    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
                        .into(),
                ),
            ];
            let mut response = Json(p.event).into_response();
            for (name, value) in headers {
                if let Ok(value) = value.parse() {
                    response.headers_mut().insert(name, value);
                }
            }
            return response;
        }
        // Long poll, as Lambda holds the request until an event comes.
        let _ = tokio::time::timeout(Duration::from_secs(30), notified).await;
    }
}

/// Lambda's 400 for an answer it cannot take: `InvalidStateTransition` (answered already) or
/// `InvalidRequestID` (never handed out).
fn refused(kind: &'static str) -> Response {
    let message = match kind {
        "InvalidStateTransition" => {
            "Invalid state transition: the request has been answered already"
        }
        _ => "Invalid request ID",
    };
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "errorMessage": message, "errorType": kind })),
    )
        .into_response()
}

/// Takes the request id's answer channel, or names Lambda's refusal.
fn take(
    state: &Mutex<RuntimeState>,
    id: &str,
) -> Result<mpsc::UnboundedSender<Answer>, &'static str> {
    let mut s = lock(state);
    if let Some(answers) = s.in_flight.remove(id) {
        s.answered.push(id.to_owned());
        return Ok(answers);
    }
    Err(if s.answered.iter().any(|a| a == id) {
        "InvalidStateTransition"
    } else {
        "InvalidRequestID"
    })
}

async fn response(
    State((state, _)): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let answers = match take(&state, &id) {
        Ok(a) => a,
        Err(kind) => return refused(kind),
    };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let streaming = header("lambda-runtime-function-response-mode").as_deref() == Some("streaming");
    let _ = answers.send(Answer::Started {
        streaming,
        content_type: header("content-type"),
    });
    let mut stream = body.into_data_stream();
    let mut size = 0;
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else { break };
        size += chunk.len();
        if !streaming && size > MAX_BUFFERED {
            let _ = answers.send(Answer::Error(
                json!({ "errorType": "RequestEntityTooLarge" }),
            ));
            let body = json!({ "errorMessage": "the response exceeds 6291556 bytes",
                               "errorType": "RequestEntityTooLarge" });
            return (StatusCode::PAYLOAD_TOO_LARGE, Json(body)).into_response();
        }
        let _ = answers.send(Answer::Chunk(chunk));
    }
    let _ = answers.send(Answer::Done);
    (StatusCode::ACCEPTED, Json(json!({ "status": "OK" }))).into_response()
}

async fn error(
    State((state, _)): State<Shared>,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    match take(&state, &id) {
        Ok(answers) => {
            let _ = answers.send(Answer::Error(body));
            (StatusCode::ACCEPTED, Json(json!({ "status": "OK" }))).into_response()
        }
        Err(kind) => refused(kind),
    }
}

async fn init_error(Json(body): Json<Value>) -> Response {
    tracing::error!(%body, "the function failed to start");
    (StatusCode::ACCEPTED, Json(json!({ "status": "OK" }))).into_response()
}

/// Collects an invocation's streamed answer: the metadata prelude's JSON, then the body after
/// the eight NUL bytes that end it (API Gateway's and function URLs' streaming format).
#[derive(Debug, Default)]
pub struct StreamedHttp {
    pub streaming: bool,
    pub content_type: Option<String>,
    raw: Vec<u8>,
    pub done: bool,
}

impl StreamedHttp {
    /// Takes in what has arrived so far, waiting up to `wait` for more.
    pub async fn read(&mut self, answers: &mut mpsc::UnboundedReceiver<Answer>, wait: Duration) {
        while let Ok(Some(answer)) = tokio::time::timeout(wait, answers.recv()).await {
            match answer {
                Answer::Started {
                    streaming,
                    content_type,
                } => {
                    self.streaming = streaming;
                    self.content_type = content_type;
                }
                Answer::Chunk(chunk) => self.raw.extend_from_slice(&chunk),
                Answer::Error(e) => panic!("the function answered an error: {e}"),
                Answer::Done => {
                    self.done = true;
                    return;
                }
            }
        }
    }

    /// The prelude (status code, headers) once it is complete.
    pub fn prelude(&self) -> Option<Value> {
        let end = self.raw.windows(8).position(|w| w == [0u8; 8])?;
        serde_json::from_slice(&self.raw[..end]).ok()
    }

    /// The body so far, after the prelude.
    pub fn body(&self) -> String {
        match self.raw.windows(8).position(|w| w == [0u8; 8]) {
            Some(end) => String::from_utf8_lossy(&self.raw[end + 8..]).into_owned(),
            None => String::new(),
        }
    }
}

/// An API Gateway REST API proxy event (payload 1.0) for `method path?query` with `headers`,
/// under stage `prod`, as the dashboard's `/api/{proxy+}` resource receives it.
pub fn rest_api_event(
    method: &str,
    path: &str,
    query: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> Value {
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect();
    let multi: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.clone(), json!([v])))
        .collect();
    let query: serde_json::Map<String, Value> = query
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect();
    let multi_query: serde_json::Map<String, Value> =
        query.iter().map(|(k, v)| (k.clone(), json!([v]))).collect();
    let (query, multi_query) = if query.is_empty() {
        (Value::Null, Value::Null)
    } else {
        (Value::Object(query), Value::Object(multi_query))
    };
    json!({
        "resource": "/api/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": multi,
        "queryStringParameters": query,
        "multiValueQueryStringParameters": multi_query,
        "pathParameters": { "proxy": path.trim_start_matches("/api/") },
        "stageVariables": null,
        "requestContext": {
            "resourceId": "abc123",
            "resourcePath": "/api/{proxy+}",
            "httpMethod": method,
            "extendedRequestId": "c3RyZWFtaW5n",
            "requestTime": "07/Dec/2026:14:00:00 +0000",
            "path": format!("/prod{path}"),
            "accountId": "123456789012",
            "protocol": "HTTP/1.1",
            "stage": "prod",
            "domainPrefix": "abcdef1234",
            "requestTimeEpoch": jiff::Timestamp::now().as_millisecond(),
            "requestId": uuid::Uuid::new_v4().to_string(),
            "identity": { "sourceIp": "203.0.113.7", "userAgent": "Mozilla/5.0" },
            "domainName": "abcdef1234.execute-api.us-east-1.amazonaws.com",
            "apiId": "abcdef1234"
        },
        "body": null,
        "isBase64Encoded": false
    })
}
