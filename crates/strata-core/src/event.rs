//! Events a run emits. The library never prints: the CLI renders events, the server
//! collects them, tests assert on them.

use std::time::Duration;

use crate::error::DriverError;
use crate::plan::{Plan, Step};

/// Something that happened during a command.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// Another holder has the migration lock: this run waits for it (up to
    /// `lock_timeout`). Not reported when the lock was free.
    LockWaiting,
    /// The migration lock was granted.
    LockAcquired {
        /// How long the run waited for it.
        waited: Duration,
    },
    /// The plan is made; with `dry_run`, nothing more happens.
    PlanReady {
        /// What will run, in order.
        plan: &'a Plan,
        /// True for a dry run.
        dry_run: bool,
    },
    /// A step starts.
    StepStarted {
        /// The step.
        step: &'a Step,
        /// 0-based position in the plan.
        index: usize,
        /// Steps in the plan.
        total: usize,
    },
    /// A step finished and was recorded.
    StepFinished {
        /// The step.
        step: &'a Step,
        /// How long it took.
        elapsed: Duration,
    },
    /// A step failed; what ran before it stays applied.
    StepFailed {
        /// The step.
        step: &'a Step,
        /// Why.
        error: &'a DriverError,
    },
    /// A stamp or baseline recorded a migration without running it.
    StepRecorded {
        /// The step.
        step: &'a Step,
    },
    /// A transient failure; the run starts over (skipping what is applied) after `delay`.
    Retrying {
        /// This retry's number, from 1.
        attempt: u32,
        /// Retries allowed.
        of: u32,
        /// The wait before it.
        delay: Duration,
        /// The failure that caused it.
        error: &'a crate::Error,
    },
    /// A backup was written before the run changed anything.
    BackupCreated {
        /// The backup.
        info: &'a crate::BackupInfo,
    },
    /// A multi-database run turns to one of its databases.
    Database {
        /// The database's name in the project.
        name: &'a str,
        /// Its URL, password redacted.
        url: &'a str,
    },
    /// `repair` changed a history row.
    Repaired {
        /// The migration's version.
        version: &'a str,
        /// `checksum` or `cleared_failed`.
        action: &'a str,
    },
}

/// Receives events.
pub trait Reporter: Send {
    /// Called once per event, in order.
    fn report(&mut self, event: Event<'_>);
}

/// Discards every event.
pub struct Silent;
impl Reporter for Silent {
    fn report(&mut self, _: Event<'_>) {}
}

/// Forwards every event, and logs each step that finished, failed or was recorded as
/// one structured event at info level (target `strata::migration`, fields `migration`,
/// `version`, `direction`, `duration_ms`, `outcome`): what `--log-format json` and an
/// application's own subscriber see of a run, whatever renders its progress.
pub(crate) struct Logged<'a>(pub &'a mut dyn Reporter);

impl Reporter for Logged<'_> {
    fn report(&mut self, event: Event<'_>) {
        let direction = |s: &Step| match s.direction {
            crate::plan::Direction::Up => "up",
            crate::plan::Direction::Down => "down",
        };
        match &event {
            Event::StepFinished { step, elapsed } => tracing::info!(
                target: "strata::migration",
                migration = %step.id,
                version = %step.version,
                direction = direction(step),
                duration_ms = elapsed.as_millis() as u64,
                outcome = "ok",
                "{} {}",
                if step.direction == crate::plan::Direction::Up { "applied" } else { "rolled back" },
                step.id
            ),
            Event::StepFailed { step, error } => tracing::info!(
                target: "strata::migration",
                migration = %step.id,
                version = %step.version,
                direction = direction(step),
                outcome = "failed",
                error = %error,
                "{} failed",
                step.id
            ),
            Event::StepRecorded { step } => tracing::info!(
                target: "strata::migration",
                migration = %step.id,
                version = %step.version,
                direction = direction(step),
                duration_ms = 0u64,
                outcome = "recorded",
                "recorded {} without running it",
                step.id
            ),
            _ => {}
        }
        self.0.report(event)
    }
}
