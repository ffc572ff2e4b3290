//! Running a change on MySQL.
//!
//! A script whose every statement is a data change (INSERT, UPDATE, DELETE, ...) runs in
//! one transaction with its history row, audit row and metadata. Anything else causes an
//! implicit commit in MySQL, so it runs tracked: a `success=false` row first, each
//! statement on its own with `statements_done` updated after it, the final row last.
//! A failure then leaves a `failed` row saying how far it got.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};
use strata_core::sql::{split_dialect, Dialect, Statement};
use strata_core::{Change, DriverError, DriverErrorKind, Record, Script, StatementRef};

use super::history::{self, take, Tables};
use crate::tracked::Tracker;

/// What `execute` needs of the connection besides the connection itself.
pub(super) struct Session<'a> {
    pub opts: &'a Opts,
    pub mariadb: bool,
}

/// Server error codes worth retrying: lock wait timeout, deadlock, too many
/// connections, shutdown in progress, server gone away / lost, connection killed.
fn transient_code(code: u16) -> bool {
    matches!(code, 1205 | 1213 | 1040 | 1053 | 2006 | 2013 | 1927 | 4031)
}

/// A `mysql_async` error as a driver error, retryable per [`transient_code`] or when
/// the connection was lost.
pub(crate) fn db_error(e: &mysql_async::Error) -> DriverError {
    match e {
        mysql_async::Error::Server(s) => {
            let mut err = DriverError::query(s.message.clone()).retryable(transient_code(s.code));
            err.code = Some(s.code.to_string());
            err
        }
        mysql_async::Error::Io(_) => {
            DriverError::new(DriverErrorKind::Other, e.to_string()).retryable(true)
        }
        mysql_async::Error::Driver(d) => {
            let lost = matches!(d, mysql_async::DriverError::ConnectionClosed);
            DriverError::new(DriverErrorKind::Other, e.to_string()).retryable(lost)
        }
        _ => DriverError::new(DriverErrorKind::Other, e.to_string()),
    }
}

/// Statements that never commit implicitly, so a script of only these can be one
/// transaction. `CALL` is left out: a procedure may run DDL.
fn transaction_safe(text: &str) -> bool {
    let word: String = text
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_uppercase();
    matches!(
        word.as_str(),
        "INSERT" | "UPDATE" | "DELETE" | "REPLACE" | "SELECT" | "WITH" | "SET" | "DO"
    )
}

pub(super) async fn execute(
    conn: &mut Conn,
    t: &Tables,
    s: &Session<'_>,
    change: &Change<'_>,
) -> Result<Duration, DriverError> {
    if change.script.is_none() {
        return transactional(conn, t, s, change, &[]).await;
    }
    let stmts = split_dialect(change.sql, Dialect::MySql);
    let all_dml = stmts.iter().all(|st| transaction_safe(st.text(change.sql)));
    if change.transactional && all_dml {
        transactional(conn, t, s, change, &stmts).await
    } else {
        tracked(conn, t, s, change, &stmts).await
    }
}

async fn transactional(
    conn: &mut Conn,
    t: &Tables,
    s: &Session<'_>,
    change: &Change<'_>,
    stmts: &[Statement],
) -> Result<Duration, DriverError> {
    run_init(conn, change).await?;
    set_timeouts(conn, s, change).await?;
    conn.query_drop("START TRANSACTION")
        .await
        .map_err(|e| db_error(&e))?;
    let result = async {
        let started = Instant::now();
        if let Some(script) = change.script {
            for (i, st) in stmts.iter().enumerate() {
                run_one(conn, s, script, st, i, change).await?;
            }
        }
        let elapsed = started.elapsed();
        let record = crate::history::record(t, change, elapsed.as_millis() as i64);
        history::run_with(conn, &[], &record, &["COMMIT"]).await?;
        Ok(elapsed)
    }
    .await;
    if result.is_err() {
        let _ = conn.query_drop("ROLLBACK").await;
    }
    reset_timeouts(conn, s).await;
    result
}

async fn tracked(
    conn: &mut Conn,
    t: &Tables,
    s: &Session<'_>,
    change: &Change<'_>,
    stmts: &[Statement],
) -> Result<Duration, DriverError> {
    let script = change.script.expect("tracked changes carry a script");
    let version = change.record.version().to_string();
    let mut tracker = Tracker::new(change.sql, stmts, change.resume_from);
    let start = tracker.before(change.resume_from);
    // A progress record written in an open transaction, not yet committed. MySQL
    // commits an open transaction before every DDL statement, so a record made just
    // before one rides on that commit instead of paying a commit (an fsync) of its own;
    // if the process dies in the gap, the statement it records is merely in doubt.
    // The next statement commits the record, or joins its transaction.
    let carries = |tracker: &Tracker, i: usize| {
        stmts
            .get(i)
            .is_none_or(|st| commits_first(st.text(change.sql)) || tracker.atomic(i))
    };
    let mut pending = carries(&tracker, change.resume_from);
    // Visible before anything runs: a crash leaves a `failed` row (or a rollback in
    // progress), never silence. With the commit (unless the first statement carries it)
    // and the session's timeouts: one round trip.
    let timeouts = timeouts_sql(s, change);
    let after: &[&str] = if pending {
        &[&timeouts]
    } else {
        &["COMMIT", &timeouts]
    };
    let begin = crate::tracked::start(t, change, &start);
    if let Err(e) = history::run_with(conn, &["START TRANSACTION"], &begin, after).await {
        let _ = conn.query_drop("ROLLBACK").await;
        return Err(e);
    }
    run_init(conn, change).await?;
    let started = Instant::now();
    // A savepoint set ahead of the next (data) statement with the last record.
    let mut saved = false;
    // The statements recording the last one's completion.
    let mut progress: Vec<String> = Vec::new();
    let ran = async {
        for (i, st) in stmts.iter().enumerate().skip(change.resume_from) {
            // A data change commits with its progress record: never in doubt.
            let atomic = tracker.atomic(i);
            if atomic {
                if !saved {
                    let open = if pending { "" } else { "START TRANSACTION; " };
                    conn.query_drop(format!("{open}SAVEPOINT strata_statement"))
                        .await
                        .map_err(|e| db_error(&e))?;
                }
                pending = true;
                saved = false;
            } else if commits_first(st.text(change.sql)) {
                // Its implicit commit makes the pending record durable.
                pending = false;
            }
            if let Err(mut err) = run_one(conn, s, script, st, i, change).await {
                if atomic {
                    let _ = conn.query_drop("ROLLBACK TO SAVEPOINT strata_statement").await;
                }
                // The server refused it, so it did not take effect: nothing is in doubt.
                // (A lost connection leaves the mark: then nobody knows.)
                if err.code.is_some() {
                    let _ = history::run(conn, &[crate::tracked::refused(t, change, &tracker)]).await;
                }
                // What is recorded so far is true: keep it (a DDL refused before its
                // implicit commit leaves the pending record open).
                let _ = conn.query_drop("COMMIT").await;
                if let (Record::Remove { .. }, true) = (&change.record, tracker.done() > 0) {
                    let note = format!(
                        "MySQL commits DDL as it goes: statements 1-{i} of this rollback took effect, so \
                         {version} is now recorded as a rollback stopped midway. Fix the cause and run \
                         `strata rollback --resume`, or finish it by hand and run `strata repair` (it is \
                         then not applied)"
                    );
                    err.detail = Some(match err.detail.take() {
                        Some(d) => format!("{note}\n{d}"),
                        None => note,
                    });
                }
                return Err(err);
            }
            let row = tracker.completed(i);
            // Before a DDL statement, a data change or the final record, the record
            // waits for their commit; otherwise it commits now. One round trip.
            let next_commits = carries(&tracker, i + 1);
            if !pending && next_commits {
                progress.push("START TRANSACTION".into());
            }
            progress.push(crate::history::progress(t, &version, &row, false).sql);
            if pending && !next_commits {
                progress.push("COMMIT".into());
            }
            if next_commits && i + 1 < stmts.len() && tracker.atomic(i + 1) {
                progress.push("SAVEPOINT strata_statement".into());
                saved = true;
            }
            pending = next_commits;
            // After the last statement the record goes with the final one.
            if i + 1 < stmts.len() {
                let sql = progress.join(";\n");
                let n = progress.len();
                progress.clear();
                history::batch(conn, &sql, n).await.map_err(|e| db_error(&e))?;
            }
        }
        Ok(())
    }
    .await;
    if ran.is_err() {
        reset_timeouts(conn, s).await;
    }
    ran?;
    let elapsed = started.elapsed();
    let record = crate::tracked::finished(t, change, stmts.len(), elapsed.as_millis() as i64);
    if !pending {
        progress.push("START TRANSACTION".into());
    }
    let before: Vec<&str> = progress.iter().map(String::as_str).collect();
    let reset = reset_timeouts_sql(s);
    let r = history::run_with(conn, &before, &record, &["COMMIT", &reset]).await;
    if r.is_err() {
        let _ = conn.query_drop(format!("ROLLBACK; {reset}")).await;
    }
    r.map(|_| elapsed)
}

/// Statements before which MySQL commits the open transaction (DDL): a progress record
/// left open ahead of one is made durable by it.
fn commits_first(text: &str) -> bool {
    matches!(
        strata_core::sql::leading_words(text, 1)
            .first()
            .map(String::as_str),
        Some("CREATE" | "ALTER" | "DROP" | "RENAME" | "TRUNCATE")
    )
}

async fn run_init(conn: &mut Conn, change: &Change<'_>) -> Result<(), DriverError> {
    for stmt in change.init_sql {
        conn.query_drop(stmt.as_str()).await.map_err(|e| {
            let mut err = db_error(&e);
            err.message = format!("init_sql `{stmt}` failed: {}", err.message);
            err
        })?;
    }
    Ok(())
}

/// The statement timeout (MariaDB `max_statement_time`, MySQL `max_execution_time`,
/// which MySQL applies to SELECT only) and `lock_wait_ms` for metadata and row locks,
/// so DDL queued behind a long transaction gives up instead of blocking every query.
async fn set_timeouts(
    conn: &mut Conn,
    s: &Session<'_>,
    change: &Change<'_>,
) -> Result<(), DriverError> {
    conn.query_drop(timeouts_sql(s, change))
        .await
        .map_err(|e| db_error(&e))
}

fn timeouts_sql(s: &Session<'_>, change: &Change<'_>) -> String {
    let wait_s = change.lock_wait.as_secs_f64().ceil().max(1.0) as u64;
    let statement = if s.mariadb {
        format!("max_statement_time = {:.3}", change.timeout.as_secs_f64())
    } else {
        format!("max_execution_time = {}", change.timeout.as_millis())
    };
    format!(
        "SET SESSION {statement}, lock_wait_timeout = {wait_s}, innodb_lock_wait_timeout = {wait_s}"
    )
}

async fn reset_timeouts(conn: &mut Conn, s: &Session<'_>) {
    let _ = conn.query_drop(reset_timeouts_sql(s)).await;
}

fn reset_timeouts_sql(s: &Session<'_>) -> String {
    // The statement timeout is named differently by MariaDB and MySQL.
    let statement = if s.mariadb {
        "max_statement_time"
    } else {
        "max_execution_time"
    };
    format!(
        "SET SESSION lock_wait_timeout = DEFAULT, innodb_lock_wait_timeout = DEFAULT, {statement} = DEFAULT"
    )
}

/// Runs one statement with a client deadline past the server's timeout; past it the
/// query is killed from a second connection. Errors name the statement and line.
async fn run_one(
    conn: &mut Conn,
    s: &Session<'_>,
    script: &Script,
    st: &Statement,
    i: usize,
    change: &Change<'_>,
) -> Result<(), DriverError> {
    let text = st.text(change.sql);
    if change.echo {
        tracing::info!(statement = i + 1, "{text}");
    }
    let id = conn.id();
    let result = tokio::time::timeout(
        change.timeout + Duration::from_secs(5),
        conn.query_drop(text),
    )
    .await;
    let mut err = match result {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(e)) => db_error(&e),
        Err(_) => {
            kill_query(s.opts, id).await;
            DriverError::query(format!(
                "timed out after {}s; the query was killed",
                change.timeout.as_secs()
            ))
        }
    };
    if matches!(err.code.as_deref(), Some("1969" | "3024")) {
        err.message = format!(
            "timed out after {}s (timeout_seconds): {}",
            change.timeout.as_secs(),
            err.message
        );
    }
    let at = error_offset(text, &err.message).map_or(st.range.start, |o| st.range.start + o);
    err.statement = Some(StatementRef::new(script, change.sql, st, i, at));
    if err.code.as_deref() == Some("1205") {
        err = explain_lock_wait(conn, err, change.lock_wait).await;
    }
    Err(err)
}

/// MySQL reports syntax errors "... near '…' at line N" of the statement; the byte
/// offset of that line within it.
fn error_offset(stmt: &str, message: &str) -> Option<usize> {
    let n: usize = message.rsplit_once("at line ")?.1.trim().parse().ok()?;
    let mut offset = 0;
    for (k, line) in stmt.split_inclusive('\n').enumerate() {
        if k + 1 == n {
            return Some(offset);
        }
        offset += line.len();
    }
    None
}

async fn kill_query(opts: &Opts, id: u32) {
    if let Ok(mut c) = Conn::new(opts.clone()).await {
        let _ = c.query_drop(format!("KILL QUERY {id}")).await;
        let _ = c.disconnect().await;
    }
}

/// After a lock wait timeout (1205), names the sessions with the oldest open
/// transactions: most likely what the migration's table lock queued behind.
async fn explain_lock_wait(conn: &mut Conn, mut err: DriverError, waited: Duration) -> DriverError {
    let rows: Vec<mysql_async::Row> = conn
        .exec(
            "SELECT p.ID, COALESCE(p.USER, ''), COALESCE(p.HOST, ''), COALESCE(p.COMMAND, ''), \
                    TIMESTAMPDIFF(SECOND, t.trx_started, NOW()), LEFT(COALESCE(t.trx_query, p.INFO, ''), 120) \
             FROM information_schema.INNODB_TRX t JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id \
             WHERE p.ID <> CONNECTION_ID() ORDER BY t.trx_started LIMIT 3",
            (),
        )
        .await
        .unwrap_or_default();
    let who: Vec<String> = rows
        .into_iter()
        .map(|mut r| {
            format!(
                "connection {} (user {} from {}, {}, transaction open {}s): `{}`",
                take::<u64>(&mut r, 0).unwrap_or(0),
                take::<String>(&mut r, 1).unwrap_or_default(),
                take::<String>(&mut r, 2).unwrap_or_default(),
                take::<String>(&mut r, 3).unwrap_or_default(),
                take::<i64>(&mut r, 4).unwrap_or(0),
                take::<String>(&mut r, 5).unwrap_or_default(),
            )
        })
        .collect();
    let mut text = format!(
        "waited {}s (lock_wait_ms, rounded up to MySQL's whole seconds) for a lock and gave up, \
         so other queries are not queued behind this migration",
        waited.as_secs_f64().ceil().max(1.0)
    );
    if !who.is_empty() {
        text.push_str("; blocking: ");
        text.push_str(&who.join("; "));
    }
    err.detail = Some(match err.detail.take() {
        Some(d) => format!("{text}\n{d}"),
        None => text,
    });
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_data_changes_share_a_transaction() {
        assert!(transaction_safe("  insert into t values (1)"));
        assert!(transaction_safe("UPDATE t SET a = 1"));
        assert!(!transaction_safe("CREATE TABLE t (a INT)"));
        assert!(!transaction_safe("CALL proc()"));
        assert!(!transaction_safe("ALTER TABLE t ADD b INT"));
    }

    #[test]
    fn syntax_error_lines_map_into_the_statement() {
        let stmt = "CREATE TABLE t (\n  a INT,\n  b BOGUS\n)";
        let msg =
            "You have an error in your SQL syntax; check the manual near 'BOGUS\n)' at line 3";
        assert_eq!(
            error_offset(stmt, msg),
            Some(stmt.find("  b BOGUS").unwrap())
        );
        assert_eq!(error_offset(stmt, "Table 't' already exists"), None);
    }
}
