//! strata's tables in DuckDB. Timestamps are written by strata as RFC 3339 text, so no
//! time-zone extension is needed to read them back.

use chrono::{DateTime, Utc};
use duckdb::{params, Connection};
use strata_core::{AppliedMigration, AuditEntry, AuditRecord, Checksum, DriverError};

use super::duck_error;
use crate::layout::{Bookkeeping, Found};

/// strata's tables on this connection ([`crate::layout`]).
pub(super) type Tables = crate::layout::Names;

fn now() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn parse_ts(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

/// What the database holds of strata's tables, remembered in `b`.
pub(super) fn probe(conn: &Connection, b: &mut Bookkeeping) -> Result<Found, DriverError> {
    let mut stmt = conn.prepare(&b.probe_sql()).map_err(|e| duck_error(&e))?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .map_err(|e| duck_error(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| duck_error(&e))?;
    b.classify(&rows)
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
    let done = sql
        .iter()
        .try_for_each(|s| conn.execute_batch(s))
        .map_err(|e| duck_error(&e));
    if done.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
        return done;
    }
    b.created();
    if let Some(entry) = b.upgrade_audit(found, whoami::username()) {
        audit(conn, &b.current, &entry)?;
    }
    conn.execute_batch("COMMIT").map_err(|e| duck_error(&e))
}

pub(super) fn applied(conn: &Connection, t: &Tables) -> Result<Vec<AppliedMigration>, DriverError> {
    let mut stmt = conn
        .prepare(&format!(
            "SELECT version, name, description, applied_at, checksum, execution_time_ms, rollback_sql, success, statements_done, applied_by, {} FROM {} ORDER BY id",
            t.progress_select(),
            t.history.sql
        ))
        .map_err(|e| duck_error(&e))?;
    let rows = stmt
        .query_map([], |r| {
            Ok(AppliedMigration {
                version: r.get(0)?,
                name: r.get(1)?,
                description: r.get(2)?,
                applied_at: parse_ts(&r.get::<_, String>(3)?),
                checksum: Checksum::from_hex(r.get::<_, String>(4)?),
                execution_time_ms: r.get(5)?,
                rollback_sql: r.get(6)?,
                success: r.get(7)?,
                statements_done: r.get::<_, i32>(8)? as i64,
                applied_by: r.get(9)?,
                progress: crate::tracked::progress(
                    r.get(10)?,
                    r.get::<_, Option<i32>>(11)?.map(i64::from),
                    r.get(12)?,
                ),
            })
        })
        .map_err(|e| duck_error(&e))?;
    rows.collect::<Result<_, _>>().map_err(|e| duck_error(&e))
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
            "UPDATE {} SET applied_at = ?, name = ?, description = ?, checksum = ?, execution_time_ms = ?, rollback_sql = ?, \
             success = ?, statements_done = ?, applied_by = ? WHERE version = ?",
            t.history.sql
        )
    } else {
        format!(
            "INSERT INTO {} (applied_at, name, description, checksum, execution_time_ms, rollback_sql, success, statements_done, applied_by, version) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            t.history.sql
        )
    };
    let n = conn
        .execute(
            &sql,
            params![
                now(),
                row.name,
                row.description,
                row.checksum.to_string(),
                ms,
                row.rollback_sql,
                row.success,
                row.statements_done as i32,
                row.applied_by,
                row.version,
            ],
        )
        .map_err(|e| {
            if e.to_string().to_ascii_lowercase().contains("duplicate key") {
                crate::layout::already_recorded(&row.version)
            } else {
                duck_error(&e)
            }
        })?;
    if n != 1 {
        return Err(crate::layout::row_vanished(&row.version));
    }
    Ok(())
}

pub(super) fn remove(conn: &Connection, t: &Tables, version: &str) -> Result<(), DriverError> {
    conn.execute(
        &format!("DELETE FROM {} WHERE version = ?", t.history.sql),
        params![version],
    )
    .map(|_| ())
    .map_err(|e| duck_error(&e))
}

pub(super) fn rechecksum(
    conn: &Connection,
    t: &Tables,
    version: &str,
    checksum: &str,
    rollback_sql: Option<&str>,
) -> Result<(), DriverError> {
    conn.execute(
        &format!(
            "UPDATE {} SET checksum = ?, rollback_sql = ? WHERE version = ?",
            t.history.sql
        ),
        params![checksum, rollback_sql, version],
    )
    .map(|_| ())
    .map_err(|e| duck_error(&e))
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
    conn.execute(
        &t.progress_sql(start_down),
        params![
            row.done as i32,
            row.hashes,
            row.in_flight.map(|n| n as i32),
            version
        ],
    )
    .map(|_| ())
    .map_err(|e| duck_error(&e))
}

pub(super) fn set_metadata(
    conn: &Connection,
    t: &Tables,
    pairs: &[(&'static str, String)],
) -> Result<(), DriverError> {
    for (key, value) in pairs {
        conn.execute(
            &format!(
                "INSERT INTO {} (key, value, created_at, updated_at) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                t.metadata.sql
            ),
            params![key, value, now(), now()],
        )
        .map_err(|e| duck_error(&e))?;
    }
    Ok(())
}

pub(super) fn audit(conn: &Connection, t: &Tables, e: &AuditEntry) -> Result<(), DriverError> {
    let json = |v: &Option<serde_json::Value>| v.as_ref().map(|v| v.to_string());
    conn.execute(
        &format!(
            "INSERT INTO {} (table_name, record_id, operation, old_values, new_values, changed_by, changed_at, ip_address, user_agent) \
             VALUES ({}, ?, ?, ?, ?, ?, ?, ?, ?)",
            t.audit.sql,
            t.dialect.literal(&t.history.name)
        ),
        params![
            e.record_id,
            e.operation,
            json(&e.old_values),
            json(&e.new_values),
            e.changed_by,
            now(),
            e.ip_address,
            e.user_agent
        ],
    )
    .map(|_| ())
    .map_err(|e| duck_error(&e))
}

pub(super) fn audit_log(
    conn: &Connection,
    t: &Tables,
    limit: usize,
) -> Result<Vec<AuditRecord>, DriverError> {
    let mut stmt = conn
        .prepare(&format!(
            "SELECT id, operation, coalesce(record_id, ''), old_values, new_values, changed_by, changed_at, ip_address, user_agent \
             FROM {} ORDER BY id DESC LIMIT ?",
            t.audit.sql
        ))
        .map_err(|e| duck_error(&e))?;
    let json = |s: Option<String>| s.and_then(|s| serde_json::from_str(&s).ok());
    let rows = stmt
        .query_map(params![limit as i64], |r| {
            Ok(AuditRecord {
                id: r.get(0)?,
                operation: r.get(1)?,
                record_id: r.get(2)?,
                old_values: json(r.get(3)?),
                new_values: json(r.get(4)?),
                changed_by: r.get(5)?,
                changed_at: parse_ts(&r.get::<_, String>(6)?),
                ip_address: r.get(7)?,
                user_agent: r.get(8)?,
            })
        })
        .map_err(|e| duck_error(&e))?;
    rows.collect::<Result<_, _>>().map_err(|e| duck_error(&e))
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
        .map_err(|e| duck_error(&e))?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(|e| duck_error(&e))?;
    rows.collect::<Result<_, _>>().map_err(|e| duck_error(&e))
}
