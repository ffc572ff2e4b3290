//! Requests from other web pages. A browser lets any page send a "simple" cross-site
//! POST (a form, or `fetch` with `text/plain`) to a server on the user's machine: with
//! no token configured (loopback), that alone could migrate or roll back a database.
//! So a request that changes state must carry its body as `application/json` (which a
//! page can only send cross-site after a CORS preflight this server never grants), and
//! one that says where it comes from (`Origin`, `Sec-Fetch-Site`) must come from this
//! server's own pages.

use axum::extract::Request;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, ORIGIN};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

pub async fn same_origin_json(req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let headers = req.headers();
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let has_body = text(CONTENT_LENGTH.as_str()).is_some_and(|n| n.trim() != "0")
        || headers.contains_key(CONTENT_TYPE)
        || headers.contains_key("transfer-encoding");
    let json = text(CONTENT_TYPE.as_str())
        .and_then(|t| t.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    if has_body && !json {
        return ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "a request that changes state sends its body as Content-Type: application/json",
        )
        .into_response();
    }
    if text("sec-fetch-site").is_some_and(|s| s.eq_ignore_ascii_case("cross-site")) {
        return cross_site("Sec-Fetch-Site: cross-site");
    }
    if let Some(origin) = text(ORIGIN.as_str()) {
        // `Origin: null` (a sandboxed page, a file) is never this server.
        let host = text(HOST.as_str()).unwrap_or("");
        let own = ["http://", "https://"]
            .iter()
            .any(|scheme| origin.eq_ignore_ascii_case(&format!("{scheme}{host}")));
        if host.is_empty() || !own {
            return cross_site(&format!("Origin {origin}"));
        }
    }
    next.run(req).await
}

fn cross_site(what: &str) -> Response {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "cross_origin",
        format!("refused a request from another site ({what}): only this server's own console and non-browser clients may change state"),
    )
    .into_response()
}
