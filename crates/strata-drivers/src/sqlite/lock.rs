//! The migration lock: SQLite's write lock, held by a `BEGIN IMMEDIATE` transaction for
//! the whole command. Other writers wait in SQLite's busy handler up to the lock timeout.

use std::time::Duration;

use rusqlite::{Connection, ErrorCode};
use strata_core::{DriverError, DriverErrorKind};

use super::sqlite_error;

/// Takes the write lock, waiting up to `attempt` for another writer; then sets the
/// connection's busy timeout to `hold` (the run's lock timeout), which its COMMITs need
/// to wait out readers.
pub(super) fn acquire(
    conn: &Connection,
    attempt: Duration,
    hold: Duration,
) -> Result<(), DriverError> {
    conn.busy_timeout(attempt).map_err(|e| sqlite_error(&e))?;
    let taken = conn.execute_batch("BEGIN IMMEDIATE");
    conn.busy_timeout(hold).map_err(|e| sqlite_error(&e))?;
    match taken {
        Ok(()) => Ok(()),
        Err(rusqlite::Error::SqliteFailure(f, _)) if f.code == ErrorCode::DatabaseBusy || f.code == ErrorCode::DatabaseLocked => Err(DriverError::new(
            DriverErrorKind::LockTimeout,
            format!("the database is locked by another writer (another strata run or an open write transaction); gave up after {}s", attempt.as_secs_f64()),
        )),
        Err(e) => Err(sqlite_error(&e)),
    }
}

pub(super) fn release(conn: &Connection) -> Result<(), DriverError> {
    if conn.is_autocommit() {
        return Ok(());
    }
    conn.execute_batch("COMMIT").map_err(|e| sqlite_error(&e))
}
