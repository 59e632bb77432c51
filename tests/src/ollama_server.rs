//! A local stand-in for Ollama: `POST /api/chat` in its non-streaming wire format (the only
//! shape the intent classifier sends), a settable behaviour (a label, free text, a slow
//! answer, a server error, no answer at all), and a log of every request for the tests to
//! inspect.

use std::time::Duration;

use crate::locked::Locked;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

/// How the server answers `/api/chat`.
#[derive(Debug, Clone)]
pub enum Mode {
    /// `{"label": "<label>"}` as the message content, as a schema-constrained model answers.
    Label(String),
    /// The same, after a delay.
    Slow(String, Duration),
    /// Free text, as a model ignoring the format would answer.
    Garbage,
    /// Never answers.
    Hang,
    /// HTTP 500 with Ollama's `{"error": ...}` body.
    ServerError,
}

/// What a model answering free text says.
pub const GARBAGE: &str = "Sure! This commenter clearly wants to buy, so: purchase.";
/// Every answer carries this `created_at`; no test orders answers by time.
const CREATED_AT: &str = "2026-11-22T00:00:00.000000Z";

struct ServerState {
    mode: Mode,
    requests: Vec<Value>,
}

type Shared = Locked<ServerState>;

pub struct OllamaTestServer {
    /// The base URL, as `OLLAMA_URL` takes it.
    pub url: String,
    shared: Shared,
}

impl OllamaTestServer {
    /// Serves on 127.0.0.1 at `port` (0 picks a free one) until the runtime ends.
    pub async fn start(port: u16, mode: Mode) -> std::io::Result<Self> {
        let shared = Locked::new(ServerState {
            mode,
            requests: Vec::new(),
        });
        let app = Router::new()
            .route("/api/chat", post(chat))
            .with_state(shared.clone());
        let url = crate::serve_local(app, port).await?;
        Ok(Self { url, shared })
    }

    /// Answers this way from the next request on.
    pub fn set_mode(&self, mode: Mode) {
        self.shared.lock().mode = mode;
    }

    /// Every request body received, in order.
    pub fn requests(&self) -> Vec<Value> {
        self.shared.lock().requests.clone()
    }

    pub fn calls(&self) -> usize {
        self.shared.lock().requests.len()
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// A final (`done`) non-streaming answer with Ollama's timing fields.
fn answer(model: &str, content: &str) -> Response {
    Json(json!({
        "model": model,
        "created_at": CREATED_AT,
        "message": { "role": "assistant", "content": content },
        "done": true,
        "done_reason": "stop",
        "total_duration": 182_000_000,
        "load_duration": 12_000_000,
        "prompt_eval_count": 160,
        "prompt_eval_duration": 120_000_000,
        "eval_count": 7,
        "eval_duration": 50_000_000,
    }))
    .into_response()
}

async fn chat(State(shared): State<Shared>, Json(body): Json<Value>) -> Response {
    let mode = {
        let mut state = shared.lock();
        state.requests.push(body.clone());
        state.mode.clone()
    };
    let Some(model) = body["model"].as_str().filter(|m| !m.is_empty()) else {
        return error(StatusCode::BAD_REQUEST, "model is required");
    };
    let label = |l: &str| json!({ "label": l }).to_string();
    match mode {
        Mode::Label(l) => answer(model, &label(&l)),
        Mode::Slow(l, delay) => {
            tokio::time::sleep(delay).await;
            answer(model, &label(&l))
        }
        Mode::Garbage => answer(model, GARBAGE),
        Mode::Hang => std::future::pending().await,
        Mode::ServerError => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "llama runner process has terminated: signal: killed",
        ),
    }
}
