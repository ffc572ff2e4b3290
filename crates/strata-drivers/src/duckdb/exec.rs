//! Running a change on DuckDB: statement by statement inside one transaction (DDL
//! included) with the history row; non-transactional scripts tracked statement by
//! statement as on the other engines. A watchdog interrupts a statement past the timeout.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use duckdb::Connection;
use strata_core::sql::split;
use strata_core::{Change, DriverError, Script, StatementRef};

use super::duck_error;
use super::history::Tables;
use crate::history::InProcess;
use crate::tracked::Tracker;

pub(super) fn execute(
    conn: &Connection,
    t: &Tables,
    change: &Change<'_>,
) -> Result<Duration, DriverError> {
    if change.transactional || change.script.is_none() {
        transactional(conn, t, change)
    } else {
        non_transactional(conn, t, change)
    }
}

fn transactional(
    conn: &Connection,
    t: &Tables,
    change: &Change<'_>,
) -> Result<Duration, DriverError> {
    conn.execute_batch("BEGIN TRANSACTION")
        .map_err(|e| duck_error(&e))?;
    let result = (|| {
        conn.run_init(change)?;
        let started = Instant::now();
        if let Some(script) = change.script {
            run_statements(conn, script, 0, change, |_| Ok(()))?;
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
        Ok(_) => conn.execute_batch("COMMIT"),
        Err(_) => conn.execute_batch("ROLLBACK"),
    }
    .map_err(|e| duck_error(&e))?;
    result
}

fn run_statements(
    conn: &Connection,
    script: &Script,
    skip: usize,
    change: &Change<'_>,
    mut after: impl FnMut(usize) -> Result<(), DriverError>,
) -> Result<(), DriverError> {
    // The watchdog interrupts the connection if the script outlives its timeout.
    let handle = conn.interrupt_handle();
    let (done, wait) = mpsc::channel::<()>();
    let timeout = change.timeout;
    let watchdog = std::thread::spawn(move || {
        if wait.recv_timeout(timeout) == Err(mpsc::RecvTimeoutError::Timeout) {
            handle.interrupt();
            true
        } else {
            false
        }
    });
    let result = (|| {
        for (i, s) in split(change.sql).iter().enumerate().skip(skip) {
            let text = s.text(change.sql);
            if change.echo {
                tracing::info!(statement = i + 1, "{text}");
            }
            if let Err(e) = conn.execute_batch(text) {
                let mut err = duck_error(&e);
                err.statement = Some(StatementRef::new(script, change.sql, s, i, s.range.start));
                return Err(err);
            }
            after(i + 1)?;
        }
        Ok(())
    })();
    let _ = done.send(());
    let interrupted = watchdog.join().unwrap_or(false);
    result.map_err(|mut e| {
        if interrupted {
            e.message = format!(
                "timed out after {}s; the statement was interrupted",
                timeout.as_secs()
            );
        }
        e
    })
}

fn non_transactional(
    conn: &Connection,
    t: &Tables,
    change: &Change<'_>,
) -> Result<Duration, DriverError> {
    let script = change
        .script
        .expect("non-transactional changes carry a script");
    let version = change.record.version().to_string();
    let stmts = split(change.sql);
    let mut tracker = Tracker::new(change.sql, &stmts, change.resume_from);
    let start = tracker.before(change.resume_from);
    conn.run(&crate::tracked::start(t, change, &start))?;
    let started = Instant::now();
    conn.run_init(change)?;
    run_statements(conn, script, change.resume_from, change, |n| {
        let row = tracker.completed(n - 1);
        conn.run(&[crate::history::progress(t, &version, &row, false)])
    })?;
    let elapsed = started.elapsed();
    let record = crate::tracked::finished(
        t,
        change,
        split(change.sql).len(),
        elapsed.as_millis() as i64,
    );
    conn.execute_batch("BEGIN TRANSACTION")
        .map_err(|e| duck_error(&e))?;
    let r = conn.run(&record);
    conn.execute_batch(if r.is_ok() { "COMMIT" } else { "ROLLBACK" })
        .map_err(|e| duck_error(&e))?;
    r.map(|_| elapsed)
}
