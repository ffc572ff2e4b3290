//! strata's tables in DuckDB: the statements of [`crate::history`] run in-process.
//! Timestamps are written by strata as RFC 3339 text, so no time-zone extension is
//! needed to read them back.

use duckdb::types::Value;
use duckdb::Connection;
use strata_core::DriverError;

use super::duck_error;
use crate::history::{self, Cells, Stmt};
use crate::layout::{Bookkeeping, Found};

/// strata's tables on this connection ([`crate::layout`]).
pub(super) type Tables = crate::layout::Names;

/// The rows of `sql`, each cell as text.
pub(super) fn rows(conn: &Connection, sql: &str) -> Result<Vec<Cells>, DriverError> {
    let read = || -> duckdb::Result<Vec<Cells>> {
        let mut stmt = conn.prepare(sql)?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let n = r.as_ref().column_count();
            out.push(
                (0..n)
                    .map(|i| {
                        Ok(match r.get::<_, Value>(i)? {
                            Value::Null => None,
                            Value::Boolean(b) => Some(b.to_string()),
                            Value::TinyInt(v) => Some(v.to_string()),
                            Value::SmallInt(v) => Some(v.to_string()),
                            Value::Int(v) => Some(v.to_string()),
                            Value::BigInt(v) => Some(v.to_string()),
                            Value::UInt(v) => Some(v.to_string()),
                            Value::UBigInt(v) => Some(v.to_string()),
                            Value::Text(s) => Some(s),
                            Value::Blob(b) => Some(String::from_utf8_lossy(&b).into_owned()),
                            other => Some(format!("{other:?}")),
                        })
                    })
                    .collect::<duckdb::Result<Cells>>()?,
            );
        }
        Ok(out)
    };
    read().map_err(|e| duck_error(&e))
}

/// Runs bookkeeping statements in order, each checked.
pub(super) fn run(conn: &Connection, stmts: &[Stmt]) -> Result<(), DriverError> {
    for s in stmts {
        let n = conn.execute(&s.sql, []).map_err(|e| {
            // DuckDB reports a unique violation only in its message.
            if e.to_string().to_ascii_lowercase().contains("duplicate key") {
                history::duplicate(std::slice::from_ref(s)).unwrap_or_else(|| duck_error(&e))
            } else {
                duck_error(&e)
            }
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

/// Creates strata's tables, or moves an earlier layout's into place (DuckDB's DDL is
/// transactional: all or nothing), with an audit row for the move.
pub(super) fn ensure(conn: &Connection, b: &mut Bookkeeping) -> Result<(), DriverError> {
    let found = probe(conn, b)?;
    let sql = b.ensure_sql(found)?;
    if sql.is_empty() {
        return Ok(());
    }
    conn.execute_batch("BEGIN").map_err(|e| duck_error(&e))?;
    let mut done = sql
        .iter()
        .try_for_each(|s| conn.execute_batch(s))
        .map_err(|e| duck_error(&e));
    if done.is_ok() {
        if let Some(entry) = b.upgrade_audit(found, whoami::username()) {
            done = run(conn, &[history::audit_row(&b.current, &entry)]);
        }
    }
    let end = if done.is_ok() { "COMMIT" } else { "ROLLBACK" };
    conn.execute_batch(end).map_err(|e| duck_error(&e))?;
    done?;
    b.created();
    Ok(())
}
