//! strata's tables in DuckDB: the statements of [`crate::history`] run in-process.
//! Timestamps are written by strata as RFC 3339 text, so no time-zone extension is
//! needed to read them back.

use duckdb::types::Value;
use duckdb::Connection;
use strata_core::DriverError;

use super::duck_error;
use crate::history::{Cells, InProcess};

/// strata's tables on this connection ([`crate::layout`]).
pub(super) type Tables = crate::layout::Names;

impl InProcess for Connection {
    // DuckDB's DDL is transactional: the layout change is all or nothing.
    const BEGIN: &'static str = "BEGIN";

    fn end(ok: bool) -> &'static str {
        if ok {
            "COMMIT"
        } else {
            "ROLLBACK"
        }
    }

    fn run_script(&self, sql: &str) -> Result<(), DriverError> {
        self.execute_batch(sql).map_err(|e| duck_error(&e))
    }

    fn run_counted(&self, sql: &str) -> Result<u64, (DriverError, bool)> {
        self.execute(sql, []).map(|n| n as u64).map_err(|e| {
            // DuckDB reports a unique violation only in its message.
            let unique = e.to_string().to_ascii_lowercase().contains("duplicate key");
            (duck_error(&e), unique)
        })
    }

    fn text_rows(&self, sql: &str) -> Result<Vec<Cells>, DriverError> {
        let read = || -> duckdb::Result<Vec<Cells>> {
            let mut stmt = self.prepare(sql)?;
            let mut rows = stmt.query([])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                let cells = (0..r.as_ref().column_count()).map(|i| {
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
                });
                out.push(cells.collect::<duckdb::Result<Cells>>()?);
            }
            Ok(out)
        };
        read().map_err(|e| duck_error(&e))
    }
}
