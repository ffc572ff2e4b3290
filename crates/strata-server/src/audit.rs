//! Every request that could change a database leaves an `audit_log` row: the runs
//! themselves (`api_migrate`, `api_rollback`, ... with their outcome and counts), and
//! the attempts refused before they ran (`api_refused`: no or a wrong token, a viewer's
//! token, another site, a run already in progress) with who, from where and why.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::USER_AGENT;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::{json, Value};
use strata_core::{AuditEntry, Driver};

use crate::auth::token_name;
use crate::error::Audited;
use crate::state::ApiState;

/// Writes `entry` where the history tables exist; a failure to write it is logged,
/// not fatal (a run's own rows are already committed).
pub(crate) async fn write(d: &mut dyn Driver, entry: &AuditEntry) {
    if !matches!(d.has_history().await, Ok(true)) {
        return;
    }
    if let Err(e) = d.audit(entry).await {
        tracing::warn!("cannot write the API request to audit_log: {e}");
    }
}

/// Middleware: a refused state-changing request (401, 403, 409, 415, 421) that no
/// handler recorded is written to the audit log of the database it addressed.
pub async fn refusals(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let database = req.uri().query().and_then(|q| {
        q.split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == "database")
            .map(|(_, v)| v.to_string())
    });
    let headers = req.headers().clone();
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let res = next.run(req).await;
    let refused = matches!(
        res.status(),
        StatusCode::UNAUTHORIZED
            | StatusCode::FORBIDDEN
            | StatusCode::CONFLICT
            | StatusCode::UNSUPPORTED_MEDIA_TYPE
            | StatusCode::MISDIRECTED_REQUEST
    );
    if !refused || res.extensions().get::<Audited>().is_some() {
        return res;
    }
    let (parts, body) = res.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let error: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let Ok(db) = state.database(database.as_deref()) else {
        return Response::from_parts(parts, axum::body::Body::from(bytes));
    };
    let by = if state.tokens().is_empty() {
        "local".to_string()
    } else {
        token_name(&state, &headers).unwrap_or_else(|| "anonymous".into())
    };
    let entry = AuditEntry {
        operation: "api_refused".into(),
        record_id: path.clone(),
        old_values: Some(
            json!({ "method": method, "path": path, "status": parts.status.as_u16() }),
        ),
        new_values: Some(json!({
            "error": error["error"]["kind"],
            "message": error["error"]["message"],
        })),
        changed_by: by,
        ip_address: ip,
        user_agent: headers
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    };
    match strata_drivers::connect_config(&db.config).await {
        Ok(mut d) => write(d.as_mut(), &entry).await,
        Err(e) => tracing::warn!("cannot record a refused request in audit_log: {e}"),
    }
    Response::from_parts(parts, axum::body::Body::from(bytes))
}
