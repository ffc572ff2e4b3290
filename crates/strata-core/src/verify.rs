//! `verify --roundtrip`: on a scratch database, apply every migration (snapshotting the
//! schema after each), roll them all back one by one, check the database is empty
//! again, re-apply everything and check the schema equals the first apply.
//!
//! A rollback that is missing or fails is reported with its migration, statement and
//! server message, and the scratch database is rebuilt up to the migration before it so
//! the older rollbacks are still tried: one broken rollback does not hide the next.
//! Whatever is left once the rollbacks have run (or when a rebuild is needed) is blamed
//! on the migration that created it, from the snapshots.

use std::path::PathBuf;

use async_trait::async_trait;
use serde::Serialize;

use crate::driver::Driver;
use crate::error::{Error, PlanError, Result};
use crate::event::Silent;
use crate::migration::Script;
use crate::migrator::{Migrator, RunOptions};
use crate::plan::Target;
use crate::schema::Schema;

/// Empty throwaway databases on the project's server (a temporary database beside the
/// real one, or a temporary SQLite file), for `verify`, `diff` and `squash`.
#[async_trait]
pub trait Scratch: Send {
    /// Drops the previous scratch database, if any, and connects to a new, empty one.
    async fn fresh(&mut self) -> Result<Box<dyn Driver>>;
    /// Drops the last scratch database.
    async fn cleanup(&mut self);
}

/// What went wrong with one migration.
#[derive(Debug, Clone, Serialize)]
pub struct RoundtripProblem {
    pub version: String,
    pub migration: String,
    /// `apply_failed`, `no_rollback`, `rollback_failed`, `leaves_behind`,
    /// `not_empty`, `reapply_differs`.
    pub kind: &'static str,
    pub detail: String,
    pub file: Option<PathBuf>,
    pub line: Option<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RoundtripReport {
    pub migrations: usize,
    /// Rollbacks that ran and restored the schema exactly.
    pub rollbacks_ok: usize,
    pub problems: Vec<RoundtripProblem>,
    /// Not failures: rollback scripts with no statement although their migration
    /// changes something (`empty_rollback`); the round trip judges what they leave.
    pub notes: Vec<RoundtripProblem>,
}

impl RoundtripReport {
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Runs the round trip; `progress` hears one line per phase.
pub async fn roundtrip(
    m: &Migrator,
    scratch: &mut dyn Scratch,
    progress: &mut (dyn FnMut(String) + Send),
) -> Result<RoundtripReport> {
    let result = run(m, scratch, progress).await;
    scratch.cleanup().await;
    result
}

async fn run(
    m: &Migrator,
    scratch: &mut dyn Scratch,
    progress: &mut (dyn FnMut(String) + Send),
) -> Result<RoundtripReport> {
    let opts = RunOptions::default();
    let dry = RunOptions {
        dry_run: true,
        ..Default::default()
    };
    let mut d = scratch.fresh().await?;
    let steps = m
        .up(d.as_mut(), &Target::Head, &dry, &mut Silent)
        .await?
        .plan
        .steps;
    let mut report = RoundtripReport {
        migrations: steps.len(),
        rollbacks_ok: 0,
        problems: Vec::new(),
        notes: Vec::new(),
    };
    let problem = |i: usize, kind, detail: String, e: Option<&Error>| {
        let (file, line) = e
            .and_then(|e| e.location())
            .map(|(p, l)| (Some(p), l))
            .unwrap_or_else(|| {
                let mig = steps[i].migration.map(|k| &m.migrations()[k]);
                (mig.map(|m| m.source.clone()), None)
            });
        RoundtripProblem {
            version: steps[i].version.clone(),
            migration: steps[i].id.clone(),
            kind,
            detail,
            file,
            line,
        }
    };

    for (i, step) in steps.iter().enumerate() {
        let Some(mig) = step.migration.map(|k| &m.migrations()[k]) else {
            continue;
        };
        if mig.down.as_ref().is_some_and(Script::is_blank) && !mig.up.is_blank() {
            let mut note = problem(
                i,
                "empty_rollback",
                "the rollback script has no statements".into(),
                None,
            );
            note.file = mig.down.as_ref().map(|d| d.path.to_path_buf());
            report.notes.push(note);
        }
    }

    // 1. Apply one by one, snapshotting after each.
    progress(format!("applying {} migration(s) one by one", steps.len()));
    let mut snaps: Vec<Schema> = vec![d.schema().await?];
    for (i, step) in steps.iter().enumerate() {
        let target = Target::Version(step.id.clone());
        if let Err(e) = m.up(d.as_mut(), &target, &opts, &mut Silent).await {
            report
                .problems
                .push(problem(i, "apply_failed", e.to_string(), Some(&e)));
            return Ok(report);
        }
        snaps.push(d.schema().await?);
    }

    // 2. Roll back one by one.
    progress("rolling back one by one".into());
    let snap_objects: Vec<_> = snaps.iter().map(Schema::objects).collect();
    let created = |obj: &str| snap_objects.iter().position(|s| s.contains(obj));
    for i in (0..steps.len()).rev() {
        let back = m
            .rollback(d.as_mut(), &Target::Relative(-1), &opts, &mut Silent)
            .await;
        let broken = match back {
            Ok(_) => {
                report.rollbacks_ok += 1;
                continue;
            }
            Err(Error::Plan(PlanError::NoRollback { .. })) => {
                problem(i, "no_rollback", "no rollback script".into(), None)
            }
            Err(e) => problem(i, "rollback_failed", e.to_string(), Some(&e)),
        };
        progress(format!(
            "{}: {} ({})",
            broken.migration,
            broken.kind,
            first_line(&broken.detail)
        ));
        report.problems.push(broken);
        // What the newer rollbacks left before this one: blame, then start over from
        // the exact state before this migration.
        let left = leftovers(&d.schema().await?, &snaps[i + 1], &created);
        blame(&mut report, &left, &problem);
        drop(d);
        d = scratch.fresh().await?;
        if i > 0 {
            let target = Target::Version(steps[i - 1].id.clone());
            m.up(d.as_mut(), &target, &opts, &mut Silent).await?;
        }
    }
    // 3. Empty again (whatever is left is blamed on its creator), then re-apply: the
    // schema must equal the first apply.
    let left = leftovers(&d.schema().await?, &snaps[0], &created);
    blame(&mut report, &left, &problem);
    report
        .problems
        .sort_by_key(|p| std::cmp::Reverse(steps.iter().position(|s| s.id == p.migration)));
    if !left.is_empty() {
        // Re-applying over the leftovers would only fail on them again.
        return Ok(report);
    }
    progress("re-applying everything".into());
    if let Err(e) = m.up(d.as_mut(), &Target::Head, &opts, &mut Silent).await {
        let i = steps
            .iter()
            .position(|s| e.to_string().contains(&s.id))
            .unwrap_or(0);
        report.problems.push(problem(
            i,
            "apply_failed",
            format!("re-applying: {e}"),
            Some(&e),
        ));
        return Ok(report);
    }
    let again = d.schema().await?;
    if let Some(full) = snaps.last() {
        let diff = again.changes_from(full);
        if !diff.is_empty() && !steps.is_empty() {
            report.problems.push(problem(
                steps.len() - 1,
                "reapply_differs",
                format!(
                    "the second apply differs from the first: {}",
                    diff.join("; ")
                ),
                None,
            ));
        }
    }
    Ok(report)
}

/// Objects in `now` that `expected` lacks, each with the step that created it (the
/// first snapshot holding it, minus one).
fn leftovers(
    now: &Schema,
    expected: &Schema,
    created: &dyn Fn(&str) -> Option<usize>,
) -> Vec<(usize, String)> {
    let want = expected.objects();
    now.objects()
        .into_iter()
        .filter(|o| !want.contains(o))
        .filter_map(|o| created(&o).filter(|&j| j > 0).map(|j| (j - 1, o)))
        .collect()
}

/// Builds a problem of step `i`: kind, detail, and the error naming file and line.
type MakeProblem<'a> = dyn Fn(usize, &'static str, String, Option<&Error>) -> RoundtripProblem + 'a;

/// One `leaves_behind` problem per migration whose objects outlived its rollback.
fn blame(report: &mut RoundtripReport, left: &[(usize, String)], problem: &MakeProblem<'_>) {
    let mut by_step: std::collections::BTreeMap<usize, Vec<&str>> = Default::default();
    for (i, o) in left {
        by_step.entry(*i).or_default().push(o);
    }
    for (i, objs) in by_step {
        // A table's columns, indexes and constraints go with it.
        let tables: Vec<&str> = objs
            .iter()
            .filter_map(|o| o.strip_prefix("table "))
            .collect();
        let shown: Vec<&str> = objs
            .into_iter()
            .filter(|o| {
                let Some((_, rest)) = o.split_once(' ') else {
                    return true;
                };
                o.starts_with("table ")
                    || !tables.iter().any(|t| rest.starts_with(&format!("{t}.")))
            })
            .collect();
        report.problems.push(problem(
            i,
            "leaves_behind",
            format!("its rollback leaves behind: {}", shown.join(", ")),
            None,
        ));
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}
