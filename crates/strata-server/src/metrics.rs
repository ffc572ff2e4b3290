//! `GET /metrics` in the OpenMetrics text format. Two kinds of numbers:
//!
//! - counters of what this server did: runs by outcome (`ok`, `failed`: a migration or
//!   the database failed; `refused`: nothing ran because the request was refused;
//!   `dry_run`), migration durations and failures by direction, and waits for a lock
//!   another process held;
//! - gauges read from each database's history at scrape time, so runs made by the CLI
//!   or an embedding application show too: migrations by state, the last successful
//!   apply, whether the database answered.
//!
//! Labels are bounded: the database name, the operation, the outcome and the
//! direction, never a migration version.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use strata_core::{Direction, Event, MigrationState, Reporter, StatusReport};

/// The content type of [`Metrics::encode`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    database: String,
    operation: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabels {
    database: String,
    direction: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DbLabels {
    database: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    database: String,
    state: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    runs: Family<RunLabels, Counter>,
    step_seconds: Histograms<StepLabels>,
    step_failures: Family<StepLabels, Counter>,
    lock_waits: Family<DbLabels, Counter>,
    lock_wait_seconds: Histograms<DbLabels>,
    migrations: Family<StateLabels, Gauge>,
    last_apply: Family<DbLabels, Gauge<f64, AtomicU64>>,
    up: Family<DbLabels, Gauge>,
}

fn seconds_buckets() -> Histogram {
    // 1 ms to ~4.4 min: a small DDL to a long backfill.
    Histogram::new(exponential_buckets(0.001, 4.0, 10))
}

const STATES: [MigrationState; 5] = [
    MigrationState::Applied,
    MigrationState::Pending,
    MigrationState::Modified,
    MigrationState::Missing,
    MigrationState::Failed,
];

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("strata");
        let runs = Family::default();
        let step_seconds: Histograms<StepLabels> = Family::new_with_constructor(seconds_buckets);
        let step_failures = Family::default();
        let lock_waits = Family::default();
        let lock_wait_seconds: Histograms<DbLabels> = Family::new_with_constructor(seconds_buckets);
        let migrations = Family::default();
        let last_apply = Family::default();
        let up = Family::default();
        registry.register(
            "build",
            "The strata version serving these metrics",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        registry.register(
            "runs",
            "Migrate, rollback, repair and stamp requests this server handled, by outcome (ok, failed, refused, dry_run)",
            runs.clone(),
        );
        registry.register(
            "migration_duration_seconds",
            "Time each migration (or rollback) run by this server took",
            step_seconds.clone(),
        );
        registry.register(
            "migration_failures",
            "Migrations (or rollbacks) run by this server that failed",
            step_failures.clone(),
        );
        registry.register(
            "lock_waits",
            "Runs that found the migration lock held by another process and waited",
            lock_waits.clone(),
        );
        registry.register(
            "lock_wait_seconds",
            "How long runs that waited for the migration lock waited",
            lock_wait_seconds.clone(),
        );
        registry.register(
            "migrations",
            "Migrations by state (applied, pending, modified, missing, failed), read from the history at scrape time",
            migrations.clone(),
        );
        registry.register(
            "last_successful_apply_timestamp_seconds",
            "When the newest applied migration was applied (Unix time), by any client",
            last_apply.clone(),
        );
        registry.register(
            "database_up",
            "1 when the database answered the last scrape",
            up.clone(),
        );
        Metrics {
            registry,
            runs,
            step_seconds,
            step_failures,
            lock_waits,
            lock_wait_seconds,
            migrations,
            last_apply,
            up,
        }
    }
}

impl Metrics {
    pub fn run_finished(&self, database: &str, operation: &str, outcome: &str) {
        self.runs
            .get_or_create(&RunLabels {
                database: database.into(),
                operation: operation.into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    /// The gauges of one database from its status; `None`: it did not answer (the
    /// last known counts stay, `database_up` drops to 0).
    pub fn observe(&self, database: &str, status: Option<&StatusReport>) {
        let db = DbLabels {
            database: database.into(),
        };
        self.up.get_or_create(&db).set(status.is_some() as i64);
        let Some(st) = status else { return };
        for state in STATES {
            self.migrations
                .get_or_create(&StateLabels {
                    database: database.into(),
                    state: state.to_string(),
                })
                .set(st.count(state) as i64);
        }
        if let Some(t) = st.migrations.iter().filter_map(|m| m.applied_at).max() {
            self.last_apply
                .get_or_create(&db)
                .set(t.timestamp_millis() as f64 / 1000.0);
        }
    }

    /// The OpenMetrics text exposition (ends with `# EOF`).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    /// A reporter that counts one run's events under `database`.
    pub fn reporter(self: &Arc<Self>, database: &str) -> MetricsReporter {
        MetricsReporter {
            metrics: self.clone(),
            database: database.to_string(),
            waiting: false,
        }
    }
}

pub struct MetricsReporter {
    metrics: Arc<Metrics>,
    database: String,
    /// This run found the lock held and waited.
    waiting: bool,
}

impl MetricsReporter {
    fn step(&self, direction: Direction) -> StepLabels {
        StepLabels {
            database: self.database.clone(),
            direction: match direction {
                Direction::Up => "up",
                Direction::Down => "down",
            }
            .into(),
        }
    }

    fn db(&self) -> DbLabels {
        DbLabels {
            database: self.database.clone(),
        }
    }
}

impl Reporter for MetricsReporter {
    fn report(&mut self, event: Event<'_>) {
        let m = &self.metrics;
        match event {
            // Reported only when another holder had the lock (see the core's lock).
            Event::LockWaiting => {
                self.waiting = true;
                m.lock_waits.get_or_create(&self.db()).inc();
            }
            Event::LockAcquired { waited } if self.waiting => {
                m.lock_wait_seconds
                    .get_or_create(&self.db())
                    .observe(waited.as_secs_f64());
            }
            Event::StepFinished { step, elapsed } => {
                m.step_seconds
                    .get_or_create(&self.step(step.direction))
                    .observe(elapsed.as_secs_f64());
            }
            Event::StepFailed { step, .. } => {
                m.step_failures
                    .get_or_create(&self.step(step.direction))
                    .inc();
            }
            _ => {}
        }
    }
}
