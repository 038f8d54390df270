//! The one error type of the handlers. Every refusal is a one-line plain-text page with
//! its 4xx status; axum's own rejections (a malformed query string, form or path) are
//! turned into these too, so no bad input ever reads as a 5xx.

use std::time::Duration;

use axum::extract::rejection::{FormRejection, PathRejection, QueryRejection};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("not found")]
    NotFound,
    /// The request asked for something that cannot be (an unknown range, a malformed
    /// query string): the message, one line, is the page.
    #[error("{0}")]
    BadRequest(String),
    /// A form without its CSRF token, or with another session's.
    #[error("{0}")]
    Forbidden(String),
    /// Too many failed sign-ins from this address; try again after `retry_after`.
    #[error("too many failed sign-ins from your address; try again in {} s", retry_secs(.retry_after))]
    TooManyAttempts { retry_after: Duration },
    /// Input axum refused before a handler ran, with axum's 4xx status.
    #[error("{1}")]
    Rejected(StatusCode, String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Whole seconds, rounded up: `Retry-After` never says 0 while the lock holds.
fn retry_secs(d: &Duration) -> u64 {
    d.as_millis().div_ceil(1000).max(1) as u64
}

impl From<rusqlite::Error> for AppError {
    fn from(e: rusqlite::Error) -> Self {
        AppError::Internal(e.into())
    }
}

impl From<askama::Error> for AppError {
    fn from(e: askama::Error) -> Self {
        AppError::Internal(e.into())
    }
}

impl From<tokio::task::JoinError> for AppError {
    fn from(e: tokio::task::JoinError) -> Self {
        AppError::Internal(e.into())
    }
}

/// A rejection as one line under `what`, keeping axum's status unless it is a 5xx (which
/// only a route table mistake causes, and which is ours to log).
fn rejected(what: &str, status: StatusCode, text: String) -> AppError {
    let line = format!("{what}: {}", text.replace('\n', " "));
    if status.is_server_error() {
        AppError::Internal(anyhow::anyhow!(line))
    } else {
        AppError::Rejected(status, line)
    }
}

impl From<QueryRejection> for AppError {
    fn from(e: QueryRejection) -> Self {
        rejected("malformed query string", StatusCode::BAD_REQUEST, e.body_text())
    }
}

impl From<FormRejection> for AppError {
    fn from(e: FormRejection) -> Self {
        rejected("malformed form", e.status(), e.body_text())
    }
}

impl From<PathRejection> for AppError {
    fn from(e: PathRejection) -> Self {
        rejected("malformed path", e.status(), e.body_text())
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match self {
            AppError::NotFound => (StatusCode::NOT_FOUND, "not found").into_response(),
            AppError::BadRequest(message) => (StatusCode::BAD_REQUEST, message).into_response(),
            AppError::Forbidden(message) => (StatusCode::FORBIDDEN, message).into_response(),
            e @ AppError::TooManyAttempts { retry_after } => {
                let retry = retry_secs(&retry_after).to_string();
                (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, retry)], e.to_string()).into_response()
            }
            AppError::Rejected(status, message) => (status, message).into_response(),
            AppError::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
            }
        }
    }
}
