//! Fleets: the same migrations applied to many databases (or PostgreSQL schemas, with
//! `?search_path=tenant_42` on the URL), `concurrency` at a time, each target on its
//! own connection, lock and history, so one target's failure never touches another.
//!
//! `canary` targets go first; if any of them fails, the rest are skipped. The outcome
//! of every target is kept in a state file beside the fleet file, so `--resume` after
//! an interruption or a fix runs only the targets not yet done.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use async_trait::async_trait;
use futures_util::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::redact;
use crate::driver::Driver;
use crate::error::{Error, SourceError};
use crate::migrator::{Migrator, RunOptions, StepResult};
use crate::plan::Target;

/// Opens a database by URL (the drivers crate implements it; the core knows no engine).
#[async_trait]
pub trait Connector: Sync {
    async fn connect(&self, url: &str) -> Result<Box<dyn Driver>, Error>;
}

/// The targets of a fleet file: one URL a line (`#` comments), or TOML `targets = [...]`.
pub fn read_targets(path: &Path) -> Result<Vec<String>, SourceError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| SourceError::new(path, None, format!("cannot read fleet file: {e}")))?;
    let is_toml =
        path.extension().is_some_and(|e| e == "toml") || text.trim_start().starts_with("targets");
    let targets: Vec<String> = if is_toml {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            targets: Vec<String>,
        }
        let f: File =
            toml::from_str(&text).map_err(|e| crate::source::toml_error(path, &text, &e))?;
        f.targets
    } else {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect()
    };
    if targets.is_empty() {
        return Err(SourceError::new(
            path,
            None,
            "the fleet file lists no targets",
        ));
    }
    for (i, t) in targets.iter().enumerate() {
        if !t.contains(':') {
            let line = text
                .lines()
                .position(|l| l.contains(t.as_str()))
                .map(|p| p + 1)
                .unwrap_or(i + 1);
            return Err(SourceError::new(
                path,
                Some(line),
                format!("`{}` is not a database URL", redact(t)),
            ));
        }
        if targets[..i].contains(t) {
            return Err(SourceError::new(
                path,
                None,
                format!("{} is listed twice", redact(t)),
            ));
        }
    }
    Ok(targets)
}

/// How a fleet run goes.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    pub concurrency: usize,
    /// Migrate this many targets first; stop if any fails.
    pub canary: usize,
    /// Only targets not `done` in the state file.
    pub resume: bool,
    pub target: Target,
    pub run: RunOptions,
    /// Where per-target outcomes are kept (`--resume` reads it).
    pub state_file: Option<PathBuf>,
}

/// What became of one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetState {
    Done,
    Failed,
    /// Not attempted: a canary failed.
    Skipped,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetResult {
    /// The URL, password hidden.
    pub target: String,
    pub state: TargetState,
    pub applied: Vec<StepResult>,
    /// The newest applied version afterwards, when known.
    pub current: Option<String>,
    pub error: Option<String>,
    pub elapsed_ms: u64,
    /// Done in an earlier run (`--resume` did not touch it).
    #[serde(default)]
    pub earlier: bool,
}

/// Totals, for the summary line and the exit code.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FleetSummary {
    pub done: usize,
    pub failed: usize,
    pub skipped: usize,
    pub elapsed_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct FleetReport {
    pub targets: Vec<TargetResult>,
    pub summary: FleetSummary,
}

/// Called as targets finish: (finished so far, total, the result).
pub type Progress<'a> = dyn FnMut(usize, usize, &TargetResult) + 'a;

/// The state file: outcome by a hash of the full URL (two URLs differing only in their
/// password stay apart, and no password is written).
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    targets: BTreeMap<String, TargetResult>,
}

fn key(url: &str) -> String {
    hex::encode(&Sha256::digest(url.as_bytes())[..12])
}

fn read_state(path: &Option<PathBuf>) -> State {
    path.as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

/// Applies `migrator`'s migrations to every target.
pub async fn up(
    migrator: &Migrator,
    targets: &[String],
    connector: &dyn Connector,
    opts: &FleetOptions,
    progress: &mut Progress<'_>,
) -> Result<FleetReport, Error> {
    let started = Instant::now();
    let mut state = if opts.resume {
        read_state(&opts.state_file)
    } else {
        State::default()
    };
    let mut results: Vec<Option<TargetResult>> = vec![None; targets.len()];
    let mut todo: Vec<usize> = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        match state.targets.get(&key(t)) {
            Some(prev) if opts.resume && prev.state == TargetState::Done => {
                results[i] = Some(TargetResult {
                    applied: vec![],
                    error: None,
                    elapsed_ms: 0,
                    earlier: true,
                    ..prev.clone()
                });
            }
            _ => todo.push(i),
        }
    }
    let total = todo.len();
    let mut finished = 0;
    let canary = opts.canary.min(todo.len());
    let (first, rest) = todo.split_at(canary);
    let mut run_opts = opts.run.clone();
    run_opts.up.resume |= opts.resume;
    for (wave, is_canary) in [(first, true), (rest, false)] {
        if wave.is_empty() {
            continue;
        }
        let mut runs = stream::iter(wave.iter().copied())
            .map(|i| {
                let run_opts = &run_opts;
                async move {
                    (
                        i,
                        one(migrator, &targets[i], connector, &opts.target, run_opts).await,
                    )
                }
            })
            .buffer_unordered(opts.concurrency.max(1));
        let mut canary_failed = false;
        while let Some((i, r)) = runs.next().await {
            finished += 1;
            progress(finished, total, &r);
            canary_failed |= is_canary && r.state == TargetState::Failed;
            state.targets.insert(key(&targets[i]), r.clone());
            results[i] = Some(r);
        }
        if canary_failed {
            for &i in rest {
                results[i] = Some(TargetResult {
                    target: redact(&targets[i]),
                    state: TargetState::Skipped,
                    applied: vec![],
                    current: None,
                    error: Some("not attempted: a canary target failed".into()),
                    elapsed_ms: 0,
                    earlier: false,
                });
            }
            break;
        }
    }
    if let Some(p) = &opts.state_file {
        let text = serde_json::to_string_pretty(&state).unwrap_or_default();
        if let Err(e) = std::fs::write(p, text) {
            tracing::warn!("cannot write fleet state {}: {e}", p.display());
        }
    }
    let targets: Vec<TargetResult> = results.into_iter().flatten().collect();
    let count = |s| targets.iter().filter(|t| t.state == s).count();
    let summary = FleetSummary {
        done: count(TargetState::Done),
        failed: count(TargetState::Failed),
        skipped: count(TargetState::Skipped),
        elapsed_ms: started.elapsed().as_millis() as u64,
    };
    Ok(FleetReport { targets, summary })
}

/// One target: connect, apply, read back where it stands. Every error stays here.
async fn one(
    migrator: &Migrator,
    url: &str,
    connector: &dyn Connector,
    target: &Target,
    opts: &RunOptions,
) -> TargetResult {
    let started = Instant::now();
    let mut r = TargetResult {
        target: redact(url),
        state: TargetState::Done,
        applied: vec![],
        current: None,
        error: None,
        elapsed_ms: 0,
        earlier: false,
    };
    match connector.connect(url).await {
        Ok(mut d) => {
            match migrator
                .up(d.as_mut(), target, opts, &mut crate::Silent)
                .await
            {
                Ok(report) => r.applied = report.done,
                Err(e) => {
                    r.state = TargetState::Failed;
                    r.error = Some(e.to_string());
                }
            }
            r.current = migrator
                .status(d.as_mut())
                .await
                .ok()
                .and_then(|s| s.current);
        }
        Err(e) => {
            r.state = TargetState::Failed;
            r.error = Some(e.to_string());
        }
    }
    r.elapsed_ms = started.elapsed().as_millis() as u64;
    r
}

/// Where one target stands, for `status --fleet`.
#[derive(Debug, Clone, Serialize)]
pub struct TargetStatus {
    pub target: String,
    pub current: Option<String>,
    pub head: Option<String>,
    pub pending: usize,
    pub failed: usize,
    /// `up_to_date`, `behind`, `failed` or `unreachable`.
    pub state: &'static str,
    pub error: Option<String>,
}

/// The status of every target, `concurrency` at a time, in fleet order.
pub async fn status(
    migrator: &Migrator,
    targets: &[String],
    connector: &dyn Connector,
    concurrency: usize,
) -> Vec<TargetStatus> {
    let mut out: Vec<(usize, TargetStatus)> = stream::iter(targets.iter().enumerate())
        .map(|(i, url)| async move {
            let mut s = TargetStatus {
                target: redact(url),
                current: None,
                head: None,
                pending: 0,
                failed: 0,
                state: "unreachable",
                error: None,
            };
            let result = async {
                let mut d = connector.connect(url).await?;
                migrator.status(d.as_mut()).await
            }
            .await;
            match result {
                Ok(st) => {
                    s.pending = st.count(crate::MigrationState::Pending);
                    s.failed = st.count(crate::MigrationState::Failed);
                    s.state = if s.failed > 0 {
                        "failed"
                    } else if s.pending > 0 {
                        "behind"
                    } else {
                        "up_to_date"
                    };
                    s.current = st.current;
                    s.head = st.head;
                }
                Err(e) => s.error = Some(e.to_string()),
            }
            (i, s)
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, s)| s).collect()
}
