//! The seam between the core and a database: [`Driver`], spoken in the verbs of a run
//! (lock, read history, execute a change, unlock), never raw SQL from the core.
//!
//! A driver receives scripts as text plus metadata; splitting statements, mapping
//! server errors to file lines and keeping the history row in the migration's own
//! transaction are its job.

use std::any::Any;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::LockMode;
use crate::error::{DriverError, DriverErrorKind, SourceError};
use crate::migration::{AppliedMigration, Format, Migration, Script};
use crate::schema::Schema;

/// What a database can do, which changes how a run behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    /// DDL can be rolled back (PostgreSQL, SQLite), so a failed migration leaves nothing.
    pub transactional_ddl: bool,
}

/// What strata found out about the server it is connected to, so the default
/// configuration does the right thing on it and `info`/`health` can say so.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Topology {
    /// `primary`, `standby` (a replica in recovery) or `read-only`; `None` where the
    /// engine has no such notion (an embedded file).
    pub role: Option<String>,
    /// Why this server accepts no writes, when it does not: `up` and every other
    /// change are refused at once instead of failing on their first statement.
    pub read_only: Option<String>,
    /// The connection is encrypted (TLS); `None` for an embedded engine.
    pub encrypted: Option<bool>,
    /// A multi-primary cluster the server belongs to (`galera`), when detected.
    pub cluster: Option<String>,
    /// Which migration lock the default configuration takes here, and why, when
    /// detection chose it (`lease: a Galera node's GET_LOCK is not cluster-wide`).
    pub lock: Option<String>,
}

/// What a change does to the history table, in the same transaction as its script.
// The variants are documented; their fields are the history row's columns.
#[allow(missing_docs)]
#[derive(Debug, Clone)]
pub enum Record {
    /// Write the row; the driver fills in `execution_time_ms`. A plain insert, so a
    /// second run that also believes it holds the lock fails in the database instead of
    /// applying the migration twice, unless [`Change::replaces`] says the version
    /// already has a row (then exactly that row is rewritten).
    Apply(AppliedMigration),
    /// Delete the row of this version.
    Remove { version: String },
    /// `repair`: re-record an edited migration's checksum and rollback script, keeping
    /// when and by whom it was applied.
    Repair {
        version: String,
        checksum: String,
        rollback_sql: Option<String>,
    },
}

impl Record {
    /// The version whose row this record writes or removes.
    pub fn version(&self) -> &str {
        match self {
            Record::Apply(r) => &r.version,
            Record::Remove { version } | Record::Repair { version, .. } => version,
        }
    }
}

/// One row for `audit_log`.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    /// `apply`, `rollback`, `stamp`, `baseline`, `repair`, `failure`.
    pub operation: String,
    /// The migration version.
    pub record_id: String,
    /// The row's state before the change, as JSON.
    pub old_values: Option<serde_json::Value>,
    /// What the change wrote, as JSON (for a failure: the error).
    pub new_values: Option<serde_json::Value>,
    /// Who acted: the OS user, or the API token's name.
    pub changed_by: String,
    /// The API caller's address, for requests through the REST API.
    pub ip_address: Option<String>,
    /// The API caller's `User-Agent`.
    pub user_agent: Option<String>,
}

/// A row read back from `audit_log`.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    /// The row's id, increasing.
    pub id: i64,
    /// `apply`, `rollback`, `failure`, `stamp`, `baseline`, `repair`, `api_*`.
    pub operation: String,
    /// The migration version (a request path for `api_*` rows).
    pub record_id: String,
    /// The state before the change, as JSON.
    pub old_values: Option<serde_json::Value>,
    /// What the change wrote, as JSON.
    pub new_values: Option<serde_json::Value>,
    /// Who acted.
    pub changed_by: Option<String>,
    /// When.
    pub changed_at: DateTime<Utc>,
    /// The API caller's address.
    pub ip_address: Option<String>,
    /// The API caller's `User-Agent`.
    pub user_agent: Option<String>,
}

impl AuditRecord {
    /// The row as `history --json` and `GET /history` show a migration event, in the
    /// words `status` uses (`version`, `name`, `execution_time_ms`), with `at` and `by`
    /// for when and who; `GET /audit` keeps the table's own column names.
    pub fn to_event_json(&self) -> serde_json::Value {
        let values = self.new_values.as_ref().or(self.old_values.as_ref());
        let field = |k: &str| values.and_then(|v| v.get(k)).cloned();
        serde_json::json!({
            "id": self.id,
            "operation": self.operation,
            "version": self.record_id,
            "name": field("name").unwrap_or(serde_json::Value::Null),
            "at": self.changed_at,
            "by": self.changed_by,
            "execution_time_ms": field("execution_time_ms").unwrap_or(serde_json::Value::Null),
            "error": field("error").unwrap_or(serde_json::Value::Null),
            "ip_address": self.ip_address,
            "user_agent": self.user_agent,
            "old_values": self.old_values,
            "new_values": self.new_values,
        })
    }
}

/// One unit of work: a script (none for `stamp`), its history change, its audit row and
/// metadata updates, committed together (or, for non-transactional scripts, tracked
/// statement by statement: a `success=false` row first, `statements_done` after each).
#[derive(Debug, Clone)]
pub struct Change<'a> {
    /// The script to run; `None` for a stamp, baseline or repair.
    pub script: Option<&'a Script>,
    /// The script's text, read once by the migrator just before the change ("" with no
    /// script).
    pub sql: &'a str,
    /// Run the script and the bookkeeping in one transaction.
    pub transactional: bool,
    /// The history change.
    pub record: Record,
    /// The version already has a history row that this change rewrites: a failed run
    /// being resumed, a repeatable migration applied again, a code migration finishing.
    pub replaces: bool,
    /// The audit row written with the change.
    pub audit: AuditEntry,
    /// `application_metadata` keys to upsert.
    pub metadata: Vec<(&'static str, String)>,
    /// Skip this many statements (resuming a failed non-transactional run).
    pub resume_from: usize,
    /// The statement timeout.
    pub timeout: Duration,
    /// How long one statement may wait for a table lock (`lock_wait_ms`) before failing
    /// with a retryable error, so it never queues every other query behind it.
    pub lock_wait: Duration,
    /// Session setup run first (`init_sql`).
    pub init_sql: &'a [String],
    /// Log every statement (`DB_ECHO=true`).
    pub echo: bool,
}

/// How to take the migration lock.
#[derive(Debug, Clone, Copy)]
pub struct LockOptions {
    /// The run's `lock_timeout`: how long a wait for the lock may last, this one (when
    /// `wait`) and any re-acquisition during the run (SQLite's checkpoints).
    pub timeout: Duration,
    /// False: one attempt, a held lock answers `LockTimeout` at once (the core tries
    /// so first, to report a wait only when there is one).
    pub wait: bool,
    /// Session lock or lease ([`LockMode`]).
    pub mode: LockMode,
    /// Lease mode: the lease's length; it is renewed at a third of it while held.
    pub lease: Duration,
    /// The user chose `mode` (`lock` in strata.toml). Otherwise a driver takes the lock
    /// that is exact on the topology it detected (the lease on a Galera node).
    pub explicit: bool,
}

impl LockOptions {
    /// How long this acquisition may wait: `timeout`, or nothing for a single attempt.
    pub fn patience(&self) -> Duration {
        if self.wait {
            self.timeout
        } else {
            Duration::ZERO
        }
    }
}

/// A database behind strata. One connection; every method may be called in any order,
/// but only [`crate::Migrator`] calls `lock`/`unlock`.
#[async_trait]
pub trait Driver: Send {
    /// `postgres`, `sqlite`, ...
    fn kind(&self) -> &'static str;

    /// A read-only query's rows as text (NULL as `None`), for reading what other tools
    /// keep in the database ([`crate::adopt`]). `None` where the engine has no SQL
    /// (document stores).
    async fn query_text(
        &mut self,
        sql: &str,
    ) -> Result<Option<Vec<Vec<Option<String>>>>, DriverError> {
        let _ = sql;
        Ok(None)
    }
    /// What the engine can do ([`Capabilities`]).
    fn capabilities(&self) -> Capabilities;
    /// The server's version string.
    async fn server_version(&mut self) -> Result<String, DriverError>;
    /// Takes the database-wide migration lock, waiting up to `opts.timeout`
    /// ([`crate::DriverErrorKind::LockTimeout`] after, naming the holder).
    async fn lock(&mut self, opts: &LockOptions) -> Result<(), DriverError>;
    /// Releases the migration lock taken by [`Driver::lock`].
    async fn unlock(&mut self) -> Result<(), DriverError>;
    /// The server's role and connection ([`Topology`]); nothing known by default.
    async fn topology(&mut self) -> Result<Topology, DriverError> {
        Ok(Topology::default())
    }
    /// Who holds the migration lock now, if anyone (for `health`).
    async fn lock_holder(&mut self) -> Result<Option<String>, DriverError> {
        Ok(None)
    }
    /// Drops the connection and opens a new one (after a transient failure). Session
    /// state, the migration lock included, is gone afterwards.
    async fn reconnect(&mut self) -> Result<(), DriverError> {
        Ok(())
    }
    /// Called by the migrator between two steps of a run, under the lock: where the lock
    /// is the database's own write lock (SQLite), commits what is done and takes the
    /// lock again, so a killed run keeps every migration that finished and other
    /// writers get in between migrations. True when the lock was let go (the history
    /// may have changed meanwhile).
    async fn checkpoint(&mut self) -> Result<bool, DriverError> {
        Ok(false)
    }
    /// Creates the history, metadata and audit tables if missing.
    async fn ensure_history(&mut self) -> Result<(), DriverError>;
    /// True when the history table exists.
    async fn has_history(&mut self) -> Result<bool, DriverError>;
    /// Every history row, in apply order; empty when the table does not exist.
    async fn applied(&mut self) -> Result<Vec<AppliedMigration>, DriverError>;
    /// Runs a change; returns the time its script took.
    async fn execute(&mut self, change: &Change<'_>) -> Result<Duration, DriverError>;
    /// Writes an audit row on its own (failures: the migration's transaction rolled back).
    async fn audit(&mut self, entry: &AuditEntry) -> Result<(), DriverError>;
    /// The newest `limit` audit rows, newest first.
    async fn audit_log(&mut self, limit: usize) -> Result<Vec<AuditRecord>, DriverError>;
    /// `application_metadata` as key/value pairs.
    async fn metadata(&mut self) -> Result<Vec<(String, String)>, DriverError>;
    /// Refuses, before anything runs, a migration this database cannot execute (JSON
    /// operations on a SQL database, SQL on a document store, an unknown operation).
    fn check(&self, m: &Migration) -> Result<(), SourceError> {
        if m.format == Format::Operations {
            return Err(SourceError::new(
                &m.up.path,
                Some(1),
                format!(
                    "this is a document-store migration (JSON operations) but the database is {}",
                    self.kind()
                ),
            )
            .with_help("keep MongoDB and Elasticsearch migrations in their own directory ([databases.NAME] dir)"));
        }
        Ok(())
    }
    /// The driver's native client, for code migrations ([`crate::CodeContext::client`]).
    fn client(&mut self) -> Option<&mut (dyn Any + Send)> {
        None
    }
    /// The file extension of this engine's backups (`dump`, `sqlite3`, ...).
    fn backup_extension(&self) -> &'static str {
        "backup"
    }
    /// Writes a consistent backup of the whole database to `dest`.
    async fn backup(&mut self, dest: &Path) -> Result<(), DriverError> {
        let _ = dest;
        Err(unsupported(self.kind(), "backups are"))
    }
    /// Replaces the database's contents with the backup at `src`.
    async fn restore(&mut self, src: &Path) -> Result<(), DriverError> {
        let _ = src;
        Err(unsupported(self.kind(), "restoring backups is"))
    }
    /// The database's schema without strata's own tables (`verify --roundtrip`, `diff`,
    /// `squash`).
    async fn schema(&mut self) -> Result<Schema, DriverError> {
        Err(unsupported(self.kind(), "schema introspection is"))
    }
    /// Runs a script outside any migration, with no history (`diff` loads a declared
    /// schema into a scratch database with it).
    async fn run_script(&mut self, script: &Script) -> Result<(), DriverError> {
        let _ = script;
        Err(unsupported(self.kind(), "running a plain script is"))
    }
}

fn unsupported(kind: &str, what: &str) -> DriverError {
    DriverError::new(
        DriverErrorKind::Other,
        format!("{what} not supported for {kind} yet"),
    )
}
