//! [`Migrator`]: the one run loop. It reads the source, takes the lock, plans, executes
//! through a [`Driver`] and emits [`Event`]s; the CLI and the server are shells over it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::backup::{BackupInfo, BackupStore};
use crate::code::{self, CodeContext, CodeMigration, CodeRef};
use crate::config::Settings;
use crate::driver::{AuditEntry, AuditRecord, Change, Driver, LockOptions, Record};
use crate::error::{DriverError, DriverErrorKind, Error, Result};
use crate::event::{Event, Reporter, Silent};
use crate::migration::{
    AppliedMigration, Format, Migration, MigrationKind, MigrationState, Script,
};
use crate::plan::{self, Direction, Plan, StatusRow, Step, Target, UpOptions};
use crate::source::{self, Source};
use crate::sum;

/// Who is acting, for `applied_by` and `audit_log`.
#[derive(Debug, Clone)]
pub struct Actor {
    /// Who: the OS user, or the API token's name.
    pub name: String,
    /// The API caller's address.
    pub ip_address: Option<String>,
    /// The API caller's `User-Agent`.
    pub user_agent: Option<String>,
}

impl Actor {
    /// The operating-system user running this process.
    pub fn os_user() -> Self {
        Actor {
            name: whoami::username(),
            ip_address: None,
            user_agent: None,
        }
    }
}

/// Options shared by the commands that change state.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Plan and report, change nothing.
    pub dry_run: bool,
    /// Out-of-order, resume and in-doubt choices for `up`.
    pub up: UpOptions,
    /// Log every statement (`DB_ECHO=true`).
    pub echo: bool,
    /// Backups around this run.
    pub backup: Option<BackupPolicy>,
}

/// What a run does about backups.
#[derive(Debug, Clone)]
pub struct BackupPolicy {
    /// Where backups go.
    pub store: BackupStore,
    /// Back up (inside the lock, after planning) when the plan changes anything.
    pub before_run: bool,
    /// Refuse a rollback unless a backup at most this old exists (protected environments).
    pub require_recent: Option<Duration>,
}

/// What a state-changing command did.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// What the run planned.
    pub plan: Plan,
    /// Steps completed, in order.
    pub done: Vec<StepResult>,
    /// True when nothing ran.
    pub dry_run: bool,
}

impl RunReport {
    /// SPEC's JSON for up / down / rollback (and stamp / baseline): `{key: [...],
    /// "dry_run"}`, `key` being `applied` or `rolled_back`. A dry run lists what would
    /// run, each step with its SQL.
    pub fn to_json(&self, key: &str) -> serde_json::Value {
        let steps: Vec<_> = if self.dry_run {
            self.plan.steps.iter().map(|s| serde_json::json!({ "version": s.version, "name": s.name, "execution_time_ms": 0, "sql": s.script.text().map(|t| t.into_owned()).unwrap_or_else(|e| format!("-- {e}")), "transactional": s.transactional })).collect()
        } else {
            self.done.iter().map(|s| serde_json::json!({ "version": s.version, "name": s.name, "execution_time_ms": s.execution_time_ms })).collect()
        };
        serde_json::json!({ key: steps, "dry_run": self.dry_run })
    }
}

/// One completed step.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct StepResult {
    /// The migration's version.
    pub version: String,
    /// Its name.
    pub name: String,
    /// How long it took.
    pub execution_time_ms: u64,
}

/// The answer of `status`.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// The last applied version, in plan order.
    pub current: Option<String>,
    /// The last version on disk.
    pub head: Option<String>,
    /// Every migration, in plan order, then rows whose file is gone.
    pub migrations: Vec<StatusRow>,
}

impl StatusReport {
    /// SPEC's `status --json` object.
    pub fn to_json(&self, database: &str) -> serde_json::Value {
        serde_json::json!({ "database": database, "current": self.current, "head": self.head, "migrations": self.migrations })
    }
    /// How many migrations are in `state`.
    pub fn count(&self, state: MigrationState) -> usize {
        self.migrations.iter().filter(|r| r.state == state).count()
    }
}

/// A problem `validate` found.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// `modified`, `missing`, `failed`, `out_of_order`, `sum_mismatch`.
    pub kind: &'static str,
    /// The migration, when the finding is about one.
    pub version: Option<String>,
    /// What is wrong.
    pub message: String,
    /// The file, when there is one.
    pub file: Option<PathBuf>,
    /// The line, when known.
    pub line: Option<usize>,
}

/// What `repair` did (or, in a dry run, would do) to one history row.
#[derive(Debug, Clone, Serialize)]
pub struct RepairAction {
    /// The migration's version.
    pub version: String,
    /// Its name.
    pub name: String,
    /// `checksum` (an edited migration re-recorded) or `cleared_failed` (a failed
    /// non-transactional row removed, so the migration is pending again).
    pub action: &'static str,
    /// What changed, in words.
    pub detail: String,
}

/// The answer of `repair`.
#[derive(Debug, Clone, Serialize)]
pub struct RepairReport {
    /// The rows changed (or, for a dry run, to change).
    pub repaired: Vec<RepairAction>,
    /// Applied migrations whose files are gone: repair leaves them for a person.
    pub missing: Vec<String>,
    /// True when nothing was changed.
    pub dry_run: bool,
}

/// Overall health, worst first; the exit code of `strata health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Reachable, nothing pending, no drift or failure.
    Healthy,
    /// Usable, with something to look at (pending migrations, drift).
    Degraded,
    /// Unreachable, or a failed migration.
    Unhealthy,
}

impl HealthStatus {
    /// 0 healthy, 1 degraded, 2 unhealthy (`strata health`).
    pub fn exit_code(self) -> i32 {
        self as i32
    }
}

/// The answer of `health`.
#[derive(Debug, Clone, Serialize)]
pub struct HealthReport {
    /// The verdict.
    pub status: HealthStatus,
    /// The database answered.
    pub reachable: bool,
    /// How long a round trip took.
    pub latency_ms: Option<f64>,
    /// The server's version string.
    pub server_version: Option<String>,
    /// strata's history tables exist.
    pub history_tables: bool,
    /// The last applied version.
    pub current: Option<String>,
    /// Migrations waiting to run; `null` when the history could not be read (an
    /// unreachable database has an unknown number, not zero).
    pub pending: Option<usize>,
    /// Edited or missing migrations, and a stale `strata.sum`.
    pub drift: Vec<String>,
    /// Versions with a `failed` row.
    pub failed: Vec<String>,
    /// How far each failed migration's run got (a rollback, a statement in doubt).
    pub stopped: Vec<StoppedRun>,
    /// Who holds the migration lock now, when anyone does.
    pub lock_holder: Option<String>,
    /// The server's role (`primary`, `standby`, `read-only`), when it has one.
    pub role: Option<String>,
    /// Why the server accepts no writes, when it does not (a standby).
    pub read_only: Option<String>,
    /// The connection is encrypted (TLS).
    pub encrypted: Option<bool>,
    /// A multi-primary cluster the server belongs to (`galera`).
    pub cluster: Option<String>,
    /// The lock detection chose, and why.
    pub lock: Option<String>,
    /// Why the status is not healthy, one line each.
    pub problems: Vec<String>,
}

/// A failed migration in [`HealthReport::stopped`].
#[derive(Debug, Clone, Serialize)]
pub struct StoppedRun {
    /// The failed migration's version.
    pub version: String,
    /// How far its run got.
    #[serde(flatten)]
    pub stopped: crate::plan::Stopped,
}

/// Which history change a mark command makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// `stamp V`: record V only.
    Stamp,
    /// `baseline V`: record V and every pending migration before it.
    Baseline,
}

enum Request<'a> {
    Up(&'a Target),
    Rollback(&'a Target),
    Down {
        version: &'a str,
        cascade: bool,
    },
    Mark {
        version: &'a str,
        mark: Mark,
    },
    /// Record exactly these versions, which another tool applied (`strata adopt`).
    Adopt {
        versions: &'a [String],
    },
}

impl Request<'_> {
    fn rolls_back(&self) -> bool {
        matches!(self, Request::Rollback(_) | Request::Down { .. })
    }
}

/// Applies, rolls back and inspects the migrations of one directory.
#[derive(Debug, Clone)]
pub struct Migrator {
    source: Source,
    settings: Settings,
    init_sql: Vec<String>,
    actor: Actor,
}

impl Migrator {
    /// Reads a migrations directory (see [`crate::source`] for the format).
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let source = source::read_dir(dir.as_ref())?;
        let settings = source
            .manifest
            .as_ref()
            .and_then(|m| m.settings.clone())
            .unwrap_or_default();
        let init_sql = settings.init_sql();
        Ok(Migrator {
            source,
            settings,
            init_sql,
            actor: Actor::os_user(),
        })
    }

    /// A migrator over migrations already read (embedded in the program, say).
    pub fn from_source(source: Source) -> Self {
        Migrator {
            source,
            settings: Settings::default(),
            init_sql: vec![],
            actor: Actor::os_user(),
        }
    }

    /// Settings from config take precedence over the manifest's.
    pub fn with_settings(mut self, settings: &Settings) -> Self {
        self.settings = settings.clone().or(&self.settings);
        self.init_sql = self.settings.init_sql();
        self
    }

    /// Adds a migration written in Rust, planned with the files by version and
    /// dependencies. A version already used by a file or another code migration is an
    /// input error.
    pub fn register(mut self, code: impl CodeMigration + 'static) -> Result<Self> {
        let mut all = std::mem::take(&mut self.source.migrations);
        all.push(code::migration(Arc::new(code)));
        source::check_duplicates(&all)?;
        self.source.migrations = plan::order(all)?;
        Ok(self)
    }

    /// Who is acting, for the history and audit rows.
    pub fn with_actor(mut self, actor: Actor) -> Self {
        self.actor = actor;
        self
    }

    /// Who is acting from now on (the server sets the API caller per request).
    pub fn set_actor(&mut self, actor: Actor) {
        self.actor = actor;
    }

    /// Every migration, in plan order.
    pub fn migrations(&self) -> &[Migration] {
        &self.source.migrations
    }

    /// What `list --json` and `GET /api/v1/migrations/` show: every migration on disk.
    pub fn list_json(&self) -> serde_json::Value {
        let rows: Vec<_> = self
            .migrations()
            .iter()
            .map(|m| {
                serde_json::json!({
                    "version": m.version, "id": m.id, "name": m.name, "description": m.description, "kind": m.kind,
                    "depends_on": m.dependencies.iter().map(|d| d.target.clone()).collect::<Vec<_>>(),
                    "has_rollback": m.down.is_some(), "transactional": m.transactional, "outside_transaction": m.outside_transaction, "checksum": m.checksum,
                    "file": m.source,
                })
            })
            .collect();
        let mut json = serde_json::json!({ "migrations": rows });
        if !self.source.not_runnable.is_empty() {
            json["not_runnable"] = serde_json::json!(self.source.not_runnable);
        }
        json
    }

    /// The directory read.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// The settings in effect.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Checks `strata.sum` when the directory has one.
    pub fn check_sum(&self) -> Result<()> {
        sum::verify(&self.source.dir, &self.source.migrations)
            .map(|_| ())
            .map_err(Error::SumMismatch)
    }

    /// The history as the plan sees it: where a squashed baseline (`-- strata:baseline`,
    /// written by `squash --to V`) replaced migrations up to V, a database migrated
    /// before the squash has rows for them; the rows below V stand for the baseline and
    /// are left out, and V's row counts as the baseline applied. The table is untouched.
    pub async fn applied_rows(&self, d: &mut dyn Driver) -> Result<Vec<AppliedMigration>> {
        let rows = d.applied().await?;
        let Some(base) = self.source.migrations.iter().find(|m| m.is_baseline()) else {
            return Ok(rows);
        };
        let on_disk: std::collections::HashSet<&str> = self
            .source
            .migrations
            .iter()
            .filter(|m| m.version != base.version)
            .map(|m| m.version.as_str())
            .collect();
        let squashed = |a: &AppliedMigration| {
            crate::Version::new(a.version.as_str()) <= base.version
                && !on_disk.contains(a.version.as_str())
        };
        if !rows
            .iter()
            .any(|a| squashed(a) && a.version != base.version.as_str())
        {
            return Ok(rows);
        }
        if !rows.iter().any(|a| a.version == base.version.as_str()) {
            let at = rows
                .iter()
                .rfind(|a| squashed(a))
                .map(|a| a.version.clone())
                .unwrap_or_default();
            return Err(Error::Refused(format!(
                "this database stopped at {at}, inside the migrations squashed into {}; migrate it to {} with the release before the squash",
                base.id,
                base.version.as_str()
            )));
        }
        Ok(rows
            .into_iter()
            .filter(|a| !squashed(a) || a.version == base.version.as_str())
            .map(|mut a| {
                if a.version == base.version.as_str() {
                    a.checksum = base.checksum.clone();
                    a.name = base.name.clone();
                }
                a
            })
            .collect())
    }

    /// Every migration with its state.
    pub async fn status(&self, d: &mut dyn Driver) -> Result<StatusReport> {
        let applied = self.applied_rows(d).await?;
        Ok(self.status_of(&applied))
    }

    fn status_of(&self, applied: &[AppliedMigration]) -> StatusReport {
        let (current, head) = self.current_and_head(applied);
        StatusReport {
            current,
            head,
            migrations: plan::states(&self.source.migrations, applied),
        }
    }

    /// The current and head versions that [`Migrator::status`] reports, for these rows
    /// of the history (from [`Migrator::applied_rows`]).
    pub fn current_and_head(
        &self,
        applied: &[AppliedMigration],
    ) -> (Option<String>, Option<String>) {
        let current = plan::Live::new(&self.source.migrations, applied).current();
        let head = self
            .source
            .migrations
            .iter()
            .rev()
            .find(|m| m.kind == MigrationKind::Versioned)
            .map(|m| m.version.to_string());
        // The application's code migrations that this program does not register count
        // by version: they are part of the schema's history all the same. (No index of
        // 10,000 files for the usual history without such rows.)
        if !applied.iter().any(|a| a.is_code()) {
            return (current, head);
        }
        let cat = plan::Catalog::new(&self.source.migrations);
        let later = |a: Option<String>, b: &str| match a {
            Some(a) if crate::Version::new(a.as_str()) >= crate::Version::new(b) => Some(a),
            _ => Some(b.to_string()),
        };
        applied
            .iter()
            .filter(|a| a.success && a.is_code() && cat.find(&a.version).is_none())
            .fold((current, head), |(c, h), a| {
                (later(c, &a.version), later(h, &a.version))
            })
    }

    /// The rows of [`Migrator::status`] one at a time: printing 10,000 of them needs
    /// none held.
    pub fn status_rows<'a>(
        &'a self,
        applied: &'a [AppliedMigration],
    ) -> impl Iterator<Item = StatusRow> + 'a {
        plan::states_iter(&self.source.migrations, applied)
    }

    /// What `validate` finds wrong with the sources and, when given, the history.
    pub fn validate(&self, applied: Option<&[AppliedMigration]>) -> Vec<Finding> {
        let mut out = Vec::new();
        if let Err(e) = sum::verify(&self.source.dir, &self.source.migrations) {
            out.push(Finding {
                kind: "sum_mismatch",
                version: None,
                message: e.message.clone(),
                file: Some(e.path.clone()),
                line: e.line,
            });
        }
        let Some(applied) = applied else { return out };
        let cat = plan::Catalog::new(&self.source.migrations);
        for row in plan::states_iter(&self.source.migrations, applied) {
            let message = match row.state {
                MigrationState::Modified => {
                    format!("migration {} was edited after it was applied", row.version)
                }
                MigrationState::Missing => format!(
                    "migration {} ({}) is applied but its file is missing",
                    row.version, row.name
                ),
                MigrationState::Failed if row.code => format!(
                    "code migration {} ({}) failed when the application ran it",
                    row.version, row.name
                ),
                MigrationState::Failed => format!("migration {} failed midway", row.version),
                _ => continue,
            };
            let file = cat
                .find(&row.version)
                .map(|i| self.source.migrations[i].source.clone());
            out.push(Finding {
                kind: state_kind(row.state),
                version: Some(row.version),
                message,
                file,
                line: None,
            });
        }
        // Nothing is out of order before something is applied (and the plan of a fresh
        // database would copy every migration).
        if !applied.iter().any(|a| a.success) {
            return out;
        }
        if let Err(crate::PlanError::OutOfOrder {
            version,
            applied,
            path,
        }) = plan::plan_up(
            &self.source.migrations,
            applied,
            &Target::Head,
            UpOptions {
                resume: true,
                ..Default::default()
            },
        ) {
            out.push(Finding {
                kind: "out_of_order",
                message: format!("pending migration {version} is older than applied {applied}"),
                version: Some(version),
                file: Some(path),
                line: None,
            });
        }
        out
    }

    /// Applies pending migrations in plan order up to `target`.
    pub async fn up(
        &self,
        d: &mut dyn Driver,
        target: &Target,
        opts: &RunOptions,
        rep: &mut dyn Reporter,
    ) -> Result<RunReport> {
        self.check_sum_for_up(d).await?;
        if !opts.dry_run {
            self.refuse_unadopted(d).await?;
        }
        self.run(d, Request::Up(target), opts, rep).await
    }

    /// `strata.sum` before `up`: an inserted, removed or reordered migration (a merge)
    /// is an error, as is an edit to a migration this database has applied; an edit to
    /// one it has not (`create`, then edit, then `up`) is recorded in `strata.sum`
    /// instead of refused.
    async fn check_sum_for_up(&self, d: &mut dyn Driver) -> Result<()> {
        let sum::Check::Edited(edits) =
            sum::check(&self.source.dir, &self.source.migrations).map_err(Error::SumMismatch)?
        else {
            return Ok(());
        };
        let applied: std::collections::HashSet<String> = self
            .applied_rows(d)
            .await?
            .into_iter()
            .map(|a| a.version)
            .collect();
        for (id, err) in edits.iter() {
            let m = self.source.migrations.iter().find(|m| &m.id == id);
            if m.is_none_or(|m| applied.contains(m.version.as_str())) {
                return Err(Error::SumMismatch(err.clone()));
            }
        }
        let ids: Vec<&str> = edits.iter().map(|(id, _)| id.as_str()).collect();
        match sum::write(&self.source.dir, &self.source.migrations) {
            Ok(()) => tracing::info!(
                "strata.sum updated: {} edited before it was applied",
                ids.join(", ")
            ),
            Err(e) => tracing::warn!(
                "strata.sum not updated ({}): {} edited before it was applied",
                e.message,
                ids.join(", ")
            ),
        }
        Ok(())
    }

    /// Rolls back everything applied after `target` (`-1`: the last one; `base`: all).
    pub async fn rollback(
        &self,
        d: &mut dyn Driver,
        target: &Target,
        opts: &RunOptions,
        rep: &mut dyn Reporter,
    ) -> Result<RunReport> {
        self.ensure_rollback_enabled()?;
        self.run(d, Request::Rollback(target), opts, rep).await
    }

    /// Rolls back one applied migration; with `cascade`, its applied dependents first.
    pub async fn down(
        &self,
        d: &mut dyn Driver,
        version: &str,
        cascade: bool,
        opts: &RunOptions,
        rep: &mut dyn Reporter,
    ) -> Result<RunReport> {
        self.ensure_rollback_enabled()?;
        self.run(d, Request::Down { version, cascade }, opts, rep)
            .await
    }

    /// Records migrations as applied without running them.
    pub async fn mark(
        &self,
        d: &mut dyn Driver,
        version: &str,
        mark: Mark,
        opts: &RunOptions,
        rep: &mut dyn Reporter,
    ) -> Result<RunReport> {
        self.run(d, Request::Mark { version, mark }, opts, rep)
            .await
    }

    /// Takes over a database another tool migrated: records what `foreign` says is
    /// applied in strata's history, without running it (checksums from the files, an
    /// `adopt` audit row each). The other tool's table is only read. A failed or dirty
    /// state there, or an applied version no file here has, is refused.
    pub async fn adopt(
        &self,
        d: &mut dyn Driver,
        foreign: &crate::adopt::Foreign,
        opts: &RunOptions,
        rep: &mut dyn Reporter,
    ) -> Result<RunReport> {
        if let Some(problem) = &foreign.problem {
            return Err(Error::Refused(format!("cannot adopt: {problem}")));
        }
        let versions: Vec<String> = foreign
            .matching(&self.source.migrations)
            .map_err(|e| {
                Error::Refused(format!(
                    "cannot adopt from {} ({}): {e}; point --dir at the tool's migrations",
                    foreign.tool, foreign.table
                ))
            })?
            .iter()
            .map(|m| m.version.to_string())
            .collect();
        self.run(
            d,
            Request::Adopt {
                versions: &versions,
            },
            opts,
            rep,
        )
        .await
    }

    /// Refuses `up` on a database another tool manages and strata has not adopted:
    /// it would run again migrations whose objects exist.
    async fn refuse_unadopted(&self, d: &mut dyn Driver) -> Result<()> {
        if d.has_history().await? {
            return Ok(());
        }
        for f in crate::adopt::detect(d).await? {
            let n = f.overlap(&self.source.migrations);
            if n > 0 {
                return Err(Error::Refused(format!(
                    "this database is managed by {} ({}: {n} applied); `strata adopt` records those in strata's history first, so they are not run again",
                    f.tool, f.table
                )));
            }
        }
        Ok(())
    }

    /// Re-records checksums of edited migrations and clears `failed` rows, each with an
    /// audit row. Missing migrations are reported, not touched.
    pub async fn repair(
        &self,
        d: &mut dyn Driver,
        dry_run: bool,
        rep: &mut dyn Reporter,
    ) -> Result<RepairReport> {
        if !d.has_history().await? {
            return Ok(RepairReport {
                repaired: vec![],
                missing: vec![],
                dry_run,
            });
        }
        if dry_run {
            let applied = self.applied_rows(d).await?;
            let (repaired, missing) = self.repairs(&applied)?;
            return Ok(RepairReport {
                repaired: repaired.into_iter().map(|(a, _)| a).collect(),
                missing,
                dry_run,
            });
        }
        self.lock(d, &mut Silent).await?;
        let result = async {
            let applied = self.applied_rows(d).await?;
            let (repairs, missing) = self.repairs(&applied)?;
            let current = self.status_of(&applied).current.unwrap_or_default();
            let mut repaired = Vec::new();
            for (action, record) in repairs {
                let audit = self.entry("repair", action.version.clone(), applied
                        .iter()
                        .find(|a| a.version == action.version)
                        .map(|a| serde_json::json!({"checksum": a.checksum, "success": a.success, "statements_done": a.statements_done})), Some(serde_json::json!({"action": action.action, "detail": action.detail})));
                let change = self.change(
                    None,
                    true,
                    record,
                    audit,
                    vec![("schema_version", current.clone())],
                    0,
                    None,
                    &RunOptions::default(),
                );
                d.execute(&change).await?;
                rep.report(Event::Repaired {
                    version: &action.version,
                    action: action.action,
                });
                repaired.push(action);
            }
            Ok::<_, Error>(RepairReport {
                repaired,
                missing,
                dry_run,
            })
        }
        .await;
        let unlocked = d.unlock().await;
        let report = result?;
        unlocked?;
        Ok(report)
    }

    #[allow(clippy::type_complexity)]
    fn repairs(
        &self,
        applied: &[AppliedMigration],
    ) -> Result<(Vec<(RepairAction, Record)>, Vec<String>)> {
        let cat = plan::Catalog::new(&self.source.migrations);
        let mut out = Vec::new();
        let mut missing = Vec::new();
        for a in applied {
            let m = cat.find(&a.version).map(|i| &self.source.migrations[i]);
            if !a.success {
                out.push((
                    RepairAction {
                        version: a.version.clone(),
                        name: a.name.clone(),
                        action: "cleared_failed",
                        detail: format!(
                            "removed the failed row ({} statements had completed); the migration is pending again",
                            a.statements_done
                        ),
                    },
                    Record::Remove {
                        version: a.version.clone(),
                    },
                ));
                continue;
            }
            match m {
                // The application's code migration: not this program's to judge.
                None if a.is_code() => {}
                None => missing.push(a.version.clone()),
                Some(m) if m.kind == MigrationKind::Versioned && m.checksum != a.checksum => out
                    .push((
                        RepairAction {
                            version: a.version.clone(),
                            name: a.name.clone(),
                            action: "checksum",
                            detail: format!(
                                "checksum {} -> {}",
                                a.checksum.short(),
                                m.checksum.short()
                            ),
                        },
                        Record::Repair {
                            version: a.version.clone(),
                            checksum: m.checksum.to_string(),
                            rollback_sql: m.down_text()?,
                        },
                    )),
                Some(_) => {}
            }
        }
        Ok((out, missing))
    }

    /// Reachability, history, pending, drift, failed rows and the lock holder, judged
    /// healthy / degraded / unhealthy. `d` is `None` when the connection failed.
    pub async fn health(&self, d: Result<&mut dyn Driver, &Error>) -> HealthReport {
        let mut h = HealthReport {
            status: HealthStatus::Healthy,
            reachable: false,
            latency_ms: None,
            server_version: None,
            history_tables: false,
            current: None,
            pending: None,
            drift: vec![],
            failed: vec![],
            stopped: vec![],
            lock_holder: None,
            role: None,
            read_only: None,
            encrypted: None,
            cluster: None,
            lock: None,
            problems: vec![],
        };
        let worst = |h: &mut HealthReport, s: HealthStatus, problem: String| {
            h.status = h.status.max(s);
            h.problems.push(problem);
        };
        let started = Instant::now();
        let reached = match d {
            Ok(d) => match d.server_version().await {
                Ok(v) => Ok((d, v)),
                Err(e) => Err(e.to_string()),
            },
            Err(e) => Err(e.to_string()),
        };
        let d = match reached {
            Ok((d, version)) => {
                h.reachable = true;
                h.latency_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
                h.server_version = Some(version);
                d
            }
            Err(e) => {
                worst(
                    &mut h,
                    HealthStatus::Unhealthy,
                    format!("database unreachable: {e}"),
                );
                return h;
            }
        };
        match d.topology().await {
            Ok(t) => {
                h.role = t.role;
                h.read_only = t.read_only;
                h.encrypted = t.encrypted;
                h.cluster = t.cluster;
                h.lock = t.lock;
            }
            Err(e) => tracing::debug!("cannot tell the server's role: {e}"),
        }
        if let Err(e) = self.check_sum() {
            h.drift.push("strata.sum".into());
            worst(&mut h, HealthStatus::Degraded, e.to_string());
        }
        match d.has_history().await {
            Ok(true) => h.history_tables = true,
            Ok(false) => worst(
                &mut h,
                HealthStatus::Degraded,
                "history tables are missing: nothing has been applied yet".into(),
            ),
            Err(e) => worst(
                &mut h,
                HealthStatus::Unhealthy,
                format!("cannot read history: {e}"),
            ),
        }
        match self.applied_rows(d).await {
            Ok(applied) => {
                let status = self.status_of(&applied);
                h.current = status.current.clone();
                h.pending = Some(status.count(MigrationState::Pending));
                for row in &status.migrations {
                    match row.state {
                        MigrationState::Modified | MigrationState::Missing => {
                            h.drift.push(row.version.clone())
                        }
                        MigrationState::Failed => {
                            h.failed.push(row.version.clone());
                            if let Some(stopped) = row.stopped.clone() {
                                h.stopped.push(StoppedRun {
                                    version: row.version.clone(),
                                    stopped,
                                });
                            }
                        }
                        _ => {}
                    }
                }
            }
            Err(e) => worst(
                &mut h,
                HealthStatus::Unhealthy,
                format!("cannot read history: {e}"),
            ),
        }
        if !h.failed.is_empty() {
            let p = format!(
                "failed migrations: {}; `strata up --resume` or `strata repair`",
                h.failed.join(", ")
            );
            worst(&mut h, HealthStatus::Unhealthy, p);
        }
        for row in h.stopped.clone() {
            let p = match (row.stopped.direction, row.stopped.in_doubt) {
                (_, Some(k)) => format!(
                    "statement {k} of migration {} is in doubt: its run stopped while it ran; check the database, then `--resume --in-doubt=done|rerun`",
                    row.version
                ),
                (Direction::Down, None) => format!(
                    "the rollback of migration {} stopped after {} statement(s); `strata rollback --resume`",
                    row.version, row.stopped.statements_done
                ),
                (Direction::Up, None) => continue,
            };
            worst(&mut h, HealthStatus::Unhealthy, p);
        }
        let drifted: Vec<_> = h
            .drift
            .iter()
            .filter(|v| *v != "strata.sum")
            .cloned()
            .collect();
        if !drifted.is_empty() {
            let p = format!("edited or missing migrations: {}", drifted.join(", "));
            worst(&mut h, HealthStatus::Degraded, p);
        }
        if let Some(pending) = h.pending.filter(|n| *n > 0) {
            let mut p = format!("{pending} pending migration(s)");
            if let Some(why) = &h.read_only {
                p.push_str(&format!(
                    " ({why}: they are applied on the primary and replicate here)"
                ));
            }
            worst(&mut h, HealthStatus::Degraded, p);
        }
        match d.lock_holder().await {
            Ok(Some(holder)) => {
                let p = format!("the migration lock is held by {holder}");
                h.lock_holder = Some(holder);
                worst(&mut h, HealthStatus::Degraded, p);
            }
            Ok(None) => {}
            Err(e) => tracing::debug!("cannot tell who holds the lock: {e}"),
        }
        h
    }

    /// Restores backup `id` under the migration lock (no run interleaves with it), then
    /// audits the restore in the restored database.
    pub async fn restore(
        &self,
        d: &mut dyn Driver,
        store: &BackupStore,
        id: &str,
    ) -> Result<BackupInfo> {
        self.lock(d, &mut Silent).await?;
        let result = store.restore(d, id).await;
        let unlocked = d.unlock().await;
        let info = result?;
        unlocked?;
        let entry = self.entry(
            "restore",
            info.schema_version.clone().unwrap_or_default(),
            None,
            Some(serde_json::json!({"backup": info.id, "created_at": info.created_at})),
        );
        if let Err(e) = d.audit(&entry).await {
            tracing::warn!("could not write the restore to audit_log: {e}");
        }
        Ok(info)
    }

    /// The newest `limit` audit events.
    pub async fn history(&self, d: &mut dyn Driver, limit: usize) -> Result<Vec<AuditRecord>> {
        if !d.has_history().await? {
            return Ok(vec![]);
        }
        Ok(d.audit_log(limit).await?)
    }

    fn ensure_rollback_enabled(&self) -> Result<()> {
        if self.settings.rollback_enabled() {
            Ok(())
        } else {
            Err(Error::Refused(
                "rollback is disabled by the `rollback_enabled = false` setting".into(),
            ))
        }
    }

    fn plan(
        &self,
        req: &Request<'_>,
        applied: &[AppliedMigration],
        opts: &RunOptions,
    ) -> Result<Plan> {
        let ms = &self.source.migrations;
        let up_opts = UpOptions {
            allow_out_of_order: opts.up.allow_out_of_order || self.settings.out_of_order(),
            ..opts.up
        };
        let mut plan = match req {
            Request::Up(t) => plan::plan_up(ms, applied, t, up_opts)?,
            Request::Rollback(t) => plan::plan_rollback(ms, applied, t)?,
            Request::Down { version, cascade } => plan::plan_down(ms, applied, version, *cascade)?,
            Request::Mark { version, mark } => {
                plan::plan_mark(ms, applied, version, *mark == Mark::Baseline)?
            }
            Request::Adopt { versions } => plan::plan_exact(ms, applied, versions),
        };
        for step in &mut plan.steps {
            let Some(row) = applied
                .iter()
                .find(|a| a.version == step.version && !a.success)
            else {
                continue;
            };
            step.resume_from = resume_point(step, row, &opts.up)?;
        }
        Ok(plan)
    }

    /// Refuses targets that cannot mean anything before the database is touched.
    fn precheck(&self, req: &Request<'_>) -> Result<()> {
        let cat = plan::Catalog::new(&self.source.migrations);
        let unknown =
            |t: &str| -> Result<()> { Err(crate::PlanError::UnknownTarget(t.to_string()).into()) };
        match req {
            Request::Up(Target::Version(v)) if cat.resolve(v).is_none() => unknown(v),
            Request::Mark { version, .. } if cat.resolve(version).is_none() => unknown(version),
            Request::Up(t @ Target::Relative(n)) if *n < 0 => unknown(&t.to_string()),
            Request::Rollback(t @ Target::Relative(n)) if *n > 0 => unknown(&t.to_string()),
            _ => Ok(()),
        }
    }

    async fn run(
        &self,
        d: &mut dyn Driver,
        req: Request<'_>,
        opts: &RunOptions,
        rep: &mut dyn Reporter,
    ) -> Result<RunReport> {
        let rep = &mut crate::event::Logged(rep);
        self.precheck(&req)?;
        for m in &self.source.migrations {
            d.check(m)?;
        }
        // Nothing is applied where there is no history: answer without creating it.
        if req.rolls_back() && !d.has_history().await? {
            let plan = self.plan(&req, &[], opts)?;
            rep.report(Event::PlanReady {
                plan: &plan,
                dry_run: opts.dry_run,
            });
            return Ok(RunReport {
                plan,
                done: vec![],
                dry_run: opts.dry_run,
            });
        }
        if opts.dry_run {
            let applied = self.applied_rows(d).await?;
            let plan = self.plan(&req, &applied, opts)?;
            check_scripts(&plan, d.kind())?;
            rep.report(Event::PlanReady {
                plan: &plan,
                dry_run: true,
            });
            return Ok(RunReport {
                plan,
                done: vec![],
                dry_run: true,
            });
        }
        if req.rolls_back() {
            self.ensure_recent_backup(opts)?;
        }
        // A transient failure (connection lost, deadlock, lock wait timeout...) starts
        // the run over on a fresh connection: the plan is made again from the history,
        // so what committed is never applied twice.
        let attempts = self.settings.retry_attempts();
        let mut done = Vec::new();
        let mut attempt = 0;
        let mut resume = opts.up.resume;
        let mut in_doubt = opts.up.in_doubt;
        // The migration a transient failure cut short, so that a retry which cannot
        // even reconnect still says which migration was left unfinished.
        let mut interrupted: Option<(String, String, DriverError)> = None;
        loop {
            let mut this = opts.clone();
            this.up.resume = resume;
            this.up.in_doubt = in_doubt;
            match self.attempt(d, &req, &this, rep, &mut done).await {
                Ok(plan) => {
                    return Ok(RunReport {
                        plan,
                        done,
                        dry_run: false,
                    })
                }
                Err(e) if e.is_transient() && attempt < attempts => {
                    attempt += 1;
                    // A non-transactional statement the server refused (the server
                    // said so, with a code) did not take effect, so its recorded progress
                    // is exact and the next attempt resumes it, running it again; the
                    // in-flight mark it may have left is that very statement.
                    //
                    // Otherwise (the connection closed) the next attempt still resumes
                    // what the history recorded as done: resuming refuses a statement left
                    // in doubt, so only a migration cut between statements (its last one
                    // done, the success mark lost) goes on, and exactly.
                    if let Error::Migration { source, .. } = &e {
                        resume = true;
                        if source.code.is_some() && source.statement.is_some() {
                            in_doubt = in_doubt.or(Some(crate::InDoubt::Rerun));
                        }
                    }
                    if let Error::Migration {
                        id,
                        version,
                        source,
                    } = &e
                    {
                        interrupted = Some((id.clone(), version.clone(), source.clone()));
                    }
                    let delay = self.settings.retry_delay() * attempt;
                    rep.report(Event::Retrying {
                        attempt,
                        of: attempts,
                        delay,
                        error: &e,
                    });
                    tracing::warn!(
                        attempt,
                        of = attempts,
                        delay_ms = delay.as_millis() as u64,
                        "transient failure, retrying: {e}"
                    );
                    tokio::time::sleep(delay).await;
                    if let Err(re) = d.reconnect().await {
                        tracing::warn!("reconnect failed: {re}");
                        continue;
                    }
                    self.audit_retry(d, &e, attempt, attempts, delay).await;
                }
                Err(e) => {
                    return Err(match interrupted {
                        Some(cut) if !matches!(e, Error::Migration { .. }) => {
                            Error::unfinished(cut, e)
                        }
                        _ => e,
                    })
                }
            }
        }
    }

    /// One try of a run: lock, plan, execute, unlock.
    async fn attempt(
        &self,
        d: &mut dyn Driver,
        req: &Request<'_>,
        opts: &RunOptions,
        rep: &mut dyn Reporter,
        done: &mut Vec<StepResult>,
    ) -> Result<Plan> {
        let started = Instant::now();
        self.lock(d, rep).await?;
        rep.report(Event::LockAcquired {
            waited: started.elapsed(),
        });
        // Everything between lock and unlock is one expression: no early return may skip
        // the unlock, and the run's own error wins over an unlock error.
        let result = self.run_locked(d, req, opts, rep, done).await;
        let unlocked = d.unlock().await;
        let plan = result?;
        unlocked?;
        Ok(plan)
    }

    /// Takes the migration lock for a change, refusing at once a server that accepts
    /// no writes (a standby): the change would otherwise fail on its first statement
    /// and look like the migration's fault.
    ///
    /// One attempt first: only when another holder has it does the run report
    /// [`Event::LockWaiting`] and wait up to `lock_timeout` (so "lock waits" count
    /// waits, not runs).
    async fn lock(&self, d: &mut dyn Driver, rep: &mut dyn Reporter) -> Result<()> {
        if let Some(why) = d.topology().await?.read_only {
            return Err(Error::Driver(
                DriverError::new(
                    DriverErrorKind::Refused,
                    format!("refusing to migrate: {why}"),
                )
                .with_detail("connect strata to the primary"),
            ));
        }
        let opts = self.lock_options();
        let once = LockOptions {
            wait: false,
            ..opts
        };
        match d.lock(&once).await {
            Err(e) if e.kind == DriverErrorKind::LockTimeout && !opts.timeout.is_zero() => {
                rep.report(Event::LockWaiting);
                d.lock(&opts).await?;
            }
            other => other?,
        }
        Ok(())
    }

    fn lock_options(&self) -> LockOptions {
        LockOptions {
            timeout: self.settings.lock_timeout(),
            wait: true,
            mode: self.settings.lock_mode(),
            lease: self.settings.lease(),
            explicit: self.settings.lock.is_some(),
        }
    }

    /// Refuses a rollback in a protected environment without a recent backup (unless
    /// this run takes one itself).
    fn ensure_recent_backup(&self, opts: &RunOptions) -> Result<()> {
        let Some(policy) = &opts.backup else {
            return Ok(());
        };
        let Some(max_age) = policy.require_recent else {
            return Ok(());
        };
        if policy.before_run || policy.store.recent(max_age)?.is_some() {
            return Ok(());
        }
        Err(Error::Refused(format!(
            "this environment is protected and {} holds no backup of {} younger than {}h; \
             run `strata backup create` first (or set [backup] require_for_rollback = false)",
            policy.store.dir.display(),
            policy.store.database,
            max_age.as_secs() / 3600
        )))
    }

    async fn audit_retry(
        &self,
        d: &mut dyn Driver,
        error: &Error,
        attempt: u32,
        of: u32,
        delay: Duration,
    ) {
        let version = match error {
            Error::Migration { version, .. } => version.clone(),
            _ => String::new(),
        };
        let entry = self.entry(
            "retry",
            version,
            None,
            Some(serde_json::json!({
                "attempt": attempt,
                "of": of,
                "delay_ms": delay.as_millis() as u64,
                "error": error.to_string(),
            })),
        );
        let result = async {
            d.ensure_history().await?;
            d.audit(&entry).await
        }
        .await;
        if let Err(e) = result {
            tracing::warn!("could not write the retry to audit_log: {e}");
        }
    }

    async fn run_locked(
        &self,
        d: &mut dyn Driver,
        req: &Request<'_>,
        opts: &RunOptions,
        rep: &mut dyn Reporter,
        done: &mut Vec<StepResult>,
    ) -> Result<Plan> {
        // Read after taking the lock: another process may have applied migrations meanwhile.
        let applied = self.applied_rows(d).await?;
        let plan = self.plan(req, &applied, opts)?;
        check_scripts(&plan, d.kind())?;
        // Only now is anything written: a refused plan leaves the database as it was
        // (strata's own tables included), and an earlier layout is moved in place here.
        if !plan.steps.is_empty() {
            d.ensure_history().await?;
        }
        rep.report(Event::PlanReady {
            plan: &plan,
            dry_run: false,
        });
        if let Some(policy) = &opts.backup {
            if policy.before_run
                && !plan.steps.is_empty()
                && !matches!(req, Request::Mark { .. } | Request::Adopt { .. })
            {
                let reason = if req.rolls_back() {
                    "before rollback"
                } else {
                    "before up"
                };
                let version = self.status_of(&applied).current;
                let info: BackupInfo = policy.store.create(d, reason, version).await?;
                rep.report(Event::BackupCreated { info: &info });
            }
        }
        let total = plan.steps.len();
        let mut live = plan::Live::new(&self.source.migrations, &applied);
        // The history as re-read after the lock was let go between two steps (SQLite).
        let mut reread: Option<Vec<AppliedMigration>> = None;
        for (index, step) in plan.steps.iter().enumerate() {
            if index > 0 && d.checkpoint().await? {
                reread = Some(self.applied_rows(d).await?);
            }
            if let Some(rows) = &reread {
                // Another run took the lock in the gap and did this step: the same
                // files plan the same steps, so it is done, never done twice.
                let recorded = rows.iter().any(|a| a.version == step.version && a.success);
                let done_elsewhere = match step.direction {
                    Direction::Up => recorded && step.resume_from == 0,
                    Direction::Down => !rows.iter().any(|a| a.version == step.version),
                };
                if done_elsewhere && !matches!(req, Request::Mark { .. } | Request::Adopt { .. }) {
                    tracing::info!(version = %step.version, "done by another run meanwhile");
                    if step.direction == Direction::Down {
                        live.remove(step.migration);
                    }
                    continue;
                }
            }
            let m = step.migration.map(|i| &self.source.migrations[i]);
            match req {
                Request::Mark { .. } | Request::Adopt { .. } => {
                    let m = m.expect("mark plans only hold migrations on disk");
                    let op = match req {
                        Request::Mark {
                            mark: Mark::Baseline,
                            ..
                        } => "baseline",
                        Request::Mark { .. } => "stamp",
                        _ => "adopt",
                    };
                    let row = self.history_row(m, 0)?;
                    let change = self.change(
                        None,
                        true,
                        Record::Apply(row),
                        self.audit(op, step, None),
                        vec![("schema_version", step.version.clone())],
                        0,
                        m.timeout,
                        opts,
                    );
                    d.execute(&change).await?;
                    rep.report(Event::StepRecorded { step });
                    done.push(StepResult {
                        version: step.version.clone(),
                        name: step.name.clone(),
                        execution_time_ms: 0,
                    });
                    continue;
                }
                _ => rep.report(Event::StepStarted { step, index, total }),
            }
            if let Some(code) = m.and_then(|m| m.code.as_ref()) {
                let m = m.expect("code has a migration");
                if step.direction == Direction::Down {
                    live.remove(step.migration);
                }
                let remaining = live.current().unwrap_or_default();
                let elapsed = self
                    .run_code(
                        d,
                        code,
                        m,
                        step,
                        remaining,
                        applied.iter().any(|a| a.version == step.version),
                        opts,
                    )
                    .await
                    .inspect_err(|e| {
                        if let Error::Migration { source, .. } = e {
                            rep.report(Event::StepFailed {
                                step,
                                error: source,
                            });
                        }
                    })?;
                rep.report(Event::StepFinished { step, elapsed });
                done.push(StepResult {
                    version: step.version.clone(),
                    name: step.name.clone(),
                    execution_time_ms: elapsed.as_millis() as u64,
                });
                continue;
            }
            if step.script.is_code_marker() {
                return Err(Error::Refused(format!(
                    "migration {} is code that this program does not register; run it from the application that does",
                    step.version
                )));
            }
            // Read now, checked against the hash taken when the directory was read.
            let sql = step.script.text()?;
            if let Some(row) = applied
                .iter()
                .find(|a| a.version == step.version && !a.success)
            {
                check_resumable(step, &sql, row, d.kind())?;
            }
            let (record, op, schema_version) = match step.direction {
                Direction::Up => {
                    let m = m.expect("up plans only hold migrations on disk");
                    (
                        Record::Apply(self.history_row(m, step.resume_from as i64)?),
                        "apply",
                        step.version.clone(),
                    )
                }
                Direction::Down => {
                    live.remove(step.migration);
                    let remaining = live.current().unwrap_or_default();
                    (
                        Record::Remove {
                            version: step.version.clone(),
                        },
                        "rollback",
                        remaining,
                    )
                }
            };
            let mut change = self.change(
                Some((&step.script, &sql)),
                step.transactional,
                record,
                self.audit(op, step, None),
                vec![("schema_version", schema_version)],
                step.resume_from,
                m.and_then(|m| m.timeout),
                opts,
            );
            change.replaces = applied.iter().any(|a| a.version == step.version);
            match d.execute(&change).await {
                Ok(elapsed) => {
                    rep.report(Event::StepFinished { step, elapsed });
                    done.push(StepResult {
                        version: step.version.clone(),
                        name: step.name.clone(),
                        execution_time_ms: elapsed.as_millis() as u64,
                    });
                }
                Err(error) => {
                    let error = history_survived(d, step, error).await;
                    rep.report(Event::StepFailed {
                        step,
                        error: &error,
                    });
                    let failure = self.audit("failure", step, Some(&error));
                    if let Err(e) = d.audit(&failure).await {
                        tracing::warn!(version = %step.version, "could not write the failure to audit_log: {e}");
                    }
                    return Err(Error::Migration {
                        id: step.id.clone(),
                        version: step.version.clone(),
                        source: error,
                    });
                }
            }
        }
        Ok(plan)
    }

    /// Runs a code migration between two history writes: a `success=false` row (with a
    /// `start` audit row) before the code, the finished row after it. A failure leaves
    /// the `failed` row, as a non-transactional SQL migration that broke does.
    #[allow(clippy::too_many_arguments)]
    async fn run_code(
        &self,
        d: &mut dyn Driver,
        code: &CodeRef,
        m: &Migration,
        step: &Step,
        // The current version once this step is done (down steps).
        remaining: String,
        // The version has a history row already (a failed run of it).
        has_row: bool,
        opts: &RunOptions,
    ) -> Result<Duration> {
        let up = step.direction == Direction::Up;
        let fail = |d: DriverError| Error::Migration {
            id: step.id.clone(),
            version: step.version.clone(),
            source: d,
        };
        if up {
            let mut row = self.history_row(m, 0)?;
            row.success = false;
            let mut start = self.change(
                None,
                true,
                Record::Apply(row),
                self.audit("start", step, None),
                vec![],
                0,
                None,
                opts,
            );
            start.replaces = has_row;
            d.execute(&start).await?;
        }
        let started = Instant::now();
        let result = {
            let mut ctx = CodeContext::new(d);
            if up {
                code.0.up(&mut ctx).await
            } else {
                code.0.down(&mut ctx).await
            }
        };
        let elapsed = started.elapsed();
        if let Err(e) = result {
            // The whole chain: tokio-postgres's `db error` says nothing without its source.
            let error = DriverError::new(
                DriverErrorKind::Query,
                format!("code migration failed: {}", crate::error::chain(e.as_ref())),
            )
            .caused_by(e);
            let failure = self.audit("failure", step, Some(&error));
            if let Err(e) = d.audit(&failure).await {
                tracing::warn!(version = %step.version, "could not write the failure to audit_log: {e}");
            }
            return Err(fail(error));
        }
        let (record, op, schema_version) = if up {
            let mut row = self.history_row(m, 1)?;
            row.execution_time_ms = elapsed.as_millis() as i64;
            (Record::Apply(row), "apply", step.version.clone())
        } else {
            (
                Record::Remove {
                    version: step.version.clone(),
                },
                "rollback",
                remaining,
            )
        };
        let mut done = self.change(
            None,
            true,
            record,
            self.audit(op, step, None),
            vec![("schema_version", schema_version)],
            0,
            None,
            opts,
        );
        // The `success=false` row written before the code.
        done.replaces = up;
        d.execute(&done).await.map_err(fail)?;
        Ok(elapsed)
    }

    #[allow(clippy::too_many_arguments)]
    fn change<'a>(
        &'a self,
        script: Option<(&'a Script, &'a str)>,
        transactional: bool,
        record: Record,
        audit: AuditEntry,
        mut metadata: Vec<(&'static str, String)>,
        resume_from: usize,
        timeout: Option<Duration>,
        opts: &RunOptions,
    ) -> Change<'a> {
        metadata.push(("strata_version", env!("CARGO_PKG_VERSION").to_string()));
        Change {
            script: script.map(|(s, _)| s),
            sql: script.map_or("", |(_, t)| t),
            transactional,
            replaces: false,
            record,
            audit,
            metadata,
            resume_from,
            timeout: timeout.unwrap_or(self.settings.timeout()),
            lock_wait: self.settings.lock_wait(),
            init_sql: &self.init_sql,
            echo: opts.echo,
        }
    }

    /// The row recording `m` as applied, with its rollback script (read from its file).
    fn history_row(&self, m: &Migration, statements_done: i64) -> Result<AppliedMigration> {
        Ok(AppliedMigration {
            version: m.version.to_string(),
            name: m.name.clone(),
            description: m.description.clone(),
            applied_at: chrono::Utc::now(),
            checksum: m.checksum.clone(),
            execution_time_ms: 0,
            rollback_sql: match (m.format, m.down_text()?) {
                (Format::Code, None) => Some(code::irreversible_marker(m.version.as_str())),
                (_, down) => down,
            },
            success: true,
            statements_done,
            applied_by: Some(self.actor.name.clone()),
            progress: Default::default(),
        })
    }

    /// An audit row by this migrator's actor.
    fn entry(
        &self,
        operation: impl Into<String>,
        record_id: String,
        old_values: Option<serde_json::Value>,
        new_values: Option<serde_json::Value>,
    ) -> AuditEntry {
        AuditEntry {
            operation: operation.into(),
            record_id,
            old_values,
            new_values,
            changed_by: self.actor.name.clone(),
            ip_address: self.actor.ip_address.clone(),
            user_agent: self.actor.user_agent.clone(),
        }
    }

    fn audit(&self, operation: &str, step: &Step, error: Option<&DriverError>) -> AuditEntry {
        let m = step.migration.map(|i| &self.source.migrations[i]);
        let mut values = serde_json::json!({ "version": step.version, "name": step.name });
        if let Some(m) = m {
            values["checksum"] = serde_json::json!(m.checksum);
        }
        if let Some(e) = error {
            values["error"] = serde_json::json!(e.to_string());
            values["direction"] = serde_json::json!(step.direction);
        }
        // The text that ran, so a later edit of the file can be shown as a diff (the
        // history row keeps only its checksum). Bounded: a huge data migration keeps
        // its checksum alone.
        if operation == "apply" {
            if let Ok(text) = step.script.text() {
                if text.len() <= APPLIED_TEXT_KEPT {
                    values["sql"] = serde_json::json!(text);
                }
            }
        }
        let (old_values, new_values) = if operation == "rollback" {
            (Some(values), None)
        } else {
            (None, Some(values))
        };
        self.entry(operation, step.version.clone(), old_values, new_values)
    }
}

/// The largest migration text an `apply` audit row keeps (64 KiB).
const APPLIED_TEXT_KEPT: usize = 64 * 1024;

/// Where a step whose history row says a tracked run stopped (`success=false`) goes on:
/// after the statements that completed, once the user has said what a statement left
/// in doubt did. A stopped rollback continues only as a rollback, with `--resume`.
fn resume_point(step: &Step, row: &AppliedMigration, opts: &UpOptions) -> Result<usize> {
    let p = &row.progress;
    let down = step.direction == Direction::Down;
    if p.rolling_back != down {
        if p.rolling_back {
            return Err(crate::PlanError::RollbackStopped {
                version: row.version.clone(),
                done: row.statements_done,
            }
            .into());
        }
        // An apply that stopped midway, rolled back with its whole rollback script.
        return Ok(0);
    }
    if down && !opts.resume {
        return Err(crate::PlanError::RollbackStopped {
            version: row.version.clone(),
            done: row.statements_done,
        }
        .into());
    }
    let done = row.statements_done.max(0) as usize;
    match (p.in_flight, opts.in_doubt) {
        (None, _) => Ok(done),
        (Some(k), None) => Err(crate::PlanError::InDoubt {
            version: row.version.clone(),
            statement: k,
        }
        .into()),
        (Some(k), Some(crate::InDoubt::Done)) => Ok(k.max(0) as usize),
        (Some(_), Some(crate::InDoubt::Rerun)) => Ok(done),
    }
}

/// Refuses to resume a step whose file no longer starts with the statements that
/// completed: skipping "the first N statements" of a different script would record
/// statements as applied that never ran.
fn check_resumable(step: &Step, text: &str, row: &AppliedMigration, kind: &str) -> Result<()> {
    let stored = &row.progress.statement_hashes;
    if step.resume_from == 0 || stored.is_empty() {
        return Ok(());
    }
    let stmts = crate::sql::split_dialect(text, dialect_of(kind));
    for (i, want) in stored.iter().enumerate().take(step.resume_from) {
        let now = stmts
            .get(i)
            .map(|s| crate::sql::statement_hash(s.text(text)));
        if now.as_deref() != Some(want.as_str()) {
            let at = stmts
                .get(i)
                .map(|s| crate::error::StatementRef::new(&step.script, text, s, i, s.range.start));
            return Err(Error::Refused(format!(
                "statement {} of migration {} changed since it ran{}: `--resume` skips the statements that completed, so it would record ones that never ran; undo the completed statements by hand and `strata repair`, or restore the file",
                i + 1,
                step.id,
                at.map(|a| format!(" ({}:{})", a.path.display(), a.line)).unwrap_or_default()
            )));
        }
    }
    Ok(())
}

fn dialect_of(kind: &str) -> crate::sql::Dialect {
    if kind == "mysql" {
        crate::sql::Dialect::MySql
    } else {
        crate::sql::Dialect::Standard
    }
}

/// Refuses, before anything runs, a script the plan would run wrongly: one that leaves
/// a string, quoted identifier, block comment or dollar quote open (everything after it
/// would reach the server as one token, or vanish into a comment), and a transactional
/// one that begins, commits or aborts a transaction itself (strata runs it inside its
/// own transaction with the history row, and a `COMMIT` in it would make part of the
/// migration permanent without any record).
fn check_scripts(plan: &Plan, kind: &str) -> Result<()> {
    let dialect = dialect_of(kind);
    for step in &plan.steps {
        if step.script.is_code_marker() || step.script.path.extension().is_some_and(|e| e == "json")
        {
            continue;
        }
        let text = step.script.text()?;
        if let Some((at, what)) = crate::sql::unterminated(&text, dialect) {
            return Err(crate::SourceError::new(
                &step.script.path,
                Some(step.script.line_at(&text, at)),
                format!(
                    "this {what} is never closed: everything after it would be sent as part of it"
                ),
            )
            .with_help("close it; nothing of this run has been executed")
            .into());
        }
        if !step.transactional {
            continue;
        }
        let stmts = crate::sql::split_dialect(&text, dialect);
        if let Some((i, st)) = stmts
            .iter()
            .enumerate()
            .find(|(_, st)| crate::sql::is_transaction_control(st.text(&text)))
        {
            let at = crate::error::StatementRef::new(&step.script, &text, st, i, st.range.start);
            let word = crate::sql::leading_words(st.text(&text), 1).join("");
            return Err(crate::SourceError::new(
                &at.path,
                Some(at.line),
                format!(
                    "migration {} controls its own transaction (`{word}`, statement {}): strata runs it in a transaction with its history row, so it would commit part of the migration unrecorded",
                    step.id, at.index
                ),
            )
            .with_help("remove the BEGIN/COMMIT lines, or add `-- strata:no-transaction` to run the file statement by statement")
            .into());
        }
    }
    Ok(())
}

/// A failed step's error, or a clearer one when strata's history is gone after it (a
/// migration that dropped strata's tables): the run stops and says so.
async fn history_survived(d: &mut dyn Driver, step: &Step, error: DriverError) -> DriverError {
    if error.transient {
        return error;
    }
    let gone = match d.has_history().await {
        Ok(false) => DriverError::new(
            DriverErrorKind::Refused,
            format!(
                "strata's history tables disappeared while migration {} ran (did it drop them?); strata stopped",
                step.id
            ),
        ),
        Err(e) if e.kind == DriverErrorKind::Refused => e,
        _ => return error,
    };
    gone.with_detail(format!("the migration's own error: {error}"))
}

fn state_kind(s: MigrationState) -> &'static str {
    match s {
        MigrationState::Modified => "modified",
        MigrationState::Missing => "missing",
        MigrationState::Failed => "failed",
        MigrationState::Applied => "applied",
        MigrationState::Pending => "pending",
    }
}
