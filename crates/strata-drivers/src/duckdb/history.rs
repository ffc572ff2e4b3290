//! strata's tables in DuckDB. Timestamps are written by strata as RFC 3339 text, so no
//! time-zone extension is needed to read them back.

use chrono::{DateTime, Utc};
use duckdb::{params, Connection};
use strata_core::{AppliedMigration, AuditEntry, AuditRecord, Checksum, DriverError};

use super::duck_error;

#[derive(Clone)]
pub(super) struct Tables {
    pub plain: String,
    pub history: String,
    pub metadata: String,
    pub audit: String,
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

impl Tables {
    pub fn new(table: &str) -> Self {
        Tables {
            plain: table.to_string(),
            history: quote(table),
            metadata: quote("application_metadata"),
            audit: quote("audit_log"),
        }
    }
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn parse_ts(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

pub(super) fn ensure(conn: &Connection, t: &Tables) -> Result<(), DriverError> {
    conn.execute_batch(&format!(
        "CREATE SEQUENCE IF NOT EXISTS strata_history_id;
         CREATE SEQUENCE IF NOT EXISTS strata_audit_id;
         CREATE SEQUENCE IF NOT EXISTS strata_metadata_id;
         CREATE TABLE IF NOT EXISTS {h} (
            id BIGINT PRIMARY KEY DEFAULT nextval('strata_history_id'),
            version VARCHAR NOT NULL UNIQUE,
            name VARCHAR NOT NULL,
            description VARCHAR,
            applied_at VARCHAR NOT NULL,
            checksum VARCHAR NOT NULL,
            execution_time_ms BIGINT NOT NULL DEFAULT 0,
            rollback_sql VARCHAR,
            success BOOLEAN NOT NULL DEFAULT TRUE,
            statements_done INTEGER NOT NULL DEFAULT 0,
            applied_by VARCHAR);
         CREATE TABLE IF NOT EXISTS {m} (
            id BIGINT PRIMARY KEY DEFAULT nextval('strata_metadata_id'),
            key VARCHAR NOT NULL UNIQUE,
            value VARCHAR,
            description VARCHAR,
            created_at VARCHAR NOT NULL,
            updated_at VARCHAR NOT NULL);
         CREATE TABLE IF NOT EXISTS {a} (
            id BIGINT PRIMARY KEY DEFAULT nextval('strata_audit_id'),
            table_name VARCHAR NOT NULL,
            record_id VARCHAR,
            operation VARCHAR NOT NULL,
            old_values VARCHAR,
            new_values VARCHAR,
            changed_by VARCHAR,
            changed_at VARCHAR NOT NULL,
            ip_address VARCHAR,
            user_agent VARCHAR);",
        h = t.history,
        m = t.metadata,
        a = t.audit
    ))
    .map_err(|e| duck_error(&e))
}

pub(super) fn exists(conn: &Connection, t: &Tables) -> Result<bool, DriverError> {
    let n: i64 = conn
        .query_row(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ?",
            params![t.plain],
            |r| r.get(0),
        )
        .map_err(|e| duck_error(&e))?;
    Ok(n > 0)
}

pub(super) fn applied(conn: &Connection, t: &Tables) -> Result<Vec<AppliedMigration>, DriverError> {
    if !exists(conn, t)? {
        return Ok(vec![]);
    }
    let mut stmt = conn
        .prepare(&format!(
            "SELECT version, name, description, applied_at, checksum, execution_time_ms, rollback_sql, success, statements_done, applied_by FROM {} ORDER BY id",
            t.history
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
            })
        })
        .map_err(|e| duck_error(&e))?;
    rows.collect::<Result<_, _>>().map_err(|e| duck_error(&e))
}

pub(super) fn upsert(
    conn: &Connection,
    t: &Tables,
    row: &AppliedMigration,
    ms: i64,
) -> Result<(), DriverError> {
    conn.execute(
        &format!(
            "INSERT INTO {} (version, name, description, applied_at, checksum, execution_time_ms, rollback_sql, success, statements_done, applied_by) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (version) DO UPDATE SET name = excluded.name, description = excluded.description, applied_at = excluded.applied_at, \
             checksum = excluded.checksum, execution_time_ms = excluded.execution_time_ms, rollback_sql = excluded.rollback_sql, \
             success = excluded.success, statements_done = excluded.statements_done, applied_by = excluded.applied_by",
            t.history
        ),
        params![
            row.version,
            row.name,
            row.description,
            now(),
            row.checksum.to_string(),
            ms,
            row.rollback_sql,
            row.success,
            row.statements_done as i32,
            row.applied_by
        ],
    )
    .map(|_| ())
    .map_err(|e| duck_error(&e))
}

pub(super) fn remove(conn: &Connection, t: &Tables, version: &str) -> Result<(), DriverError> {
    conn.execute(
        &format!("DELETE FROM {} WHERE version = ?", t.history),
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
            t.history
        ),
        params![checksum, rollback_sql, version],
    )
    .map(|_| ())
    .map_err(|e| duck_error(&e))
}

pub(super) fn set_progress(
    conn: &Connection,
    t: &Tables,
    version: &str,
    done: usize,
) -> Result<(), DriverError> {
    conn.execute(
        &format!(
            "UPDATE {} SET statements_done = ? WHERE version = ?",
            t.history
        ),
        params![done as i32, version],
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
                t.metadata
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
             VALUES ('schema_migrations', ?, ?, ?, ?, ?, ?, ?, ?)",
            t.audit
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
    if !exists(conn, t)? {
        return Ok(vec![]);
    }
    let mut stmt = conn
        .prepare(&format!(
            "SELECT id, operation, coalesce(record_id, ''), old_values, new_values, changed_by, changed_at, ip_address, user_agent \
             FROM {} ORDER BY id DESC LIMIT ?",
            t.audit
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
    if !exists(conn, t)? {
        return Ok(vec![]);
    }
    let mut stmt = conn
        .prepare(&format!(
            "SELECT key, coalesce(value, '') FROM {} ORDER BY key",
            t.metadata
        ))
        .map_err(|e| duck_error(&e))?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(|e| duck_error(&e))?;
    rows.collect::<Result<_, _>>().map_err(|e| duck_error(&e))
}
