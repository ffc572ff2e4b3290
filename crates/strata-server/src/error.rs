//! Errors as HTTP answers: SPEC's `{"error":{"kind","message","file","line"}}` body with
//! a status chosen from what went wrong.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::Request;
use axum::http::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use strata_core::{DriverErrorKind, Error, PlanError};

/// An error answer: its status and SPEC's JSON body.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// `{"error": {"kind", "message", "file", "line"}}`, with a run's partial results.
    pub body: serde_json::Value,
    /// The request was already written to `audit_log` (a run that was refused or
    /// failed); the refusal auditor leaves it alone.
    pub audited: bool,
}

/// Marks a response whose request is already in `audit_log`.
#[derive(Debug, Clone, Copy)]
pub struct Audited;

impl ApiError {
    /// An error of `kind` with `message`.
    pub fn new(status: StatusCode, kind: &str, message: impl Into<String>) -> Self {
        let message: String = message.into();
        ApiError {
            status,
            body: serde_json::json!({ "error": { "kind": kind, "message": message, "file": null, "line": null } }),
            audited: false,
        }
    }

    /// 400 `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 404 with `kind`.
    pub fn not_found(kind: &str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, kind, message)
    }

    /// Another run of this database is in progress (here, or holding its lock).
    pub fn busy(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::CONFLICT, "locked", message)
    }

    /// The error's `kind`.
    pub fn kind(&self) -> &str {
        self.body["error"]["kind"].as_str().unwrap_or("")
    }
}

/// The status for a library error: an unknown version 404; a migration whose state
/// does not allow the request, a refusal for safety or a held lock 409; a migration
/// whose own SQL failed 422 (the request was fine, the migration was not); a broken
/// migration file or config 422 too; the database unreachable 503. 500 is left for
/// what is nobody's fault but the server's.
pub fn status_of(e: &Error) -> StatusCode {
    match e {
        Error::Plan(PlanError::UnknownTarget(_)) => StatusCode::NOT_FOUND,
        Error::Plan(_) | Error::Refused(_) => StatusCode::CONFLICT,
        Error::Driver(d) if d.kind == DriverErrorKind::Connect => StatusCode::SERVICE_UNAVAILABLE,
        Error::Driver(d) if d.kind == DriverErrorKind::LockTimeout => StatusCode::CONFLICT,
        Error::Migration { .. } | Error::Source(_) | Error::SumMismatch(_) | Error::Config(_) => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        e if e.exit_code() == 3 => StatusCode::CONFLICT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError {
            status: status_of(&e),
            body: e.to_json(),
            audited: false,
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
        let invalid_token = self.body["error"]["kind"] == "invalid_token";
        let mut res = (self.status, Json(self.body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            // RFC 6750: the scheme to use, and whether a token was given but refused.
            let challenge = if invalid_token {
                "Bearer realm=\"strata\", error=\"invalid_token\""
            } else {
                "Bearer realm=\"strata\""
            };
            res.headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        } else if self.audited {
            res.extensions_mut().insert(Audited);
        }
        res
    }
}

/// Middleware: every error answer is SPEC's JSON error, including those axum makes
/// itself (405 with its `Allow`, 413 for a body over the limit, a rejected extractor).
pub async fn json_errors(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let res = next.run(req).await;
    let status = res.status();
    let is_json = res
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let kind = match status {
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::NOT_FOUND => "not_found",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    };
    let message = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            let allow = parts
                .headers
                .get(ALLOW)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            format!("this endpoint does not take {method}; it allows {allow}")
        }
        StatusCode::PAYLOAD_TOO_LARGE => "the request body is too large".to_string(),
        _ if !text.is_empty() => text,
        s => s.canonical_reason().unwrap_or("error").to_string(),
    };
    parts.headers.remove(CONTENT_LENGTH);
    parts
        .headers
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let body = ApiError::new(status, kind, message).body;
    Response::from_parts(parts, axum::body::Body::from(body.to_string()))
}
