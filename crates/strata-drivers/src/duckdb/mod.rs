//! DuckDB (`duckdb:///path/dev.db`), behind the `duckdb` feature: the seeds' local
//! analytics setup. DuckDB's DDL is transactional, so each migration runs in one
//! transaction with its history row, as on PostgreSQL.
//!
//! The lock is DuckDB's own: a database file is open read-write in one process at a
//! time, so a second `strata` waits (up to `lock_timeout`) to open it, naming the PID
//! DuckDB reports as holding it.

mod exec;
mod history;
mod lock;

use crate::history::InProcess;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use duckdb::Connection;
use strata_core::{
    AppliedMigration, AuditEntry, AuditRecord, Capabilities, Change, Driver, DriverError,
    DriverErrorKind, LockOptions,
};

use crate::layout::{Bookkeeping, Dialect};
use crate::HistoryNames;

/// A connection to a DuckDB database file.
pub struct DuckDbDriver {
    /// Opened on first use; read-only commands on a missing file never create it.
    conn: Option<Connection>,
    path: PathBuf,
    /// strata's tables ([`crate::layout`]).
    book: Bookkeeping,
    /// This driver created the file: a run that wrote nothing removes it again.
    created: bool,
}

/// The file a `duckdb:` URL names (`duckdb:///abs.db`, `duckdb://rel.db`, `duckdb::memory:`).
pub fn path_of(url: &str) -> PathBuf {
    crate::sqlite_style_path(url)
}

pub(crate) fn duck_error(e: &duckdb::Error) -> DriverError {
    let text = e.to_string();
    // Another process holds the file, or a write-write conflict: worth waiting for.
    let transient = text.contains("Could not set lock") || text.contains("Conflict");
    DriverError::query(text).retryable(transient)
}

impl DuckDbDriver {
    /// Opens the file a `duckdb:` URL names (created on the first change).
    pub fn open(url: &str, names: &HistoryNames) -> Result<Self, DriverError> {
        let path = path_of(url);
        let mut d = DuckDbDriver {
            conn: None,
            path,
            book: Bookkeeping::new(Dialect::DuckDb, names, None, false),
            created: false,
        };
        if d.path.as_os_str() == ":memory:" || d.path.exists() {
            d.reopen(Duration::from_secs(60))?;
        }
        Ok(d)
    }

    /// Opens the file, waiting up to `wait` for another process to let go of it.
    fn reopen(&mut self, wait: Duration) -> Result<(), DriverError> {
        self.conn = None;
        self.created |= self.path.as_os_str() != ":memory:" && !self.path.exists();
        self.conn = Some(lock::open(&self.path, wait)?);
        Ok(())
    }

    /// The connection, creating the database file if needed.
    fn conn(&mut self) -> Result<&Connection, DriverError> {
        if self.conn.is_none() {
            self.reopen(Duration::from_secs(60))?;
        }
        Ok(self.conn.as_ref().expect("opened just above"))
    }

    /// The connection when the database exists; None when there is nothing to read.
    fn existing(&mut self) -> Result<Option<&Connection>, DriverError> {
        if self.conn.is_none() && !self.path.exists() {
            return Ok(None);
        }
        self.conn().map(Some)
    }

    /// The connection and strata's tables, when the database has them (probed anew).
    fn history(&mut self) -> Result<Option<(&Connection, &history::Tables)>, DriverError> {
        if self.conn.is_none() && !self.path.exists() {
            return Ok(None);
        }
        self.conn()?;
        let conn = self.conn.as_ref().expect("opened just above");
        conn.probe(&mut self.book)?;
        Ok(self.book.has_history()?.then(|| (conn, self.book.active())))
    }
}

#[async_trait]
impl Driver for DuckDbDriver {
    fn kind(&self) -> &'static str {
        "duckdb"
    }

    async fn query_text(
        &mut self,
        sql: &str,
    ) -> Result<Option<Vec<Vec<Option<String>>>>, DriverError> {
        crate::history::query_text(self.conn.as_ref(), sql)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            transactional_ddl: true,
        }
    }

    async fn server_version(&mut self) -> Result<String, DriverError> {
        let version = |c: &Connection| -> Result<String, DriverError> {
            c.query_row("SELECT 'DuckDB ' || version()", [], |r| r.get(0))
                .map_err(|e| duck_error(&e))
        };
        match self.existing()? {
            Some(c) => version(c),
            None => version(&Connection::open_in_memory().map_err(|e| duck_error(&e))?),
        }
    }

    /// DuckDB admits one read-write process per file: holding the file open is the
    /// lock, so it is opened (created if need be) here, and the history is read after.
    async fn lock(&mut self, _opts: &LockOptions) -> Result<(), DriverError> {
        self.conn()?;
        Ok(())
    }

    async fn unlock(&mut self) -> Result<(), DriverError> {
        // A refused run on a new database leaves no file behind.
        let empty = self.conn.as_ref().is_some_and(|c| {
            c.query_row("SELECT count(*) FROM information_schema.tables", [], |r| {
                r.get::<_, i64>(0)
            })
            .is_ok_and(|n| n == 0)
        });
        if self.created && empty {
            self.conn = None;
            self.created = false;
            let _ = std::fs::remove_file(&self.path);
            let mut wal = self.path.clone().into_os_string();
            wal.push(".wal");
            let _ = std::fs::remove_file(wal);
        }
        Ok(())
    }

    async fn reconnect(&mut self) -> Result<(), DriverError> {
        self.reopen(Duration::from_secs(60))
    }

    /// The native client, for code migrations.
    fn client(&mut self) -> Option<&mut (dyn std::any::Any + Send)> {
        self.conn
            .as_mut()
            .map(|c| c as &mut (dyn std::any::Any + Send))
    }

    async fn ensure_history(&mut self) -> Result<(), DriverError> {
        self.conn()?;
        self.conn
            .as_ref()
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
            self.conn.as_ref().expect("opened above"),
            self.book.active(),
            change,
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

    fn backup_extension(&self) -> &'static str {
        "duckdb"
    }

    /// A checkpoint folds the write-ahead log into the file; this process is the only
    /// writer, so a copy of the file is then consistent.
    async fn backup(&mut self, dest: &Path) -> Result<(), DriverError> {
        self.conn()?
            .execute_batch("CHECKPOINT")
            .map_err(|e| duck_error(&e))?;
        std::fs::copy(&self.path, dest).map_err(|e| {
            DriverError::new(
                DriverErrorKind::Other,
                format!("copying {}: {e}", self.path.display()),
            )
        })?;
        Ok(())
    }

    /// Closes the file, puts the backup in its place (through a temporary file and a
    /// rename, so a crash leaves one or the other), and opens it again.
    async fn restore(&mut self, src: &Path) -> Result<(), DriverError> {
        self.conn = None;
        let tmp = self.path.with_extension("strata-restore");
        let wal = PathBuf::from(format!("{}.wal", self.path.display()));
        let io = |e: std::io::Error| {
            DriverError::new(
                DriverErrorKind::Other,
                format!("restoring {}: {e}", src.display()),
            )
        };
        std::fs::copy(src, &tmp).map_err(io)?;
        let _ = std::fs::remove_file(&wal);
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        self.reopen(Duration::from_secs(60))
    }
}
