//! Elasticsearch and OpenSearch (`http(s)://`, `elasticsearch://`, `opensearch://`) over
//! their REST API.
//!
//! Migrations are JSON operations ([`strata_core::docops`]); the history lives in the
//! indices `.strata-migrations`, `.strata-audit` and `.strata-metadata`, and the
//! migration lock is a lease document in `.strata-lock` created with `op_type=create`.

mod client;
mod history;
mod lock;
mod ops;

pub use client::Client;

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::Method;
use serde_json::{json, Value};
use strata_core::docops::Operation;
use strata_core::{
    AppliedMigration, AuditEntry, AuditRecord, Capabilities, Change, Driver, DriverError,
    DriverErrorKind, LockOptions, Migration, SourceError,
};

use crate::docstore::{self, DocStore, Lease};
use crate::HistoryNames;

/// A connection to one cluster.
pub struct EsDriver {
    client: Client,
    names: history::Names,
    lease: Option<Lease>,
}

impl EsDriver {
    /// Connects and asks the cluster who it is, so a wrong URL fails here.
    pub async fn connect(url: &str, names: &HistoryNames) -> Result<Self, DriverError> {
        let client = Client::new(url)?;
        client.ok(Method::GET, "", None).await.map_err(|e| {
            DriverError::new(
                DriverErrorKind::Connect,
                format!(
                    "cannot connect to {}: {}",
                    strata_core::redact(url),
                    e.message
                ),
            )
            .retryable(e.transient || e.kind == DriverErrorKind::Connect)
        })?;
        Ok(EsDriver {
            client,
            names: history::Names::new(names),
            lease: None,
        })
    }

    fn lock_doc(&self) -> Arc<lock::EsLease> {
        Arc::new(lock::EsLease::new(&self.client, &self.names))
    }
}

#[async_trait]
impl DocStore for EsDriver {
    fn check_op(&self, op: &Operation) -> Result<(), SourceError> {
        ops::check(op)
    }

    async fn run_op(&mut self, op: &Operation) -> Result<(), DriverError> {
        ops::run(&self.client, op).await
    }

    async fn put_row(&mut self, row: &AppliedMigration) -> Result<(), DriverError> {
        history::put(&self.client, &self.names, row).await
    }

    async fn set_progress(&mut self, version: &str, done: usize) -> Result<(), DriverError> {
        history::set(
            &self.client,
            &self.names,
            version,
            json!({"statements_done": done}),
        )
        .await
    }

    async fn set_failed(&mut self, version: &str) -> Result<(), DriverError> {
        history::set(
            &self.client,
            &self.names,
            version,
            json!({"success": false}),
        )
        .await
    }

    async fn remove_row(&mut self, version: &str) -> Result<(), DriverError> {
        history::remove(&self.client, &self.names, version).await
    }

    async fn repair_row(
        &mut self,
        version: &str,
        checksum: &str,
        rollback: Option<&str>,
    ) -> Result<(), DriverError> {
        let fields = json!({"checksum": checksum, "rollback": rollback, "success": true});
        history::set(&self.client, &self.names, version, fields).await
    }

    async fn write_audit(&mut self, entry: &AuditEntry) -> Result<(), DriverError> {
        history::audit(&self.client, &self.names, entry).await
    }

    async fn set_metadata(&mut self, pairs: &[(&'static str, String)]) -> Result<(), DriverError> {
        history::set_metadata(&self.client, &self.names, pairs).await
    }

    fn lease_lost(&self) -> bool {
        docstore::lost(&self.lease)
    }
}

#[async_trait]
impl Driver for EsDriver {
    fn kind(&self) -> &'static str {
        "elasticsearch"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            transactional_ddl: false,
        }
    }

    async fn server_version(&mut self) -> Result<String, DriverError> {
        let info = self.client.ok(Method::GET, "", None).await?;
        let number = info
            .pointer("/version/number")
            .and_then(Value::as_str)
            .unwrap_or("unknown");
        let product = match info
            .pointer("/version/distribution")
            .and_then(Value::as_str)
        {
            Some("opensearch") => "OpenSearch",
            _ => "Elasticsearch",
        };
        Ok(format!("{product} {number}"))
    }

    fn check(&self, m: &Migration) -> Result<(), SourceError> {
        docstore::check(self, "Elasticsearch", m)
    }

    fn client(&mut self) -> Option<&mut (dyn Any + Send)> {
        Some(&mut self.client)
    }

    async fn lock(&mut self, opts: &LockOptions) -> Result<(), DriverError> {
        let doc = self.lock_doc();
        docstore::lock(&mut self.lease, doc, opts).await
    }

    async fn unlock(&mut self) -> Result<(), DriverError> {
        docstore::unlock(&mut self.lease).await
    }

    async fn lock_holder(&mut self) -> Result<Option<String>, DriverError> {
        docstore::holder(self.lock_doc().as_ref()).await
    }

    async fn ensure_history(&mut self) -> Result<(), DriverError> {
        history::ensure(&self.client, &self.names).await
    }

    async fn has_history(&mut self) -> Result<bool, DriverError> {
        history::index_exists(&self.client, &self.names.table).await
    }

    async fn applied(&mut self) -> Result<Vec<AppliedMigration>, DriverError> {
        history::applied(&self.client, &self.names).await
    }

    async fn execute(&mut self, change: &Change<'_>) -> Result<Duration, DriverError> {
        docstore::execute(self, change).await
    }

    async fn audit(&mut self, entry: &AuditEntry) -> Result<(), DriverError> {
        history::audit(&self.client, &self.names, entry).await
    }

    async fn audit_log(&mut self, limit: usize) -> Result<Vec<AuditRecord>, DriverError> {
        history::audit_log(&self.client, &self.names, limit).await
    }

    async fn metadata(&mut self) -> Result<Vec<(String, String)>, DriverError> {
        history::metadata(&self.client, &self.names).await
    }
}
