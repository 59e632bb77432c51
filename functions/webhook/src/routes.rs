//! `/webhook`: the handshake and the deliveries.

use std::collections::HashMap;
use std::convert::Infallible;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use igflow_core::archive::ArchiveKey;
use igflow_core::envelope::Envelope;
use igflow_core::runtime::now_ms;
use igflow_core::signature::{SignatureError, token_matches};
use igflow_core::splitter::{self, SplitError};
use tracing::Instrument;

use crate::AppState;

pub fn router(max_body_bytes: usize) -> Router<AppState> {
    // Behind API Gateway's REST API, lambda_http keeps the stage in the path (/prod/webhook).
    Router::new()
        .route("/webhook", get(handshake).post(deliver))
        .route("/{stage}/webhook", get(handshake).post(deliver))
        .layer(DefaultBodyLimit::max(max_body_bytes))
}

/// Meta's subscription check: echo `hub.challenge` when the verify token matches.
async fn handshake(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let keys = state.keys.current();
    let mode = q.get("hub.mode").map(String::as_str);
    let token = q
        .get("hub.verify_token")
        .map(String::as_str)
        .unwrap_or_default();
    match (mode, q.get("hub.challenge")) {
        (Some("subscribe"), Some(challenge)) if token_matches(&keys.verify_token, token) => {
            tracing::info!("webhook subscription verified");
            ([(header::CONTENT_TYPE, "text/plain")], challenge.clone()).into_response()
        }
        _ => {
            tracing::warn!(mode, "webhook handshake refused");
            (StatusCode::FORBIDDEN, "verification failed").into_response()
        }
    }
}

/// Verifies, splits and enqueues. 200 only once the queue accepted every item, so that any
/// failure makes Meta redeliver (the worker's dedupe absorbs the repeat).
async fn deliver(
    State(state): State<AppState>,
    SignatureHeader(signature): SignatureHeader,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let response = accept(&state, signature.as_ref(), body).await;
    if state.flush_each_request {
        state.metrics.flush();
    }
    response
}

/// The delivery's `X-Hub-Signature-256`, the only header the webhook reads: taken alone, as
/// the `HeaderMap` extractor would copy every header of every request.
struct SignatureHeader(Option<HeaderValue>);

impl<S: Sync> FromRequestParts<S> for SignatureHeader {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        // Header names are case-insensitive in HeaderMap.
        Ok(Self(parts.headers.get("x-hub-signature-256").cloned()))
    }
}

async fn accept(
    state: &AppState,
    signature: Option<&HeaderValue>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let received_at_ms = now_ms();
    let body = match body {
        Ok(b) => b,
        Err(rejection) => {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                state.metrics.too_large();
            }
            tracing::warn!(status = %rejection.status(), "delivery body refused");
            return rejection.into_response();
        }
    };
    // The signature is never logged.
    let keys = state.keys.current();
    let verified = match keys
        .verifier
        .verify(signature.map(HeaderValue::as_bytes), &body)
    {
        Ok(v) => v,
        Err(e) => {
            state.metrics.signature_failure();
            tracing::warn!(error = %e, bytes = body.len(), "delivery refused");
            let status = match e {
                SignatureError::Missing | SignatureError::Malformed => StatusCode::UNAUTHORIZED,
                SignatureError::Mismatch => StatusCode::FORBIDDEN,
            };
            return (status, e.to_string()).into_response();
        }
    };
    let delivery_id = verified.delivery_id();
    let span = tracing::info_span!("delivery", %delivery_id, items = tracing::field::Empty);
    let split = splitter::split(verified, received_at_ms);
    // The name says whose events the delivery carries, for a data deletion to find them.
    let key = match &split {
        Ok(envelopes) => ArchiveKey::new(received_at_ms, delivery_id)
            .naming(envelopes.iter().map(|e| e.account_id.as_str())),
        Err(_) => ArchiveKey::new(received_at_ms, delivery_id),
    };
    let signature = signature.and_then(|v| v.to_str().ok());
    // The archive write overlaps the enqueue: Meta's answer waits for the slower of the two,
    // not for their sum, and depends on the queue alone. Boxed: the SDK calls' futures are
    // kilobytes, and inline they would make every request's future (forged ones too) that
    // large, copied at each move through the router (seen in callgrind as memcpy).
    Box::pin(
        async {
            let (response, ()) = tokio::join!(
                enqueue(state, split),
                archive(state, body.clone(), signature, &key)
            );
            response
        }
        .instrument(span),
    )
    .await
}

/// Enqueues what the delivery split into: 200 once the queue took every item, 503 (Meta
/// redelivers) otherwise, 400 for a signed body that is not a Meta payload.
async fn enqueue(state: &AppState, split: Result<Vec<Envelope>, SplitError>) -> Response {
    let envelopes = match split {
        Ok(envs) => envs,
        Err(e) => {
            state.metrics.malformed();
            tracing::warn!(error = %e, "signed delivery is not a Meta payload");
            return (StatusCode::BAD_REQUEST, e.to_string()).into_response();
        }
    };
    tracing::Span::current().record("items", envelopes.len());
    state.metrics.delivery(&envelopes);
    if envelopes.is_empty() {
        return (StatusCode::OK, "EVENT_RECEIVED").into_response();
    }
    match state.sink.send(&envelopes).await {
        Ok(()) => {
            tracing::info!("delivery enqueued");
            (StatusCode::OK, "EVENT_RECEIVED").into_response()
        }
        Err(e) => {
            state.metrics.enqueue_failure();
            tracing::error!(error = %e, "delivery not enqueued; Meta will redeliver");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "queue unavailable, retry later",
            )
                .into_response()
        }
    }
}

/// Keeps the verified delivery in the raw archive, when one is configured. A failure is
/// counted and logged; the answer to Meta does not depend on it.
async fn archive(state: &AppState, body: Bytes, signature: Option<&str>, key: &ArchiveKey) {
    let Some(archive) = &state.archive else {
        return;
    };
    if let Err(e) = archive.keep(body, signature, key).await {
        state.metrics.archive_failure();
        tracing::error!(error = %e, "delivery not archived");
    }
}
