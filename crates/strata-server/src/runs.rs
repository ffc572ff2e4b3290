//! The POSTs that change a database: migrate, rollback, repair and stamp. Each is one
//! call of the library's run loop, in its own task so a client that hangs up never
//! cancels a migration halfway, with the rules of a protected environment applied by
//! the core ([`strata_core::policy`]), and recorded twice: in `audit_log` (who, from
//! where, what came of it) and in this server's run book (`/api/v1/runs`), whose
//! events stream live to the console.

use serde_json::{json, Value};
use strata_core::policy::{self, Consent};
use strata_core::{
    AuditEntry, Config, Driver, Error, Mark, Migrator, RunOptions, RunReport, Target, UpOptions,
};

use crate::audit;
use crate::auth::Caller;
use crate::book::RunReporter;
use crate::error::{status_of, ApiError};
use crate::state::{ApiState, Db};

/// What a POST asks for.
#[derive(Debug, Clone)]
pub enum Op {
    Up { target: Target, up: UpOptions },
    Down { version: String, cascade: bool },
    Repair,
    Stamp { version: String },
}

/// How a POST asks: dry run or not, what the caller consents to, how long it may wait
/// for another holder of the migration lock (by default not at all: 409 at once).
#[derive(Debug, Clone, Copy, Default)]
pub struct Ask {
    pub dry_run: bool,
    pub consent: Consent,
    pub wait_for_lock_seconds: u64,
}

impl Op {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Op::Up { .. } => "migrate",
            Op::Down { .. } => "rollback",
            Op::Repair => "repair",
            Op::Stamp { .. } => "stamp",
        }
    }

    /// The key of SPEC's run JSON.
    fn key(&self) -> &'static str {
        match self {
            Op::Down { .. } => "rolled_back",
            Op::Repair => "repaired",
            _ => "applied",
        }
    }

    fn record_id(&self) -> String {
        match self {
            Op::Up { target, .. } => target.to_string(),
            Op::Down { version, .. } | Op::Stamp { version } => version.clone(),
            Op::Repair => String::new(),
        }
    }

    /// What the operator is asked to confirm in a protected environment.
    fn action(&self) -> String {
        match self {
            Op::Up { target, .. } => format!("migrate to {target}"),
            Op::Down { version, .. } => format!("roll back {version}"),
            Op::Repair => "repair the history".into(),
            Op::Stamp { version } => format!("stamp {version}"),
        }
    }

    pub(crate) fn request(&self, ask: &Ask) -> Value {
        let mut v = match self {
            Op::Up { target, up } => json!({
                "target_version": target.to_string(),
                "allow_out_of_order": up.allow_out_of_order,
                "resume": up.resume,
                "allow_unsafe": ask.consent.allow_unsafe,
            }),
            Op::Down { version, cascade } => json!({ "version": version, "cascade": cascade }),
            Op::Repair => json!({}),
            Op::Stamp { version } => json!({ "version": version }),
        };
        v["dry_run"] = json!(ask.dry_run);
        v
    }
}

impl ApiState {
    /// Runs `op` on `db` for `caller`. A second concurrent run of the same database
    /// through this server gets 409 at once, as does one whose lock another process
    /// holds (unless the request asks to wait). Dry runs change nothing, so they
    /// neither claim, nor audit, nor enter the run book.
    pub(crate) async fn run(
        &self,
        db: Db,
        caller: Caller,
        op: Op,
        ask: Ask,
    ) -> Result<Value, ApiError> {
        if !ask.dry_run {
            caller.may_change()?;
        }
        let claimed = if ask.dry_run {
            None
        } else {
            Some(self.claim(&db.name)?)
        };
        let run = claimed.as_ref().map(|_| {
            self.book()
                .start(&db.name, op.name(), op.request(&ask), &caller.name)
        });
        let state = self.clone();
        let task = tokio::spawn(async move {
            let _claimed = claimed;
            let mut rep = RunReporter::new(state.metrics().reporter(&db.name), run.clone());
            let outcome = state.execute(&db, &caller, &op, &ask, &mut rep).await;
            if !ask.dry_run {
                audit_request(&db, &caller, &op, &ask, outcome.as_ref().map(|_| ()), &rep).await;
            }
            let label = match (&outcome, ask.dry_run) {
                (Ok(_), true) => "dry_run",
                (Ok(_), false) => "ok",
                (Err(e), _) if status_of(e).is_server_error() || status_of(e).as_u16() == 422 => {
                    "failed"
                }
                (Err(_), _) => "refused",
            };
            state.metrics().run_finished(&db.name, op.name(), label);
            let done = rep.done();
            match outcome {
                Ok(mut v) => {
                    if let Some(run) = &run {
                        v["run_id"] = json!(run.id());
                        run.finished(label, json!({ "count": done.len() }));
                    }
                    Ok(v)
                }
                Err(e) => {
                    let mut err = ApiError::from(e);
                    // What did happen, so a partial failure is never reported as nothing.
                    err.body[op.key()] = json!(done);
                    if let Some(failed) = rep.failed() {
                        err.body["failed"] = failed;
                    }
                    if let Some(run) = &run {
                        err.body["run_id"] = json!(run.id());
                        run.finished(label, err.body.clone());
                    }
                    // A run is audited above; a dry run changes nothing and is not.
                    err.audited = true;
                    Err(err)
                }
            }
        });
        match task.await {
            Ok(r) => r,
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
        ask: &Ask,
        rep: &mut RunReporter,
    ) -> Result<Value, Error> {
        if !ask.dry_run {
            policy::confirm(&db.config, &op.action(), &ask.consent)?;
        }
        let config = with_lock_wait(&db.config, ask.wait_for_lock_seconds);
        let opts = RunOptions {
            dry_run: ask.dry_run,
            up: match op {
                Op::Up { up, .. } => *up,
                _ => UpOptions::default(),
            },
            backup: config.backup_policy(matches!(op, Op::Down { .. })),
            ..Default::default()
        };
        if db.in_project && matches!(op, Op::Up { .. } | Op::Down { .. }) {
            return self
                .execute_in_project(db, caller, op, ask, &opts, rep)
                .await;
        }
        let mut migrator = self.migrator(&config)?;
        migrator.set_actor(caller.actor());
        let mut d = if ask.dry_run {
            strata_drivers::connect_config(&config).await?
        } else {
            strata_drivers::connect_for_change(&config).await?
        };
        if let (Op::Up { target, .. }, false) = (op, ask.dry_run) {
            gate(&config, &migrator, d.as_mut(), target, &opts, &ask.consent).await?;
        }
        let result = match op {
            Op::Up { target, .. } => migrator
                .up(d.as_mut(), target, &opts, rep)
                .await
                .map(|r| up_json(&config, &migrator, &r)),
            Op::Down { version, cascade } => {
                let before = migrator.status(d.as_mut()).await?;
                migrator
                    .down(d.as_mut(), version, *cascade, &opts, rep)
                    .await
                    .map(|r| {
                        let mut v = r.to_json(op.key());
                        v["leaves_out_of_order"] = json!(left_below(&before, &r));
                        v
                    })
            }
            Op::Stamp { version } => migrator
                .mark(d.as_mut(), version, Mark::Stamp, &opts, rep)
                .await
                .map(|r| r.to_json(op.key())),
            Op::Repair => migrator
                .repair(d.as_mut(), ask.dry_run, rep)
                .await
                .map(|r| serde_json::to_value(r).expect("a repair report serializes")),
        };
        result
    }

    /// A member of a multi-database project: through [`strata_core::Project`], so
    /// dependencies on other databases hold.
    async fn execute_in_project(
        &self,
        db: &Db,
        caller: &Caller,
        op: &Op,
        ask: &Ask,
        opts: &RunOptions,
        rep: &mut RunReporter,
    ) -> Result<Value, Error> {
        let mut project_config = self.config().clone();
        for (_, c) in project_config.databases.iter_mut() {
            *c = with_lock_wait(c, ask.wait_for_lock_seconds);
        }
        let mut project =
            strata_drivers::open_project(&project_config, std::slice::from_ref(&db.name), true)
                .await?;
        for m in &mut project.members {
            m.migrator.set_actor(caller.actor());
        }
        let result = match op {
            Op::Up { target, .. } => project.up(target, opts, rep).await,
            Op::Down { version, cascade } => project
                .down(&db.name, version, *cascade, opts, rep)
                .await
                .map(|r| vec![r]),
            _ => unreachable!("repair and stamp run on the member alone"),
        };
        result.map(|reports| {
            let entries: Vec<Value> = reports
                .iter()
                .flat_map(|r| {
                    let v = r.report.to_json(op.key());
                    let mut steps = v[op.key()].as_array().cloned().unwrap_or_default();
                    for e in &mut steps {
                        e["database"] = json!(r.database);
                    }
                    steps
                })
                .collect();
            json!({ op.key(): entries, "dry_run": ask.dry_run })
        })
    }
}

/// `config` with the lock wait of this request (0: one attempt, then 409).
fn with_lock_wait(config: &Config, seconds: u64) -> Config {
    let mut c = config.clone();
    c.settings.lock_timeout_seconds = Some(seconds);
    c
}

/// The protected-environment lint gate, on the plan this run would apply.
async fn gate(
    config: &Config,
    migrator: &Migrator,
    d: &mut dyn Driver,
    target: &Target,
    opts: &RunOptions,
    consent: &Consent,
) -> Result<(), Error> {
    if !config.protected || consent.allow_unsafe {
        return Ok(());
    }
    let findings = policy::planned_findings(config, migrator, d, target, opts).await?;
    policy::lint_gate(config, &findings, consent)
}

/// An up run's JSON; a dry run also carries lint's findings on what it would apply.
fn up_json(config: &Config, migrator: &Migrator, r: &RunReport) -> Value {
    let mut v = r.to_json("applied");
    if r.dry_run {
        v["lint"] = json!(policy::plan_findings(config, migrator, &r.plan));
    }
    v
}

/// The versions a rollback leaves pending below migrations that stay applied: `up`
/// refuses to apply them later without `allow_out_of_order`.
fn left_below(before: &strata_core::StatusReport, r: &RunReport) -> Vec<String> {
    let going: Vec<&str> = r.plan.steps.iter().map(|s| s.version.as_str()).collect();
    let rows = &before.migrations;
    rows.iter()
        .enumerate()
        .filter(|(_, m)| going.contains(&m.version.as_str()))
        .filter(|(i, _)| {
            rows[i + 1..].iter().any(|later| {
                later.state != strata_core::MigrationState::Pending
                    && !going.contains(&later.version.as_str())
            })
        })
        .map(|(_, m)| m.version.clone())
        .collect()
}

/// One `api_migrate` / `api_rollback` / ... row per POST that could change the
/// database, whatever came of it (refused by policy, failed, done): the request, the
/// outcome, how many migrations ran and which one failed. On a connection of its own,
/// so a run whose connection broke is still recorded.
async fn audit_request(
    db: &Db,
    caller: &Caller,
    op: &Op,
    ask: &Ask,
    outcome: Result<(), &Error>,
    rep: &RunReporter,
) {
    let count = rep.done().len();
    let result = match outcome {
        Ok(()) => json!({ "outcome": "ok", "count": count }),
        Err(e) => json!({
            "outcome": "error",
            "count": count,
            "error": e.kind(),
            "message": e.to_string(),
            "failed": rep.failed(),
        }),
    };
    let entry = AuditEntry {
        operation: format!("api_{}", op.name()),
        record_id: op.record_id(),
        old_values: Some(op.request(ask)),
        new_values: Some(result),
        changed_by: caller.name.clone(),
        ip_address: caller.ip.clone(),
        user_agent: caller.user_agent.clone(),
    };
    match strata_drivers::connect_config(&db.config).await {
        Ok(mut d) => audit::write(d.as_mut(), &entry).await,
        Err(e) => tracing::warn!("cannot record the API request in audit_log: {e}"),
    }
}
