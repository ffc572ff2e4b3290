//! The migration lock: a session-level advisory lock keyed by schema and history table.
//! It dies with the session, so a killed strata never leaves it held.

use std::time::Duration;

use strata_core::{DriverError, DriverErrorKind};
use tokio_postgres::Client;

use super::exec::db_error;

/// Takes the lock, waiting up to `timeout`; the error names the holding session.
pub(super) async fn acquire(
    client: &Client,
    key: i64,
    timeout: Duration,
) -> Result<(), DriverError> {
    let got: bool = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
        .await
        .map_err(|e| db_error(&e))?
        .get(0);
    if got {
        return Ok(());
    }
    if let Some(h) = holder(client, key).await {
        tracing::info!("waiting for the migration lock, held by {h}");
    }
    // Block in the server (woken the moment the holder releases), bounded by lock_timeout.
    let ms = timeout.as_millis().max(1);
    let wait =
        format!("SET lock_timeout = {ms}; SELECT pg_advisory_lock({key}); RESET lock_timeout");
    match client.batch_execute(&wait).await {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = client.batch_execute("RESET lock_timeout").await;
            if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) {
                let who = holder(client, key)
                    .await
                    .unwrap_or_else(|| "another session".into());
                Err(DriverError::new(
                    DriverErrorKind::LockTimeout,
                    format!(
                        "the migration lock is held by {who}; gave up after {}s",
                        timeout.as_secs_f64()
                    ),
                ))
            } else {
                Err(db_error(&e))
            }
        }
    }
}

pub(super) async fn release(client: &Client, key: i64) -> Result<(), DriverError> {
    client
        .query_one("SELECT pg_advisory_unlock($1)", &[&key])
        .await
        .map_err(|e| db_error(&e))?;
    Ok(())
}

/// "pid 123 (strata, user postgres, from 127.0.0.1, for 4s)".
async fn holder(client: &Client, key: i64) -> Option<String> {
    let (hi, lo) = ((key >> 32) as u32 as i64, (key & 0xffff_ffff) as u32 as i64);
    let row = client
        .query_opt(
            "SELECT a.pid, coalesce(a.application_name, ''), coalesce(a.usename::text, ''), coalesce(host(a.client_addr), 'local'), \
             extract(epoch FROM now() - a.xact_start)::float8 \
             FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = $1 AND l.objid::bigint = $2 LIMIT 1",
            &[&hi, &lo],
        )
        .await
        .ok()??;
    let age: Option<f64> = row.get(4);
    Some(format!(
        "pid {} ({}, user {}, from {}{})",
        row.get::<_, i32>(0),
        row.get::<_, String>(1),
        row.get::<_, String>(2),
        row.get::<_, String>(3),
        age.map(|a| format!(", transaction open {a:.0}s"))
            .unwrap_or_default()
    ))
}
