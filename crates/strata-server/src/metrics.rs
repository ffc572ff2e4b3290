//! `GET /metrics`: Prometheus counters and histograms fed by the events of every run
//! the server makes, plus pending counts read at scrape time.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use strata_core::{Direction, Event, Reporter};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    database: String,
    operation: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabels {
    database: String,
    version: String,
    direction: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DbLabels {
    database: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    runs: Family<RunLabels, Counter>,
    step_seconds: Histograms<StepLabels>,
    step_failures: Family<StepLabels, Counter>,
    pending: Family<DbLabels, Gauge>,
    up: Family<DbLabels, Gauge>,
    lock_waits: Family<DbLabels, Counter>,
    lock_wait_seconds: Histograms<DbLabels>,
}

fn seconds_buckets() -> Histogram {
    // 1 ms to ~4.4 min: a small DDL to a long backfill.
    Histogram::new(exponential_buckets(0.001, 4.0, 10))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("strata");
        let runs = Family::default();
        let step_seconds: Histograms<StepLabels> = Family::new_with_constructor(seconds_buckets);
        let step_failures = Family::default();
        let pending = Family::default();
        let up = Family::default();
        let lock_waits = Family::default();
        let lock_wait_seconds: Histograms<DbLabels> = Family::new_with_constructor(seconds_buckets);
        registry.register(
            "runs",
            "Migrate and rollback runs started through the API, by outcome",
            runs.clone(),
        );
        registry.register(
            "migration_duration_seconds",
            "Time each migration (or its rollback) took",
            step_seconds.clone(),
        );
        registry.register(
            "migration_failures",
            "Migrations (or rollbacks) that failed",
            step_failures.clone(),
        );
        registry.register(
            "pending_migrations",
            "Migrations on disk not applied yet, as of the last status, run or scrape",
            pending.clone(),
        );
        registry.register(
            "database_up",
            "1 when the database answered the last scrape",
            up.clone(),
        );
        registry.register(
            "lock_waits",
            "Runs that had to wait for another holder of the migration lock",
            lock_waits.clone(),
        );
        registry.register(
            "lock_wait_seconds",
            "Time runs waited for the migration lock",
            lock_wait_seconds.clone(),
        );
        Metrics {
            registry,
            runs,
            step_seconds,
            step_failures,
            pending,
            up,
            lock_waits,
            lock_wait_seconds,
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

    pub fn set_pending(&self, database: &str, pending: usize, reachable: bool) {
        let l = DbLabels {
            database: database.into(),
        };
        if reachable {
            self.pending.get_or_create(&l).set(pending as i64);
        }
        self.up.get_or_create(&l).set(reachable as i64);
    }

    /// The text exposition format.
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
        }
    }
}

pub struct MetricsReporter {
    metrics: Arc<Metrics>,
    database: String,
}

impl MetricsReporter {
    fn step(&self, version: &str, direction: Direction) -> StepLabels {
        StepLabels {
            database: self.database.clone(),
            version: version.into(),
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
            Event::LockWaiting => {
                m.lock_waits.get_or_create(&self.db()).inc();
            }
            Event::LockAcquired { waited } if waited > Duration::ZERO => {
                m.lock_wait_seconds
                    .get_or_create(&self.db())
                    .observe(waited.as_secs_f64());
            }
            Event::StepFinished { step, elapsed } => {
                m.step_seconds
                    .get_or_create(&self.step(&step.version, step.direction))
                    .observe(elapsed.as_secs_f64());
            }
            Event::StepFailed { step, .. } => {
                m.step_failures
                    .get_or_create(&self.step(&step.version, step.direction))
                    .inc();
            }
            _ => {}
        }
    }
}
