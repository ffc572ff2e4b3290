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
    LockAcquired {
        waited: Duration,
    },
    PlanReady {
        plan: &'a Plan,
        dry_run: bool,
    },
    StepStarted {
        step: &'a Step,
        index: usize,
        total: usize,
    },
    StepFinished {
        step: &'a Step,
        elapsed: Duration,
    },
    StepFailed {
        step: &'a Step,
        error: &'a DriverError,
    },
    /// A stamp or baseline recorded a migration without running it.
    StepRecorded {
        step: &'a Step,
    },
    /// A transient failure; the run starts over (skipping what is applied) after `delay`.
    Retrying {
        attempt: u32,
        of: u32,
        delay: Duration,
        error: &'a crate::Error,
    },
    /// A backup was written before the run changed anything.
    BackupCreated {
        info: &'a crate::BackupInfo,
    },
    /// A multi-database run turns to one of its databases.
    Database {
        name: &'a str,
        url: &'a str,
    },
    /// `repair` changed a history row.
    Repaired {
        version: &'a str,
        action: &'a str,
    },
}

/// Receives events.
pub trait Reporter: Send {
    fn report(&mut self, event: Event<'_>);
}

/// Discards every event.
pub struct Silent;
impl Reporter for Silent {
    fn report(&mut self, _: Event<'_>) {}
}
