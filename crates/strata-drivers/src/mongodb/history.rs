//! `_migrations` (one document per applied migration, `_id` = version),
//! `_migrations_audit` and `_migrations_metadata`.

use futures_util::TryStreamExt;
use mongodb::bson::{doc, Bson, DateTime as BsonDate, Document};
use mongodb::{Collection, Database};
use strata_core::{AppliedMigration, AuditEntry, AuditRecord, Checksum, DriverError};

use super::db_error;
use crate::HistoryNames;

/// Collection names, from `history_table` (default `_migrations`).
pub(crate) struct Names {
    pub table: String,
    pub audit: String,
    pub metadata: String,
    pub lock: String,
}

impl Names {
    pub fn new(h: &HistoryNames) -> Self {
        let t = h.table.as_deref().unwrap_or("_migrations");
        Names {
            table: t.to_string(),
            audit: format!("{t}_audit"),
            metadata: format!("{t}_metadata"),
            lock: format!("{t}_lock"),
        }
    }
}

fn coll(db: &Database, name: &str) -> Collection<Document> {
    db.collection(name)
}

/// Code 48: NamespaceExists (another process created it first).
pub(super) async fn create_collection(db: &Database, name: &str) -> Result<(), DriverError> {
    match db.create_collection(name).await {
        Ok(()) => Ok(()),
        Err(e) if super::code(&e) == Some(48) => Ok(()),
        Err(e) => Err(db_error(&e)),
    }
}

pub(super) async fn ensure(db: &Database, n: &Names) -> Result<(), DriverError> {
    let have = db.list_collection_names().await.map_err(|e| db_error(&e))?;
    for name in [&n.table, &n.audit, &n.metadata] {
        if !have.contains(name) {
            create_collection(db, name).await?;
        }
    }
    Ok(())
}

pub(super) async fn exists(db: &Database, n: &Names) -> Result<bool, DriverError> {
    let have = db.list_collection_names().await.map_err(|e| db_error(&e))?;
    Ok(have.contains(&n.table))
}

fn date(d: chrono::DateTime<chrono::Utc>) -> BsonDate {
    BsonDate::from_millis(d.timestamp_millis())
}

fn chrono_of(d: Option<&BsonDate>) -> chrono::DateTime<chrono::Utc> {
    d.and_then(|d| chrono::DateTime::from_timestamp_millis(d.timestamp_millis()))
        .unwrap_or_default()
}

pub(super) async fn put(db: &Database, n: &Names, r: &AppliedMigration) -> Result<(), DriverError> {
    let started = r.applied_at - chrono::Duration::milliseconds(r.execution_time_ms);
    let row = doc! {
        "_id": &r.version,
        "migration_id": &r.version,
        "version": &r.version,
        "name": &r.name,
        "description": r.description.as_deref(),
        "checksum": r.checksum.as_str(),
        "started_at": date(started),
        "applied_at": date(r.applied_at),
        "success": r.success,
        "execution_time_ms": r.execution_time_ms,
        "statements_done": r.statements_done,
        "rollback": r.rollback_sql.as_deref(),
        "applied_by": r.applied_by.as_deref(),
    };
    coll(db, &n.table)
        .replace_one(doc! {"_id": &r.version}, row)
        .upsert(true)
        .await
        .map_err(|e| db_error(&e))?;
    Ok(())
}

pub(super) async fn set(
    db: &Database,
    n: &Names,
    version: &str,
    fields: Document,
) -> Result<(), DriverError> {
    coll(db, &n.table)
        .update_one(doc! {"_id": version}, doc! {"$set": fields})
        .await
        .map_err(|e| db_error(&e))?;
    Ok(())
}

pub(super) async fn remove(db: &Database, n: &Names, version: &str) -> Result<(), DriverError> {
    coll(db, &n.table)
        .delete_one(doc! {"_id": version})
        .await
        .map_err(|e| db_error(&e))?;
    Ok(())
}

fn text(d: &Document, key: &str) -> Option<String> {
    d.get_str(key).ok().map(str::to_string)
}

fn int(d: &Document, key: &str) -> i64 {
    match d.get(key) {
        Some(Bson::Int64(v)) => *v,
        Some(Bson::Int32(v)) => *v as i64,
        Some(Bson::Double(v)) => *v as i64,
        _ => 0,
    }
}

pub(super) async fn applied(
    db: &Database,
    n: &Names,
) -> Result<Vec<AppliedMigration>, DriverError> {
    if !exists(db, n).await? {
        return Ok(vec![]);
    }
    let docs: Vec<Document> = coll(db, &n.table)
        .find(doc! {})
        .sort(doc! {"applied_at": 1, "_id": 1})
        .await
        .map_err(|e| db_error(&e))?
        .try_collect()
        .await
        .map_err(|e| db_error(&e))?;
    Ok(docs
        .iter()
        .map(|d| AppliedMigration {
            version: text(d, "version").unwrap_or_default(),
            name: text(d, "name").unwrap_or_default(),
            description: text(d, "description"),
            applied_at: chrono_of(d.get_datetime("applied_at").ok()),
            checksum: Checksum::from_hex(text(d, "checksum").unwrap_or_default()),
            execution_time_ms: int(d, "execution_time_ms"),
            rollback_sql: text(d, "rollback"),
            success: d.get_bool("success").unwrap_or(false),
            statements_done: int(d, "statements_done"),
            applied_by: text(d, "applied_by"),
            progress: Default::default(),
        })
        .collect())
}

fn to_bson(v: &Option<serde_json::Value>) -> Bson {
    v.clone()
        .and_then(|v| Bson::try_from(v).ok())
        .unwrap_or(Bson::Null)
}

pub(super) async fn audit(db: &Database, n: &Names, e: &AuditEntry) -> Result<(), DriverError> {
    let now = chrono::Utc::now();
    coll(db, &n.audit)
        .insert_one(doc! {
            "seq": now.timestamp_micros(),
            "table_name": &n.table,
            "record_id": &e.record_id,
            "operation": &e.operation,
            "old_values": to_bson(&e.old_values),
            "new_values": to_bson(&e.new_values),
            "changed_by": &e.changed_by,
            "changed_at": date(now),
            "ip_address": e.ip_address.as_deref(),
            "user_agent": e.user_agent.as_deref(),
        })
        .await
        .map_err(|e| db_error(&e))?;
    Ok(())
}

pub(super) async fn audit_log(
    db: &Database,
    n: &Names,
    limit: usize,
) -> Result<Vec<AuditRecord>, DriverError> {
    let docs: Vec<Document> = coll(db, &n.audit)
        .find(doc! {})
        .sort(doc! {"seq": -1})
        .limit(limit as i64)
        .await
        .map_err(|e| db_error(&e))?
        .try_collect()
        .await
        .map_err(|e| db_error(&e))?;
    let json = |d: &Document, k: &str| match d.get(k) {
        None | Some(Bson::Null) => None,
        Some(b) => Some(b.clone().into_relaxed_extjson()),
    };
    Ok(docs
        .iter()
        .map(|d| AuditRecord {
            id: int(d, "seq"),
            operation: text(d, "operation").unwrap_or_default(),
            record_id: text(d, "record_id").unwrap_or_default(),
            old_values: json(d, "old_values"),
            new_values: json(d, "new_values"),
            changed_by: text(d, "changed_by"),
            changed_at: chrono_of(d.get_datetime("changed_at").ok()),
            ip_address: text(d, "ip_address"),
            user_agent: text(d, "user_agent"),
        })
        .collect())
}

pub(super) async fn set_metadata(
    db: &Database,
    n: &Names,
    pairs: &[(&'static str, String)],
) -> Result<(), DriverError> {
    let now = date(chrono::Utc::now());
    for (key, value) in pairs {
        coll(db, &n.metadata)
            .update_one(
                doc! {"_id": *key},
                doc! {
                    "$set": {"value": value, "updated_at": now},
                    "$setOnInsert": {"created_at": now},
                },
            )
            .upsert(true)
            .await
            .map_err(|e| db_error(&e))?;
    }
    Ok(())
}

pub(super) async fn metadata(
    db: &Database,
    n: &Names,
) -> Result<Vec<(String, String)>, DriverError> {
    let docs: Vec<Document> = coll(db, &n.metadata)
        .find(doc! {})
        .sort(doc! {"_id": 1})
        .await
        .map_err(|e| db_error(&e))?
        .try_collect()
        .await
        .map_err(|e| db_error(&e))?;
    Ok(docs
        .iter()
        .filter_map(|d| Some((text(d, "_id")?, text(d, "value").unwrap_or_default())))
        .collect())
}
