//! strata's tables in SQLite: the history table, `application_metadata`, `audit_log`.
//! Timestamps are RFC 3339 text in UTC; JSON columns are text.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use strata_core::{AppliedMigration, AuditEntry, AuditRecord, Checksum, DriverError};

use super::sqlite_error;

const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

pub(super) struct Tables {
    pub history: String,
    history_plain: String,
}

impl Tables {
    pub fn new(table: &str) -> Self {
        Tables {
            history: format!("\"{}\"", table.replace('"', "\"\"")),
            history_plain: table.to_string(),
        }
    }

    /// strata's own tables: left out of schema introspection.
    pub fn own_names(&self) -> Vec<String> {
        vec![
            self.history_plain.clone(),
            "application_metadata".into(),
            "audit_log".into(),
            format!("{}_lock", self.history_plain),
        ]
    }
}

pub(super) fn ensure(conn: &Connection, t: &Tables) -> Result<(), DriverError> {
    let ddl = format!(
        "CREATE TABLE IF NOT EXISTS {h} (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            version VARCHAR(255) NOT NULL UNIQUE,
            name TEXT NOT NULL,
            description TEXT,
            applied_at TEXT NOT NULL DEFAULT ({NOW}),
            checksum CHAR(64) NOT NULL,
            execution_time_ms INTEGER NOT NULL DEFAULT 0,
            rollback_sql TEXT,
            success BOOLEAN NOT NULL DEFAULT 1,
            statements_done INTEGER NOT NULL DEFAULT 0,
            applied_by TEXT
        );
        CREATE TABLE IF NOT EXISTS application_metadata (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            key VARCHAR(255) NOT NULL UNIQUE,
            value TEXT,
            description TEXT,
            created_at TEXT NOT NULL DEFAULT ({NOW}),
            updated_at TEXT NOT NULL DEFAULT ({NOW})
        );
        CREATE TABLE IF NOT EXISTS audit_log (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            table_name VARCHAR(255) NOT NULL,
            record_id VARCHAR(255),
            operation VARCHAR(32) NOT NULL,
            old_values TEXT,
            new_values TEXT,
            changed_by TEXT,
            changed_at TEXT NOT NULL DEFAULT ({NOW}),
            ip_address TEXT,
            user_agent TEXT
        );",
        h = t.history
    );
    conn.execute_batch(&ddl).map_err(|e| sqlite_error(&e))
}

pub(super) fn exists(conn: &Connection, t: &Tables) -> Result<bool, DriverError> {
    conn.query_row(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [&t.history_plain],
        |_| Ok(()),
    )
    .optional()
    .map(|r| r.is_some())
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
    if !exists(conn, t)? {
        return Ok(vec![]);
    }
    let sql = format!(
        "SELECT version, name, description, applied_at, checksum, execution_time_ms, rollback_sql, success, statements_done, applied_by FROM {} ORDER BY id",
        t.history
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
            })
        })
        .map_err(|e| sqlite_error(&e))?;
    rows.collect::<Result<Vec<_>, _>>()
        .map_err(|e| sqlite_error(&e))
}

pub(super) fn upsert(
    conn: &Connection,
    t: &Tables,
    row: &AppliedMigration,
    ms: i64,
) -> Result<(), DriverError> {
    let sql = format!(
        "INSERT INTO {} (version, name, description, checksum, execution_time_ms, rollback_sql, success, statements_done, applied_by) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
         ON CONFLICT (version) DO UPDATE SET name = excluded.name, description = excluded.description, checksum = excluded.checksum, \
         execution_time_ms = excluded.execution_time_ms, rollback_sql = excluded.rollback_sql, success = excluded.success, \
         statements_done = excluded.statements_done, applied_by = excluded.applied_by, applied_at = {NOW}",
        t.history
    );
    conn.execute(
        &sql,
        params![
            row.version,
            row.name,
            row.description,
            row.checksum.as_str(),
            ms,
            row.rollback_sql,
            row.success,
            row.statements_done,
            row.applied_by
        ],
    )
    .map_err(|e| sqlite_error(&e))?;
    Ok(())
}

pub(super) fn remove(conn: &Connection, t: &Tables, version: &str) -> Result<(), DriverError> {
    conn.execute(
        &format!("DELETE FROM {} WHERE version = ?1", t.history),
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
            t.history
        ),
        rusqlite::params![version, checksum, rollback_sql],
    )
    .map_err(|e| sqlite_error(&e))?;
    Ok(())
}

pub(super) fn set_progress(
    conn: &Connection,
    t: &Tables,
    version: &str,
    done: usize,
) -> Result<(), DriverError> {
    conn.execute(
        &format!(
            "UPDATE {} SET statements_done = ?2 WHERE version = ?1",
            t.history
        ),
        params![version, done as i64],
    )
    .map_err(|e| sqlite_error(&e))?;
    Ok(())
}

pub(super) fn set_metadata(
    conn: &Connection,
    pairs: &[(&'static str, String)],
) -> Result<(), DriverError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "INSERT INTO application_metadata (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = {NOW}"
        ))
        .map_err(|e| sqlite_error(&e))?;
    for (k, v) in pairs {
        stmt.execute(params![k, v]).map_err(|e| sqlite_error(&e))?;
    }
    Ok(())
}

pub(super) fn audit(conn: &Connection, t: &Tables, e: &AuditEntry) -> Result<(), DriverError> {
    if !exists(conn, t)? {
        return Ok(());
    }
    conn.prepare_cached(
        "INSERT INTO audit_log (table_name, record_id, operation, old_values, new_values, changed_by, ip_address, user_agent) VALUES ('schema_migrations', ?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
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
    if !exists(conn, t)? {
        return Ok(vec![]);
    }
    let mut stmt = conn
        .prepare("SELECT id, operation, coalesce(record_id, ''), old_values, new_values, changed_by, changed_at, ip_address, user_agent FROM audit_log ORDER BY id DESC LIMIT ?1")
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
    if !exists(conn, t)? {
        return Ok(vec![]);
    }
    let mut stmt = conn
        .prepare("SELECT key, coalesce(value, '') FROM application_metadata ORDER BY key")
        .map_err(|e| sqlite_error(&e))?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(|e| sqlite_error(&e))?;
    rows.collect::<Result<Vec<_>, _>>()
        .map_err(|e| sqlite_error(&e))
}
