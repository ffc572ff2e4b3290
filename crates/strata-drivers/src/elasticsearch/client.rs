//! A thin JSON-over-HTTP client: the REST API is the contract every Elasticsearch and
//! OpenSearch version shares, where the official crates each follow one product.

use reqwest::{Method, StatusCode};
use serde_json::Value;
use strata_core::{DriverError, DriverErrorKind};

/// The cluster a URL names; code migrations reach it through
/// `CodeContext::client::<strata_drivers::elasticsearch::Client>()`.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: reqwest::Url,
    user: Option<(String, Option<String>)>,
}

impl Client {
    /// `http(s)://`, `elasticsearch://` (HTTP), `elasticsearch+https://`, and the same
    /// with `opensearch`; user and password in the URL become basic auth.
    pub fn new(url: &str) -> Result<Self, DriverError> {
        let invalid = |m: String| DriverError::new(DriverErrorKind::InvalidUrl, m);
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| invalid(format!("`{}` is not a URL", strata_core::redact(url))))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" | "elasticsearch" | "opensearch" => "http",
            "https" | "elasticsearch+https" | "opensearch+https" => "https",
            other => return Err(invalid(format!("`{other}` is not an Elasticsearch scheme"))),
        };
        let mut base = reqwest::Url::parse(&format!("{scheme}://{rest}")).map_err(|e| {
            invalid(format!(
                "invalid Elasticsearch URL {}: {e}",
                strata_core::redact(url)
            ))
        })?;
        let user = (!base.username().is_empty()).then(|| {
            (
                percent_decode(base.username()),
                base.password().map(percent_decode),
            )
        });
        let _ = base.set_username("");
        let _ = base.set_password(None);
        base.set_query(None);
        if !base.path().ends_with('/') {
            let p = format!("{}/", base.path());
            base.set_path(&p);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| DriverError::new(DriverErrorKind::Other, e.to_string()))?;
        Ok(Client { http, base, user })
    }

    /// The base URL, without credentials.
    pub fn url(&self) -> &str {
        self.base.as_str()
    }

    /// Sends a request; any HTTP status comes back with its JSON body (`null` if none).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), DriverError> {
        let url = self.base.join(path.trim_start_matches('/')).map_err(|e| {
            DriverError::new(
                DriverErrorKind::Other,
                format!("bad request path {path}: {e}"),
            )
        })?;
        let mut req = self.http.request(method, url);
        if let Some((u, p)) = &self.user {
            req = req.basic_auth(u, p.as_ref());
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| {
            let kind = if e.is_connect() {
                DriverErrorKind::Connect
            } else {
                DriverErrorKind::Other
            };
            DriverError::new(kind, format!("{}: {e}", self.base))
                .retryable(e.is_connect() || e.is_timeout())
        })?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| DriverError::new(DriverErrorKind::Other, e.to_string()).retryable(true))?;
        let value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok((status, value))
    }

    /// Sends a request and turns an error status into an error naming the server's reason.
    pub async fn ok(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, DriverError> {
        let (status, value) = self.send(method, path, body).await?;
        if status.is_success() {
            Ok(value)
        } else {
            Err(error(status, &value))
        }
    }
}

/// `{"error": {"type", "reason"}, "status"}` (or `{"error": "text"}`) as a driver error.
pub(crate) fn error(status: StatusCode, body: &Value) -> DriverError {
    let (kind, reason) = match body.get("error") {
        Some(Value::Object(e)) => (
            e.get("type").and_then(Value::as_str).map(str::to_string),
            e.get("reason")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        ),
        Some(Value::String(s)) => (None, s.clone()),
        _ => (None, body.to_string()),
    };
    let transient = matches!(status.as_u16(), 429 | 502 | 503 | 504);
    let mut err =
        DriverError::query(format!("HTTP {}: {reason}", status.as_u16())).retryable(transient);
    err.code = kind;
    err
}

/// `%XX` escapes in URL user info.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A path segment with everything but unreserved characters escaped.
pub(crate) fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
