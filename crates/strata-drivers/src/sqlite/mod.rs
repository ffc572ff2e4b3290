//! SQLite, the embedded default (`sqlite://strata.db`).
//!
//! The migration lock is SQLite's own write lock: `lock` opens a `BEGIN IMMEDIATE`
//! transaction that the whole command runs in, and each migration runs in a savepoint
//! inside it, with its history row. A failed migration rolls back to its savepoint and
//! the migrations before it commit at `unlock`; a killed process leaves the file as it
//! was before the command. Non-transactional migrations commit what came before, run in
//! autocommit mode with a `success=false` row tracking progress, and take the lock again.

mod exec;
mod history;
mod lock;
mod schema;

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, DatabaseName};
use strata_core::schema::Schema;
use strata_core::{
    AppliedMigration, AuditEntry, AuditRecord, Capabilities, Change, Driver, DriverError,
    DriverErrorKind, LockOptions, Script,
};

use crate::HistoryNames;

/// A connection to a SQLite database file.
pub struct SqliteDriver {
    /// Opened on first use; read-only commands on a missing file never create it.
    conn: Option<Connection>,
    path: PathBuf,
    tables: history::Tables,
    /// Inside the command's `BEGIN IMMEDIATE`.
    locked: bool,
    lock_timeout: Duration,
}

/// The file a `sqlite:` URL names (`sqlite://rel.db`, `sqlite:///abs.db`, `sqlite:rel.db`,
/// `sqlite::memory:`).
pub fn path_of(url: &str) -> PathBuf {
    crate::sqlite_style_path(url)
}

impl SqliteDriver {
    /// Opens (creating if missing) the database file.
    pub fn open(url: &str, names: &HistoryNames) -> Result<Self, DriverError> {
        let path = path_of(url);
        let mut d = SqliteDriver {
            conn: None,
            path,
            tables: history::Tables::new(&names.table),
            locked: false,
            lock_timeout: Duration::from_secs(60),
        };
        if d.path.as_os_str() == ":memory:" || d.path.exists() {
            d.conn()?;
        }
        Ok(d)
    }

    /// The connection, creating the database file if needed.
    fn conn(&mut self) -> Result<&Connection, DriverError> {
        if self.conn.is_none() {
            let path = &self.path;
            let conn = if path.as_os_str() == ":memory:" {
                Connection::open_in_memory()
            } else {
                Connection::open(path)
            }
            .map_err(|e| {
                DriverError::new(
                    DriverErrorKind::Connect,
                    format!("cannot open SQLite database {}: {e}", path.display()),
                )
            })?;
            self.conn = Some(conn);
        }
        Ok(self.conn.as_ref().expect("set just above"))
    }

    /// The connection if the database exists; None for a file not created yet.
    fn existing(&self) -> Option<&Connection> {
        self.conn.as_ref()
    }
}

/// A rusqlite error; busy/locked (another writer) is transient.
pub(crate) fn sqlite_error(e: &rusqlite::Error) -> DriverError {
    let mut err = DriverError::query(e.to_string());
    if let rusqlite::Error::SqliteFailure(f, msg) = e {
        err.code = Some(format!("{:?}", f.code));
        if let Some(m) = msg {
            err.message = m.clone();
        }
        err.transient = matches!(
            f.code,
            rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
        );
    }
    err
}

#[async_trait]
impl Driver for SqliteDriver {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            transactional_ddl: true,
        }
    }

    async fn server_version(&mut self) -> Result<String, DriverError> {
        Ok(format!("SQLite {}", rusqlite::version()))
    }

    async fn schema(&mut self) -> Result<Schema, DriverError> {
        let own = self.tables.own_names();
        schema::introspect(self.conn()?, &own)
    }

    async fn run_script(&mut self, script: &Script) -> Result<(), DriverError> {
        let sql = script.text()?;
        self.conn()?.execute_batch(&sql).map_err(|e| {
            let mut err = sqlite_error(&e);
            err.detail = Some(format!("in {}", script.path.display()));
            err
        })
    }

    /// SQLite's write lock is a file lock: it works without a server session, so
    /// lease mode uses it too.
    async fn lock(&mut self, opts: &LockOptions) -> Result<(), DriverError> {
        let timeout = opts.timeout;
        self.lock_timeout = timeout;
        lock::acquire(self.conn()?, timeout)?;
        self.locked = true;
        Ok(())
    }

    async fn unlock(&mut self) -> Result<(), DriverError> {
        if !self.locked {
            return Ok(());
        }
        self.locked = false;
        lock::release(self.conn()?)
    }

    /// The native client, for code migrations.
    fn client(&mut self) -> Option<&mut (dyn std::any::Any + Send)> {
        self.conn
            .as_mut()
            .map(|c| c as &mut (dyn std::any::Any + Send))
    }

    async fn ensure_history(&mut self) -> Result<(), DriverError> {
        self.conn()?;
        history::ensure(self.conn.as_ref().expect("opened above"), &self.tables)
    }

    async fn has_history(&mut self) -> Result<bool, DriverError> {
        self.existing()
            .map_or(Ok(false), |c| history::exists(c, &self.tables))
    }

    async fn applied(&mut self) -> Result<Vec<AppliedMigration>, DriverError> {
        self.existing()
            .map_or(Ok(vec![]), |c| history::applied(c, &self.tables))
    }

    async fn execute(&mut self, change: &Change<'_>) -> Result<Duration, DriverError> {
        self.conn()?;
        exec::execute(
            self.conn.as_ref().expect("opened above"),
            &self.tables,
            change,
            self.locked,
            self.lock_timeout,
        )
    }

    async fn audit(&mut self, entry: &AuditEntry) -> Result<(), DriverError> {
        self.existing()
            .map_or(Ok(()), |c| history::audit(c, &self.tables, entry))
    }

    async fn audit_log(&mut self, limit: usize) -> Result<Vec<AuditRecord>, DriverError> {
        self.existing()
            .map_or(Ok(vec![]), |c| history::audit_log(c, &self.tables, limit))
    }

    async fn metadata(&mut self) -> Result<Vec<(String, String)>, DriverError> {
        self.existing()
            .map_or(Ok(vec![]), |c| history::metadata(c, &self.tables))
    }

    /// Probes the write lock from a second connection without waiting.
    async fn lock_holder(&mut self) -> Result<Option<String>, DriverError> {
        if self.locked || self.path.as_os_str() == ":memory:" || !self.path.exists() {
            return Ok(None);
        }
        let probe = Connection::open(&self.path).map_err(|e| sqlite_error(&e))?;
        match probe.execute_batch("BEGIN IMMEDIATE; ROLLBACK") {
            Ok(()) => Ok(None),
            Err(rusqlite::Error::SqliteFailure(f, _))
                if matches!(
                    f.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) =>
            {
                Ok(Some(
                    "another connection (a strata run or an open write transaction)".into(),
                ))
            }
            Err(e) => Err(sqlite_error(&e)),
        }
    }

    async fn reconnect(&mut self) -> Result<(), DriverError> {
        // Dropping the connection rolls back anything uncommitted and frees the lock.
        self.conn = None;
        self.locked = false;
        if self.path.as_os_str() == ":memory:" || self.path.exists() {
            self.conn()?;
        }
        Ok(())
    }

    fn backup_extension(&self) -> &'static str {
        "sqlite3"
    }

    /// SQLite's online backup API: a consistent copy while others keep reading. It
    /// reads through a connection of its own: ours may be inside the command's write
    /// transaction, which the backup API cannot read from.
    async fn backup(&mut self, dest: &Path) -> Result<(), DriverError> {
        if self.path.as_os_str() == ":memory:" {
            return self
                .conn()?
                .backup(DatabaseName::Main, dest, None)
                .map_err(|e| sqlite_error(&e));
        }
        self.conn()?;
        let reader =
            Connection::open_with_flags(&self.path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .map_err(|e| sqlite_error(&e))?;
        reader
            .busy_timeout(self.lock_timeout)
            .map_err(|e| sqlite_error(&e))?;
        reader
            .backup(DatabaseName::Main, dest, None)
            .map_err(|e| sqlite_error(&e))
    }

    /// Copies the backup's pages over the database in one write transaction.
    async fn restore(&mut self, src: &Path) -> Result<(), DriverError> {
        self.conn()?;
        let conn = self.conn.as_mut().expect("opened above");
        // The restore is a write transaction of its own: step out of the command's
        // lock transaction (nothing is pending in it) and take the lock back after.
        if self.locked {
            lock::release(conn)?;
        }
        let restored = conn
            .restore(
                DatabaseName::Main,
                src,
                None::<fn(rusqlite::backup::Progress)>,
            )
            .map_err(|e| sqlite_error(&e));
        if self.locked {
            lock::acquire(conn, self.lock_timeout)?;
        }
        restored
    }
}
