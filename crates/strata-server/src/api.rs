//! The handlers of `/api/v1`, `/metrics` and `/health`: each parses its request, makes
//! the library call the matching CLI command makes, and answers with the JSON shapes of
//! SPEC section 2.

use axum::body::Bytes;
use axum::extract::{FromRequestParts, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::IntoResponse;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use strata_core::policy::Consent;
use strata_core::{HealthReport, HealthStatus, Target, UpOptions};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::runs::{Ask, Op};
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

/// The longest a request may ask to wait for the migration lock.
const MAX_LOCK_WAIT_SECONDS: u64 = 3600;

fn lock_wait(seconds: u64) -> Result<u64, ApiError> {
    if seconds > MAX_LOCK_WAIT_SECONDS {
        return Err(ApiError::bad_request(format!(
            "wait_for_lock_seconds must be at most {MAX_LOCK_WAIT_SECONDS}, not {seconds}"
        )));
    }
    Ok(seconds)
}

/// Every POST's tail: the database it names, then the run.
async fn change(s: &ApiState, caller: Caller, q: &DbQuery, op: Op, ask: Ask) -> Answer {
    let db = s.database(q.database.as_deref())?;
    Ok(Json(s.run(db, caller, op, ask).await?))
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
    /// Apply migrations older than the newest applied one (after a rollback).
    #[serde(default)]
    allow_out_of_order: bool,
    /// Continue a failed non-transactional migration where it stopped.
    #[serde(default)]
    resume: bool,
    #[serde(default)]
    confirm: bool,
    #[serde(default)]
    allow_unsafe: bool,
    #[serde(default)]
    wait_for_lock_seconds: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    cascade: bool,
    #[serde(default)]
    confirm: bool,
    #[serde(default)]
    allow_unsafe: bool,
    #[serde(default)]
    wait_for_lock_seconds: u64,
}

/// `repair` and `stamp`: a dry run, or the change with its consent.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeBody {
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    confirm: bool,
    #[serde(default)]
    allow_unsafe: bool,
    #[serde(default)]
    wait_for_lock_seconds: u64,
}

/// What every state-changing request may add: the operator's confirmation and
/// override in a protected environment, and how long to wait for a lock another
/// process holds (default 0: answer 409 at once). Inlined in each body because serde
/// cannot both flatten and refuse unknown fields.
macro_rules! ask {
    ($b:expr) => {
        lock_wait($b.wait_for_lock_seconds).map(|wait_for_lock_seconds| Ask {
            dry_run: $b.dry_run,
            consent: Consent {
                confirmed: $b.confirm,
                allow_unsafe: $b.allow_unsafe,
            },
            wait_for_lock_seconds,
        })
    };
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
    s.metrics().observe(&db.name, Some(&st));
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
            .map(|e| e.to_event_json())
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

/// `POST /api/v1/migrations/migrate` `{"target_version","dry_run","allow_out_of_order",
/// "resume","confirm","allow_unsafe","wait_for_lock_seconds"}`.
pub async fn migrate(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<DbQuery>,
    bytes: Bytes,
) -> Answer {
    let b: MigrateBody = body(&bytes)?;
    let target = Target::parse(b.target_version.as_deref().unwrap_or("head"))
        .map_err(|e| ApiError::from(strata_core::Error::from(e)))?;
    let op = Op::Up {
        target,
        up: UpOptions {
            allow_out_of_order: b.allow_out_of_order,
            resume: b.resume,
            in_doubt: None,
        },
    };
    change(&s, caller, &q, op, ask!(b)?).await
}

/// `POST /api/v1/migrations/rollback/{version}` `{"dry_run","cascade","confirm",...}`:
/// rolls back one applied migration (`strata down V`). The answer's
/// `leaves_out_of_order` names what it leaves pending below applied migrations.
pub async fn rollback(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(version): Path<String>,
    Query(q): Query<DbQuery>,
    bytes: Bytes,
) -> Answer {
    let b: RollbackBody = body(&bytes)?;
    let op = Op::Down {
        version,
        cascade: b.cascade,
    };
    change(&s, caller, &q, op, ask!(b)?).await
}

/// `POST /api/v1/migrations/repair` `{"dry_run","confirm"}` (`strata repair`).
pub async fn repair(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<DbQuery>,
    bytes: Bytes,
) -> Answer {
    let b: ChangeBody = body(&bytes)?;
    change(&s, caller, &q, Op::Repair, ask!(b)?).await
}

/// `POST /api/v1/migrations/stamp/{version}` `{"dry_run","confirm"}` (`strata stamp V`):
/// records a migration as applied without running it.
pub async fn stamp(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(version): Path<String>,
    Query(q): Query<DbQuery>,
    bytes: Bytes,
) -> Answer {
    let b: ChangeBody = body(&bytes)?;
    change(&s, caller, &q, Op::Stamp { version }, ask!(b)?).await
}

/// `GET /api/v1/migrations/{version}`: one migration in full: its files' SQL, checksum,
/// state, who applied it and when, its dependencies, its last failure, and (`drift`)
/// how the file differs from the text that was applied.
pub async fn detail(
    State(s): State<ApiState>,
    Path(version): Path<String>,
    Query(q): Query<DbQuery>,
) -> Answer {
    let db = s.database(q.database.as_deref())?;
    let migrator = s.migrator(&db.config)?;
    let Some(m) = migrator
        .migrations()
        .iter()
        .find(|m| m.version.as_str() == version || m.id == version)
    else {
        return Err(ApiError::not_found(
            "unknown_target",
            format!("no migration `{version}` on disk"),
        ));
    };
    let text = |r: Result<Option<String>, strata_core::SourceError>| match r {
        Ok(t) => json!(t),
        Err(e) => json!(format!("-- {e}")),
    };
    let mut v = json!({
        "version": m.version.as_str(), "name": m.name, "description": m.description,
        "file": m.source, "checksum": m.checksum.to_string(),
        "depends_on": m.dependencies.iter().map(|d| d.target.clone()).collect::<Vec<_>>(),
        "transactional": m.transactional, "outside_transaction": m.outside_transaction,
        "up_sql": text(m.up.text().map(|t| Some(t.into_owned())).map_err(Into::into)),
        "down_sql": text(m.down_text()),
        "state": null, "applied_at": null, "applied_by": null, "execution_time_ms": null,
        "last_failure": null,
    });
    // The database's side; the files alone when it does not answer.
    match strata_drivers::connect_config(&db.config).await {
        Ok(mut d) => {
            let st = migrator.status(d.as_mut()).await?;
            if let Some(row) = st
                .migrations
                .iter()
                .find(|r| r.version == m.version.as_str())
            {
                v["state"] = json!(row.state);
                v["applied_at"] = json!(row.applied_at);
                v["execution_time_ms"] = json!(row.execution_time_ms);
                v["stopped"] = json!(row.stopped);
            }
            let events = migrator.history(d.as_mut(), 1000).await?;
            if let Some(applied) = events
                .iter()
                .find(|e| e.operation == "apply" && e.record_id == m.version.as_str())
            {
                v["applied_by"] = json!(applied.changed_by);
                let ran = applied.new_values.as_ref().and_then(|n| n["sql"].as_str());
                // Only while the history still records the old checksum (not after a repair).
                let modified = v["state"] == json!(strata_core::MigrationState::Modified);
                if let (Some(ran), Ok(now), true) = (ran, m.up.text(), modified) {
                    if ran != now {
                        v["drift"] = json!({
                            "applied_at": applied.changed_at,
                            "diff": similar::TextDiff::from_lines(ran, now.as_ref())
                                .unified_diff()
                                .header("as applied", "on disk now")
                                .to_string(),
                        });
                    }
                }
            }
            if let Some(f) = events
                .iter()
                .find(|e| e.operation == "failure" && e.record_id == m.version.as_str())
            {
                v["last_failure"] = json!({ "at": f.changed_at, "detail": f.new_values });
            }
        }
        Err(e) => v["database_error"] = json!(e.to_string()),
    }
    Ok(Json(v))
}

/// `GET /api/v1/runs`: this server's recent runs, newest first (`?database=` narrows).
pub async fn runs(State(s): State<ApiState>, Query(q): Query<DbQuery>) -> Answer {
    if let Some(name) = q.database.as_deref() {
        s.database(Some(name))?;
    }
    Ok(Json(
        json!({ "runs": s.book().list(q.database.as_deref()) }),
    ))
}

/// `GET /api/v1/runs/{id}`: one run with every event it emitted.
pub async fn run(State(s): State<ApiState>, Path(id): Path<u64>) -> Answer {
    s.book().get(id).map(Json).ok_or_else(|| {
        ApiError::not_found(
            "unknown_run",
            format!("no run {id} (this server keeps its last 100 runs)"),
        )
    })
}

/// `GET /api/v1/events`: run events as they happen (server-sent events, one JSON object
/// per `data:` line), with a comment every 15 s to keep proxies from closing it.
pub async fn events(
    State(s): State<ApiState>,
) -> Sse<impl futures_util::Stream<Item = Result<SseEvent, std::convert::Infallible>>> {
    let rx = s.book().subscribe();
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(e) => {
                    return Some((Ok(SseEvent::default().event("run").data(e.to_string())), rx))
                }
                // A slow reader missed events: it should reload; say so and go on.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    let e = json!({ "type": "lagged", "missed": n });
                    return Some((Ok(SseEvent::default().event("run").data(e.to_string())), rx));
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(15)))
}

/// `GET /api/v1/whoami`: the caller's token name and role, so the console shows only
/// what the caller may do.
pub async fn whoami(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> Json<Value> {
    Json(json!({
        "name": caller.name,
        "role": caller.role,
        "tokens": !s.tokens().is_empty(),
    }))
}

/// `GET /metrics`: reads each database's history for the gauges, then the OpenMetrics
/// text.
pub async fn metrics(State(s): State<ApiState>) -> impl IntoResponse {
    for db in s.all() {
        let status = async {
            let migrator = s.migrator(&db.config).ok()?;
            let mut d = strata_drivers::connect_config(&db.config).await.ok()?;
            migrator.status(d.as_mut()).await.ok()
        }
        .await;
        s.metrics().observe(&db.name, status.as_ref());
    }
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
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
