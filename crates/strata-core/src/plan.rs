//! Ordering and planning: pure functions from (migrations on disk, history rows, target)
//! to a [`Plan`] or a refusal. No I/O here, so every rule is a table-driven unit test.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::fmt;

use serde::Serialize;

use crate::error::{PlanError, SourceError};
use crate::migration::{AppliedMigration, Migration, MigrationKind, MigrationState, Script};
use crate::version::Version;

/// Orders migrations: the topological order of the dependency graph, ties broken by
/// version; repeatable migrations last, by name. Resolves every dependency to a version.
///
/// Kahn's algorithm over a heap, O(n log n); written here because petgraph's toposort
/// has no tie-break and this is twenty lines.
pub fn order(mut found: Vec<Migration>) -> Result<Vec<Migration>, SourceError> {
    // Unstable: ids are unique, so the order is total, and a stable sort would
    // allocate a scratch buffer of migrations.
    found.sort_unstable_by(|a, b| {
        (a.kind == MigrationKind::Repeatable, &a.version, &a.id).cmp(&(
            b.kind == MigrationKind::Repeatable,
            &b.version,
            &b.id,
        ))
    });
    if found.iter().all(|m| m.dependencies.is_empty()) {
        // Nothing to resolve: the sorted order is the plan order.
        return Ok(found);
    }
    let by_version: HashMap<&str, usize> = found
        .iter()
        .enumerate()
        .map(|(i, m)| (m.version.as_str(), i))
        .collect();
    let by_id: HashMap<&str, usize> = found
        .iter()
        .enumerate()
        .map(|(i, m)| (m.id.as_str(), i))
        .collect();
    // Versions compare by value (`1` == `001`): fall back to a search on the sorted list.
    let lookup = |t: &str| -> Option<usize> {
        by_version
            .get(t)
            .or_else(|| by_id.get(t))
            .copied()
            .or_else(|| {
                let v = Version::new(t);
                found
                    .iter()
                    .position(|m| m.kind == MigrationKind::Versioned && m.version == v)
            })
            .or_else(|| {
                // A version squashed into a baseline is the baseline.
                let v = Version::new(t);
                found.iter().position(|m| m.is_baseline() && v <= m.version)
            })
    };
    let n = found.len();
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut indegree = vec![0usize; n];
    let mut resolved: Vec<Vec<String>> = vec![Vec::new(); n];
    for (i, m) in found.iter().enumerate() {
        for d in &m.dependencies {
            if d.external().is_some() {
                // Another database's migration: ordered across databases by `project`.
                resolved[i].push(d.target.clone());
                continue;
            }
            let Some(j) = lookup(&d.target) else {
                return Err(SourceError::new(
                    &d.path,
                    Some(d.line),
                    format!("{} depends on unknown version `{}`", m.id, d.target),
                ));
            };
            if j == i {
                return Err(SourceError::new(
                    &d.path,
                    Some(d.line),
                    format!("{} depends on itself", m.id),
                ));
            }
            edges[j].push(i);
            indegree[i] += 1;
            resolved[i].push(found[j].version.as_str().to_string());
        }
    }
    // Sorted input means index order is the (kind, version) tie-break.
    let mut ready: BinaryHeap<Reverse<usize>> =
        (0..n).filter(|&i| indegree[i] == 0).map(Reverse).collect();
    let mut out = Vec::with_capacity(n);
    while let Some(Reverse(i)) = ready.pop() {
        out.push(i);
        for &j in &edges[i] {
            indegree[j] -= 1;
            if indegree[j] == 0 {
                ready.push(Reverse(j));
            }
        }
    }
    if out.len() < n {
        let stuck: Vec<&Migration> = (0..n)
            .filter(|&i| indegree[i] > 0)
            .map(|i| &found[i])
            .collect();
        let first = stuck[0];
        let line = first.dependencies.first().map(|d| (d.path.clone(), d.line));
        let (path, line) = line
            .map(|(p, l)| (p, Some(l)))
            .unwrap_or((first.source.clone(), None));
        return Err(SourceError::new(
            path,
            line,
            format!(
                "dependency cycle among {}",
                stuck
                    .iter()
                    .map(|m| m.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .with_help("remove one of the `Depends:` entries that close the loop"));
    }
    for (m, targets) in found.iter_mut().zip(resolved) {
        for (d, v) in m.dependencies.iter_mut().zip(targets) {
            d.target = v;
        }
    }
    // Move each migration to its place in the order without a second buffer of
    // migrations (at 10,000 files that copy was a fifth of the peak memory): follow
    // the permutation's cycles, swapping each element straight to its destination.
    let mut dest = vec![0usize; n];
    for (k, &i) in out.iter().enumerate() {
        dest[i] = k;
    }
    for i in 0..n {
        while dest[i] != i {
            let j = dest[i];
            found.swap(i, j);
            dest.swap(i, j);
        }
    }
    Ok(found)
}

/// Where a command should take the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Everything.
    Head,
    /// Nothing.
    Base,
    /// A version or a migration id.
    Version(String),
    /// `+N` / `-N` steps from the current state.
    Relative(i64),
}

impl Target {
    /// Parses `head`, `base`, `+N`, `-N`, or a version / id.
    pub fn parse(s: &str) -> Result<Target, PlanError> {
        let s = s.trim();
        match s.to_ascii_lowercase().as_str() {
            "" => Err(PlanError::UnknownTarget(s.into())),
            "head" | "latest" => Ok(Target::Head),
            "base" => Ok(Target::Base),
            _ if s.starts_with(['+', '-']) => s
                .parse::<i64>()
                .map(Target::Relative)
                .map_err(|_| PlanError::UnknownTarget(s.into())),
            _ => Ok(Target::Version(s.into())),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Head => f.write_str("head"),
            Target::Base => f.write_str("base"),
            Target::Version(v) => f.write_str(v),
            Target::Relative(n) => write!(f, "{n:+}"),
        }
    }
}

/// Apply or roll back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Applying.
    Up,
    /// Rolling back.
    Down,
}

/// One step of a plan: which migration, which way, and the script to run.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// The migration's version.
    pub version: String,
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Up or down.
    pub direction: Direction,
    /// The script that runs (the up script, or the rollback script stored at apply
    /// time); serialized as `sql`, its text.
    #[serde(rename = "sql")]
    pub script: Script,
    /// Runs in one transaction.
    pub transactional: bool,
    /// Why it runs outside a transaction without a directive saying so (see
    /// [`Migration::outside_transaction`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outside_transaction: Option<String>,
    /// Statements already done by an interrupted non-transactional run (`--resume`).
    pub resume_from: usize,
    /// Index into the catalog, when the migration is on disk.
    #[serde(skip)]
    pub migration: Option<usize>,
}

/// Plain data: what a command will do. Printed by `--dry-run`, returned by the API.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Up or down.
    pub direction: Direction,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

impl Plan {
    /// The steps, in order.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }
    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

/// Options of `up`.
#[derive(Debug, Clone, Copy, Default)]
pub struct UpOptions {
    /// Apply a pending migration older than an applied one.
    pub allow_out_of_order: bool,
    /// Continue a failed non-transactional migration from its first incomplete statement.
    pub resume: bool,
    /// What the statement a crash left in doubt did, when the user knows.
    pub in_doubt: Option<InDoubt>,
}

/// The user's word on a statement whose outcome a crash left unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InDoubt {
    /// It took effect: resume after it.
    Done,
    /// It did not: run it again.
    Rerun,
}

/// The catalog of migrations on disk in plan order, with lookups.
pub struct Catalog<'a> {
    /// The migrations, in plan order.
    pub migrations: &'a [Migration],
    by_version: HashMap<&'a str, usize>,
}

impl<'a> Catalog<'a> {
    /// An index over `migrations`.
    pub fn new(migrations: &'a [Migration]) -> Self {
        Catalog {
            migrations,
            by_version: migrations
                .iter()
                .enumerate()
                .map(|(i, m)| (m.version.as_str(), i))
                .collect(),
        }
    }

    /// The position of a history row's version in the catalog.
    pub fn find(&self, version: &str) -> Option<usize> {
        self.by_version.get(version).copied().or_else(|| {
            let v = Version::new(version);
            self.migrations.iter().position(|m| m.version == v)
        })
    }

    /// Resolves a version or id to a catalog index.
    pub fn resolve(&self, target: &str) -> Option<usize> {
        self.find(target)
            .or_else(|| self.migrations.iter().position(|m| m.id == target))
    }
}

/// The applied migrations that can be current, by plan position, kept up to date as a
/// rollback goes: each step's `schema_version` is then a lookup, not a status of the
/// whole catalog (which made rolling back N migrations O(N²)).
pub(crate) struct Live<'a> {
    migrations: &'a [Migration],
    positions: std::collections::BTreeSet<usize>,
}

impl<'a> Live<'a> {
    pub fn new(migrations: &'a [Migration], applied: &[AppliedMigration]) -> Self {
        let cat = Catalog::new(migrations);
        let positions = applied
            .iter()
            .filter(|a| a.success)
            .filter_map(|a| cat.find(&a.version).map(|i| (i, a)))
            .filter(|(i, a)| {
                let m = &migrations[*i];
                // As in `states`: applied or modified, never a repeatable.
                !m.version.as_str().starts_with("R__")
                    && (m.kind == MigrationKind::Versioned || a.checksum == m.checksum)
            })
            .map(|(i, _)| i)
            .collect();
        Live {
            migrations,
            positions,
        }
    }

    /// Forgets a rolled-back migration.
    pub fn remove(&mut self, position: Option<usize>) {
        if let Some(i) = position {
            self.positions.remove(&i);
        }
    }

    /// The current version, as [`states`] would have it.
    pub fn current(&self) -> Option<String> {
        let i = *self.positions.last()?;
        Some(self.migrations[i].version.to_string())
    }
}

/// One line of `status`.
#[derive(Debug, Clone, Serialize)]
pub struct StatusRow {
    /// The version.
    pub version: String,
    /// The name.
    pub name: String,
    /// Its state.
    pub state: MigrationState,
    /// The checksum on disk (the recorded one for a missing file).
    pub checksum: String,
    /// When it was applied.
    pub applied_at: Option<chrono::DateTime<chrono::Utc>>,
    /// How long it took.
    pub execution_time_ms: Option<i64>,
    /// Versions it depends on.
    pub depends_on: Vec<String>,
    /// For a `failed` row: how far its run got.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<Stopped>,
    /// Applied by the application's code migration, which this program does not have
    /// (`"code": true`): neither missing nor runnable here.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub code: bool,
}

/// Where a run that went statement by statement stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stopped {
    /// `up`, or `down` for a rollback that stopped midway.
    pub direction: Direction,
    /// Statements completed.
    pub statements_done: i64,
    /// The statement that was running when the run died: whether it took effect is
    /// unknown (`--resume --in-doubt=done|rerun`).
    pub in_doubt: Option<i64>,
}

impl Stopped {
    fn of(a: &AppliedMigration) -> Option<Stopped> {
        (!a.success).then_some(Stopped {
            direction: if a.progress.rolling_back {
                Direction::Down
            } else {
                Direction::Up
            },
            statements_done: a.statements_done,
            in_doubt: a.progress.in_flight,
        })
    }
}

/// Every migration's state: the catalog in plan order, then history rows whose file is gone.
pub fn states(migrations: &[Migration], applied: &[AppliedMigration]) -> Vec<StatusRow> {
    states_iter(migrations, applied).collect()
}

/// [`states`] one row at a time, for printing without holding every row.
pub fn states_iter<'a>(
    migrations: &'a [Migration],
    applied: &'a [AppliedMigration],
) -> impl Iterator<Item = StatusRow> + 'a {
    let mut rows_by_idx: HashMap<usize, &AppliedMigration> = HashMap::new();
    let mut missing = Vec::new();
    // A fresh database needs no index of the catalog (at 10,000 files, 400 KB).
    if !applied.is_empty() {
        let cat = Catalog::new(migrations);
        for a in applied {
            match cat.find(&a.version) {
                Some(i) => {
                    rows_by_idx.insert(i, a);
                }
                None => missing.push(a),
            }
        }
    }
    let on_disk = migrations.iter().enumerate().map(move |(i, m)| {
        let a = rows_by_idx.get(&i);
        let state = match a {
            None => MigrationState::Pending,
            Some(a) if !a.success => MigrationState::Failed,
            Some(a) if a.checksum != m.checksum && m.kind == MigrationKind::Versioned => {
                MigrationState::Modified
            }
            // A repeatable migration whose checksum changed is due to run again.
            Some(a) if a.checksum != m.checksum => MigrationState::Pending,
            Some(_) => MigrationState::Applied,
        };
        StatusRow {
            version: m.version.to_string(),
            name: m.name.clone(),
            state,
            checksum: m.checksum.to_string(),
            applied_at: a.map(|a| a.applied_at),
            execution_time_ms: a.map(|a| a.execution_time_ms),
            depends_on: m.dependencies.iter().map(|d| d.target.clone()).collect(),
            stopped: a.and_then(|a| Stopped::of(a)),
            code: m.format == crate::migration::Format::Code,
        }
    });
    let gone = |a: &AppliedMigration| StatusRow {
        version: a.version.clone(),
        name: a.name.clone(),
        state: match (a.success, a.is_code()) {
            (false, _) => MigrationState::Failed,
            (true, true) => MigrationState::Applied,
            (true, false) => MigrationState::Missing,
        },
        checksum: a.checksum.to_string(),
        applied_at: Some(a.applied_at),
        execution_time_ms: Some(a.execution_time_ms),
        depends_on: vec![],
        stopped: Stopped::of(a),
        code: a.is_code(),
    };
    // Rows of the application's code migrations take their place by version among the
    // files; rows whose file is gone come last.
    let (code, missing): (Vec<_>, Vec<_>) = missing.into_iter().partition(|a| a.is_code());
    let mut code = code.into_iter().peekable();
    let mut merged = Vec::new();
    for row in on_disk {
        let here = crate::version::Version::new(row.version.as_str());
        while let Some(a) =
            code.next_if(|a| crate::version::Version::new(a.version.as_str()) < here)
        {
            merged.push(gone(a));
        }
        merged.push(row);
    }
    merged.extend(code.map(gone));
    merged.into_iter().chain(missing.into_iter().map(gone))
}

fn up_step(i: usize, m: &Migration, resume_from: usize) -> Step {
    Step {
        version: m.version.to_string(),
        id: m.id.clone(),
        name: m.name.clone(),
        direction: Direction::Up,
        script: m.up.clone(),
        transactional: m.transactional,
        outside_transaction: m.outside_transaction.clone(),
        resume_from,
        migration: Some(i),
    }
}

/// Refuses to go on from a history that does not match the files: a failed row, an
/// edited or deleted applied migration.
pub fn check_history(
    migrations: &[Migration],
    applied: &[AppliedMigration],
    resume: bool,
) -> Result<(), PlanError> {
    let cat = Catalog::new(migrations);
    for a in applied {
        match cat.find(&a.version) {
            None if !a.success && a.is_code() => {
                return Err(PlanError::CodeFailed {
                    version: a.version.clone(),
                    name: a.name.clone(),
                })
            }
            // Applied by the application's code migration: nothing to check here.
            None if a.is_code() => {}
            None if !a.success => {
                return Err(PlanError::Failed {
                    version: a.version.clone(),
                    done: a.statements_done,
                })
            }
            None => {
                return Err(PlanError::Missing {
                    version: a.version.clone(),
                    name: a.name.clone(),
                })
            }
            Some(i) => {
                let m = &migrations[i];
                if !a.success && !resume {
                    return Err(PlanError::Failed {
                        version: a.version.clone(),
                        done: a.statements_done,
                    });
                }
                if a.success && m.kind == MigrationKind::Versioned && a.checksum != m.checksum {
                    return Err(PlanError::modified(
                        &a.version,
                        &a.checksum,
                        &m.checksum,
                        m.up.path.to_path_buf(),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The steps `up` takes towards `target`.
pub fn plan_up(
    migrations: &[Migration],
    applied: &[AppliedMigration],
    target: &Target,
    opts: UpOptions,
) -> Result<Plan, PlanError> {
    check_history(migrations, applied, opts.resume)?;
    let cat = Catalog::new(migrations);
    let rows: HashMap<usize, &AppliedMigration> = applied
        .iter()
        .filter_map(|a| cat.find(&a.version).map(|i| (i, a)))
        .collect();
    let limit = match target {
        Target::Head => migrations.len(),
        Target::Base => 0,
        Target::Version(v) => {
            cat.resolve(v)
                .ok_or_else(|| PlanError::UnknownTarget(v.clone()))?
                + 1
        }
        Target::Relative(n) if *n < 0 => return Err(PlanError::UnknownTarget(target.to_string())),
        Target::Relative(_) => migrations.len(),
    };
    let highest_applied = rows
        .iter()
        .filter(|(_, a)| a.success)
        .map(|(&i, _)| &migrations[i].version)
        .max();
    let mut steps = Vec::new();
    for (i, m) in migrations.iter().enumerate().take(limit) {
        let resume_from = match rows.get(&i) {
            Some(a)
                if a.success
                    && (m.kind == MigrationKind::Versioned || a.checksum == m.checksum) =>
            {
                continue
            }
            Some(a) if !a.success => a.statements_done.max(0) as usize,
            _ => 0,
        };
        if m.kind == MigrationKind::Versioned && !opts.allow_out_of_order {
            if let Some(h) = highest_applied {
                if m.version < *h && resume_from == 0 {
                    return Err(PlanError::OutOfOrder {
                        version: m.version.to_string(),
                        applied: h.to_string(),
                        path: m.source.clone(),
                    });
                }
            }
        }
        steps.push(up_step(i, m, resume_from));
    }
    if let Target::Relative(n) = target {
        steps.truncate(*n as usize);
    }
    Ok(Plan {
        direction: Direction::Up,
        steps,
    })
}

fn down_step(cat: &Catalog, a: &AppliedMigration) -> Result<Step, PlanError> {
    let idx = cat.find(&a.version);
    let m = idx.map(|i| &cat.migrations[i]);
    // A code migration's stored rollback is a stand-in: only its registered code can
    // undo it, and a program without that code must not drop its row as if it had.
    if a.is_code() && !m.is_some_and(|m| m.code.is_some()) {
        return Err(PlanError::CodeNotRegistered {
            version: a.version.clone(),
            name: a.name.clone(),
        });
    }
    if a.is_code() && m.is_some_and(|m| m.down.is_none()) {
        return Err(PlanError::NoRollback {
            version: a.version.clone(),
            path: m.map(|m| m.source.clone()),
        });
    }
    // The rollback stored at apply time wins: the file may have changed since. When
    // the two agree the file's script is kept, so errors name its file and line.
    let file = m.and_then(|m| m.down.as_ref());
    let script = match (&a.rollback_sql, file) {
        (Some(stored), Some(d)) if d.text().is_ok_and(|t| t == *stored) => Some(d.clone()),
        (Some(stored), _) => Some(Script::inline(
            stored.as_str(),
            format!("<rollback of {} stored at apply time>", a.version),
            1,
        )),
        (None, file) => file.cloned(),
    };
    let Some(script) = script else {
        return Err(PlanError::NoRollback {
            version: a.version.clone(),
            path: m.map(|m| m.source.clone()),
        });
    };
    Ok(Step {
        version: a.version.clone(),
        id: m.map(|m| m.id.clone()).unwrap_or_else(|| a.version.clone()),
        name: a.name.clone(),
        direction: Direction::Down,
        script,
        transactional: m.map(|m| m.transactional).unwrap_or(true),
        outside_transaction: m.and_then(|m| m.outside_transaction.clone()),
        resume_from: 0,
        migration: idx,
    })
}

/// Applied versioned rows in plan order (rows whose file is gone go by version).
/// Repeatable migrations are never rolled back: they are re-applied when they change.
fn applied_in_order<'a>(
    cat: &Catalog,
    applied: &'a [AppliedMigration],
) -> Vec<&'a AppliedMigration> {
    let repeatable = |a: &AppliedMigration| match cat.find(&a.version) {
        Some(i) => cat.migrations[i].kind == MigrationKind::Repeatable,
        None => a.version.starts_with("R__"),
    };
    let mut rows: Vec<(usize, Version, &AppliedMigration)> = applied
        .iter()
        .filter(|a| !repeatable(a))
        .map(|a| {
            let pos = cat.find(&a.version).unwrap_or_else(|| {
                let v = Version::new(a.version.as_str());
                cat.migrations.partition_point(|m| m.version < v)
            });
            (pos, Version::new(a.version.as_str()), a)
        })
        .collect();
    rows.sort_by(|x, y| (x.0, &x.1).cmp(&(y.0, &y.1)));
    rows.into_iter().map(|r| r.2).collect()
}

/// The steps `rollback` takes: everything applied after `target`, newest first.
pub fn plan_rollback(
    migrations: &[Migration],
    applied: &[AppliedMigration],
    target: &Target,
) -> Result<Plan, PlanError> {
    let cat = Catalog::new(migrations);
    let ordered = applied_in_order(&cat, applied);
    let keep = match target {
        Target::Base => 0,
        Target::Head => ordered.len(),
        Target::Relative(n) if *n < 0 => ordered.len().saturating_sub(n.unsigned_abs() as usize),
        Target::Relative(_) => return Err(PlanError::UnknownTarget(target.to_string())),
        Target::Version(v) => {
            let idx = cat.resolve(v);
            let tv = idx
                .map(|i| cat.migrations[i].version.clone())
                .unwrap_or_else(|| Version::new(v.as_str()));
            match ordered
                .iter()
                .position(|a| Version::new(a.version.as_str()) == tv)
            {
                Some(p) => p + 1,
                None if idx.is_some() => return Err(PlanError::NotApplied { version: v.clone() }),
                None => return Err(PlanError::UnknownTarget(v.clone())),
            }
        }
    };
    let steps = ordered[keep..]
        .iter()
        .rev()
        .map(|a| down_step(&cat, a))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Plan {
        direction: Direction::Down,
        steps,
    })
}

/// The steps `down V` takes: V, after (with `cascade`) the applied migrations that depend on it.
pub fn plan_down(
    migrations: &[Migration],
    applied: &[AppliedMigration],
    version: &str,
    cascade: bool,
) -> Result<Plan, PlanError> {
    let cat = Catalog::new(migrations);
    let ordered = applied_in_order(&cat, applied);
    let idx = cat.resolve(version);
    let tv = idx
        .map(|i| cat.migrations[i].version.clone())
        .unwrap_or_else(|| Version::new(version));
    let Some(row) = ordered
        .iter()
        .find(|a| Version::new(a.version.as_str()) == tv)
    else {
        return Err(if idx.is_some() {
            PlanError::NotApplied {
                version: version.into(),
            }
        } else {
            PlanError::UnknownTarget(version.into())
        });
    };
    // Transitive dependents among applied migrations.
    let mut doomed: HashSet<String> = HashSet::from([tv.as_str().to_string()]);
    let mut dependents = Vec::new();
    for a in &ordered {
        let Some(i) = cat.find(&a.version) else {
            continue;
        };
        let m = &migrations[i];
        if m.dependencies.iter().any(|d| doomed.contains(&d.target))
            && !doomed.contains(m.version.as_str())
        {
            doomed.insert(m.version.to_string());
            dependents.push(*a);
        }
    }
    if !dependents.is_empty() && !cascade {
        return Err(PlanError::HasDependents {
            version: version.into(),
            dependents: dependents
                .iter()
                .map(|a| a.version.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let mut steps = dependents
        .iter()
        .rev()
        .map(|a| down_step(&cat, a))
        .collect::<Result<Vec<_>, _>>()?;
    steps.push(down_step(&cat, row)?);
    Ok(Plan {
        direction: Direction::Down,
        steps,
    })
}

/// Migrations `stamp V` (only V) or `baseline V` (V and every pending one before it) records.
/// Steps for exactly `versions` (those not applied yet), in plan order.
pub fn plan_exact(
    migrations: &[Migration],
    applied: &[AppliedMigration],
    versions: &[String],
) -> Plan {
    let done: HashSet<&str> = applied
        .iter()
        .filter(|a| a.success)
        .map(|a| a.version.as_str())
        .collect();
    let steps = migrations
        .iter()
        .enumerate()
        .filter(|(_, m)| versions.iter().any(|v| v == m.version.as_str()))
        .filter(|(_, m)| !done.contains(m.version.as_str()))
        .map(|(j, m)| up_step(j, m, 0))
        .collect();
    Plan {
        direction: Direction::Up,
        steps,
    }
}

/// The plan of a stamp or baseline: record migrations as applied without running them.
pub fn plan_mark(
    migrations: &[Migration],
    applied: &[AppliedMigration],
    version: &str,
    with_predecessors: bool,
) -> Result<Plan, PlanError> {
    let cat = Catalog::new(migrations);
    let i = cat
        .resolve(version)
        .ok_or_else(|| PlanError::UnknownTarget(version.into()))?;
    let done: HashSet<usize> = applied
        .iter()
        .filter_map(|a| cat.find(&a.version))
        .collect();
    if done.contains(&i) && !with_predecessors {
        return Err(PlanError::AlreadyApplied {
            version: version.into(),
        });
    }
    let range = if with_predecessors { 0..=i } else { i..=i };
    let steps = range
        .filter(|j| !done.contains(j))
        .map(|j| up_step(j, &migrations[j], 0))
        .collect();
    Ok(Plan {
        direction: Direction::Up,
        steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::{Checksum, Dependency, Script};
    use std::path::PathBuf;

    fn mig(v: &str, deps: &[&str]) -> Migration {
        let up = Script::inline(format!("-- {v}"), format!("{v}.sql"), 1);
        Migration {
            id: format!("{v}_m"),
            version: Version::new(v),
            name: "m".into(),
            description: None,
            kind: MigrationKind::Versioned,
            checksum: Checksum::of(&format!("-- {v}")),
            baseline: false,
            down: Some(Script::inline(format!("-- down {v}"), &up.path, 1)),
            up,
            transactional: true,
            outside_transaction: None,
            dependencies: deps
                .iter()
                .map(|d| Dependency {
                    target: d.to_string(),
                    path: PathBuf::from(format!("{v}.sql")),
                    line: 2,
                })
                .collect(),
            timeout: None,
            format: crate::migration::Format::Sql,
            code: None,
            source: PathBuf::from(format!("{v}.sql")),
        }
    }

    fn row(m: &Migration) -> AppliedMigration {
        AppliedMigration {
            version: m.version.to_string(),
            name: m.name.clone(),
            description: None,
            applied_at: chrono::Utc::now(),
            checksum: m.checksum.clone(),
            execution_time_ms: 1,
            rollback_sql: None,
            success: true,
            statements_done: 0,
            applied_by: None,
            progress: Default::default(),
        }
    }

    fn versions(p: &Plan) -> Vec<&str> {
        p.steps.iter().map(|s| s.version.as_str()).collect()
    }

    #[test]
    fn order_follows_dependencies_then_version() {
        let ms = order(vec![
            mig("3", &[]),
            mig("1", &["4"]),
            mig("2", &[]),
            mig("4", &[]),
        ])
        .unwrap();
        let got: Vec<_> = ms.iter().map(|m| m.version.to_string()).collect();
        assert_eq!(got, ["2", "3", "4", "1"]);
    }

    #[test]
    fn order_rejects_cycles_and_unknown_deps() {
        let e = order(vec![mig("1", &["2"]), mig("2", &["1"])]).unwrap_err();
        assert!(e.message.contains("cycle"), "{e}");
        assert_eq!(e.line, Some(2));
        let e = order(vec![mig("1", &["9"])]).unwrap_err();
        assert!(e.message.contains("unknown version `9`"), "{e}");
    }

    #[test]
    fn plan_up_table() {
        let ms = order(vec![mig("1", &[]), mig("2", &[]), mig("3", &[])]).unwrap();
        let a1 = vec![row(&ms[0])];
        let cases: Vec<(&[AppliedMigration], Target, Vec<&str>)> = vec![
            (&[], Target::Head, vec!["1", "2", "3"]),
            (&a1, Target::Head, vec!["2", "3"]),
            (&a1, Target::Version("2".into()), vec!["2"]),
            (&a1, Target::Relative(1), vec!["2"]),
            (&[], Target::Base, vec![]),
            (&[], Target::Version("2_m".into()), vec!["1", "2"]),
        ];
        for (applied, target, want) in cases {
            let p = plan_up(&ms, applied, &target, UpOptions::default()).unwrap();
            assert_eq!(versions(&p), want, "target {target}");
        }
        assert!(matches!(
            plan_up(&ms, &[], &Target::Version("9".into()), UpOptions::default()),
            Err(PlanError::UnknownTarget(_))
        ));
    }

    #[test]
    fn plan_up_refuses_drift_failure_and_out_of_order() {
        let ms = order(vec![mig("1", &[]), mig("2", &[])]).unwrap();
        let mut edited = row(&ms[0]);
        edited.checksum = Checksum::of("other");
        assert!(matches!(
            plan_up(&ms, &[edited], &Target::Head, UpOptions::default()),
            Err(PlanError::Modified { .. })
        ));
        let mut failed = row(&ms[0]);
        failed.success = false;
        failed.statements_done = 2;
        assert!(matches!(
            plan_up(&ms, &[failed.clone()], &Target::Head, UpOptions::default()),
            Err(PlanError::Failed { done: 2, .. })
        ));
        let resumed = plan_up(
            &ms,
            &[failed],
            &Target::Head,
            UpOptions {
                resume: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(resumed.steps[0].resume_from, 2);
        let ooo = plan_up(&ms, &[row(&ms[1])], &Target::Head, UpOptions::default());
        assert!(matches!(ooo, Err(PlanError::OutOfOrder { .. })));
        let allowed = plan_up(
            &ms,
            &[row(&ms[1])],
            &Target::Head,
            UpOptions {
                allow_out_of_order: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(versions(&allowed), ["1"]);
        let mut gone = row(&ms[0]);
        gone.version = "7".into();
        assert!(matches!(
            plan_up(&ms, &[gone], &Target::Head, UpOptions::default()),
            Err(PlanError::Missing { .. })
        ));
    }

    #[test]
    fn plan_rollback_table() {
        let ms = order(vec![mig("1", &[]), mig("2", &[]), mig("3", &[])]).unwrap();
        let all: Vec<_> = ms.iter().map(row).collect();
        let cases = vec![
            (Target::Relative(-1), vec!["3"]),
            (Target::Relative(-2), vec!["3", "2"]),
            (Target::Base, vec!["3", "2", "1"]),
            (Target::Version("1".into()), vec!["3", "2"]),
            (Target::Version("3".into()), vec![]),
        ];
        for (target, want) in cases {
            assert_eq!(
                versions(&plan_rollback(&ms, &all, &target).unwrap()),
                want,
                "target {target}"
            );
        }
    }

    #[test]
    fn plan_down_cascades_to_dependents() {
        let ms = order(vec![
            mig("1", &[]),
            mig("2", &["1"]),
            mig("3", &["2"]),
            mig("4", &[]),
        ])
        .unwrap();
        let all: Vec<_> = ms.iter().map(row).collect();
        assert!(matches!(
            plan_down(&ms, &all, "1", false),
            Err(PlanError::HasDependents { .. })
        ));
        assert_eq!(
            versions(&plan_down(&ms, &all, "1", true).unwrap()),
            ["3", "2", "1"]
        );
        assert_eq!(versions(&plan_down(&ms, &all, "4", false).unwrap()), ["4"]);
        assert!(matches!(
            plan_down(&ms, &all[..1], "4", false),
            Err(PlanError::NotApplied { .. })
        ));
    }

    #[test]
    fn rollback_without_script_is_refused() {
        let mut ms = order(vec![mig("1", &[])]).unwrap();
        ms[0].down = None;
        let all: Vec<_> = ms.iter().map(row).collect();
        assert!(matches!(
            plan_rollback(&ms, &all, &Target::Base),
            Err(PlanError::NoRollback { .. })
        ));
    }

    #[test]
    fn mark_plans() {
        let ms = order(vec![mig("1", &[]), mig("2", &[]), mig("3", &[])]).unwrap();
        assert_eq!(
            versions(&plan_mark(&ms, &[], "2", true).unwrap()),
            ["1", "2"]
        );
        assert_eq!(versions(&plan_mark(&ms, &[], "2", false).unwrap()), ["2"]);
    }
}
