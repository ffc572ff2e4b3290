//! strata's tables in SQLite: the statements of [`crate::history`] run in-process.
//! Timestamps are RFC 3339 text in UTC; JSON columns are text.

use rusqlite::types::ValueRef;
use rusqlite::Connection;
use strata_core::DriverError;

use super::sqlite_error;
use crate::history::{self, Cells, Stmt};
use crate::layout::{Bookkeeping, Found};

/// strata's tables on this connection ([`crate::layout`]).
pub(super) type Tables = crate::layout::Names;

/// The rows of `sql`, each cell as text.
pub(super) fn rows(conn: &Connection, sql: &str) -> Result<Vec<Cells>, DriverError> {
    let read = || -> rusqlite::Result<Vec<Cells>> {
        let mut stmt = conn.prepare(sql)?;
        let n = stmt.column_count();
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(
                (0..n)
                    .map(|i| {
                        Ok(match r.get_ref(i)? {
                            ValueRef::Null => None,
                            ValueRef::Integer(v) => Some(v.to_string()),
                            ValueRef::Real(v) => Some(v.to_string()),
                            ValueRef::Text(t) | ValueRef::Blob(t) => {
                                Some(String::from_utf8_lossy(t).into_owned())
                            }
                        })
                    })
                    .collect::<rusqlite::Result<Cells>>()?,
            );
        }
        Ok(out)
    };
    read().map_err(|e| sqlite_error(&e))
}

/// Runs bookkeeping statements in order, each checked.
pub(super) fn run(conn: &Connection, stmts: &[Stmt]) -> Result<(), DriverError> {
    for s in stmts {
        let n = conn.execute(&s.sql, []).map_err(|e| match &e {
            rusqlite::Error::SqliteFailure(f, _)
                if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
            {
                history::duplicate(std::slice::from_ref(s)).unwrap_or_else(|| sqlite_error(&e))
            }
            _ => sqlite_error(&e),
        })?;
        s.check(n as u64)?;
    }
    Ok(())
}

/// What the database holds of strata's tables, remembered in `b`.
pub(super) fn probe(conn: &Connection, b: &mut Bookkeeping) -> Result<Found, DriverError> {
    let found: Vec<_> = rows(conn, &b.probe_sql())?
        .into_iter()
        .map(history::probe_row)
        .collect();
    b.classify(&found)
}

/// Creates strata's tables, or moves an earlier layout's into place, with an audit
/// row for the move; called under the migration lock.
pub(super) fn ensure(conn: &Connection, b: &mut Bookkeeping) -> Result<(), DriverError> {
    let found = probe(conn, b)?;
    let sql = b.ensure_sql(found)?;
    if sql.is_empty() {
        return Ok(());
    }
    conn.execute_batch("SAVEPOINT strata_layout")
        .map_err(|e| sqlite_error(&e))?;
    let mut done = sql
        .iter()
        .try_for_each(|s| conn.execute_batch(s))
        .map_err(|e| sqlite_error(&e));
    if done.is_ok() {
        if let Some(entry) = b.upgrade_audit(found, whoami::username()) {
            done = run(conn, &[history::audit_row(&b.current, &entry)]);
        }
    }
    let end = if done.is_ok() {
        "RELEASE strata_layout"
    } else {
        "ROLLBACK TO strata_layout; RELEASE strata_layout"
    };
    conn.execute_batch(end).map_err(|e| sqlite_error(&e))?;
    done?;
    b.created();
    Ok(())
}
