//! Meta's app callbacks, required for App Review: `POST /meta/deauthorize` (an account removed
//! the app) and `POST /meta/data-deletion` (an account asks for its data to be deleted). Each
//! is a form with one field, `signed_request`, checked against the same app secrets as the
//! webhook's deliveries. A verified callback becomes one envelope on the events queue; the
//! worker disables or deletes the account. As with deliveries, 200 only once the queue took
//! it, so that Meta retries otherwise (the event id is stable across retries).
//!
//! The signed request's `user_id` is matched against `ig_accounts.ig_user_id`: with Instagram
//! Login the app user is the professional account. To be confirmed with a real app before
//! launch.

use std::fmt::Display;

use axum::extract::rejection::FormRejection;
use axum::extract::{DefaultBodyLimit, Form, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use igflow_core::runtime::now_ms;
use igflow_core::signed_request::{self, Callback};
use serde::Deserialize;
use serde_json::json;
use tracing::Instrument;

use crate::AppState;

/// A signed request is a few hundred bytes; nothing larger is read.
const MAX_BODY_BYTES: usize = 16 * 1024;

pub fn router() -> Router<AppState> {
    // Behind API Gateway's REST API, lambda_http keeps the stage in the path.
    Router::new()
        .route("/meta/deauthorize", post(deauthorize))
        .route("/{stage}/meta/deauthorize", post(deauthorize))
        .route("/meta/data-deletion", post(data_deletion))
        .route("/{stage}/meta/data-deletion", post(data_deletion))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

#[derive(Deserialize)]
struct CallbackForm {
    /// Optional here so that its absence gets our own 400 and message.
    signed_request: Option<String>,
}

type CallbackBody = Result<Form<CallbackForm>, FormRejection>;

async fn deauthorize(State(state): State<AppState>, form: CallbackBody) -> Response {
    let response = accept(&state, Callback::Deauthorize, form).await;
    if state.flush_each_request {
        state.metrics.flush();
    }
    response
}

async fn data_deletion(State(state): State<AppState>, form: CallbackBody) -> Response {
    let response = accept(&state, Callback::DataDeletion, form).await;
    if state.flush_each_request {
        state.metrics.flush();
    }
    response
}

/// Every refusal is JSON, so that Meta's dashboard and operators see why.
fn error(status: StatusCode, message: impl Display) -> Response {
    (status, Json(json!({ "error": message.to_string() }))).into_response()
}

async fn accept(state: &AppState, callback: Callback, form: CallbackBody) -> Response {
    let received_at_ms = now_ms();
    let kind = callback.kind().as_str();
    // Meta needs the status URL in the answer; without one, a retry later is the only honest
    // answer (and the API's 5xx alarm tells the operator).
    let status_url = match (callback, &state.deletion_status_url) {
        (Callback::Deauthorize, _) => None,
        (Callback::DataDeletion, Some(url)) => Some(url.clone()),
        (Callback::DataDeletion, None) => {
            tracing::error!("data deletion request refused: IGFLOW_DELETION_STATUS_URL is not set");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "data deletion requests are not configured (IGFLOW_DELETION_STATUS_URL is not set)",
            );
        }
    };
    let raw = match form {
        Ok(Form(CallbackForm {
            signed_request: Some(raw),
        })) => raw,
        Ok(_) => {
            state.metrics.malformed_callback();
            tracing::warn!(kind, "app callback without signed_request refused");
            return error(
                StatusCode::BAD_REQUEST,
                "the form has no signed_request field",
            );
        }
        Err(rejection) => {
            state.metrics.malformed_callback();
            let status = match rejection.status() {
                s @ (StatusCode::PAYLOAD_TOO_LARGE | StatusCode::UNSUPPORTED_MEDIA_TYPE) => s,
                _ => StatusCode::BAD_REQUEST,
            };
            tracing::warn!(kind, %status, "app callback body refused");
            return error(status, rejection.body_text());
        }
    };
    let keys = state.keys.current();
    let request = match signed_request::verify(&keys.verifier, &raw, received_at_ms) {
        Ok(r) => r,
        Err(e) => {
            let status = if e.is_forgery() {
                state.metrics.callback_signature_failure();
                StatusCode::FORBIDDEN
            } else {
                state.metrics.malformed_callback();
                StatusCode::BAD_REQUEST
            };
            // The message names the problem, never the request or a secret.
            tracing::warn!(kind, error = %e, "app callback refused");
            return error(status, e);
        }
    };
    let envelope = request.envelope(callback, received_at_ms);
    let span = tracing::info_span!(
        "app_callback",
        kind,
        event_id = %envelope.event_id,
        account_id = %envelope.account_id,
    );
    async move {
        state.metrics.callback(&envelope);
        if let Err(e) = state.sink.send(std::slice::from_ref(&envelope)).await {
            state.metrics.enqueue_failure();
            tracing::error!(error = %e, "app callback not enqueued; Meta will retry");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "queue unavailable, retry later",
            );
        }
        tracing::info!("app callback enqueued");
        match status_url {
            None => (StatusCode::OK, Json(json!({ "status": "received" }))).into_response(),
            Some(base) => {
                let code = request.confirmation_code();
                let separator = if base.contains('?') { '&' } else { '?' };
                let body = json!({
                    "url": format!("{base}{separator}code={code}"),
                    "confirmation_code": code,
                });
                (StatusCode::OK, Json(body)).into_response()
            }
        }
    }
    .instrument(span)
    .await
}
