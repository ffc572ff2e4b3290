//! `.strata-migrations` (one document per applied migration, `_id` = version),
//! `.strata-audit` and `.strata-metadata`. Every write refreshes, so the next read
//! (another process's plan, say) sees it.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use strata_core::{AppliedMigration, AuditEntry, AuditRecord, Checksum, DriverError};

use super::client::{segment, Client};
use crate::HistoryNames;

/// Index names, from `history_table` (default `.strata-migrations`).
pub(crate) struct Names {
    pub table: String,
    pub audit: String,
    pub metadata: String,
    pub lock: String,
}

impl Names {
    pub fn new(h: &HistoryNames) -> Self {
        let Some(table) = &h.table else {
            let n = |s: &str| format!(".strata-{s}");
            return Names {
                table: n("migrations"),
                audit: n("audit"),
                metadata: n("metadata"),
                lock: n("lock"),
            };
        };
        let t = table.to_ascii_lowercase();
        Names {
            audit: format!("{t}-audit"),
            metadata: format!("{t}-metadata"),
            lock: format!("{t}-lock"),
            table: t,
        }
    }
}

const SETTINGS: &str = r#"{"number_of_shards": 1, "auto_expand_replicas": "0-1"}"#;

/// Creates an index unless it exists (another process may create it first).
pub(crate) async fn create_index(
    c: &Client,
    name: &str,
    properties: Value,
) -> Result<(), DriverError> {
    let body = json!({
        "settings": serde_json::from_str::<Value>(SETTINGS).expect("constant JSON"),
        "mappings": {"properties": properties},
    });
    let (status, value) = c.send(Method::PUT, &segment(name), Some(&body)).await?;
    let exists = value.pointer("/error/type").and_then(Value::as_str)
        == Some("resource_already_exists_exception");
    if status.is_success() || exists {
        Ok(())
    } else {
        Err(super::client::error(status, &value))
    }
}

pub(crate) async fn index_exists(c: &Client, name: &str) -> Result<bool, DriverError> {
    let (status, _) = c.send(Method::HEAD, &segment(name), None).await?;
    Ok(status.is_success())
}

pub(super) async fn ensure(c: &Client, n: &Names) -> Result<(), DriverError> {
    let kw = json!({"type": "keyword"});
    let date = json!({"type": "date", "format": "epoch_millis"});
    let stored = json!({"type": "object", "enabled": false});
    if !index_exists(c, &n.table).await? {
        create_index(c, &n.table, json!({
            "migration_id": kw, "version": kw, "name": kw, "description": {"type": "text"},
            "checksum": kw, "started_at": date, "applied_at": date, "success": {"type": "boolean"},
            "execution_time_ms": {"type": "long"}, "statements_done": {"type": "long"},
            "rollback": {"type": "text", "index": false}, "applied_by": kw,
        }))
        .await?;
    }
    if !index_exists(c, &n.audit).await? {
        create_index(
            c,
            &n.audit,
            json!({
                "seq": {"type": "long"}, "table_name": kw, "record_id": kw, "operation": kw,
                "old_values": stored, "new_values": stored, "changed_by": kw, "changed_at": date,
                "ip_address": kw, "user_agent": kw,
            }),
        )
        .await?;
    }
    if !index_exists(c, &n.metadata).await? {
        create_index(
            c,
            &n.metadata,
            json!({"key": kw, "value": kw, "updated_at": date}),
        )
        .await?;
    }
    Ok(())
}

fn doc_path(index: &str, id: &str) -> String {
    format!("{}/_doc/{}?refresh=true", segment(index), segment(id))
}

pub(super) async fn put(c: &Client, n: &Names, r: &AppliedMigration) -> Result<(), DriverError> {
    let applied = r.applied_at.timestamp_millis();
    let row = json!({
        "migration_id": r.version, "version": r.version, "name": r.name,
        "description": r.description, "checksum": r.checksum.as_str(),
        "started_at": applied - r.execution_time_ms, "applied_at": applied,
        "success": r.success, "execution_time_ms": r.execution_time_ms,
        "statements_done": r.statements_done, "rollback": r.rollback_sql,
        "applied_by": r.applied_by,
    });
    c.ok(Method::PUT, &doc_path(&n.table, &r.version), Some(&row))
        .await?;
    Ok(())
}

pub(super) async fn set(
    c: &Client,
    n: &Names,
    version: &str,
    fields: Value,
) -> Result<(), DriverError> {
    let path = format!(
        "{}/_update/{}?refresh=true",
        segment(&n.table),
        segment(version)
    );
    c.ok(Method::POST, &path, Some(&json!({ "doc": fields })))
        .await?;
    Ok(())
}

pub(super) async fn remove(c: &Client, n: &Names, version: &str) -> Result<(), DriverError> {
    let (status, value) = c
        .send(Method::DELETE, &doc_path(&n.table, version), None)
        .await?;
    if status.is_success() || status == StatusCode::NOT_FOUND {
        Ok(())
    } else {
        Err(super::client::error(status, &value))
    }
}

/// The `_source` of every hit of a search.
async fn search(c: &Client, index: &str, body: Value) -> Result<Vec<Value>, DriverError> {
    let r = c
        .ok(
            Method::POST,
            &format!("{}/_search", segment(index)),
            Some(&body),
        )
        .await?;
    Ok(r.pointer("/hits/hits")
        .and_then(Value::as_array)
        .map(|hits| {
            hits.iter()
                .filter_map(|h| h.get("_source").cloned())
                .collect()
        })
        .unwrap_or_default())
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

fn int(v: &Value, key: &str) -> i64 {
    v.get(key).and_then(Value::as_i64).unwrap_or(0)
}

fn time(v: &Value, key: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(int(v, key)).unwrap_or_default()
}

pub(super) async fn applied(c: &Client, n: &Names) -> Result<Vec<AppliedMigration>, DriverError> {
    if !index_exists(c, &n.table).await? {
        return Ok(vec![]);
    }
    let body = json!({"size": 10000, "sort": [{"applied_at": "asc"}, {"version": "asc"}]});
    Ok(search(c, &n.table, body)
        .await?
        .iter()
        .map(|d| AppliedMigration {
            version: text(d, "version").unwrap_or_default(),
            name: text(d, "name").unwrap_or_default(),
            description: text(d, "description"),
            applied_at: time(d, "applied_at"),
            checksum: Checksum::from_hex(text(d, "checksum").unwrap_or_default()),
            execution_time_ms: int(d, "execution_time_ms"),
            rollback_sql: text(d, "rollback"),
            success: d.get("success").and_then(Value::as_bool).unwrap_or(false),
            statements_done: int(d, "statements_done"),
            applied_by: text(d, "applied_by"),
            progress: Default::default(),
        })
        .collect())
}

pub(super) async fn audit(c: &Client, n: &Names, e: &AuditEntry) -> Result<(), DriverError> {
    let now = chrono::Utc::now();
    let row = json!({
        "seq": now.timestamp_micros(), "table_name": n.table, "record_id": e.record_id,
        "operation": e.operation, "old_values": e.old_values, "new_values": e.new_values,
        "changed_by": e.changed_by, "changed_at": now.timestamp_millis(),
        "ip_address": e.ip_address, "user_agent": e.user_agent,
    });
    c.ok(
        Method::POST,
        &format!("{}/_doc?refresh=true", segment(&n.audit)),
        Some(&row),
    )
    .await?;
    Ok(())
}

pub(super) async fn audit_log(
    c: &Client,
    n: &Names,
    limit: usize,
) -> Result<Vec<AuditRecord>, DriverError> {
    if !index_exists(c, &n.audit).await? {
        return Ok(vec![]);
    }
    let body = json!({"size": limit.min(10000), "sort": [{"seq": "desc"}]});
    let values = |d: &Value, k: &str| d.get(k).filter(|v| !v.is_null()).cloned();
    Ok(search(c, &n.audit, body)
        .await?
        .iter()
        .map(|d| AuditRecord {
            id: int(d, "seq"),
            operation: text(d, "operation").unwrap_or_default(),
            record_id: text(d, "record_id").unwrap_or_default(),
            old_values: values(d, "old_values"),
            new_values: values(d, "new_values"),
            changed_by: text(d, "changed_by"),
            changed_at: time(d, "changed_at"),
            ip_address: text(d, "ip_address"),
            user_agent: text(d, "user_agent"),
        })
        .collect())
}

pub(super) async fn set_metadata(
    c: &Client,
    n: &Names,
    pairs: &[(&'static str, String)],
) -> Result<(), DriverError> {
    let now = chrono::Utc::now().timestamp_millis();
    for (key, value) in pairs {
        let row = json!({"key": key, "value": value, "updated_at": now});
        c.ok(Method::PUT, &doc_path(&n.metadata, key), Some(&row))
            .await?;
    }
    Ok(())
}

pub(super) async fn metadata(c: &Client, n: &Names) -> Result<Vec<(String, String)>, DriverError> {
    if !index_exists(c, &n.metadata).await? {
        return Ok(vec![]);
    }
    let body = json!({"size": 1000, "sort": [{"key": "asc"}]});
    Ok(search(c, &n.metadata, body)
        .await?
        .iter()
        .filter_map(|d| Some((text(d, "key")?, text(d, "value").unwrap_or_default())))
        .collect())
}
