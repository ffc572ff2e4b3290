//! `POST /migrate` and `POST /rollback/{version}`: one run of the library's run loop,
//! in its own task so a client that hangs up never cancels a migration halfway, and
//! recorded in `audit_log` with the caller's token name, address and user agent.

use serde_json::{json, Value};
use strata_core::{AuditEntry, Driver, Error, MemberReport, RunOptions, RunReport, Target};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::{ApiState, Db};

/// What a POST asks for.
#[derive(Debug, Clone)]
pub enum Op {
    Up(Target),
    Down { version: String, cascade: bool },
}

impl Op {
    fn name(&self) -> &'static str {
        match self {
            Op::Up(_) => "migrate",
            Op::Down { .. } => "rollback",
        }
    }

    /// The key of SPEC's run JSON.
    fn key(&self) -> &'static str {
        match self {
            Op::Up(_) => "applied",
            Op::Down { .. } => "rolled_back",
        }
    }

    fn request(&self, dry_run: bool) -> Value {
        match self {
            Op::Up(t) => json!({ "target_version": t.to_string(), "dry_run": dry_run }),
            Op::Down { version, cascade } => {
                json!({ "version": version, "cascade": cascade, "dry_run": dry_run })
            }
        }
    }
}

impl ApiState {
    /// Runs `op` on `db` for `caller`; a second concurrent run of the same database
    /// gets 409. Dry runs change nothing, so they neither claim nor audit.
    pub(crate) async fn run(
        &self,
        db: Db,
        caller: Caller,
        op: Op,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let guard = if dry_run {
            None
        } else {
            Some(self.claim(&db.name)?)
        };
        let state = self.clone();
        let task = tokio::spawn(async move {
            let _guard = guard;
            let outcome = state.execute(&db, &caller, &op, dry_run).await;
            let label = match (&outcome, dry_run) {
                (Ok(_), true) => "dry_run",
                (Ok(_), false) => "ok",
                (Err(_), _) => "failed",
            };
            state.metrics().run_finished(&db.name, op.name(), label);
            outcome
        });
        match task.await {
            Ok(r) => r.map_err(ApiError::from),
            Err(e) => Err(ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("the run stopped unexpectedly: {e}"),
            )),
        }
    }

    async fn execute(
        &self,
        db: &Db,
        caller: &Caller,
        op: &Op,
        dry_run: bool,
    ) -> Result<Value, Error> {
        let opts = RunOptions {
            dry_run,
            backup: db.config.backup_policy(matches!(op, Op::Down { .. })),
            ..Default::default()
        };
        let mut rep = self.metrics().reporter(&db.name);
        if db.in_project {
            let mut project =
                strata_drivers::open_project(self.config(), std::slice::from_ref(&db.name), true)
                    .await?;
            for m in &mut project.members {
                m.migrator.set_actor(caller.actor());
            }
            let result = match op {
                Op::Up(t) => project.up(t, &opts, &mut rep).await,
                Op::Down { version, cascade } => project
                    .down(&db.name, version, *cascade, &opts, &mut rep)
                    .await
                    .map(|r| vec![r]),
            };
            if !dry_run {
                if let Some(d) = project
                    .members
                    .iter_mut()
                    .find(|m| m.name == db.name)
                    .and_then(|m| m.driver.as_deref_mut())
                {
                    let n = result
                        .as_ref()
                        .map(|r| r.iter().map(|m| m.report.done.len()).sum());
                    audit_request(d, caller, op, n, dry_run).await;
                }
            }
            return result.map(|reports| project_json(&reports, op.key(), dry_run));
        }
        let mut migrator = self.migrator(&db.config)?;
        migrator.set_actor(caller.actor());
        let mut d = if dry_run {
            strata_drivers::connect_config(&db.config).await?
        } else {
            strata_drivers::connect_for_change(&db.config).await?
        };
        let result: Result<RunReport, Error> = match op {
            Op::Up(t) => migrator.up(d.as_mut(), t, &opts, &mut rep).await,
            Op::Down { version, cascade } => {
                migrator
                    .down(d.as_mut(), version, *cascade, &opts, &mut rep)
                    .await
            }
        };
        if !dry_run {
            let n = result.as_ref().map(|r| r.done.len());
            audit_request(d.as_mut(), caller, op, n, dry_run).await;
        }
        result.map(|r| r.to_json(op.key()))
    }
}

/// One `api_migrate` / `api_rollback` row per POST that could change the database,
/// whatever came of it, so every request is traceable even when nothing ran. Written
/// only where the history tables exist; a failure to write it is logged, not fatal
/// (the run's own rows are already committed).
async fn audit_request(
    d: &mut dyn Driver,
    caller: &Caller,
    op: &Op,
    outcome: Result<usize, &Error>,
    dry_run: bool,
) {
    if !matches!(d.has_history().await, Ok(true)) {
        return;
    }
    let result = match outcome {
        Ok(n) => json!({ "outcome": "ok", "count": n }),
        Err(e) => json!({ "outcome": "error", "error": e.kind(), "message": e.to_string() }),
    };
    let record_id = match op {
        Op::Up(t) => t.to_string(),
        Op::Down { version, .. } => version.clone(),
    };
    let entry = AuditEntry {
        operation: format!("api_{}", op.name()),
        record_id,
        old_values: Some(op.request(dry_run)),
        new_values: Some(result),
        changed_by: caller.name.clone(),
        ip_address: caller.ip.clone(),
        user_agent: caller.user_agent.clone(),
    };
    if let Err(e) = d.audit(&entry).await {
        tracing::warn!("cannot write the API request to audit_log: {e}");
    }
}

/// A project run's JSON: SPEC's run shape, each entry naming its database.
fn project_json(reports: &[MemberReport], key: &str, dry_run: bool) -> Value {
    let entries: Vec<Value> = reports
        .iter()
        .flat_map(|r| {
            let v = r.report.to_json(key);
            v[key]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|mut e| {
                    e["database"] = json!(r.database);
                    e
                })
                .collect::<Vec<_>>()
        })
        .collect();
    json!({ key: entries, "dry_run": dry_run })
}
