//! MongoDB (`mongodb://`, `mongodb+srv://`) through the official driver.
//!
//! Migrations are JSON operations ([`strata_core::docops`]) run one by one as database
//! commands; the history lives in `_migrations`, `_migrations_audit` and
//! `_migrations_metadata`, and the migration lock is a lease document in
//! `_migrations_lock`, created only if absent (its `_id` is the unique key).

mod history;
mod lock;
mod ops;

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mongodb::bson::doc;
use mongodb::options::ClientOptions;
use mongodb::{Client, Database};
use strata_core::docops::Operation;
use strata_core::{
    AppliedMigration, AuditEntry, AuditRecord, Capabilities, Change, Driver, DriverError,
    DriverErrorKind, LockOptions, Migration, SourceError,
};

use crate::docstore::{self, DocStore, Lease};
use crate::HistoryNames;

/// A connection to one MongoDB database.
pub struct MongoDriver {
    db: Database,
    names: history::Names,
    lease: Option<Lease>,
}

impl MongoDriver {
    /// Connects; the URL's path names the database (`mongodb://host:27017/app`).
    pub async fn connect(url: &str, names: &HistoryNames) -> Result<Self, DriverError> {
        let invalid = |m: String| DriverError::new(DriverErrorKind::InvalidUrl, m);
        let mut opts = ClientOptions::parse(url).await.map_err(|e| {
            invalid(format!(
                "invalid MongoDB URL {}: {e}",
                strata_core::redact(url)
            ))
        })?;
        opts.server_selection_timeout = Some(Duration::from_secs(10));
        opts.app_name = Some("strata".into());
        let Some(database) = opts.default_database.clone() else {
            return Err(invalid(format!(
                "{} names no database; add one as the path, e.g. mongodb://localhost:27017/app",
                strata_core::redact(url)
            )));
        };
        let client = Client::with_options(opts).map_err(|e| connect_error(url, &e))?;
        let db = client.database(&database);
        db.run_command(doc! {"ping": 1})
            .await
            .map_err(|e| connect_error(url, &e))?;
        Ok(MongoDriver {
            db,
            names: history::Names::new(names),
            lease: None,
        })
    }

    fn lock_doc(&self) -> Arc<lock::MongoLease> {
        Arc::new(lock::MongoLease::new(&self.db, &self.names))
    }
}

fn connect_error(url: &str, e: &mongodb::error::Error) -> DriverError {
    DriverError::new(
        DriverErrorKind::Connect,
        format!("cannot connect to {}: {e}", strata_core::redact(url)),
    )
    .retryable(true)
}

/// A driver error as a strata error: lost connections and transient transaction errors
/// are retryable.
pub(crate) fn db_error(e: &mongodb::error::Error) -> DriverError {
    use mongodb::error::ErrorKind;
    let transient = matches!(
        *e.kind,
        ErrorKind::Io(_)
            | ErrorKind::ServerSelection { .. }
            | ErrorKind::ConnectionPoolCleared { .. }
    ) || e.contains_label("TransientTransactionError")
        || e.contains_label("RetryableWriteError");
    let mut err = DriverError::query(e.to_string()).retryable(transient);
    err.code = code(e).map(|c| c.to_string());
    err
}

/// The server's error code, when the error carries one.
pub(crate) fn code(e: &mongodb::error::Error) -> Option<i32> {
    use mongodb::error::{ErrorKind, WriteFailure};
    match &*e.kind {
        ErrorKind::Command(c) => Some(c.code),
        ErrorKind::Write(WriteFailure::WriteError(w)) => Some(w.code),
        ErrorKind::Write(WriteFailure::WriteConcernError(w)) => Some(w.code),
        ErrorKind::InsertMany(m) => m
            .write_errors
            .as_ref()
            .and_then(|w| w.first())
            .map(|w| w.code),
        _ => None,
    }
}

#[async_trait]
impl DocStore for MongoDriver {
    fn check_op(&self, op: &Operation) -> Result<(), SourceError> {
        ops::check(op)
    }

    async fn run_op(&mut self, op: &Operation) -> Result<(), DriverError> {
        ops::run(&self.db, op).await
    }

    async fn put_row(&mut self, row: &AppliedMigration) -> Result<(), DriverError> {
        history::put(&self.db, &self.names, row).await
    }

    async fn set_progress(&mut self, version: &str, done: usize) -> Result<(), DriverError> {
        let set = doc! {"statements_done": done as i64};
        history::set(&self.db, &self.names, version, set).await
    }

    async fn set_failed(&mut self, version: &str) -> Result<(), DriverError> {
        history::set(&self.db, &self.names, version, doc! {"success": false}).await
    }

    async fn remove_row(&mut self, version: &str) -> Result<(), DriverError> {
        history::remove(&self.db, &self.names, version).await
    }

    async fn repair_row(
        &mut self,
        version: &str,
        checksum: &str,
        rollback: Option<&str>,
    ) -> Result<(), DriverError> {
        let set = doc! {"checksum": checksum, "rollback": rollback, "success": true};
        history::set(&self.db, &self.names, version, set).await
    }

    async fn write_audit(&mut self, entry: &AuditEntry) -> Result<(), DriverError> {
        history::audit(&self.db, &self.names, entry).await
    }

    async fn set_metadata(&mut self, pairs: &[(&'static str, String)]) -> Result<(), DriverError> {
        history::set_metadata(&self.db, &self.names, pairs).await
    }

    fn lease_lost(&self) -> bool {
        docstore::lost(&self.lease)
    }
}

#[async_trait]
impl Driver for MongoDriver {
    fn kind(&self) -> &'static str {
        "mongodb"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            transactional_ddl: false,
        }
    }

    async fn server_version(&mut self) -> Result<String, DriverError> {
        let info = self
            .db
            .run_command(doc! {"buildInfo": 1})
            .await
            .map_err(|e| db_error(&e))?;
        Ok(format!(
            "MongoDB {}",
            info.get_str("version").unwrap_or("unknown")
        ))
    }

    fn check(&self, m: &Migration) -> Result<(), SourceError> {
        docstore::check(self, "MongoDB", m)
    }

    fn client(&mut self) -> Option<&mut (dyn Any + Send)> {
        Some(&mut self.db)
    }

    async fn lock(&mut self, opts: &LockOptions) -> Result<(), DriverError> {
        // Sessions end with their connection in a pool, so the lock is always a lease.
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
        history::ensure(&self.db, &self.names).await
    }

    async fn has_history(&mut self) -> Result<bool, DriverError> {
        history::exists(&self.db, &self.names).await
    }

    async fn applied(&mut self) -> Result<Vec<AppliedMigration>, DriverError> {
        history::applied(&self.db, &self.names).await
    }

    async fn execute(&mut self, change: &Change<'_>) -> Result<Duration, DriverError> {
        docstore::execute(self, change).await
    }

    async fn audit(&mut self, entry: &AuditEntry) -> Result<(), DriverError> {
        history::audit(&self.db, &self.names, entry).await
    }

    async fn audit_log(&mut self, limit: usize) -> Result<Vec<AuditRecord>, DriverError> {
        history::audit_log(&self.db, &self.names, limit).await
    }

    async fn metadata(&mut self) -> Result<Vec<(String, String)>, DriverError> {
        history::metadata(&self.db, &self.names).await
    }
}
