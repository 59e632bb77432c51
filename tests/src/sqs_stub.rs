//! An in-memory stand-in for one SQS queue, speaking SQS's JSON protocol over HTTP, for the
//! benchmarks moto cannot feed (it serves about 130 messages/s). The real SDK client talks to
//! it (`AWS_ENDPOINT_URL_SQS`). It keeps SQS's contract where the worker depends on it: a
//! received message is hidden for its visibility timeout and comes back afterwards with its
//! receive count raised; a receipt handle is valid until its message is received again;
//! `DelaySeconds` hides a new message; long polls wait for a message to arrive. Every answer
//! may first wait `latency`, as SQS answers in milliseconds.
//!
//! It also times each message from its receive to its delete, which is what the worker
//! benchmark reports.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use md5::{Digest, Md5};
use serde_json::{Value, json};
use tokio::sync::Notify;

const JSON_1_0: (&str, &str) = ("content-type", "application/x-amz-json-1.0");
/// How often a long poll looks again for messages whose visibility or delay ended.
const RECHECK: Duration = Duration::from_millis(20);

struct Stored {
    id: String,
    body: String,
    md5: String,
    receives: u32,
}

struct Held {
    message: Stored,
    handle: String,
    visible_at: Instant,
    received_at: Instant,
}

#[derive(Default)]
struct Queue {
    ready: VecDeque<Stored>,
    delayed: Vec<(Instant, Stored)>,
    /// Received and not yet deleted, by message id.
    held: HashMap<String, Held>,
    sent: u64,
    deleted: u64,
    /// API calls answered.
    calls: u64,
    /// Sent messages are counted and dropped, for a sender's benchmark.
    discard: bool,
    /// Receive-to-delete times of the deleted messages, since the last `take_latencies`.
    latencies: Vec<Duration>,
}

impl Queue {
    /// Makes visible again what is due: delayed messages, and held ones whose visibility ended.
    fn promote(&mut self, now: Instant) {
        let (due, later): (Vec<_>, Vec<_>) = self.delayed.drain(..).partition(|(at, _)| *at <= now);
        self.delayed = later;
        self.ready.extend(due.into_iter().map(|(_, m)| m));
        let expired: Vec<String> = self
            .held
            .iter()
            .filter(|(_, h)| h.visible_at <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            if let Some(h) = self.held.remove(&id) {
                self.ready.push_back(h.message);
            }
        }
    }

    fn add(&mut self, body: String, delay: Duration) -> (String, String) {
        self.sent += 1;
        let message = Stored {
            id: format!("{:08x}-{:024x}", self.sent, fastrand::u128(..)),
            md5: hex::encode(Md5::digest(body.as_bytes())),
            body,
            receives: 0,
        };
        let answer = (message.id.clone(), message.md5.clone());
        if self.discard {
            return answer;
        }
        if delay.is_zero() {
            self.ready.push_back(message);
        } else {
            self.delayed.push((Instant::now() + delay, message));
        }
        answer
    }

    fn receive(&mut self, max: usize, visibility: Duration) -> Vec<Value> {
        let now = Instant::now();
        self.promote(now);
        let mut out = Vec::new();
        while out.len() < max {
            let Some(mut message) = self.ready.pop_front() else {
                break;
            };
            message.receives += 1;
            let handle = format!("{}#{}", message.id, message.receives);
            out.push(json!({
                "MessageId": message.id,
                "ReceiptHandle": handle,
                "MD5OfBody": message.md5,
                "Body": message.body,
                "Attributes": { "ApproximateReceiveCount": message.receives.to_string() },
            }));
            let id = message.id.clone();
            let held = Held {
                message,
                handle,
                visible_at: now + visibility,
                received_at: now,
            };
            self.held.insert(id, held);
        }
        out
    }

    /// The held message `handle` names, if it is still the latest receive's.
    fn held_mut(&mut self, handle: &str) -> Option<&mut Held> {
        let id = handle.split_once('#')?.0;
        self.held.get_mut(id).filter(|h| h.handle == handle)
    }

    fn delete(&mut self, handle: &str) -> bool {
        let Some(h) = self.held_mut(handle) else {
            return false;
        };
        let id = h.message.id.clone();
        if let Some(h) = self.held.remove(&id) {
            self.deleted += 1;
            self.latencies.push(h.received_at.elapsed());
        }
        true
    }

    fn change_visibility(&mut self, handle: &str, timeout: Duration) -> bool {
        let Some(h) = self.held_mut(handle) else {
            return false;
        };
        h.visible_at = Instant::now() + timeout;
        true
    }
}

struct State {
    queue: Mutex<Queue>,
    arrived: Notify,
    latency: Duration,
}

impl State {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What the queue holds and has done, at one moment.
#[derive(Debug, Clone, Copy)]
pub struct QueueCounts {
    pub visible: usize,
    pub in_flight: usize,
    pub delayed: usize,
    pub sent: u64,
    pub deleted: u64,
    /// API calls answered, of any kind.
    pub calls: u64,
}

pub struct SqsStub {
    /// The endpoint, for `AWS_ENDPOINT_URL_SQS`.
    pub endpoint: String,
    /// The queue's URL (any URL at the endpoint names the one queue).
    pub queue_url: String,
    state: Arc<State>,
}

impl SqsStub {
    /// Serves the stub on a free local port; every answer waits `latency` first.
    pub async fn start(latency: Duration) -> anyhow::Result<Self> {
        Self::serve(latency, false).await
    }

    /// A stub that accepts and counts what is sent but keeps none of it: a sink for measuring
    /// a sender without the stub's memory growing.
    pub async fn discarding(latency: Duration) -> anyhow::Result<Self> {
        Self::serve(latency, true).await
    }

    async fn serve(latency: Duration, discard: bool) -> anyhow::Result<Self> {
        let state = Arc::new(State {
            queue: Mutex::new(Queue {
                discard,
                ..Queue::default()
            }),
            arrived: Notify::new(),
            latency,
        });
        let shared = Arc::clone(&state);
        let app =
            axum::Router::new().fallback(move |headers: HeaderMap, body: axum::body::Bytes| {
                let state = Arc::clone(&shared);
                async move { answer(&state, &headers, &body).await }
            });
        let endpoint = crate::serve_local(app, 0).await?;
        Ok(Self {
            queue_url: format!("{endpoint}/123456789012/igflow-bench"),
            endpoint,
            state,
        })
    }

    /// Puts messages on the queue directly, as many `SendMessageBatch` calls would.
    pub fn push(&self, bodies: impl IntoIterator<Item = String>) {
        let mut queue = self.state.queue();
        for body in bodies {
            queue.add(body, Duration::ZERO);
        }
        drop(queue);
        self.state.arrived.notify_waiters();
    }

    pub fn counts(&self) -> QueueCounts {
        let queue = self.state.queue();
        QueueCounts {
            visible: queue.ready.len(),
            in_flight: queue.held.len(),
            delayed: queue.delayed.len(),
            sent: queue.sent,
            deleted: queue.deleted,
            calls: queue.calls,
        }
    }

    /// The receive-to-delete times recorded since the last call.
    pub fn take_latencies(&self) -> Vec<Duration> {
        std::mem::take(&mut self.state.queue().latencies)
    }
}

fn error(code: &str, message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [JSON_1_0],
        json!({ "__type": format!("com.amazonaws.sqs#{code}"), "message": message }).to_string(),
    )
        .into_response()
}

fn seconds(v: &Value) -> Option<Duration> {
    v.as_u64().map(Duration::from_secs)
}

async fn answer(state: &State, headers: &HeaderMap, body: &[u8]) -> Response {
    state.queue().calls += 1;
    tokio::time::sleep(state.latency).await;
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return error("InvalidRequest", "the body is not JSON");
    };
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let out = match target.strip_prefix("AmazonSQS.").unwrap_or_default() {
        "ReceiveMessage" => receive(state, &request).await,
        "SendMessage" => {
            let delay = seconds(&request["DelaySeconds"]).unwrap_or_default();
            let body = request["MessageBody"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let (id, md5) = state.queue().add(body, delay);
            state.arrived.notify_waiters();
            json!({ "MessageId": id, "MD5OfMessageBody": md5 })
        }
        "SendMessageBatch" => {
            let out = each_entry(state, &request, |queue, e| {
                let delay = seconds(&e["DelaySeconds"]).unwrap_or_default();
                let (id, md5) = queue.add(
                    e["MessageBody"].as_str().unwrap_or_default().to_owned(),
                    delay,
                );
                Some(json!({ "Id": e["Id"], "MessageId": id, "MD5OfMessageBody": md5 }))
            });
            state.arrived.notify_waiters();
            out
        }
        "DeleteMessage" => match state
            .queue()
            .delete(request["ReceiptHandle"].as_str().unwrap_or_default())
        {
            true => json!({}),
            false => {
                return error(
                    "ReceiptHandleIsInvalid",
                    "the receipt handle is not the latest",
                );
            }
        },
        "DeleteMessageBatch" => each_entry(state, &request, |queue, e| {
            queue
                .delete(e["ReceiptHandle"].as_str().unwrap_or_default())
                .then(|| json!({ "Id": e["Id"] }))
        }),
        "ChangeMessageVisibilityBatch" => each_entry(state, &request, |queue, e| {
            let timeout = seconds(&e["VisibilityTimeout"]).unwrap_or_default();
            queue
                .change_visibility(e["ReceiptHandle"].as_str().unwrap_or_default(), timeout)
                .then(|| json!({ "Id": e["Id"] }))
        }),
        "GetQueueAttributes" => {
            let mut queue = state.queue();
            queue.promote(Instant::now());
            json!({ "Attributes": {
                "ApproximateNumberOfMessages": queue.ready.len().to_string(),
                "ApproximateNumberOfMessagesNotVisible": queue.held.len().to_string(),
                "ApproximateNumberOfMessagesDelayed": queue.delayed.len().to_string(),
            }})
        }
        other => {
            return error(
                "UnsupportedOperation",
                &format!("the stub does not serve {other:?}"),
            );
        }
    };
    ([JSON_1_0], out.to_string()).into_response()
}

/// A batch answer: each entry `apply` accepts is `Successful`, the others `Failed` as SQS
/// reports a stale receipt handle.
fn each_entry(
    state: &State,
    request: &Value,
    apply: impl Fn(&mut Queue, &Value) -> Option<Value>,
) -> Value {
    let mut queue = state.queue();
    let (mut ok, mut failed) = (Vec::new(), Vec::new());
    for e in request["Entries"].as_array().into_iter().flatten() {
        match apply(&mut queue, e) {
            Some(v) => ok.push(v),
            None => failed.push(json!({
                "Id": e["Id"], "Code": "ReceiptHandleIsInvalid", "SenderFault": true,
                "Message": "the receipt handle is not the latest",
            })),
        }
    }
    json!({ "Successful": ok, "Failed": failed })
}

async fn receive(state: &State, request: &Value) -> Value {
    let max = request["MaxNumberOfMessages"]
        .as_u64()
        .unwrap_or(1)
        .clamp(1, 10) as usize;
    let visibility = seconds(&request["VisibilityTimeout"]).unwrap_or(Duration::from_secs(30));
    let wait = seconds(&request["WaitTimeSeconds"]).unwrap_or_default();
    let until = Instant::now() + wait;
    loop {
        let arrived = state.arrived.notified();
        let messages = state.queue().receive(max, visibility);
        let left = until.saturating_duration_since(Instant::now());
        if !messages.is_empty() || left.is_zero() {
            return json!({ "Messages": messages });
        }
        let _ = tokio::time::timeout(left.min(RECHECK), arrived).await;
    }
}
