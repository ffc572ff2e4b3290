//! strata's tables in SQLite: the history table, `application_metadata`, `audit_log`.
//! Timestamps are RFC 3339 text in UTC; JSON columns are text.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection};
use strata_core::{AppliedMigration, AuditEntry, AuditRecord, Checksum, DriverError};

use super::sqlite_error;
use crate::layout::{Bookkeeping, Found};

const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

/// strata's tables on this connection ([`crate::layout`]).
pub(super) type Tables = crate::layout::Names;

/// What the database holds of strata's tables, remembered in `b`.
pub(super) fn probe(conn: &Connection, b: &mut Bookkeeping) -> Result<Found, DriverError> {
    let mut stmt = conn.prepare(&b.probe_sql()).map_err(|e| sqlite_error(&e))?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                String::new(),
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
            ))
        })
        .map_err(|e| sqlite_error(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| sqlite_error(&e))?;
    b.classify(&rows)
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
    let done = sql
        .iter()
        .try_for_each(|s| conn.execute_batch(s))
        .map_err(|e| sqlite_error(&e));
    if done.is_err() {
        let _ = conn.execute_batch("ROLLBACK TO strata_layout; RELEASE strata_layout");
        return done;
    }
    b.created();
    if let Some(entry) = b.upgrade_audit(found, whoami::username()) {
        audit(conn, &b.current, &entry)?;
    }
    conn.execute_batch("RELEASE strata_layout")
        .map_err(|e| sqlite_error(&e))
}

fn parse_time(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .or_else(|_| {
            chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").map(|n| n.and_utc())
        })
        .unwrap_or_default()
}

pub(super) fn applied(conn: &Connection, t: &Tables) -> Result<Vec<AppliedMigration>, DriverError> {
    let sql = format!(
        "SELECT version, name, description, applied_at, checksum, execution_time_ms, rollback_sql, success, statements_done, applied_by, {} FROM {} ORDER BY id",
        t.progress_select(),
        t.history.sql
    );
    let mut stmt = conn.prepare(&sql).map_err(|e| sqlite_error(&e))?;
    let rows = stmt
        .query_map([], |r| {
            Ok(AppliedMigration {
                version: r.get(0)?,
                name: r.get(1)?,
                description: r.get(2)?,
                applied_at: parse_time(&r.get::<_, String>(3)?),
                checksum: Checksum::from_hex(r.get::<_, String>(4)?),
                execution_time_ms: r.get(5)?,
                rollback_sql: r.get(6)?,
                success: r.get(7)?,
                statements_done: r.get(8)?,
                applied_by: r.get(9)?,
                progress: crate::tracked::progress(r.get(10)?, r.get(11)?, r.get(12)?),
            })
        })
        .map_err(|e| sqlite_error(&e))?;
    rows.collect::<Result<Vec<_>, _>>()
        .map_err(|e| sqlite_error(&e))
}

/// Writes an applied migration's row: a plain insert, so a version another run
/// recorded first fails on the unique key, or with `replaces`, an update of exactly
/// that version's row.
pub(super) fn write(
    conn: &Connection,
    t: &Tables,
    row: &AppliedMigration,
    ms: i64,
    replaces: bool,
) -> Result<(), DriverError> {
    let sql = if replaces {
        format!(
            "UPDATE {} SET name = ?2, description = ?3, checksum = ?4, execution_time_ms = ?5, rollback_sql = ?6, \
             success = ?7, statements_done = ?8, applied_by = ?9, applied_at = {NOW} WHERE version = ?1",
            t.history.sql
        )
    } else {
        format!(
            "INSERT INTO {} (version, name, description, checksum, execution_time_ms, rollback_sql, success, statements_done, applied_by) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            t.history.sql
        )
    };
    let n = conn
        .prepare_cached(&sql)
        .and_then(|mut s| {
            s.execute(params![
                row.version,
                row.name,
                row.description,
                row.checksum.as_str(),
                ms,
                row.rollback_sql,
                row.success,
                row.statements_done,
                row.applied_by
            ])
        })
        .map_err(|e| match &e {
            rusqlite::Error::SqliteFailure(f, _)
                if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
            {
                crate::layout::already_recorded(&row.version)
            }
            _ => sqlite_error(&e),
        })?;
    if n != 1 {
        return Err(crate::layout::row_vanished(&row.version));
    }
    Ok(())
}

pub(super) fn remove(conn: &Connection, t: &Tables, version: &str) -> Result<(), DriverError> {
    conn.execute(
        &format!("DELETE FROM {} WHERE version = ?1", t.history.sql),
        [version],
    )
    .map_err(|e| sqlite_error(&e))?;
    Ok(())
}

/// `repair`: a new checksum and rollback script, keeping when and by whom.
pub(super) fn rechecksum(
    conn: &Connection,
    t: &Tables,
    version: &str,
    checksum: &str,
    rollback_sql: Option<&str>,
) -> Result<(), DriverError> {
    conn.execute(
        &format!(
            "UPDATE {} SET checksum = ?2, rollback_sql = ?3 WHERE version = ?1",
            t.history.sql
        ),
        rusqlite::params![version, checksum, rollback_sql],
    )
    .map_err(|e| sqlite_error(&e))?;
    Ok(())
}

/// A tracked run's progress (see [`crate::tracked`]); `start_down` marks the row as a
/// rollback in progress.
pub(super) fn set_progress(
    conn: &Connection,
    t: &Tables,
    version: &str,
    row: &crate::tracked::Row,
    start_down: bool,
) -> Result<(), DriverError> {
    conn.prepare_cached(&t.progress_sql(start_down))
        .and_then(|mut s| s.execute(params![row.done, row.hashes, row.in_flight, version]))
        .map_err(|e| sqlite_error(&e))?;
    Ok(())
}

pub(super) fn set_metadata(
    conn: &Connection,
    t: &Tables,
    pairs: &[(&'static str, String)],
) -> Result<(), DriverError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "INSERT INTO {} (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = {NOW}",
            t.metadata.sql
        ))
        .map_err(|e| sqlite_error(&e))?;
    for (k, v) in pairs {
        stmt.execute(params![k, v]).map_err(|e| sqlite_error(&e))?;
    }
    Ok(())
}

pub(super) fn audit(conn: &Connection, t: &Tables, e: &AuditEntry) -> Result<(), DriverError> {
    conn.prepare_cached(&format!(
        "INSERT INTO {} (table_name, record_id, operation, old_values, new_values, changed_by, ip_address, user_agent) VALUES ({}, ?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        t.audit.sql,
        t.dialect.literal(&t.history.name)
    ))
    .and_then(|mut s| {
        s.execute(params![
            e.record_id,
            e.operation,
            e.old_values.as_ref().map(|v| v.to_string()),
            e.new_values.as_ref().map(|v| v.to_string()),
            e.changed_by,
            e.ip_address,
            e.user_agent
        ])
    })
    .map_err(|e| sqlite_error(&e))?;
    Ok(())
}

pub(super) fn audit_log(
    conn: &Connection,
    t: &Tables,
    limit: usize,
) -> Result<Vec<AuditRecord>, DriverError> {
    let mut stmt = conn
        .prepare(&format!("SELECT id, operation, coalesce(record_id, ''), old_values, new_values, changed_by, changed_at, ip_address, user_agent FROM {} ORDER BY id DESC LIMIT ?1", t.audit.sql))
        .map_err(|e| sqlite_error(&e))?;
    let json = |s: Option<String>| s.and_then(|s| serde_json::from_str(&s).ok());
    let rows = stmt
        .query_map([limit as i64], |r| {
            Ok(AuditRecord {
                id: r.get(0)?,
                operation: r.get(1)?,
                record_id: r.get(2)?,
                old_values: json(r.get(3)?),
                new_values: json(r.get(4)?),
                changed_by: r.get(5)?,
                changed_at: parse_time(&r.get::<_, String>(6)?),
                ip_address: r.get(7)?,
                user_agent: r.get(8)?,
            })
        })
        .map_err(|e| sqlite_error(&e))?;
    rows.collect::<Result<Vec<_>, _>>()
        .map_err(|e| sqlite_error(&e))
}

pub(super) fn metadata(
    conn: &Connection,
    t: &Tables,
) -> Result<Vec<(String, String)>, DriverError> {
    let mut stmt = conn
        .prepare(&format!(
            "SELECT key, coalesce(value, '') FROM {} ORDER BY key",
            t.metadata.sql
        ))
        .map_err(|e| sqlite_error(&e))?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(|e| sqlite_error(&e))?;
    rows.collect::<Result<Vec<_>, _>>()
        .map_err(|e| sqlite_error(&e))
}
