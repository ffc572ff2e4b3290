//! The migration lock, two ways.
//!
//! `session` (default): a session-level advisory lock keyed by schema and history table.
//! It dies with the session, so a killed strata never leaves it held.
//!
//! `lease`: for PgBouncer in transaction mode and CockroachDB, where a session lock is
//! meaningless. A row in `<history>_lock` names the holder and an expiry; it is taken
//! with one atomic upsert that only succeeds when the row is absent, expired or ours,
//! and renewed by a heartbeat on a second connection (a long migration keeps the main
//! one busy). A killed holder stops renewing, and the next run takes over at expiry.

use std::time::Duration;

use strata_core::{DriverError, DriverErrorKind};
use tokio::task::JoinHandle;
use tokio_postgres::types::Type;
use tokio_postgres::Client;

use super::exec::db_error;
use super::history::Tables;

/// Takes the advisory lock, waiting up to `timeout`; the error names the holding session.
pub(super) async fn acquire(
    client: &Client,
    key: i64,
    timeout: Duration,
) -> Result<(), DriverError> {
    if try_lock(client, key).await? {
        return Ok(());
    }
    if let Some(h) = holder(client, key).await {
        tracing::info!("waiting for the migration lock, held by {h}");
    }
    // Polled from here, never waited for inside the server: a session blocked in
    // `pg_advisory_lock` sits in an open transaction, and the holder's `CREATE INDEX
    // CONCURRENTLY` waits for every open transaction to end, so they would deadlock.
    let deadline = tokio::time::Instant::now() + timeout;
    let mut pause = Duration::from_millis(20);
    loop {
        let now = tokio::time::Instant::now();
        if now >= deadline {
            let who = holder(client, key)
                .await
                .unwrap_or_else(|| "another session".into());
            return Err(timed_out(&who, timeout));
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(Duration::from_millis(500));
        if try_lock(client, key).await? {
            return Ok(());
        }
    }
}

/// One attempt, as a simple query (no prepared statement for a pooler to lose).
async fn try_lock(client: &Client, key: i64) -> Result<bool, DriverError> {
    let rows = client
        .simple_query(&format!("SELECT pg_try_advisory_lock({key})"))
        .await
        .map_err(|e| db_error(&e))?;
    Ok(rows
        .iter()
        .any(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(r) if r.get(0) == Some("t"))))
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

pub(super) async fn release(client: &Client, key: i64) -> Result<(), DriverError> {
    client
        .simple_query(&format!("SELECT pg_advisory_unlock({key})"))
        .await
        .map_err(|e| db_error(&e))?;
    Ok(())
}

/// "pid 123 (strata, user postgres, from 127.0.0.1, for 4s)".
pub(super) async fn holder(client: &Client, key: i64) -> Option<String> {
    let (hi, lo) = ((key >> 32) as u32 as i64, (key & 0xffff_ffff) as u32 as i64);
    let row = client
        .query_typed_opt(
            "SELECT a.pid, coalesce(a.application_name, ''), coalesce(a.usename::text, ''), coalesce(host(a.client_addr), 'local'), \
             extract(epoch FROM now() - a.xact_start)::float8 \
             FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = $1 AND l.objid::bigint = $2 \
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) LIMIT 1",
            &[(&hi, Type::INT8), (&lo, Type::INT8)],
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
        age.map(|a| format!(", transaction open {:.0}s", a.max(0.0)))
            .unwrap_or_default()
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

async fn ensure_lease_table(client: &Client, t: &Tables) -> Result<(), DriverError> {
    let ddl = format!(
        "SET client_min_messages = warning; CREATE SCHEMA IF NOT EXISTS {}; \
         CREATE TABLE IF NOT EXISTS {} (name TEXT PRIMARY KEY, holder TEXT NOT NULL, \
         acquired_at TIMESTAMPTZ NOT NULL, heartbeat_at TIMESTAMPTZ NOT NULL, expires_at TIMESTAMPTZ NOT NULL); \
         RESET client_min_messages",
        crate::layout::Dialect::Postgres.quote(t.names.schema.as_deref().unwrap_or("public")),
        t.names.lease.sql
    );
    // Two processes creating it at once: one loses the catalog race; the table exists.
    for _ in 0..3 {
        match client.batch_execute(&ddl).await {
            Ok(()) => return Ok(()),
            Err(e)
                if matches!(
                    e.code().map(|c| c.code()),
                    Some("23505" | "42P07" | "42P06")
                ) =>
            {
                let _ = client.batch_execute("RESET client_min_messages").await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(db_error(&e)),
        }
    }
    Ok(())
}

/// Takes the lease, polling until `timeout`; then starts its heartbeat.
pub(super) async fn acquire_lease(
    client: &Client,
    target: &super::target::Target,
    t: &Tables,
    holder: &str,
    lease: Duration,
    timeout: Duration,
) -> Result<Lease, DriverError> {
    ensure_lease_table(client, t).await?;
    let holder = holder.to_string();
    let ms = lease.as_millis() as f64;
    let take = format!(
        "INSERT INTO {l} AS l (name, holder, acquired_at, heartbeat_at, expires_at) \
         VALUES ('migrate', $1, now(), now(), now() + $2::float8 * interval '1 millisecond') \
         ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, acquired_at = now(), \
           heartbeat_at = now(), expires_at = EXCLUDED.expires_at \
         WHERE l.expires_at < now() OR l.holder = EXCLUDED.holder \
         RETURNING holder",
        l = t.names.lease.sql
    );
    let deadline = tokio::time::Instant::now() + timeout;
    let mut logged = false;
    loop {
        let got = client
            .query_typed_opt(&take, &[(&holder, Type::TEXT), (&ms, Type::FLOAT8)])
            .await
            .map_err(|e| db_error(&e))?;
        if got.is_some() {
            break;
        }
        let who = lease_owner(client, t)
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
    let heartbeat = tokio::spawn(heartbeat(
        target.clone(),
        format!(
            "UPDATE {} SET heartbeat_at = now(), expires_at = now() + $2::float8 * interval '1 millisecond' \
             WHERE name = 'migrate' AND holder = $1",
            t.names.lease.sql
        ),
        holder.clone(),
        lease,
    ));
    Ok(Lease { holder, heartbeat })
}

/// Renews the lease every third of its length on a connection of its own.
async fn heartbeat(target: super::target::Target, renew: String, holder: String, lease: Duration) {
    let ms = lease.as_millis() as f64;
    let mut client = None;
    loop {
        tokio::time::sleep(lease / 3).await;
        if client.is_none() {
            match target.open().await {
                Ok(c) => client = Some(c),
                Err(e) => {
                    tracing::warn!("lease heartbeat cannot connect: {}", e.message);
                    continue;
                }
            }
        }
        let c = client.as_ref().expect("connected above");
        match c
            .execute_typed(&renew, &[(&holder, Type::TEXT), (&ms, Type::FLOAT8)])
            .await
        {
            Ok(1) => {}
            Ok(_) => {
                tracing::error!(
                    "the migration lease was lost (expired and taken over); another run may be migrating"
                );
                return;
            }
            Err(e) => {
                tracing::warn!("lease heartbeat failed: {}", super::error_text(&e));
                client = None;
            }
        }
    }
}

pub(super) async fn release_lease(
    client: &Client,
    t: &Tables,
    lease: Lease,
) -> Result<(), DriverError> {
    // Stop the heartbeat first: renewing a deleted row would report a lost lease.
    let holder = lease.holder.clone();
    drop(lease);
    client
        .execute_typed(
            &format!(
                "DELETE FROM {} WHERE name = 'migrate' AND holder = $1",
                t.names.lease.sql
            ),
            &[(&holder, Type::TEXT)],
        )
        .await
        .map_err(|e| db_error(&e))?;
    Ok(())
}

/// "alice@host pid 12 #… (lease expires in 20s)", when someone holds an unexpired lease.
pub(super) async fn lease_owner(client: &Client, t: &Tables) -> Option<String> {
    let row = client
        .query_typed_opt(
            &format!(
                "SELECT holder, extract(epoch FROM expires_at - now())::float8 FROM {} \
                 WHERE name = 'migrate' AND expires_at > now()",
                t.names.lease.sql
            ),
            &[],
        )
        .await
        .ok()??;
    Some(format!(
        "{} (lease expires in {:.0}s)",
        row.get::<_, String>(0),
        row.get::<_, f64>(1)
    ))
}
