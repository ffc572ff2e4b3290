//! strata's tables in MySQL: the history (`schema_migrations` or as configured),
//! `application_metadata` and `audit_log`, all in one database.

use chrono::{DateTime, Utc};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};
use strata_core::{AppliedMigration, AuditEntry, AuditRecord, Checksum, DriverError};

use super::exec::db_error;

/// Quoted, database-qualified table names.
pub(super) struct Tables {
    pub schema: String,
    pub schema_plain: String,
    pub table_plain: String,
    pub history: String,
    pub metadata: String,
    pub audit: String,
    /// The lease table (`lock = "lease"`): `<history>_lock`.
    pub lease: String,
}

pub(super) fn quote(ident: &str) -> String {
    format!("`{}`", ident.replace('`', "``"))
}

impl Tables {
    pub fn new(schema: &str, table: &str) -> Self {
        let q = |t: &str| format!("{}.{}", quote(schema), quote(t));
        Tables {
            schema: quote(schema),
            schema_plain: schema.to_string(),
            table_plain: table.to_string(),
            history: q(table),
            metadata: q("application_metadata"),
            audit: q("audit_log"),
            lease: q(&format!("{table}_lock")),
        }
    }
}

/// UTC timestamps as RFC 3339 text (sessions run in UTC, see `parse_url`).
pub(super) const TS: &str = "'%Y-%m-%dT%H:%i:%s.%fZ'";

fn parse_ts(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

pub(super) async fn ensure(conn: &mut Conn, t: &Tables) -> Result<(), DriverError> {
    if exists(conn, t).await? {
        return Ok(());
    }
    let ddl = [
        format!("CREATE DATABASE IF NOT EXISTS {}", t.schema),
        format!(
            "CREATE TABLE IF NOT EXISTS {} (
                id BIGINT AUTO_INCREMENT PRIMARY KEY,
                version VARCHAR(255) NOT NULL UNIQUE,
                name TEXT NOT NULL,
                description TEXT,
                applied_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
                checksum CHAR(64) NOT NULL,
                execution_time_ms BIGINT NOT NULL DEFAULT 0,
                rollback_sql LONGTEXT,
                success BOOLEAN NOT NULL DEFAULT TRUE,
                statements_done INT NOT NULL DEFAULT 0,
                applied_by TEXT
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
            t.history
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {} (
                id BIGINT AUTO_INCREMENT PRIMARY KEY,
                `key` VARCHAR(255) NOT NULL UNIQUE,
                value TEXT,
                description TEXT,
                created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
                updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
            t.metadata
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {} (
                id BIGINT AUTO_INCREMENT PRIMARY KEY,
                table_name VARCHAR(255) NOT NULL,
                record_id VARCHAR(255),
                operation VARCHAR(32) NOT NULL,
                old_values LONGTEXT,
                new_values LONGTEXT,
                changed_by TEXT,
                changed_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
                ip_address TEXT,
                user_agent TEXT
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
            t.audit
        ),
    ];
    for stmt in ddl {
        conn.query_drop(stmt).await.map_err(|e| db_error(&e))?;
    }
    Ok(())
}

pub(super) async fn exists(conn: &mut Conn, t: &Tables) -> Result<bool, DriverError> {
    let n: Option<i64> = conn
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (&t.schema_plain, &t.table_plain),
        )
        .await
        .map_err(|e| db_error(&e))?;
    Ok(n.unwrap_or(0) > 0)
}

pub(super) async fn applied(
    conn: &mut Conn,
    t: &Tables,
) -> Result<Vec<AppliedMigration>, DriverError> {
    if !exists(conn, t).await? {
        return Ok(vec![]);
    }
    let sql = format!(
        "SELECT version, name, description, DATE_FORMAT(applied_at, {TS}), checksum, execution_time_ms, \
         rollback_sql, success, statements_done, applied_by FROM {} ORDER BY id",
        t.history
    );
    let rows: Vec<Row> = conn.query(sql).await.map_err(|e| db_error(&e))?;
    Ok(rows
        .into_iter()
        .map(|mut r| AppliedMigration {
            version: take(&mut r, 0).unwrap_or_default(),
            name: take(&mut r, 1).unwrap_or_default(),
            description: take(&mut r, 2),
            applied_at: parse_ts(&take::<String>(&mut r, 3).unwrap_or_default()),
            checksum: Checksum::from_hex(take::<String>(&mut r, 4).unwrap_or_default()),
            execution_time_ms: take(&mut r, 5).unwrap_or(0),
            rollback_sql: take(&mut r, 6),
            success: take::<i64>(&mut r, 7).unwrap_or(1) != 0,
            statements_done: take(&mut r, 8).unwrap_or(0),
            applied_by: take(&mut r, 9),
        })
        .collect())
}

/// Column `i` as `T`; NULL (or a value of another type) is `None`.
pub(super) fn take<T: mysql_async::prelude::FromValue>(r: &mut Row, i: usize) -> Option<T> {
    match r.take_opt::<Option<T>, usize>(i) {
        Some(Ok(v)) => v,
        _ => None,
    }
}

/// Inserts or replaces the history row of an applied migration.
pub(super) async fn upsert(
    conn: &mut Conn,
    t: &Tables,
    row: &AppliedMigration,
    ms: i64,
) -> Result<(), DriverError> {
    let sql = format!(
        "INSERT INTO {} (version, name, description, checksum, execution_time_ms, rollback_sql, success, statements_done, applied_by) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON DUPLICATE KEY UPDATE name = VALUES(name), description = VALUES(description), checksum = VALUES(checksum), \
         execution_time_ms = VALUES(execution_time_ms), rollback_sql = VALUES(rollback_sql), success = VALUES(success), \
         statements_done = VALUES(statements_done), applied_by = VALUES(applied_by), applied_at = CURRENT_TIMESTAMP(6)",
        t.history
    );
    let params: Vec<Value> = vec![
        row.version.clone().into(),
        row.name.clone().into(),
        row.description.clone().into(),
        row.checksum.to_string().into(),
        ms.into(),
        row.rollback_sql.clone().into(),
        row.success.into(),
        row.statements_done.into(),
        row.applied_by.clone().into(),
    ];
    conn.exec_drop(sql, params).await.map_err(|e| db_error(&e))
}

pub(super) async fn remove(conn: &mut Conn, t: &Tables, version: &str) -> Result<(), DriverError> {
    conn.exec_drop(
        format!("DELETE FROM {} WHERE version = ?", t.history),
        (version,),
    )
    .await
    .map_err(|e| db_error(&e))
}

pub(super) async fn rechecksum(
    conn: &mut Conn,
    t: &Tables,
    version: &str,
    checksum: &str,
    rollback_sql: Option<&str>,
) -> Result<(), DriverError> {
    conn.exec_drop(
        format!(
            "UPDATE {} SET checksum = ?, rollback_sql = ? WHERE version = ?",
            t.history
        ),
        (checksum, rollback_sql, version),
    )
    .await
    .map_err(|e| db_error(&e))
}

pub(super) async fn set_progress(
    conn: &mut Conn,
    t: &Tables,
    version: &str,
    done: usize,
) -> Result<(), DriverError> {
    conn.exec_drop(
        format!(
            "UPDATE {} SET statements_done = ? WHERE version = ?",
            t.history
        ),
        (done as i64, version),
    )
    .await
    .map_err(|e| db_error(&e))
}

/// Marks a row failed (a rollback that stopped midway).
pub(super) async fn set_failed(
    conn: &mut Conn,
    t: &Tables,
    version: &str,
) -> Result<(), DriverError> {
    conn.exec_drop(
        format!("UPDATE {} SET success = FALSE WHERE version = ?", t.history),
        (version,),
    )
    .await
    .map_err(|e| db_error(&e))
}

pub(super) async fn set_metadata(
    conn: &mut Conn,
    t: &Tables,
    pairs: &[(&'static str, String)],
) -> Result<(), DriverError> {
    for (key, value) in pairs {
        let description = match *key {
            "schema_version" => "version of the newest applied migration",
            "strata_version" => "strata version that last changed the schema",
            _ => "",
        };
        conn.exec_drop(
            format!(
                "INSERT INTO {} (`key`, value, description) VALUES (?, ?, ?) \
                 ON DUPLICATE KEY UPDATE value = VALUES(value), updated_at = CURRENT_TIMESTAMP(6)",
                t.metadata
            ),
            (key, value, description),
        )
        .await
        .map_err(|e| db_error(&e))?;
    }
    Ok(())
}

fn json_text(v: &Option<serde_json::Value>) -> Option<String> {
    v.as_ref().map(|v| v.to_string())
}

pub(super) async fn insert_audit(
    conn: &mut Conn,
    t: &Tables,
    e: &AuditEntry,
) -> Result<(), DriverError> {
    let params: Vec<Value> = vec![
        "schema_migrations".into(),
        e.record_id.clone().into(),
        e.operation.clone().into(),
        json_text(&e.old_values).into(),
        json_text(&e.new_values).into(),
        e.changed_by.clone().into(),
        e.ip_address.clone().into(),
        e.user_agent.clone().into(),
    ];
    conn.exec_drop(
        format!(
            "INSERT INTO {} (table_name, record_id, operation, old_values, new_values, changed_by, ip_address, user_agent) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            t.audit
        ),
        params,
    )
    .await
    .map_err(|e| db_error(&e))
}

/// An audit row on its own, when the history exists.
pub(super) async fn audit(conn: &mut Conn, t: &Tables, e: &AuditEntry) -> Result<(), DriverError> {
    if !exists(conn, t).await? {
        return Ok(());
    }
    insert_audit(conn, t, e).await
}

pub(super) async fn audit_log(
    conn: &mut Conn,
    t: &Tables,
    limit: usize,
) -> Result<Vec<AuditRecord>, DriverError> {
    if !exists(conn, t).await? {
        return Ok(vec![]);
    }
    let rows: Vec<Row> = conn
        .exec(
            format!(
                "SELECT id, operation, COALESCE(record_id, ''), old_values, new_values, changed_by, \
                 DATE_FORMAT(changed_at, {TS}), ip_address, user_agent FROM {} ORDER BY id DESC LIMIT ?",
                t.audit
            ),
            (limit as u64,),
        )
        .await
        .map_err(|e| db_error(&e))?;
    let json = |s: Option<String>| s.and_then(|s| serde_json::from_str(&s).ok());
    Ok(rows
        .into_iter()
        .map(|mut r| AuditRecord {
            id: take(&mut r, 0).unwrap_or(0),
            operation: take(&mut r, 1).unwrap_or_default(),
            record_id: take(&mut r, 2).unwrap_or_default(),
            old_values: json(take(&mut r, 3)),
            new_values: json(take(&mut r, 4)),
            changed_by: take(&mut r, 5),
            changed_at: parse_ts(&take::<String>(&mut r, 6).unwrap_or_default()),
            ip_address: take(&mut r, 7),
            user_agent: take(&mut r, 8),
        })
        .collect())
}

pub(super) async fn metadata(
    conn: &mut Conn,
    t: &Tables,
) -> Result<Vec<(String, String)>, DriverError> {
    if !exists(conn, t).await? {
        return Ok(vec![]);
    }
    conn.query(format!(
        "SELECT `key`, COALESCE(value, '') FROM {} ORDER BY `key`",
        t.metadata
    ))
    .await
    .map_err(|e| db_error(&e))
}
