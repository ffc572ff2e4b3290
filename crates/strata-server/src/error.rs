//! Errors as HTTP answers: SPEC's `{"error":{"kind","message","file","line"}}` body with
//! a status chosen from what went wrong.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use strata_core::{DriverErrorKind, Error, PlanError};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: serde_json::Value,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &str, message: impl Into<String>) -> Self {
        let message: String = message.into();
        ApiError {
            status,
            body: serde_json::json!({ "error": { "kind": kind, "message": message, "file": null, "line": null } }),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(kind: &str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, kind, message)
    }

    /// Another run of this database is in progress (here, or holding its lock).
    pub fn busy(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::CONFLICT, "locked", message)
    }

    pub fn kind(&self) -> &str {
        self.body["error"]["kind"].as_str().unwrap_or("")
    }
}

/// The status for a library error: an unknown version 404; a migration whose state
/// does not allow the request, a refusal for safety or a held lock 409; the database
/// unreachable 503; a broken migration or project 500.
pub fn status_of(e: &Error) -> StatusCode {
    match e {
        Error::Plan(PlanError::UnknownTarget(_)) => StatusCode::NOT_FOUND,
        Error::Plan(
            PlanError::NotApplied { .. }
            | PlanError::NoRollback { .. }
            | PlanError::AlreadyApplied { .. },
        ) => StatusCode::CONFLICT,
        Error::Driver(d) if d.kind == DriverErrorKind::Connect => StatusCode::SERVICE_UNAVAILABLE,
        e if e.exit_code() == 3 => StatusCode::CONFLICT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError {
            status: status_of(&e),
            body: e.to_json(),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::bad_request(r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::bad_request(r.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}
