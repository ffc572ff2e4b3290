//! Requests from other web pages. A browser lets any page send a "simple" cross-site
//! POST (a form, or `fetch` with `text/plain`) to a server on the user's machine, and a
//! DNS-rebinding page can even read answers by pointing a name it controls at
//! 127.0.0.1. With no token configured (loopback) either could migrate or roll back a
//! database. So, in every mode:
//!
//! - `Host` must be an IP address, `localhost`, or a name in `[server] hosts`: a
//!   rebinding page's requests carry its own name;
//! - a request that changes state carries its body as `application/json` (which a page
//!   can send cross-site only after a CORS preflight this server never grants), and if
//!   it says where it comes from (`Origin`, `Sec-Fetch-Site`), that is this server's
//!   own console or an origin in `[server] origins`.

use std::net::IpAddr;

use axum::extract::{Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, ORIGIN};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::ApiState;

pub async fn same_site_json(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    let server = &state.config().server;
    let host = request_host(&req);
    if let Err(e) = host_allowed(host.as_deref(), &server.hosts) {
        return e.into_response();
    }
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    if let Err(e) = json_body(req.headers()) {
        return e.into_response();
    }
    if let Err(e) = same_origin(req.headers(), host.as_deref(), &server.origins) {
        return e.into_response();
    }
    next.run(req).await
}

/// `Host`, or the URI's authority (HTTP/2).
fn request_host(req: &Request) -> Option<String> {
    req.headers()
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
}

/// The name part of `host[:port]` (IPv6 literals keep their brackets off).
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    host.rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host, |(name, _)| name)
}

fn host_allowed(host: Option<&str>, configured: &[String]) -> Result<(), ApiError> {
    let Some(host) = host.filter(|h| !h.is_empty()) else {
        return Err(misdirected("the request has no Host header".into()));
    };
    let name = host_name(host);
    let ok = name.parse::<IpAddr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || configured
            .iter()
            .any(|c| host_name(c).eq_ignore_ascii_case(name));
    if ok {
        Ok(())
    } else {
        Err(misdirected(format!(
            "this server does not answer to the name `{name}`; add it to [server] hosts in strata.toml if clients reach the server by that name"
        )))
    }
}

fn misdirected(message: String) -> ApiError {
    ApiError::new(StatusCode::MISDIRECTED_REQUEST, "host_not_allowed", message)
}

fn json_body(headers: &HeaderMap) -> Result<(), ApiError> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let has_body = text(CONTENT_LENGTH.as_str()).is_some_and(|n| n.trim() != "0")
        || headers.contains_key(CONTENT_TYPE)
        || headers.contains_key("transfer-encoding");
    let json = text(CONTENT_TYPE.as_str())
        .and_then(|t| t.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    if has_body && !json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "a request that changes state sends its body as Content-Type: application/json",
        ));
    }
    Ok(())
}

fn same_origin(
    headers: &HeaderMap,
    host: Option<&str>,
    allowed: &[String],
) -> Result<(), ApiError> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let Some(origin) = text(ORIGIN.as_str()) else {
        // No Origin: a non-browser client, unless the browser says it is cross-site.
        if text("sec-fetch-site").is_some_and(|s| s.eq_ignore_ascii_case("cross-site")) {
            return Err(cross_site("Sec-Fetch-Site: cross-site"));
        }
        return Ok(());
    };
    // `Origin: null` (a sandboxed page, a file) is never this server.
    let origin = origin.trim_end_matches('/');
    let host = host.unwrap_or("");
    let own = !host.is_empty()
        && ["http://", "https://"]
            .iter()
            .any(|scheme| origin.eq_ignore_ascii_case(&format!("{scheme}{host}")));
    let listed = allowed
        .iter()
        .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(origin));
    if own || listed {
        Ok(())
    } else {
        Err(cross_site(&format!("Origin {origin}")))
    }
}

fn cross_site(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "cross_origin",
        format!("refused a request from another site ({what}): only this server's own console, the origins in [server] origins and non-browser clients may change state"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_ip_addresses_localhost_or_configured() {
        let conf = vec!["strata.example.com".to_string()];
        for ok in [
            "127.0.0.1:8080",
            "[::1]:9",
            "10.0.0.7",
            "localhost:80",
            "LOCALHOST",
            "strata.example.com:443",
        ] {
            assert!(host_allowed(Some(ok), &conf).is_ok(), "{ok}");
        }
        for bad in [
            "evil.example:8080",
            "127.0.0.1.nip.io:8080",
            "localhost.evil.example",
            "",
            "example.com",
        ] {
            assert!(host_allowed(Some(bad), &conf).is_err(), "{bad}");
        }
        assert!(host_allowed(None, &conf).is_err());
    }

    #[test]
    fn origins_are_this_server_or_listed() {
        let mut h = HeaderMap::new();
        let listed = vec!["https://ops.example.com/".to_string()];
        h.insert(ORIGIN, "http://127.0.0.1:8080".parse().unwrap());
        assert!(same_origin(&h, Some("127.0.0.1:8080"), &[]).is_ok());
        assert!(same_origin(&h, Some("127.0.0.1:9090"), &[]).is_err());
        h.insert(ORIGIN, "https://ops.example.com".parse().unwrap());
        assert!(same_origin(&h, Some("127.0.0.1:8080"), &listed).is_ok());
        h.insert(ORIGIN, "null".parse().unwrap());
        assert!(same_origin(&h, Some("127.0.0.1:8080"), &listed).is_err());
    }
}
