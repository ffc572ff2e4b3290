//! Running a change on PostgreSQL.
//!
//! Transactional: `BEGIN`, the whole script as one simple query (the server parses it,
//! one round trip), the history/audit/metadata statement, `COMMIT`. On failure the
//! transaction is rolled back, and the error is mapped to a statement and file line
//! from the server's error position; when the server gives none (a runtime error), the
//! failing statement is the one after those the server reported complete: nothing is
//! ever run twice to find it.
//!
//! Non-transactional (`CREATE INDEX CONCURRENTLY` and friends): a `success=false` row
//! first, then each statement on its own with `statements_done` updated after each, and
//! the final row, audit and metadata in one transaction.
//!
//! Behind a pooler ([`super::pooler`]) nothing is set for the session: a transaction's
//! timeouts are `SET LOCAL`, as always; a statement that runs outside a transaction
//! gets the client's deadline (the query is cancelled) instead of `statement_timeout`,
//! since a session `SET` would reach some other client's server session.

use std::time::{Duration, Instant};

use strata_core::sql::{split, statement_at};
use strata_core::{Change, DriverError, DriverErrorKind, Script, StatementRef};
use tokio_postgres::error::ErrorPosition;
use tokio_postgres::Client;

use super::history::{self, Tables};
use super::target::Target;
use crate::tracked::Tracker;

/// What running a change needs: the connection, where it goes (to cancel a query over
/// the same TLS), and whether a pooler is in between.
pub(super) struct Session<'a> {
    pub client: &'a Client,
    /// `None` on a borrowed client: a cancel then goes without TLS.
    pub target: Option<&'a Target>,
    pub pooled: bool,
}

/// SQLSTATEs worth retrying: serialization failure, deadlock, lock not available
/// (`lock_timeout`), shutdown/crash/startup, too many connections, and every connection
/// exception (class 08).
fn transient_code(code: &str) -> bool {
    matches!(
        code,
        "40001" | "40P01" | "55P03" | "57P01" | "57P02" | "57P03" | "53300"
    ) || code.starts_with("08")
}

/// True when the connection failed underneath (closed, reset, refused), as opposed to
/// a client-side mistake such as a parameter of the wrong type.
pub(crate) fn lost_connection(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        if inner.is::<std::io::Error>() {
            return true;
        }
        src = inner.source();
    }
    false
}

/// A tokio-postgres error without statement context; retryable per [`transient_code`],
/// or when the connection was lost.
pub(crate) fn db_error(e: &tokio_postgres::Error) -> DriverError {
    let transient = match e.as_db_error() {
        Some(db) => transient_code(db.code().code()),
        None => lost_connection(e),
    };
    let mut err = DriverError::new(
        if e.as_db_error().is_some() {
            DriverErrorKind::Query
        } else {
            DriverErrorKind::Other
        },
        super::error_text(e),
    );
    if let Some(db) = e.as_db_error() {
        err.code = Some(db.code().code().to_string());
        let extra: Vec<String> = [
            ("detail", db.detail()),
            ("hint", db.hint()),
            ("context", db.where_()),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}: {v}")))
        .collect();
        if !extra.is_empty() {
            err.detail = Some(extra.join("\n"));
        }
    }
    err.retryable(transient)
}

pub(super) async fn execute(
    s: &Session<'_>,
    t: &Tables,
    change: &Change<'_>,
) -> Result<Duration, DriverError> {
    if s.pooled {
        refuse_session_init(change)?;
    }
    if change.transactional || change.script.is_none() {
        transactional(s, t, change).await
    } else {
        non_transactional(s, t, change).await
    }
}

/// Behind a pooler, an `init_sql` statement that sets something for the session would
/// change whichever server session ran it, another client's next; only `SET LOCAL`
/// (inside the migration's transaction) is safe there.
fn refuse_session_init(change: &Change<'_>) -> Result<(), DriverError> {
    let outside = !change.transactional && change.script.is_some();
    let local = |stmt: &str| {
        let words: Vec<String> = stmt
            .split_whitespace()
            .take(2)
            .map(str::to_ascii_uppercase)
            .collect();
        words == ["SET", "LOCAL"]
    };
    match change.init_sql.iter().find(|s| outside || !local(s)) {
        None => Ok(()),
        Some(stmt) => Err(DriverError::new(
            DriverErrorKind::Refused,
            format!("init_sql `{stmt}` would change a pooled server session that other clients use next"),
        )
        .with_detail(
            "behind a connection pooler only `SET LOCAL …` is allowed in init_sql, and only for migrations that run in a transaction; set session defaults with ALTER ROLE … SET, or connect to PostgreSQL directly",
        )),
    }
}

async fn transactional(
    session: &Session<'_>,
    t: &Tables,
    change: &Change<'_>,
) -> Result<Duration, DriverError> {
    let client = session.client;
    let timeout_ms = change.timeout.as_millis();
    let lock_wait_ms = change.lock_wait.as_millis().max(1);
    client
        .batch_execute(&format!(
            "BEGIN; SET LOCAL statement_timeout = {timeout_ms}; SET LOCAL lock_timeout = {lock_wait_ms}"
        ))
        .await
        .map_err(|e| db_error(&e))?;
    let result = async {
        run_init(client, change).await?;
        let started = Instant::now();
        if let Some(script) = change.script {
            if change.echo {
                tracing::info!(path = %script.path.display(), "{}", change.sql);
            }
            let mut completed = 0;
            if let Err(e) = with_deadline(
                session,
                change.timeout,
                simple_script(client, change.sql, &mut completed),
            )
            .await
            {
                let _ = client.batch_execute("ROLLBACK").await;
                let err = locate(script, e, completed, change);
                return Err(explain_lock_wait(client, err, change.lock_wait).await);
            }
        }
        let elapsed = started.elapsed();
        record_and_commit(client, t, change, elapsed).await?;
        Ok(elapsed)
    }
    .await;
    if result.is_err() {
        // Harmless when already rolled back; leaves the session clean for the next step.
        let _ = client.batch_execute("ROLLBACK").await;
    }
    result
}

async fn run_init(client: &Client, change: &Change<'_>) -> Result<(), DriverError> {
    for stmt in change.init_sql {
        client.batch_execute(stmt).await.map_err(|e| {
            let mut err = db_error(&e);
            err.message = format!("init_sql `{stmt}` failed: {}", err.message);
            err
        })?;
    }
    Ok(())
}

/// Runs `fut` with a client-side deadline a little past the server's statement timeout;
/// past it, the running query is cancelled (the server may be unresponsive).
async fn with_deadline<F>(session: &Session<'_>, timeout: Duration, fut: F) -> Result<(), PgFailure>
where
    F: std::future::Future<Output = Result<(), tokio_postgres::Error>>,
{
    match tokio::time::timeout(timeout + Duration::from_secs(5), fut).await {
        Ok(r) => r.map_err(PgFailure::Db),
        Err(_) => {
            // Over the connection's own TLS settings: a server that requires TLS
            // would refuse a plaintext cancel request.
            match session.target.map(|t| t.tls.connector()) {
                Some(Ok(tls)) => {
                    let _ = session.client.cancel_token().cancel_query(tls).await;
                }
                Some(Err(e)) => tracing::warn!("cannot cancel the query: {}", e.message),
                None => {
                    let _ = session
                        .client
                        .cancel_token()
                        .cancel_query(tokio_postgres::NoTls)
                        .await;
                }
            }
            Err(PgFailure::Deadline(timeout))
        }
    }
}

enum PgFailure {
    Db(tokio_postgres::Error),
    Deadline(Duration),
}

/// Runs a script as one simple query (the server parses it, one round trip), counting
/// the statements the server reports complete: when one fails, that count is its
/// index, found without running anything again.
async fn simple_script(
    client: &Client,
    sql: &str,
    completed: &mut usize,
) -> Result<(), tokio_postgres::Error> {
    use futures_util::TryStreamExt;
    let stream = client.simple_query_raw(sql).await?;
    let mut stream = std::pin::pin!(stream);
    while let Some(message) = stream.try_next().await? {
        if let tokio_postgres::SimpleQueryMessage::CommandComplete(_) = message {
            *completed += 1;
        }
    }
    Ok(())
}

/// Maps a script failure to the statement and line it happened at: the server's error
/// position when it gives one, else the statement after the `completed` ones.
fn locate(
    script: &Script,
    failure: PgFailure,
    completed: usize,
    change: &Change<'_>,
) -> DriverError {
    let e = match failure {
        PgFailure::Db(e) => e,
        PgFailure::Deadline(d) => {
            return DriverError::query(format!(
                "timed out after {}s; the query was cancelled",
                d.as_secs()
            ))
        }
    };
    let mut err = db_error(&e);
    let stmts = split(change.sql);
    let position = e.as_db_error().and_then(|db| match db.position() {
        Some(ErrorPosition::Original(p)) => Some(*p as usize),
        _ => None,
    });
    let (index, byte) = match position {
        // The server counts characters from 1.
        Some(p) => {
            let byte = change
                .sql
                .char_indices()
                .nth(p.saturating_sub(1))
                .map(|(b, _)| b)
                .unwrap_or(change.sql.len());
            (statement_at(&stmts, byte), Some(byte))
        }
        None => (
            Some(completed.min(stmts.len().saturating_sub(1))).filter(|_| !stmts.is_empty()),
            None,
        ),
    };
    if let Some(i) = index {
        let s = &stmts[i];
        err.statement = Some(StatementRef::new(
            script,
            change.sql,
            s,
            i,
            byte.unwrap_or(s.range.start),
        ));
    }
    err
}

/// The history change, audit row and metadata sent with `COMMIT` as one simple query
/// (one round trip). If the record fails the server skips the `COMMIT` and the caller
/// rolls back, so nothing half-done commits.
async fn record_and_commit(
    client: &Client,
    t: &Tables,
    change: &Change<'_>,
    elapsed: Duration,
) -> Result<(), DriverError> {
    let record = crate::history::record(&t.names, change, elapsed.as_millis() as i64);
    history::run_with(client, &[], &record, &["COMMIT"]).await
}

async fn non_transactional(
    session: &Session<'_>,
    t: &Tables,
    change: &Change<'_>,
) -> Result<Duration, DriverError> {
    let client = session.client;
    let script = change
        .script
        .expect("non-transactional changes carry a script");
    let stmts = split(change.sql);
    let version = change.record.version().to_string();
    let mut tracker = Tracker::new(change.sql, &stmts, change.resume_from);
    let start = tracker.before(change.resume_from);
    // Visible before anything runs: a crash leaves a `failed` row (or a rollback in
    // progress), never silence.
    history::run(client, &crate::tracked::start(&t.names, change, &start)).await?;
    run_init(client, change).await?;
    // Session timeouts for the statements below; behind a pooler they would land in
    // another session, so there the client's deadline is the limit.
    let reset = !session.pooled;
    if reset {
        client
            .batch_execute(&format!(
                "SET statement_timeout = {}; SET lock_timeout = {}",
                change.timeout.as_millis(),
                change.lock_wait.as_millis().max(1)
            ))
            .await
            .map_err(|e| db_error(&e))?;
    }
    let started = Instant::now();
    for (i, s) in stmts.iter().enumerate().skip(change.resume_from) {
        let text = s.text(change.sql);
        if change.echo {
            tracing::info!(statement = i + 1, "{text}");
        }
        // A data change commits with its progress record: never in doubt.
        let atomic = tracker.atomic(i);
        let ran = async {
            if atomic {
                client.batch_execute("BEGIN").await.map_err(PgFailure::Db)?;
            }
            if atomic && session.pooled {
                client
                    .batch_execute(&format!(
                        "SET LOCAL statement_timeout = {}; SET LOCAL lock_timeout = {}",
                        change.timeout.as_millis(),
                        change.lock_wait.as_millis().max(1)
                    ))
                    .await
                    .map_err(PgFailure::Db)?;
            }
            with_deadline(session, change.timeout, client.batch_execute(text)).await
        }
        .await;
        if let Err(e) = ran {
            if atomic {
                let _ = client.batch_execute("ROLLBACK").await;
            }
            if reset {
                let _ = client
                    .batch_execute("RESET statement_timeout; RESET lock_timeout")
                    .await;
            }
            let mut err = match e {
                PgFailure::Db(e) => db_error(&e),
                PgFailure::Deadline(d) => DriverError::query(format!(
                    "timed out after {}s; the query was cancelled",
                    d.as_secs()
                )),
            };
            // The server refused it, so it did not take effect: nothing is in doubt.
            // (A lost connection leaves the mark: then nobody knows.)
            if !err.transient || err.code.is_some() {
                let refused = crate::tracked::refused(&t.names, change, &tracker);
                let _ = history::run(client, &[refused]).await;
            }
            err.statement = Some(StatementRef::new(script, change.sql, s, i, s.range.start));
            return Err(explain_lock_wait(client, err, change.lock_wait).await);
        }
        let row = tracker.completed(i);
        let progress = crate::history::progress(&t.names, &version, &row, false);
        let after: &[&str] = if atomic { &["COMMIT"] } else { &[] };
        if let Err(e) = history::run_with(client, &[], &[progress], after).await {
            if atomic {
                let _ = client.batch_execute("ROLLBACK").await;
            }
            return Err(e);
        }
    }
    if reset {
        client
            .batch_execute("RESET statement_timeout; RESET lock_timeout")
            .await
            .map_err(|e| db_error(&e))?;
    }
    let elapsed = started.elapsed();
    let record =
        crate::tracked::finished(&t.names, change, stmts.len(), elapsed.as_millis() as i64);
    let r = history::run_with(client, &["BEGIN"], &record, &["COMMIT"]).await;
    if r.is_err() {
        let _ = client.batch_execute("ROLLBACK").await;
    }
    r.map(|_| elapsed)
}

/// After a `lock_timeout` (55P03), names the sessions that most likely held the table
/// lock: the oldest open transactions holding locks on user tables.
async fn explain_lock_wait(client: &Client, mut err: DriverError, waited: Duration) -> DriverError {
    if err.code.as_deref() != Some("55P03") {
        return err;
    }
    let rows = client
        .query_typed(
            "SELECT a.pid, coalesce(a.usename::text, ''), coalesce(a.application_name, ''), \
                    coalesce(a.state, ''), extract(epoch FROM now() - a.xact_start)::float8, \
                    left(regexp_replace(coalesce(a.query, ''), '\\s+', ' ', 'g'), 120), \
                    (SELECT string_agg(DISTINCT l.relation::regclass::text, ', ') FROM pg_locks l \
                      WHERE l.pid = a.pid AND l.locktype = 'relation' AND l.granted AND l.relation >= 16384 \
                        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())) \
             FROM pg_stat_activity a \
             WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() AND a.xact_start IS NOT NULL \
               AND EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND l.locktype = 'relation' AND l.granted AND l.relation >= 16384) \
             ORDER BY a.xact_start LIMIT 3",
            &[],
        )
        .await
        .unwrap_or_default();
    let who: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "pid {} (user {}, {}{}, transaction open {:.0}s, holding {}): `{}`",
                r.get::<_, i32>(0),
                r.get::<_, String>(1),
                r.get::<_, String>(3),
                Some(r.get::<_, String>(2))
                    .filter(|a| !a.is_empty())
                    .map(|a| format!(", application {a}"))
                    .unwrap_or_default(),
                r.get::<_, Option<f64>>(4).unwrap_or(0.0),
                r.get::<_, Option<String>>(6).unwrap_or_default(),
                r.get::<_, String>(5),
            )
        })
        .collect();
    let mut text = format!(
        "waited {}ms (lock_wait_ms) for a table lock and gave up, so other queries are not queued behind this migration",
        waited.as_millis()
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
