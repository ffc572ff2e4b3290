//! strata's tables in PostgreSQL: the history (`schema_migrations` or as configured),
//! `application_metadata` and `audit_log`, all in one schema.

use chrono::{DateTime, Utc};
use strata_core::{AppliedMigration, AuditEntry, AuditRecord, Checksum, DriverError};
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use super::exec::db_error;
use crate::layout::{Bookkeeping, Found, Names};

/// strata's tables on this connection ([`crate::layout`]) and the statements that
/// use them.
pub(super) struct Tables {
    pub names: Names,
    /// The record statements, prepared once per connection (a round trip saved on
    /// every migration); emptied on reconnect.
    pub prepared: std::sync::Mutex<std::collections::HashMap<String, tokio_postgres::Statement>>,
}

impl Tables {
    pub fn new(names: &Names) -> Self {
        Tables {
            names: names.clone(),
            prepared: Default::default(),
        }
    }

    /// strata's own tables as (schema, table): left out of schema introspection.
    pub fn own_names(&self) -> Vec<(String, String)> {
        let schema = self.names.schema.clone().unwrap_or_default();
        self.names
            .own_names()
            .into_iter()
            .map(|t| (schema.clone(), t))
            .collect()
    }

    /// History row, audit row and metadata in one statement: one round trip, and atomic
    /// with whatever transaction it runs in.
    pub fn record_apply_sql(&self) -> String {
        format!(
            "WITH h AS (INSERT INTO {h} (version, name, description, checksum, execution_time_ms, rollback_sql, success, statements_done, applied_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING 1), \
             {audit}, {meta} SELECT 1",
            h = self.names.history.sql,
            audit = self.audit_cte(10),
            meta = self.meta_cte(18),
        )
    }

    /// [`Tables::record_apply_sql`] rewriting the version's existing row instead; when
    /// no row matches, the final division by zero (22012) aborts the transaction.
    pub fn record_replace_sql(&self) -> String {
        format!(
            "WITH h AS (UPDATE {h} SET name = $2, description = $3, checksum = $4, execution_time_ms = $5, rollback_sql = $6, \
             success = $7, statements_done = $8, applied_by = $9, applied_at = now() WHERE version = $1 RETURNING 1), \
             {audit}, {meta} SELECT 1 / (SELECT count(*)::int FROM h)",
            h = self.names.history.sql,
            audit = self.audit_cte(10),
            meta = self.meta_cte(18),
        )
    }

    pub fn record_repair_sql(&self) -> String {
        format!(
            "WITH h AS (UPDATE {h} SET checksum = $2, rollback_sql = $3 WHERE version = $1 RETURNING 1), {audit}, {meta} SELECT 1",
            h = self.names.history.sql,
            audit = self.audit_cte(4),
            meta = self.meta_cte(12)
        )
    }

    pub fn record_remove_sql(&self) -> String {
        format!(
            "WITH h AS (DELETE FROM {h} WHERE version = $1 RETURNING 1), {audit}, {meta} SELECT 1",
            h = self.names.history.sql,
            audit = self.audit_cte(2),
            meta = self.meta_cte(10)
        )
    }

    /// `a AS (INSERT INTO audit_log ...)` using parameters $n..$n+8.
    fn audit_cte(&self, n: usize) -> String {
        format!(
            "a AS (INSERT INTO {} (table_name, record_id, operation, old_values, new_values, changed_by, ip_address, user_agent) \
             VALUES (${}, ${}, ${}, (${}::text)::jsonb, (${}::text)::jsonb, ${}, ${}, ${}))",
            self.names.audit.sql,
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
            self.names.metadata.sql,
            n,
            n + 1,
            m = self.names.metadata.sql
        )
    }
}

/// What the database holds of strata's tables, remembered in `b`.
pub(super) async fn probe(client: &Client, b: &mut Bookkeeping) -> Result<Found, DriverError> {
    let rows = client
        .query(&b.probe_sql(), &[])
        .await
        .map_err(|e| db_error(&e))?;
    let rows: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    b.classify(&rows)
}

/// Creates strata's tables, or moves an earlier layout's into place, with an audit
/// row for the move, in one transaction; called under the migration lock.
pub(super) async fn ensure(client: &Client, b: &mut Bookkeeping) -> Result<(), DriverError> {
    let found = probe(client, b).await?;
    let sql = b.ensure_sql(found)?;
    if sql.is_empty() {
        return Ok(());
    }
    // Notices about existing objects are noise; the migration lock prevents races.
    let script = format!(
        "SET client_min_messages = warning; BEGIN; {}; COMMIT; RESET client_min_messages",
        sql.join(";\n")
    );
    if let Err(e) = client.batch_execute(&script).await {
        let _ = client
            .batch_execute("ROLLBACK; RESET client_min_messages")
            .await;
        return Err(db_error(&e));
    }
    b.created();
    if let Some(entry) = b.upgrade_audit(found, whoami::username()) {
        audit(client, &Tables::new(&b.current), &entry).await?;
    }
    Ok(())
}

pub(super) async fn applied(
    client: &Client,
    t: &Tables,
) -> Result<Vec<AppliedMigration>, DriverError> {
    let sql = format!(
        "SELECT version, name, description, applied_at, checksum, execution_time_ms, rollback_sql, success, statements_done, applied_by, {} FROM {} ORDER BY id",
        t.names.progress_select(),
        t.names.history.sql
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
            progress: crate::tracked::progress(
                r.get(10),
                r.get::<_, Option<i32>>(11).map(i64::from),
                r.get(12),
            ),
        })
        .collect())
}

fn json_text(v: &Option<serde_json::Value>) -> Option<String> {
    v.as_ref().map(|v| v.to_string())
}

/// Parameters of `audit_cte`, in order.
pub(super) fn audit_params(
    table: &str,
    e: &AuditEntry,
) -> [Box<dyn tokio_postgres::types::ToSql + Sync + Send>; 8] {
    [
        Box::new(table.to_string()),
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
    let sql = format!("WITH {} SELECT 1", t.audit_cte(1));
    let params = audit_params(&t.names.history.name, e);
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
        t.names.audit.sql
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
    let rows = client
        .query(
            &format!(
                "SELECT key, coalesce(value, '') FROM {} ORDER BY key",
                t.names.metadata.sql
            ),
            &[],
        )
        .await
        .map_err(|e| db_error(&e))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}
