//! PostgreSQL: one `tokio-postgres` connection per run, a session advisory lock, and
//! each migration with its history row, audit row and metadata in one transaction
//! (PostgreSQL's DDL is transactional, so a failed migration leaves nothing behind).

mod exec;
mod history;
mod lock;

use std::time::Duration;

use async_trait::async_trait;
use strata_core::{
    AppliedMigration, AuditEntry, AuditRecord, Capabilities, Change, Driver, DriverError,
    DriverErrorKind,
};
use tokio_postgres::{Client, NoTls};

use crate::HistoryNames;

/// A connection to PostgreSQL.
pub struct PgDriver {
    client: Client,
    /// Quoted, schema-qualified names of strata's tables.
    tables: history::Tables,
    lock_key: i64,
}

impl PgDriver {
    /// Connects. The URL's password never appears in errors.
    pub async fn connect(url: &str, names: &HistoryNames) -> Result<Self, DriverError> {
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
            DriverError::new(
                DriverErrorKind::Connect,
                format!("invalid PostgreSQL URL {}: {e}", strata_core::redact(url)),
            )
        })?;
        if config.get_application_name().is_none() {
            config.application_name("strata");
        }
        config.connect_timeout(Duration::from_secs(10));
        let (client, connection) = config.connect(NoTls).await.map_err(|e| {
            DriverError::new(
                DriverErrorKind::Connect,
                format!(
                    "cannot connect to {}: {}",
                    strata_core::redact(url),
                    error_text(&e)
                ),
            )
        })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("postgres connection closed: {e}");
            }
        });
        // Qualify strata's tables with the schema they belong in, so a migration that
        // changes search_path cannot make the history insert land elsewhere.
        let schema = match &names.schema {
            Some(s) => s.clone(),
            None => {
                let row = client
                    .query_one("SELECT current_schema()", &[])
                    .await
                    .map_err(|e| exec::db_error(&e))?;
                row.get::<_, Option<String>>(0)
                    .unwrap_or_else(|| "public".into())
            }
        };
        let tables = history::Tables::new(&schema, &names.table);
        let lock_key = crate::fnv1a(&format!("strata:{schema}.{}", names.table));
        Ok(PgDriver {
            client,
            tables,
            lock_key,
        })
    }
}

/// A tokio-postgres error as text, with the server's message when there is one.
pub(crate) fn error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.message().to_string(),
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(inner) = src {
                s = format!("{s}: {inner}");
                src = inner.source();
            }
            s
        }
    }
}

#[async_trait]
impl Driver for PgDriver {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            transactional_ddl: true,
        }
    }

    async fn server_version(&mut self) -> Result<String, DriverError> {
        let row = self
            .client
            .query_one("SELECT version()", &[])
            .await
            .map_err(|e| exec::db_error(&e))?;
        Ok(row.get(0))
    }

    async fn lock(&mut self, timeout: Duration) -> Result<(), DriverError> {
        lock::acquire(&self.client, self.lock_key, timeout).await
    }

    async fn unlock(&mut self) -> Result<(), DriverError> {
        lock::release(&self.client, self.lock_key).await
    }

    async fn ensure_history(&mut self) -> Result<(), DriverError> {
        history::ensure(&self.client, &self.tables).await
    }

    async fn has_history(&mut self) -> Result<bool, DriverError> {
        history::exists(&self.client, &self.tables).await
    }

    async fn applied(&mut self) -> Result<Vec<AppliedMigration>, DriverError> {
        history::applied(&self.client, &self.tables).await
    }

    async fn execute(&mut self, change: &Change<'_>) -> Result<Duration, DriverError> {
        exec::execute(&self.client, &self.tables, change).await
    }

    async fn audit(&mut self, entry: &AuditEntry) -> Result<(), DriverError> {
        history::audit(&self.client, &self.tables, entry).await
    }

    async fn audit_log(&mut self, limit: usize) -> Result<Vec<AuditRecord>, DriverError> {
        history::audit_log(&self.client, &self.tables, limit).await
    }

    async fn metadata(&mut self) -> Result<Vec<(String, String)>, DriverError> {
        history::metadata(&self.client, &self.tables).await
    }
}
