//! strata's tables in PostgreSQL: the history (`schema_migrations` or as configured),
//! `application_metadata` and `audit_log`, all in one schema.

use chrono::{DateTime, Utc};
use strata_core::{AppliedMigration, AuditEntry, AuditRecord, Checksum, DriverError};
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use super::exec::db_error;

/// Quoted, schema-qualified table names and the statements that use them.
pub(super) struct Tables {
    pub schema: String,
    pub history: String,
    pub metadata: String,
    pub audit: String,
    /// The lease table (`lock = "lease"`): `<history>_lock`.
    pub lease: String,
    history_plain: String,
    /// The record statements, prepared once per connection (a round trip saved on
    /// every migration); emptied on reconnect.
    pub prepared: std::sync::Mutex<std::collections::HashMap<String, tokio_postgres::Statement>>,
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

impl Tables {
    pub fn new(schema: &str, table: &str) -> Self {
        let q = |t: &str| format!("{}.{}", quote(schema), quote(t));
        Tables {
            schema: quote(schema),
            history: q(table),
            metadata: q("application_metadata"),
            audit: q("audit_log"),
            lease: q(&format!("{table}_lock")),
            history_plain: format!("{schema}.{table}"),
            prepared: Default::default(),
        }
    }

    /// strata's own tables, unqualified: left out of schema introspection.
    pub fn own_names(&self) -> Vec<String> {
        let table = self
            .history_plain
            .rsplit_once('.')
            .map(|(_, t)| t)
            .unwrap_or(&self.history_plain);
        vec![
            table.to_string(),
            "application_metadata".into(),
            "audit_log".into(),
            format!("{table}_lock"),
        ]
    }

    /// History row, audit row and metadata in one statement: one round trip, and atomic
    /// with whatever transaction it runs in.
    pub fn record_apply_sql(&self) -> String {
        format!(
            "WITH h AS (INSERT INTO {h} (version, name, description, checksum, execution_time_ms, rollback_sql, success, statements_done, applied_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (version) DO UPDATE SET name = EXCLUDED.name, description = EXCLUDED.description, checksum = EXCLUDED.checksum, \
             execution_time_ms = EXCLUDED.execution_time_ms, rollback_sql = EXCLUDED.rollback_sql, success = EXCLUDED.success, \
             statements_done = EXCLUDED.statements_done, applied_by = EXCLUDED.applied_by, applied_at = now() RETURNING 1), \
             {audit}, {meta} SELECT 1",
            h = self.history,
            audit = self.audit_cte(10),
            meta = self.meta_cte(18),
        )
    }

    pub fn record_repair_sql(&self) -> String {
        format!(
            "WITH h AS (UPDATE {h} SET checksum = $2, rollback_sql = $3 WHERE version = $1 RETURNING 1), {audit}, {meta} SELECT 1",
            h = self.history,
            audit = self.audit_cte(4),
            meta = self.meta_cte(12)
        )
    }

    pub fn record_remove_sql(&self) -> String {
        format!(
            "WITH h AS (DELETE FROM {h} WHERE version = $1 RETURNING 1), {audit}, {meta} SELECT 1",
            h = self.history,
            audit = self.audit_cte(2),
            meta = self.meta_cte(10)
        )
    }

    /// `a AS (INSERT INTO audit_log ...)` using parameters $n..$n+8.
    fn audit_cte(&self, n: usize) -> String {
        format!(
            "a AS (INSERT INTO {} (table_name, record_id, operation, old_values, new_values, changed_by, ip_address, user_agent) \
             VALUES (${}, ${}, ${}, (${}::text)::jsonb, (${}::text)::jsonb, ${}, ${}, ${}))",
            self.audit,
            n,
            n + 1,
            n + 2,
            n + 3,
            n + 4,
            n + 5,
            n + 6,
            n + 7
        )
    }

    /// `m AS (upsert schema_version, strata_version)` using parameters $n, $n+1.
    fn meta_cte(&self, n: usize) -> String {
        format!(
            "m AS (INSERT INTO {} (key, value, description) VALUES ('schema_version', ${}, 'version of the newest applied migration'), \
             ('strata_version', ${}, 'strata version that last changed the schema') \
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now() \
             WHERE {m}.value IS DISTINCT FROM EXCLUDED.value)",
            self.metadata,
            n,
            n + 1,
            m = self.metadata
        )
    }
}

pub(super) async fn ensure(client: &Client, t: &Tables) -> Result<(), DriverError> {
    if exists(client, t).await? {
        return Ok(());
    }
    let ddl = format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};
        CREATE TABLE IF NOT EXISTS {h} (
            id BIGSERIAL PRIMARY KEY,
            version VARCHAR(255) NOT NULL UNIQUE,
            name TEXT NOT NULL,
            description TEXT,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            checksum CHAR(64) NOT NULL,
            execution_time_ms BIGINT NOT NULL DEFAULT 0,
            rollback_sql TEXT,
            success BOOLEAN NOT NULL DEFAULT TRUE,
            statements_done INTEGER NOT NULL DEFAULT 0,
            applied_by TEXT
        );
        CREATE TABLE IF NOT EXISTS {m} (
            id BIGSERIAL PRIMARY KEY,
            key VARCHAR(255) NOT NULL UNIQUE,
            value TEXT,
            description TEXT,
            created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        CREATE TABLE IF NOT EXISTS {a} (
            id BIGSERIAL PRIMARY KEY,
            table_name VARCHAR(255) NOT NULL,
            record_id VARCHAR(255),
            operation VARCHAR(32) NOT NULL,
            old_values JSONB,
            new_values JSONB,
            changed_by TEXT,
            changed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            ip_address TEXT,
            user_agent TEXT
        );",
        schema = t.schema,
        h = t.history,
        m = t.metadata,
        a = t.audit
    );
    // Notices about existing objects are noise; the advisory lock prevents races.
    client
        .batch_execute(&format!(
            "SET client_min_messages = warning; {ddl} RESET client_min_messages"
        ))
        .await
        .map_err(|e| db_error(&e))
}

pub(super) async fn exists(client: &Client, t: &Tables) -> Result<bool, DriverError> {
    let row = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&t.history_plain])
        .await
        .map_err(|e| db_error(&e))?;
    Ok(row.get(0))
}

pub(super) async fn applied(
    client: &Client,
    t: &Tables,
) -> Result<Vec<AppliedMigration>, DriverError> {
    let sql = format!(
        "SELECT version, name, description, applied_at, checksum, execution_time_ms, rollback_sql, success, statements_done, applied_by FROM {} ORDER BY id",
        t.history
    );
    let rows = match client.query(&sql, &[]).await {
        Ok(r) => r,
        Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => return Ok(vec![]),
        Err(e) => return Err(db_error(&e)),
    };
    Ok(rows
        .iter()
        .map(|r| AppliedMigration {
            version: r.get(0),
            name: r.get(1),
            description: r.get(2),
            applied_at: r.get::<_, DateTime<Utc>>(3),
            checksum: Checksum::from_hex(r.get::<_, String>(4)),
            execution_time_ms: r.get(5),
            rollback_sql: r.get(6),
            success: r.get(7),
            statements_done: r.get::<_, i32>(8) as i64,
            applied_by: r.get(9),
        })
        .collect())
}

fn json_text(v: &Option<serde_json::Value>) -> Option<String> {
    v.as_ref().map(|v| v.to_string())
}

/// Parameters of `audit_cte`, in order.
pub(super) fn audit_params(
    e: &AuditEntry,
) -> [Box<dyn tokio_postgres::types::ToSql + Sync + Send>; 8] {
    [
        Box::new("schema_migrations".to_string()),
        Box::new(e.record_id.clone()),
        Box::new(e.operation.clone()),
        Box::new(json_text(&e.old_values)),
        Box::new(json_text(&e.new_values)),
        Box::new(e.changed_by.clone()),
        Box::new(e.ip_address.clone()),
        Box::new(e.user_agent.clone()),
    ]
}

pub(super) async fn audit(client: &Client, t: &Tables, e: &AuditEntry) -> Result<(), DriverError> {
    if !exists(client, t).await? {
        return Ok(());
    }
    let sql = format!("WITH {} SELECT 1", t.audit_cte(1));
    let params = audit_params(e);
    let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
        params.iter().map(|p| p.as_ref() as _).collect();
    client
        .execute(&sql, &refs)
        .await
        .map_err(|e| db_error(&e))?;
    Ok(())
}

pub(super) async fn audit_log(
    client: &Client,
    t: &Tables,
    limit: usize,
) -> Result<Vec<AuditRecord>, DriverError> {
    let sql = format!(
        "SELECT id, operation, coalesce(record_id, ''), old_values::text, new_values::text, changed_by, changed_at, ip_address, user_agent FROM {} ORDER BY id DESC LIMIT $1",
        t.audit
    );
    let rows = client
        .query(&sql, &[&(limit as i64)])
        .await
        .map_err(|e| db_error(&e))?;
    Ok(rows
        .iter()
        .map(|r| AuditRecord {
            id: r.get(0),
            operation: r.get(1),
            record_id: r.get(2),
            old_values: r
                .get::<_, Option<String>>(3)
                .and_then(|s| serde_json::from_str(&s).ok()),
            new_values: r
                .get::<_, Option<String>>(4)
                .and_then(|s| serde_json::from_str(&s).ok()),
            changed_by: r.get(5),
            changed_at: r.get(6),
            ip_address: r.get(7),
            user_agent: r.get(8),
        })
        .collect())
}

pub(super) async fn metadata(
    client: &Client,
    t: &Tables,
) -> Result<Vec<(String, String)>, DriverError> {
    if !exists(client, t).await? {
        return Ok(vec![]);
    }
    let rows = client
        .query(
            &format!(
                "SELECT key, coalesce(value, '') FROM {} ORDER BY key",
                t.metadata
            ),
            &[],
        )
        .await
        .map_err(|e| db_error(&e))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}
