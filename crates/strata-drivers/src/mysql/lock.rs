//! The migration lock, two ways.
//!
//! `session` (default): `GET_LOCK`, a named lock owned by the connection. The server
//! releases it when the connection ends, so a killed strata never leaves it held.
//!
//! `lease`: for proxies that multiplex connections (ProxySQL, Vitess), where a
//! connection-owned lock means nothing. A row in `<history>_lock` names the holder and
//! an expiry; it is taken with one atomic `INSERT … ON DUPLICATE KEY UPDATE` that only
//! changes the row when it is expired or ours, and renewed by a heartbeat on a second
//! connection.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, Row};
use strata_core::{DriverError, DriverErrorKind};
use tokio::task::JoinHandle;

use super::exec::db_error;
use super::history::{take, Tables};

/// Takes the named lock, waiting up to `timeout`; the error names the holding connection.
pub(super) async fn acquire(
    conn: &mut Conn,
    name: &str,
    timeout: Duration,
) -> Result<(), DriverError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut logged = false;
    loop {
        // Wait in the server a second at a time (woken the moment the holder releases),
        // so the holder can be named while waiting.
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let wait = left.min(Duration::from_secs(1)).as_secs_f64();
        let got: Option<Option<i64>> = conn
            .exec_first("SELECT GET_LOCK(?, ?)", (name, wait))
            .await
            .map_err(|e| db_error(&e))?;
        if got.flatten() == Some(1) {
            return Ok(());
        }
        let who = holder(conn, name)
            .await
            .unwrap_or_else(|| "another session".into());
        if tokio::time::Instant::now() >= deadline {
            return Err(timed_out(&who, timeout));
        }
        if !logged {
            tracing::info!("waiting for the migration lock, held by {who}");
            logged = true;
        }
    }
}

fn timed_out(who: &str, timeout: Duration) -> DriverError {
    DriverError::new(
        DriverErrorKind::LockTimeout,
        format!(
            "the migration lock is held by {who}; gave up after {}s",
            timeout.as_secs_f64()
        ),
    )
}

pub(super) async fn release(conn: &mut Conn, name: &str) -> Result<(), DriverError> {
    conn.exec_drop("DO RELEASE_LOCK(?)", (name,))
        .await
        .map_err(|e| db_error(&e))
}

/// "connection 42 (user root from 127.0.0.1:50012, for 4s)".
pub(super) async fn holder(conn: &mut Conn, name: &str) -> Option<String> {
    let mut row: Row = conn
        .exec_first(
            "SELECT p.ID, COALESCE(p.USER, ''), COALESCE(p.HOST, ''), COALESCE(p.TIME, 0) \
             FROM information_schema.PROCESSLIST p WHERE p.ID = IS_USED_LOCK(?)",
            (name,),
        )
        .await
        .ok()??;
    Some(format!(
        "connection {} (user {} from {}, in its current state for {}s)",
        take::<u64>(&mut row, 0)?,
        take::<String>(&mut row, 1).unwrap_or_default(),
        take::<String>(&mut row, 2).unwrap_or_default(),
        take::<i64>(&mut row, 3).unwrap_or(0)
    ))
}

/// A lease this process holds, and the task renewing it (stopped when dropped).
pub(super) struct Lease {
    pub holder: String,
    heartbeat: JoinHandle<()>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

async fn ensure_lease_table(conn: &mut Conn, t: &Tables) -> Result<(), DriverError> {
    conn.query_drop(format!(
        "CREATE TABLE IF NOT EXISTS {} (name VARCHAR(64) PRIMARY KEY, holder VARCHAR(255) NOT NULL, \
         acquired_at TIMESTAMP(6) NOT NULL, heartbeat_at TIMESTAMP(6) NOT NULL, expires_at TIMESTAMP(6) NOT NULL) \
         ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
        t.lease.sql
    ))
    .await
    .map_err(|e| db_error(&e))
}

/// Takes the lease, polling until `timeout`; then starts its heartbeat.
pub(super) async fn acquire_lease(
    conn: &mut Conn,
    opts: &Opts,
    t: &Tables,
    holder: &str,
    lease: Duration,
    timeout: Duration,
) -> Result<Lease, DriverError> {
    ensure_lease_table(conn, t).await?;
    let holder = holder.to_string();
    let micros = lease.as_micros() as i64;
    // Assignments apply left to right: `holder` changes only when the row is expired or
    // ours, and the later columns follow whoever holds it after that.
    let take = format!(
        "INSERT INTO {l} (name, holder, acquired_at, heartbeat_at, expires_at) \
         VALUES ('migrate', ?, NOW(6), NOW(6), NOW(6) + INTERVAL ? MICROSECOND) \
         ON DUPLICATE KEY UPDATE \
           holder = IF(expires_at < NOW(6) OR holder = VALUES(holder), VALUES(holder), holder), \
           acquired_at = IF(holder = VALUES(holder), NOW(6), acquired_at), \
           heartbeat_at = IF(holder = VALUES(holder), NOW(6), heartbeat_at), \
           expires_at = IF(holder = VALUES(holder), VALUES(expires_at), expires_at)",
        l = t.lease.sql
    );
    let check = format!("SELECT holder FROM {} WHERE name = 'migrate'", t.lease.sql);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut logged = false;
    loop {
        match conn.exec_drop(&take, (&holder, micros)).await {
            Ok(()) => {}
            // On Galera two nodes' upserts of the row conflict in certification: the
            // loser gets a deadlock error and simply tries again, like any waiter.
            Err(mysql_async::Error::Server(s)) if matches!(s.code, 1213 | 1205) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Err(e) => return Err(db_error(&e)),
        }
        let now_held: Option<String> = conn.query_first(&check).await.map_err(|e| db_error(&e))?;
        if now_held.as_deref() == Some(holder.as_str()) {
            break;
        }
        let who = lease_owner(conn, t)
            .await
            .unwrap_or_else(|| "another process".into());
        if tokio::time::Instant::now() >= deadline {
            return Err(timed_out(&who, timeout));
        }
        if !logged {
            tracing::info!("waiting for the migration lease, held by {who}");
            logged = true;
        }
        let poll = (lease / 10).clamp(Duration::from_millis(100), Duration::from_secs(1));
        tokio::time::sleep(poll.min(deadline - tokio::time::Instant::now())).await;
    }
    let renew = format!(
        "UPDATE {} SET heartbeat_at = NOW(6), expires_at = NOW(6) + INTERVAL ? MICROSECOND \
         WHERE name = 'migrate' AND holder = ?",
        t.lease.sql
    );
    let heartbeat = tokio::spawn(heartbeat(opts.clone(), renew, holder.clone(), lease));
    Ok(Lease { holder, heartbeat })
}

/// Renews the lease every third of its length on a connection of its own.
async fn heartbeat(opts: Opts, renew: String, holder: String, lease: Duration) {
    let micros = lease.as_micros() as i64;
    let mut conn: Option<Conn> = None;
    loop {
        tokio::time::sleep(lease / 3).await;
        if conn.is_none() {
            match Conn::new(opts.clone()).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    tracing::warn!("lease heartbeat cannot connect: {e}");
                    continue;
                }
            }
        }
        let c = conn.as_mut().expect("connected above");
        match c.exec_drop(&renew, (micros, &holder)).await {
            // NOW(6) moves between renewals, so no changed row means no row of ours.
            Ok(()) if c.affected_rows() == 0 => {
                tracing::error!(
                    "the migration lease was lost (expired and taken over); another run may be migrating"
                );
                return;
            }
            Ok(()) => {}
            Err(e) => {
                tracing::warn!("lease heartbeat failed: {e}");
                conn = None;
            }
        }
    }
}

pub(super) async fn release_lease(
    conn: &mut Conn,
    t: &Tables,
    lease: Lease,
) -> Result<(), DriverError> {
    let holder = lease.holder.clone();
    drop(lease);
    conn.exec_drop(
        format!(
            "DELETE FROM {} WHERE name = 'migrate' AND holder = ?",
            t.lease.sql
        ),
        (&holder,),
    )
    .await
    .map_err(|e| db_error(&e))
}

/// "alice@host pid 12 #… (lease expires in 20s)", when someone holds an unexpired lease.
pub(super) async fn lease_owner(conn: &mut Conn, t: &Tables) -> Option<String> {
    let mut row: Row = conn
        .query_first(format!(
            "SELECT holder, TIMESTAMPDIFF(MICROSECOND, NOW(6), expires_at) / 1e6 FROM {} \
             WHERE name = 'migrate' AND expires_at > NOW(6)",
            t.lease.sql
        ))
        .await
        .ok()??;
    Some(format!(
        "{} (lease expires in {:.0}s)",
        take::<String>(&mut row, 0)?,
        take::<f64>(&mut row, 1).unwrap_or(0.0)
    ))
}
