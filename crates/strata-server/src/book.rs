//! The run book: every run this server started, with an id and its events (plan, step
//! started, step finished or failed, lock waits, retries, the outcome), kept for the
//! last [`KEPT`] runs as each run's log page (`GET /api/v1/runs/{id}`) and streamed to
//! whoever listens (`GET /api/v1/events`, server-sent events).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use strata_core::{Direction, Event, Reporter};
use tokio::sync::broadcast;

use crate::metrics::MetricsReporter;

/// Runs kept in memory, newest first.
const KEPT: usize = 100;

pub(crate) struct RunBook {
    next: AtomicU64,
    recent: Mutex<VecDeque<Run>>,
    live: broadcast::Sender<Value>,
}

impl Default for RunBook {
    fn default() -> Self {
        RunBook {
            next: AtomicU64::new(1),
            recent: Mutex::new(VecDeque::new()),
            live: broadcast::channel(1024).0,
        }
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl RunBook {
    pub fn start(&self, database: &str, operation: &str, request: Value, by: &str) -> Run {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let run = Run(Arc::new(RunInner {
            id,
            database: database.to_string(),
            live: self.live.clone(),
            record: Mutex::new(json!({
                "id": id, "database": database, "operation": operation, "request": request,
                "by": by, "started_at": now(), "finished_at": null, "outcome": "running",
                "result": null, "events": [],
            })),
        }));
        {
            let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            recent.push_front(run.clone());
            recent.truncate(KEPT);
        }
        run.event(json!({ "type": "run_started", "operation": operation, "by": by }));
        run
    }

    /// Summaries (no events), newest first, of one database or all.
    pub fn list(&self, database: Option<&str>) -> Vec<Value> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent
            .iter()
            .filter(|r| database.is_none_or(|d| d == r.0.database))
            .map(|r| {
                let mut v = r.json();
                if let Some(o) = v.as_object_mut() {
                    o.remove("events");
                }
                v
            })
            .collect()
    }

    pub fn get(&self, id: u64) -> Option<Value> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.iter().find(|r| r.0.id == id).map(Run::json)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Value> {
        self.live.subscribe()
    }
}

/// One run in the book; cheap to clone.
#[derive(Clone)]
pub(crate) struct Run(Arc<RunInner>);

struct RunInner {
    id: u64,
    database: String,
    live: broadcast::Sender<Value>,
    record: Mutex<Value>,
}

impl Run {
    pub fn id(&self) -> u64 {
        self.0.id
    }

    fn json(&self) -> Value {
        self.0
            .record
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Appends an event to the run's log and sends it to live listeners.
    fn event(&self, mut e: Value) {
        e["run"] = json!(self.0.id);
        e["database"] = json!(self.0.database);
        e["at"] = json!(now());
        {
            let mut r = self.0.record.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(events) = r["events"].as_array_mut() {
                events.push(e.clone());
            }
        }
        // Nobody listening is fine.
        let _ = self.0.live.send(e);
    }

    pub fn finished(&self, outcome: &str, result: Value) {
        {
            let mut r = self.0.record.lock().unwrap_or_else(|p| p.into_inner());
            r["finished_at"] = json!(now());
            r["outcome"] = json!(outcome);
            r["result"] = result.clone();
        }
        self.event(json!({ "type": "run_finished", "outcome": outcome, "result": result }));
    }
}

/// The reporter of one server run: feeds the metrics, writes the run's events to the
/// book, and remembers what finished and what failed for the answer.
pub(crate) struct RunReporter {
    metrics: MetricsReporter,
    run: Option<Run>,
    done: Vec<Value>,
    failed: Option<Value>,
}

impl RunReporter {
    pub fn new(metrics: MetricsReporter, run: Option<Run>) -> Self {
        RunReporter {
            metrics,
            run,
            done: Vec::new(),
            failed: None,
        }
    }

    /// The steps that finished, as SPEC's run entries.
    pub fn done(&self) -> Vec<Value> {
        self.done.clone()
    }

    /// The step that failed, with the server's message and the statement's line.
    pub fn failed(&self) -> Option<Value> {
        self.failed.clone()
    }

    fn emit(&self, e: Value) {
        if let Some(run) = &self.run {
            run.event(e);
        }
    }
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

fn direction(d: Direction) -> &'static str {
    match d {
        Direction::Up => "up",
        Direction::Down => "down",
    }
}

impl Reporter for RunReporter {
    fn report(&mut self, event: Event<'_>) {
        match &event {
            Event::LockWaiting => self.emit(json!({ "type": "lock_waiting" })),
            Event::LockAcquired { waited } => {
                self.emit(json!({ "type": "lock_acquired", "waited_ms": ms(*waited) }))
            }
            Event::PlanReady { plan, dry_run } => self.emit(json!({
                "type": "plan",
                "dry_run": dry_run,
                "steps": plan.steps.iter().map(|s| json!({ "version": s.version, "name": s.name, "direction": direction(s.direction) })).collect::<Vec<_>>(),
            })),
            Event::StepStarted { step, index, total } => self.emit(json!({
                "type": "step_started", "version": step.version, "name": step.name,
                "direction": direction(step.direction), "index": index, "total": total,
            })),
            Event::StepFinished { step, elapsed } => {
                let entry = json!({ "version": step.version, "name": step.name, "execution_time_ms": ms(*elapsed) });
                self.done.push(entry.clone());
                let mut e = entry;
                e["type"] = json!("step_finished");
                e["direction"] = json!(direction(step.direction));
                self.emit(e);
            }
            Event::StepRecorded { step } => {
                self.done.push(json!({ "version": step.version, "name": step.name, "execution_time_ms": 0 }));
                self.emit(json!({ "type": "step_recorded", "version": step.version, "name": step.name }));
            }
            Event::StepFailed { step, error } => {
                let failed = json!({
                    "version": step.version, "name": step.name, "direction": direction(step.direction),
                    "message": error.to_string(),
                });
                self.failed = Some(failed.clone());
                let mut e = failed;
                e["type"] = json!("step_failed");
                self.emit(e);
            }
            Event::Retrying { attempt, of, delay, error } => self.emit(json!({
                "type": "retrying", "attempt": attempt, "of": of, "delay_ms": ms(*delay),
                "message": error.to_string(),
            })),
            Event::BackupCreated { info } => {
                self.emit(json!({ "type": "backup_created", "backup": info.id }))
            }
            Event::Repaired { version, action } => {
                self.done.push(json!({ "version": version, "action": action }));
                self.emit(json!({ "type": "repaired", "version": version, "action": action }));
            }
            _ => {}
        }
        self.metrics.report(event);
    }
}
