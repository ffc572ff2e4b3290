//! strata's tables in MySQL: the history (`schema_migrations` or as configured),
//! `application_metadata` and `audit_log`, all in one database.

use chrono::{DateTime, Utc};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};
use strata_core::{AppliedMigration, AuditEntry, AuditRecord, Checksum, DriverError};

use super::exec::db_error;
use crate::layout::{Bookkeeping, Found};

/// strata's tables on this connection ([`crate::layout`]).
pub(super) type Tables = crate::layout::Names;

pub(super) fn quote(ident: &str) -> String {
    crate::layout::Dialect::MySql.quote(ident)
}

/// UTC timestamps as RFC 3339 text (sessions run in UTC, see `parse_url`).
pub(super) const TS: &str = "'%Y-%m-%dT%H:%i:%s.%fZ'";

fn parse_ts(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

/// What the database holds of strata's tables, remembered in `b`.
pub(super) async fn probe(conn: &mut Conn, b: &mut Bookkeeping) -> Result<Found, DriverError> {
    let rows: Vec<(String, String, String)> =
        conn.query(b.probe_sql()).await.map_err(|e| db_error(&e))?;
    b.classify(&rows)
}

/// Creates strata's tables, or moves an earlier layout's into place (one atomic
/// `RENAME TABLE`), with an audit row for the move; called under the migration lock.
pub(super) async fn ensure(conn: &mut Conn, b: &mut Bookkeeping) -> Result<(), DriverError> {
    let found = probe(conn, b).await?;
    for stmt in b.ensure_sql(found)? {
        conn.query_drop(stmt).await.map_err(|e| db_error(&e))?;
    }
    if found != Found::Current {
        b.created();
    }
    if let Some(entry) = b.upgrade_audit(found, whoami::username()) {
        insert_audit(conn, &b.current, &entry).await?;
    }
    Ok(())
}

pub(super) async fn applied(
    conn: &mut Conn,
    t: &Tables,
) -> Result<Vec<AppliedMigration>, DriverError> {
    let sql = format!(
        "SELECT version, name, description, DATE_FORMAT(applied_at, {TS}), checksum, execution_time_ms, \
         rollback_sql, success, statements_done, applied_by, {} FROM {} ORDER BY id",
        t.progress_select(),
        t.history.sql
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
            progress: crate::tracked::progress(
                take(&mut r, 10),
                take(&mut r, 11),
                take(&mut r, 12),
            ),
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

/// Writes an applied migration's row: a plain insert, so a version another run
/// recorded first fails on the unique key (MySQL's `ON DUPLICATE KEY UPDATE` would let
/// both "succeed"), or with `replaces`, an update of exactly that version's row.
pub(super) async fn write(
    conn: &mut Conn,
    t: &Tables,
    row: &AppliedMigration,
    ms: i64,
    replaces: bool,
) -> Result<(), DriverError> {
    let sql = if replaces {
        format!(
            "UPDATE {} SET name = ?, description = ?, checksum = ?, execution_time_ms = ?, rollback_sql = ?, success = ?, \
             statements_done = ?, applied_by = ?, applied_at = CURRENT_TIMESTAMP(6) WHERE version = ?",
            t.history.sql
        )
    } else {
        format!(
            "INSERT INTO {} (name, description, checksum, execution_time_ms, rollback_sql, success, statements_done, applied_by, version) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            t.history.sql
        )
    };
    let params: Vec<Value> = vec![
        row.name.clone().into(),
        row.description.clone().into(),
        row.checksum.to_string().into(),
        ms.into(),
        row.rollback_sql.clone().into(),
        row.success.into(),
        row.statements_done.into(),
        row.applied_by.clone().into(),
        row.version.clone().into(),
    ];
    match conn.exec_drop(sql, params).await {
        Err(mysql_async::Error::Server(e)) if e.code == 1062 => {
            return Err(crate::layout::already_recorded(&row.version))
        }
        Err(e) => return Err(db_error(&e)),
        Ok(()) => {}
    }
    // applied_at moves on every write, so a matched row is a changed row.
    if conn.affected_rows() != 1 {
        return Err(crate::layout::row_vanished(&row.version));
    }
    Ok(())
}

pub(super) async fn remove(conn: &mut Conn, t: &Tables, version: &str) -> Result<(), DriverError> {
    conn.exec_drop(
        format!("DELETE FROM {} WHERE version = ?", t.history.sql),
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
            t.history.sql
        ),
        (checksum, rollback_sql, version),
    )
    .await
    .map_err(|e| db_error(&e))
}

pub(super) async fn set_metadata(
    conn: &mut Conn,
    t: &Tables,
    pairs: &[(&'static str, String)],
) -> Result<(), DriverError> {
    if pairs.is_empty() {
        return Ok(());
    }
    // Every key in one statement: one round trip.
    let rows = vec!["(?, ?, ?)"; pairs.len()].join(", ");
    let mut params: Vec<Value> = Vec::with_capacity(pairs.len() * 3);
    for (key, value) in pairs {
        let description = match *key {
            "schema_version" => "version of the newest applied migration",
            "strata_version" => "strata version that last changed the schema",
            _ => "",
        };
        params.extend([(*key).into(), value.clone().into(), description.into()]);
    }
    conn.exec_drop(
        format!(
            "INSERT INTO {} (`key`, value, description) VALUES {rows} \
             ON DUPLICATE KEY UPDATE value = VALUES(value), updated_at = CURRENT_TIMESTAMP(6)",
            t.metadata.sql
        ),
        params,
    )
    .await
    .map_err(|e| db_error(&e))
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
        t.history.name.clone().into(),
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
            t.audit.sql
        ),
        params,
    )
    .await
    .map_err(|e| db_error(&e))
}

pub(super) async fn audit_log(
    conn: &mut Conn,
    t: &Tables,
    limit: usize,
) -> Result<Vec<AuditRecord>, DriverError> {
    let rows: Vec<Row> = conn
        .exec(
            format!(
                "SELECT id, operation, COALESCE(record_id, ''), old_values, new_values, changed_by, \
                 DATE_FORMAT(changed_at, {TS}), ip_address, user_agent FROM {} ORDER BY id DESC LIMIT ?",
                t.audit.sql
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
    conn.query(format!(
        "SELECT `key`, COALESCE(value, '') FROM {} ORDER BY `key`",
        t.metadata.sql
    ))
    .await
    .map_err(|e| db_error(&e))
}
