//! SQLite, the embedded default (`sqlite://strata.db`).
//!
//! The migration lock is SQLite's own write lock: `lock` opens a `BEGIN IMMEDIATE`
//! transaction, and each migration runs in a savepoint inside it, with its history
//! row. Between two migrations the transaction commits and the lock is taken again
//! (`checkpoint`): a killed process keeps every migration that finished, and the
//! migrator re-reads the history after each gap, so a run that slipped in is never
//! repeated. A failed migration rolls back to its savepoint. Non-transactional migrations commit what came before, run in
//! autocommit mode with a `success=false` row tracking progress, and take the lock again.

mod exec;
mod history;
mod lock;
mod schema;

use crate::history::InProcess;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, DatabaseName};
use strata_core::schema::Schema;
use strata_core::{
    AppliedMigration, AuditEntry, AuditRecord, Capabilities, Change, Driver, DriverError,
    DriverErrorKind, LockOptions, Script,
};

use crate::layout::{Bookkeeping, Dialect};
use crate::{Handle, HistoryNames};

/// A connection to a SQLite database file: one strata opened from a URL
/// ([`SqliteDriver::open`]) or the application's own ([`SqliteDriver::borrowed`]).
pub struct SqliteDriver<'a> {
    /// Opened on first use; read-only commands on a missing file never create it.
    conn: Option<Handle<'a, Connection>>,
    path: PathBuf,
    /// strata's tables ([`crate::layout`]).
    book: Bookkeeping,
    /// Inside the command's `BEGIN IMMEDIATE`.
    locked: bool,
    /// This driver created the file: a run that wrote nothing removes it again.
    created: bool,
    lock_timeout: Duration,
}

/// The file a `sqlite:` URL names (`sqlite://rel.db`, `sqlite:///abs.db`, `sqlite:rel.db`,
/// `sqlite::memory:`).
pub fn path_of(url: &str) -> PathBuf {
    crate::sqlite_style_path(url)
}

impl SqliteDriver<'static> {
    /// Opens (creating if missing) the database file.
    pub fn open(url: &str, names: &HistoryNames) -> Result<Self, DriverError> {
        let path = path_of(url);
        let mut d = SqliteDriver {
            conn: None,
            path,
            book: Bookkeeping::new(Dialect::Sqlite, names, None, false),
            locked: false,
            created: false,
            lock_timeout: Duration::from_secs(60),
        };
        if d.path.as_os_str() == ":memory:" || d.path.exists() {
            d.conn()?;
        }
        Ok(d)
    }
}

impl<'a> SqliteDriver<'a> {
    /// Runs on the application's own connection. Each migration commits on its own,
    /// as with a URL; the connection must not be inside a transaction, and its busy
    /// timeout becomes the run's `lock_timeout`.
    pub fn borrowed(conn: &'a mut Connection, names: &HistoryNames) -> Self {
        let path = match conn.path() {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => PathBuf::from(":memory:"),
        };
        SqliteDriver {
            conn: Some(Handle::Borrowed(conn)),
            path,
            book: Bookkeeping::new(Dialect::Sqlite, names, None, false),
            locked: false,
            created: false,
            lock_timeout: Duration::from_secs(60),
        }
    }

    /// The connection, creating the database file if needed.
    fn conn(&mut self) -> Result<&Connection, DriverError> {
        if self.conn.is_none() {
            let path = &self.path;
            self.created = path.as_os_str() != ":memory:" && !path.exists();
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
            self.conn = Some(Handle::Owned(conn));
        }
        Ok(self.conn.as_deref().expect("set just above"))
    }

    fn is_borrowed(&self) -> bool {
        self.conn.as_ref().is_some_and(Handle::is_borrowed)
    }

    /// The connection and strata's tables, when the database has them (probed anew:
    /// another process may have created or moved them).
    fn history(&mut self) -> Result<Option<(&Connection, &history::Tables)>, DriverError> {
        let Some(conn) = self.conn.as_deref() else {
            return Ok(None);
        };
        conn.probe(&mut self.book)?;
        Ok(self.book.has_history()?.then(|| (conn, self.book.active())))
    }
}

/// A run dropped midway (its future cancelled, a panic) must not leave the
/// application's own connection inside strata's write transaction: the application's
/// next statements would join it, and hold SQLite's write lock.
impl Drop for SqliteDriver<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.as_deref().filter(|_| self.is_borrowed()) {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
        }
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
impl Driver for SqliteDriver<'_> {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    async fn query_text(
        &mut self,
        sql: &str,
    ) -> Result<Option<Vec<Vec<Option<String>>>>, DriverError> {
        crate::history::query_text(self.conn.as_deref(), sql)
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
        let own = self.book.active().own_names();
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
        // Checkpoints re-take the lock with the run's full timeout, even when this
        // first acquisition was a single attempt.
        self.lock_timeout = opts.timeout;
        lock::acquire(self.conn()?, opts.patience(), opts.timeout)?;
        self.locked = true;
        Ok(())
    }

    /// Each migration commits on its own: a killed run keeps what finished, and the
    /// application's writers are not locked out for the whole run.
    async fn checkpoint(&mut self) -> Result<bool, DriverError> {
        if !self.locked {
            return Ok(false);
        }
        let timeout = self.lock_timeout;
        let conn = self.conn()?;
        // `data_version` moves only when another connection commits: the history is
        // re-read only when someone did write in the gap.
        let version = |c: &Connection| {
            c.query_row("PRAGMA data_version", [], |r| r.get::<_, i64>(0))
                .map_err(|e| sqlite_error(&e))
        };
        // Read while still holding the lock: nobody else can have committed since.
        let before = version(conn)?;
        lock::release(conn)?;
        lock::acquire(conn, timeout, timeout)?;
        Ok(version(conn)? != before)
    }

    async fn unlock(&mut self) -> Result<(), DriverError> {
        if !self.locked {
            return Ok(());
        }
        self.locked = false;
        lock::release(self.conn()?)?;
        // A refused run on a new database leaves no file behind (committing an empty
        // transaction still writes SQLite's header page).
        let empty = |c: &Connection| {
            c.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
                r.get::<_, i64>(0)
            })
            .is_ok_and(|n| n == 0)
        };
        if self.created && self.conn.as_deref().is_some_and(empty) {
            self.conn = None;
            self.created = false;
            let _ = std::fs::remove_file(&self.path);
        }
        Ok(())
    }

    /// The native client, for code migrations.
    fn client(&mut self) -> Option<&mut (dyn std::any::Any + Send)> {
        self.conn
            .as_deref_mut()
            .map(|c| c as &mut (dyn std::any::Any + Send))
    }

    async fn ensure_history(&mut self) -> Result<(), DriverError> {
        self.conn()?;
        self.conn
            .as_deref()
            .expect("opened above")
            .ensure(&mut self.book)
    }

    async fn has_history(&mut self) -> Result<bool, DriverError> {
        Ok(self.history()?.is_some())
    }

    async fn applied(&mut self) -> Result<Vec<AppliedMigration>, DriverError> {
        self.history()?.map_or(Ok(vec![]), |(c, t)| c.applied(t))
    }

    async fn execute(&mut self, change: &Change<'_>) -> Result<Duration, DriverError> {
        self.conn()?;
        exec::execute(
            self.conn.as_deref().expect("opened above"),
            self.book.active(),
            change,
            self.locked,
            self.lock_timeout,
        )
    }

    async fn audit(&mut self, entry: &AuditEntry) -> Result<(), DriverError> {
        self.history()?.map_or(Ok(()), |(c, t)| {
            c.run(&[crate::history::audit_row(t, entry)])
        })
    }

    async fn audit_log(&mut self, limit: usize) -> Result<Vec<AuditRecord>, DriverError> {
        self.history()?
            .map_or(Ok(vec![]), |(c, t)| c.audit_log(t, limit))
    }

    async fn metadata(&mut self) -> Result<Vec<(String, String)>, DriverError> {
        self.history()?.map_or(Ok(vec![]), |(c, t)| c.metadata(t))
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
        if let Some(conn) = self.conn.as_deref().filter(|_| self.is_borrowed()) {
            // The application's connection stays open: roll back what is pending.
            if !conn.is_autocommit() {
                conn.execute_batch("ROLLBACK")
                    .map_err(|e| sqlite_error(&e))?;
            }
            self.locked = false;
            return Ok(());
        }
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
        let conn = self.conn.as_deref_mut().expect("opened above");
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
            lock::acquire(conn, self.lock_timeout, self.lock_timeout)?;
        }
        restored
    }
}
