//! Errors as JSON answers: `{"error": "..."}`, plus `fields` for a campaign refused by field.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use igflow_core::campaign_file::FieldError;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    /// Also what a resource of another tenant looks like: Row Level Security hides it.
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    BadRequest(String),
    #[error("the campaign has problems: fix the fields shown")]
    Invalid(Vec<FieldError>),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    RateLimited(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Upstream(String),
    #[error("{0}")]
    Internal(String),
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::RowNotFound = e {
            return Self::NotFound;
        }
        if let Some(db) = e.as_database_error() {
            match db.code().as_deref() {
                // Row Level Security or a missing grant: the role may read but not write.
                Some("42501") => {
                    return Self::Forbidden(
                        "your role in this workspace cannot change this (ask an owner)".into(),
                    );
                }
                Some("23514") | Some("22P02") | Some("23502") => {
                    return Self::BadRequest(db.message().to_owned());
                }
                Some("23505") => return Self::Conflict(db.message().to_owned()),
                _ => {}
            }
        }
        Self::Internal(format!("postgres: {e}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Upstream(_) => StatusCode::BAD_GATEWAY,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let body = match &self {
            Self::Invalid(fields) => json!({ "error": self.to_string(), "fields": fields }),
            Self::Internal(detail) => {
                tracing::error!(error = %detail, "request failed");
                json!({ "error": "something went wrong on our side; try again" })
            }
            other => json!({ "error": other.to_string() }),
        };
        (status, Json(body)).into_response()
    }
}
