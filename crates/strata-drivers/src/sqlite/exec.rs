//! Running a change on SQLite: statement by statement (in-process, so no round trips
//! to save), each failure mapped to its statement and file line. A progress handler
//! interrupts a statement that runs past the timeout.

use std::time::{Duration, Instant};

use rusqlite::Connection;
use strata_core::sql::split;
use strata_core::{Change, DriverError, Script, StatementRef};

use super::history::Tables;
use super::sqlite_error;
use crate::history::InProcess;
use crate::tracked::Tracker;

pub(super) fn execute(
    conn: &Connection,
    t: &Tables,
    change: &Change<'_>,
    locked: bool,
    lock_timeout: Duration,
) -> Result<Duration, DriverError> {
    if change.transactional || change.script.is_none() {
        transactional(conn, t, change)
    } else {
        non_transactional(conn, t, change, locked, lock_timeout)
    }
}

fn transactional(
    conn: &Connection,
    t: &Tables,
    change: &Change<'_>,
) -> Result<Duration, DriverError> {
    conn.execute_batch("SAVEPOINT strata_step")
        .map_err(|e| sqlite_error(&e))?;
    let result = (|| {
        conn.run_init(change)?;
        let started = Instant::now();
        if let Some(script) = change.script {
            let stmts = split(change.sql);
            run_statements(conn, script, &stmts, 0, change, |_| Ok(()), |_| Ok(()))?;
        }
        let elapsed = started.elapsed();
        conn.run(&crate::history::record(
            t,
            change,
            elapsed.as_millis() as i64,
        ))?;
        Ok(elapsed)
    })();
    match &result {
        Ok(_) => conn.execute_batch("RELEASE strata_step"),
        Err(_) => conn.execute_batch("ROLLBACK TO strata_step; RELEASE strata_step"),
    }
    .map_err(|e| sqlite_error(&e))?;
    result
}

/// Runs statements `range` of the script, calling `before(i)` ahead of statement i and
/// `after(i)` once it is done; a failure names its statement and line.
fn run_statements(
    conn: &Connection,
    script: &Script,
    stmts: &[strata_core::sql::Statement],
    skip: usize,
    change: &Change<'_>,
    mut before: impl FnMut(usize) -> Result<(), DriverError>,
    mut after: impl FnMut(usize) -> Result<(), DriverError>,
) -> Result<(), DriverError> {
    let deadline = Instant::now() + change.timeout;
    conn.progress_handler(10_000, Some(move || Instant::now() > deadline));
    let result = (|| {
        for (i, s) in stmts.iter().enumerate().skip(skip) {
            let text = s.text(change.sql);
            if change.echo {
                tracing::info!(statement = i + 1, "{text}");
            }
            before(i)?;
            if let Err(e) = conn.execute_batch(text) {
                let mut err = sqlite_error(&e);
                if matches!(&e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::OperationInterrupted)
                {
                    err.message = format!(
                        "timed out after {}s; the statement was interrupted",
                        change.timeout.as_secs()
                    );
                }
                err.statement = Some(StatementRef::new(script, change.sql, s, i, s.range.start));
                return Err(err);
            }
            after(i)?;
        }
        Ok(())
    })();
    conn.progress_handler(0, None::<fn() -> bool>);
    result
}

fn non_transactional(
    conn: &Connection,
    t: &Tables,
    change: &Change<'_>,
    locked: bool,
    lock_timeout: Duration,
) -> Result<Duration, DriverError> {
    let script = change
        .script
        .expect("non-transactional changes carry a script");
    let stmts = split(change.sql);
    let version = change.record.version().to_string();
    let tracker = std::cell::RefCell::new(Tracker::new(change.sql, &stmts, change.resume_from));
    let start = tracker.borrow().before(change.resume_from);
    // Visible before anything runs: a crash leaves a `failed` row (or a rollback in
    // progress), never silence.
    conn.run(&crate::tracked::start(t, change, &start))?;
    // Commit what came before and the row: the statements must run outside any
    // transaction, and a crash must leave the row behind.
    if locked {
        conn.execute_batch("COMMIT").map_err(|e| sqlite_error(&e))?;
    }
    let started = Instant::now();
    // Inside a transaction strata began for a data change (not the script's own).
    let began = std::cell::Cell::new(false);
    let ran = conn.run_init(change).and_then(|_| {
        run_statements(
            conn,
            script,
            &stmts,
            change.resume_from,
            change,
            // A data change commits with its progress record: never in doubt.
            |i| {
                if tracker.borrow().atomic(i) && conn.is_autocommit() {
                    conn.execute_batch("BEGIN").map_err(|e| sqlite_error(&e))?;
                    began.set(true);
                }
                Ok(())
            },
            |i| {
                let row = tracker.borrow_mut().completed(i);
                conn.run(&[crate::history::progress(t, &version, &row, false)])?;
                if began.take() {
                    conn.execute_batch("COMMIT").map_err(|e| sqlite_error(&e))?;
                }
                Ok(())
            },
        )
    });
    if ran.is_err() {
        // The statement the server refused did not take effect: nothing is in doubt.
        if began.take() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        let _ = conn.run(&[crate::tracked::refused(t, change, &tracker.borrow())]);
    }
    let elapsed = started.elapsed();
    if locked {
        super::lock::acquire(conn, lock_timeout, lock_timeout)?;
    }
    ran?;
    let record = crate::tracked::finished(
        t,
        change,
        split(change.sql).len(),
        elapsed.as_millis() as i64,
    );
    conn.execute_batch("SAVEPOINT strata_step")
        .map_err(|e| sqlite_error(&e))?;
    let r = conn.run(&record);
    conn.execute_batch(if r.is_ok() {
        "RELEASE strata_step"
    } else {
        "ROLLBACK TO strata_step; RELEASE strata_step"
    })
    .map_err(|e| sqlite_error(&e))?;
    r.map(|_| elapsed)
}
