//! The handlers of `/api/v1`, `/metrics` and `/health`: each parses its request, makes
//! the library call the matching CLI command makes, and answers with the JSON shapes of
//! SPEC section 2.

use axum::body::Bytes;
use axum::extract::{FromRequestParts, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use strata_core::{HealthReport, HealthStatus, MigrationState, Target};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::runs::Op;
use crate::state::{ApiState, Db};

type Answer = Result<Json<Value>, ApiError>;

/// `Query` whose rejection is SPEC's JSON error, like every other answer.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(T);

/// `Path` with a JSON rejection.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(T);

/// A JSON body that may be absent (all fields default), read whatever the content
/// type so `curl -d '{"dry_run":true}'` works; malformed JSON is a JSON 400.
fn body<T: serde::de::DeserializeOwned + Default>(bytes: &Bytes) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("request body: {e}")))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbQuery {
    database: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    database: Option<String>,
    limit: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrateBody {
    target_version: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    cascade: bool,
}

/// `GET /api/v1/databases`: what `?database=` may name.
pub async fn databases(State(s): State<ApiState>) -> Json<Value> {
    let dbs: Vec<Value> = s
        .all()
        .iter()
        .map(|d| {
            let url = d.config.redacted_url();
            let kind = url.split(':').next().unwrap_or("").to_string();
            json!({ "name": d.name, "url": url, "kind": kind })
        })
        .collect();
    Json(json!({ "project": !s.config().databases.is_empty(), "databases": dbs }))
}

/// `GET /api/v1/migrations/`: the migrations on disk (`strata list --json`).
pub async fn list(State(s): State<ApiState>, Query(q): Query<DbQuery>) -> Answer {
    let db = s.database(q.database.as_deref())?;
    Ok(Json(s.migrator(&db.config)?.list_json()))
}

/// `GET /api/v1/migrations/status` (`strata status --json`).
pub async fn status(State(s): State<ApiState>, Query(q): Query<DbQuery>) -> Answer {
    let db = s.database(q.database.as_deref())?;
    let migrator = s.migrator(&db.config)?;
    let mut d = strata_drivers::connect_config(&db.config).await?;
    let st = migrator.status(d.as_mut()).await?;
    s.metrics()
        .set_pending(&db.name, st.count(MigrationState::Pending), true);
    Ok(Json(st.to_json(&db.config.redacted_url())))
}

/// `GET /api/v1/migrations/history`: applied, rolled-back and failed migrations,
/// newest first (`strata history --json`, without the API's request rows).
pub async fn history(State(s): State<ApiState>, Query(q): Query<LogQuery>) -> Answer {
    let db = s.database(q.database.as_deref())?;
    let migrator = s.migrator(&db.config)?;
    let mut d = strata_drivers::connect_config(&db.config).await?;
    let want = limit(q.limit)?;
    // Read wider windows until `want` migration events are found or the log ends.
    let mut window = want * 2;
    let events = loop {
        let rows = migrator.history(d.as_mut(), window).await?;
        let exhausted = rows.len() < window;
        let events: Vec<_> = rows
            .into_iter()
            .filter(|e| !e.operation.starts_with("api_"))
            .take(want)
            .collect();
        if events.len() == want || exhausted {
            break events;
        }
        window *= 4;
    };
    Ok(Json(json!({ "events": events })))
}

/// `GET /api/v1/migrations/audit`: every `audit_log` row, API requests included, with
/// who, from where and with what client.
pub async fn audit(State(s): State<ApiState>, Query(q): Query<LogQuery>) -> Answer {
    let db = s.database(q.database.as_deref())?;
    let migrator = s.migrator(&db.config)?;
    let mut d = strata_drivers::connect_config(&db.config).await?;
    let entries = migrator.history(d.as_mut(), limit(q.limit)?).await?;
    Ok(Json(json!({ "entries": entries })))
}

fn limit(l: Option<usize>) -> Result<usize, ApiError> {
    match l.unwrap_or(100) {
        n @ 1..=10_000 => Ok(n),
        n => Err(ApiError::bad_request(format!(
            "limit must be 1 to 10000, not {n}"
        ))),
    }
}

/// `GET /api/v1/migrations/health`: 200 healthy or degraded, 503 unhealthy.
pub async fn health(
    State(s): State<ApiState>,
    Query(q): Query<DbQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let db = s.database(q.database.as_deref())?;
    let report = health_of(&s, &db).await?;
    let code = health_code(report.status);
    let mut v = serde_json::to_value(&report).expect("a health report serializes");
    v["database"] = json!(db.config.redacted_url());
    Ok((code, Json(v)))
}

/// `GET /health`: the load-balancer probe, without a token: the worst status of every
/// database, and nothing else.
pub async fn probe(State(s): State<ApiState>) -> impl IntoResponse {
    let mut worst = HealthStatus::Healthy;
    for db in s.all() {
        let status = match health_of(&s, &db).await {
            Ok(r) => r.status,
            Err(_) => HealthStatus::Unhealthy,
        };
        worst = worst.max(status);
    }
    (health_code(worst), Json(json!({ "status": worst })))
}

fn health_code(status: HealthStatus) -> StatusCode {
    match status {
        HealthStatus::Unhealthy => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::OK,
    }
}

async fn health_of(s: &ApiState, db: &Db) -> Result<HealthReport, ApiError> {
    let migrator = s.migrator(&db.config)?;
    let report = match strata_drivers::connect_config(&db.config).await {
        Ok(mut d) => migrator.health(Ok(d.as_mut())).await,
        Err(e) => migrator.health(Err(&e)).await,
    };
    s.metrics()
        .set_pending(&db.name, report.pending, report.reachable);
    Ok(report)
}

/// `GET /api/v1/migrations/info` (`strata info --json`).
pub async fn info(State(s): State<ApiState>, Query(q): Query<DbQuery>) -> Answer {
    let db = s.database(q.database.as_deref())?;
    let migrator = s.migrator(&db.config)?;
    let mut d = strata_drivers::connect_config(&db.config).await?;
    Ok(Json(
        strata_core::info(&db.config, &migrator, d.as_mut()).await?,
    ))
}

/// `POST /api/v1/migrations/migrate` `{"target_version","dry_run"}`.
pub async fn migrate(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<DbQuery>,
    bytes: Bytes,
) -> Answer {
    let b: MigrateBody = body(&bytes)?;
    let target = Target::parse(b.target_version.as_deref().unwrap_or("head"))
        .map_err(|e| ApiError::from(strata_core::Error::from(e)))?;
    let db = s.database(q.database.as_deref())?;
    Ok(Json(s.run(db, caller, Op::Up(target), b.dry_run).await?))
}

/// `POST /api/v1/migrations/rollback/{version}` `{"dry_run","cascade"}`: rolls back
/// one applied migration (`strata down V`).
pub async fn rollback(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(version): Path<String>,
    Query(q): Query<DbQuery>,
    bytes: Bytes,
) -> Answer {
    let b: RollbackBody = body(&bytes)?;
    let db = s.database(q.database.as_deref())?;
    let op = Op::Down {
        version,
        cascade: b.cascade,
    };
    Ok(Json(s.run(db, caller, op, b.dry_run).await?))
}

/// `GET /metrics`: refreshes each database's pending count, then the Prometheus text.
pub async fn metrics(State(s): State<ApiState>) -> impl IntoResponse {
    for db in s.all() {
        let _ = health_of(&s, &db).await;
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics().encode(),
    )
}

pub async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint; see /openapi.json",
    )
}
