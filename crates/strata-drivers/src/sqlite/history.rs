//! strata's tables in SQLite: the statements of [`crate::history`] run in-process.
//! Timestamps are RFC 3339 text in UTC; JSON columns are text.

use rusqlite::types::ValueRef;
use rusqlite::Connection;
use strata_core::DriverError;

use super::sqlite_error;
use crate::history::{Cells, InProcess};

/// strata's tables on this connection ([`crate::layout`]).
pub(super) type Tables = crate::layout::Names;

impl InProcess for Connection {
    const BEGIN: &'static str = "SAVEPOINT strata_layout";

    fn end(ok: bool) -> &'static str {
        if ok {
            "RELEASE strata_layout"
        } else {
            "ROLLBACK TO strata_layout; RELEASE strata_layout"
        }
    }

    fn run_script(&self, sql: &str) -> Result<(), DriverError> {
        self.execute_batch(sql).map_err(|e| sqlite_error(&e))
    }

    fn run_counted(&self, sql: &str) -> Result<u64, (DriverError, bool)> {
        self.execute(sql, []).map(|n| n as u64).map_err(|e| {
            let unique = matches!(&e, rusqlite::Error::SqliteFailure(f, _)
                if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE);
            (sqlite_error(&e), unique)
        })
    }

    fn text_rows(&self, sql: &str) -> Result<Vec<Cells>, DriverError> {
        let read = || -> rusqlite::Result<Vec<Cells>> {
            let mut stmt = self.prepare(sql)?;
            let n = stmt.column_count();
            let mut rows = stmt.query([])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                let cells = (0..n).map(|i| {
                    Ok(match r.get_ref(i)? {
                        ValueRef::Null => None,
                        ValueRef::Integer(v) => Some(v.to_string()),
                        ValueRef::Real(v) => Some(v.to_string()),
                        ValueRef::Text(t) | ValueRef::Blob(t) => {
                            Some(String::from_utf8_lossy(t).into_owned())
                        }
                    })
                });
                out.push(cells.collect::<rusqlite::Result<Cells>>()?);
            }
            Ok(out)
        };
        read().map_err(|e| sqlite_error(&e))
    }
}
