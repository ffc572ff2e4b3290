//! strata's tables in MySQL/MariaDB: the statements of [`crate::history`], each batch
//! sent as one multi-statement text query (one round trip).

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};
use strata_core::DriverError;

use super::exec::db_error;
use crate::history::{self, Cells, Stmt};
use crate::layout::{Bookkeeping, Found};

/// strata's tables on this connection ([`crate::layout`]).
pub(super) type Tables = crate::layout::Names;

pub(super) fn quote(ident: &str) -> String {
    crate::layout::Dialect::MySql.quote(ident)
}

/// Column `i` as `T`; NULL (or a value of another type) is `None`.
pub(super) fn take<T: mysql_async::prelude::FromValue>(r: &mut Row, i: usize) -> Option<T> {
    match r.take_opt::<Option<T>, usize>(i) {
        Some(Ok(v)) => v,
        _ => None,
    }
}

/// The rows of `sql`, each cell as text.
pub(super) async fn rows(conn: &mut Conn, sql: &str) -> Result<Vec<Cells>, DriverError> {
    let rows: Vec<Row> = conn.query(sql).await.map_err(|e| db_error(&e))?;
    Ok(rows
        .into_iter()
        .map(|r| {
            r.unwrap()
                .into_iter()
                .map(|v| match v {
                    Value::NULL => None,
                    Value::Bytes(b) => Some(String::from_utf8_lossy(&b).into_owned()),
                    Value::Int(i) => Some(i.to_string()),
                    Value::UInt(u) => Some(u.to_string()),
                    other => Some(other.as_sql(true).trim_matches('\'').to_string()),
                })
                .collect()
        })
        .collect())
}

/// Runs `sql`, `n` statements that return no rows, as one text query; the rows each
/// affected. The server stops at the first error, which is returned.
pub(super) async fn batch(
    conn: &mut Conn,
    sql: &str,
    n: usize,
) -> Result<Vec<u64>, mysql_async::Error> {
    let mut result = conn.query_iter(sql).await?;
    let mut counts = Vec::with_capacity(n);
    for _ in 0..n {
        counts.push(result.affected_rows());
        // Reads on to the next statement's result (or its error).
        let _: Vec<Row> = result.collect().await?;
    }
    result.drop_result().await?;
    Ok(counts)
}

/// Runs bookkeeping statements between `before` and `after` (plain statements, such as
/// `START TRANSACTION` and `COMMIT`) in one round trip, each checked.
pub(super) async fn run_with(
    conn: &mut Conn,
    before: &[&str],
    stmts: &[Stmt],
    after: &[&str],
) -> Result<(), DriverError> {
    let sql = history::script(before, stmts, after);
    let n = before.len() + stmts.len() + after.len();
    match batch(conn, &sql, n).await {
        Ok(counts) => history::check_all(stmts, &counts[before.len()..]),
        Err(mysql_async::Error::Server(e)) if e.code == 1062 => {
            Err(history::duplicate(stmts)
                .unwrap_or_else(|| db_error(&mysql_async::Error::Server(e))))
        }
        Err(e) => Err(db_error(&e)),
    }
}

pub(super) async fn run(conn: &mut Conn, stmts: &[Stmt]) -> Result<(), DriverError> {
    run_with(conn, &[], stmts, &[]).await
}

/// What the database holds of strata's tables, remembered in `b`.
pub(super) async fn probe(conn: &mut Conn, b: &mut Bookkeeping) -> Result<Found, DriverError> {
    let found: Vec<_> = rows(conn, &b.probe_sql())
        .await?
        .into_iter()
        .map(history::probe_row)
        .collect();
    b.classify(&found)
}

/// Creates strata's tables, or moves an earlier layout's into place (one atomic
/// `RENAME TABLE`), with an audit row for the move; called under the migration lock.
pub(super) async fn ensure(conn: &mut Conn, b: &mut Bookkeeping) -> Result<(), DriverError> {
    let found = probe(conn, b).await?;
    for stmt in b.ensure_sql(found)? {
        conn.query_drop(stmt).await.map_err(|e| db_error(&e))?;
    }
    if found != Found::Current {
        b.created();
    }
    if let Some(entry) = b.upgrade_audit(found, whoami::username()) {
        run(conn, &[history::audit_row(&b.current, &entry)]).await?;
    }
    Ok(())
}
