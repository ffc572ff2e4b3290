//! MySQL and MariaDB (`mysql://`, `mariadb://`): one `mysql_async` connection per run,
//! `GET_LOCK` for the migration lock, and the server's real semantics for DDL.
//!
//! MySQL commits every DDL statement implicitly, so a migration that creates, alters
//! or drops anything cannot be one transaction. Such a migration is tracked statement
//! by statement (a `success=false` row first, `statements_done` after each statement),
//! so a failure leaves a visible `failed` row that blocks further runs until
//! `up --resume` or `repair`. A migration of plain data changes still runs in one
//! transaction with its history row, and leaves nothing behind when it fails.

mod exec;
mod history;
mod lock;
mod tls;
mod tools;

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder};
use strata_core::{
    AppliedMigration, AuditEntry, AuditRecord, Capabilities, Change, Driver, DriverError,
    DriverErrorKind, LockMode, LockOptions,
};

use crate::layout::{Bookkeeping, Dialect};
use crate::{Handle, HistoryNames};

/// A connection to MySQL or MariaDB: one strata opened from a URL
/// ([`MySqlDriver::connect`]) or the application's own ([`MySqlDriver::borrowed`]).
pub struct MySqlDriver<'a> {
    conn: Handle<'a, Conn>,
    /// Kept to reconnect, to cancel a runaway query, for the lease heartbeat and dumps.
    opts: Opts,
    /// strata's tables ([`crate::layout`]).
    book: Bookkeeping,
    lock_name: String,
    lease: Option<lock::Lease>,
    /// This driver's name as a lease holder, the same across reconnects.
    holder: String,
    /// MariaDB names its statement timeout differently from MySQL.
    mariadb: bool,
    /// A Galera cluster node (`wsrep_on`): `GET_LOCK` is local to the node, so the
    /// default lock is the lease row, whose writes the cluster certifies.
    galera: bool,
}

impl MySqlDriver<'static> {
    /// Connects. The URL must name a database; its password never appears in errors.
    pub async fn connect(url: &str, names: &HistoryNames) -> Result<Self, DriverError> {
        let (opts, tls) = parse_url(url)?;
        let database = opts.db_name().map(str::to_string).ok_or_else(|| {
            DriverError::new(
                DriverErrorKind::InvalidUrl,
                format!(
                    "{} names no database; add one as the path, e.g. mysql://user@host:3306/app",
                    strata_core::redact(url)
                ),
            )
        })?;
        let (conn, opts) = open_first(opts, &tls).await?;
        MySqlDriver::with(Handle::Owned(conn), opts, database, names).await
    }
}

impl<'a> MySqlDriver<'a> {
    /// Runs on the application's own connection, which must have a default database
    /// (strata's tables go there). strata sets its session `time_zone` to UTC, as on
    /// its own connections, so history times read back as written; the lease lock's
    /// heartbeat, a retry after a lost connection and dumps open connections with the
    /// same options.
    pub async fn borrowed(conn: &'a mut Conn, names: &HistoryNames) -> Result<Self, DriverError> {
        let opts: Opts = OptsBuilder::from_opts(conn.opts().clone())
            .init(vec!["SET time_zone = '+00:00'"])
            .into();
        conn.query_drop("SET time_zone = '+00:00'")
            .await
            .map_err(|e| exec::db_error(&e))?;
        let database: Option<String> = conn
            .query_first("SELECT DATABASE()")
            .await
            .map_err(|e| exec::db_error(&e))?
            .flatten();
        let database = database.ok_or_else(|| {
            DriverError::new(
                DriverErrorKind::InvalidUrl,
                "the application's MySQL connection has no default database (USE one first)",
            )
        })?;
        MySqlDriver::with(Handle::Borrowed(conn), opts, database, names).await
    }

    async fn with(
        mut conn: Handle<'a, Conn>,
        opts: Opts,
        database: String,
        names: &HistoryNames,
    ) -> Result<Self, DriverError> {
        let version: String = conn
            .query_first("SELECT VERSION()")
            .await
            .map_err(|e| exec::db_error(&e))?
            .unwrap_or_default();
        let wsrep: Vec<(String, String)> = conn
            .query("SHOW VARIABLES LIKE 'wsrep_on'")
            .await
            .map_err(|e| exec::db_error(&e))?;
        let galera = wsrep.iter().any(|(_, v)| v.eq_ignore_ascii_case("ON"));
        let book = Bookkeeping::new(Dialect::MySql, names, Some(&database), false);
        // Named after the history's place in the earlier layout, so runs of strata
        // versions before and after the move still exclude each other.
        let lock_name = format!(
            "strata:{:016x}",
            crate::fnv1a(&format!(
                "{}.{}",
                book.legacy.schema.as_deref().unwrap_or(&database),
                book.legacy.history.name
            ))
        );
        Ok(MySqlDriver {
            conn,
            opts,
            book,
            lock_name,
            lease: None,
            holder: crate::lease_holder(),
            mariadb: version.to_ascii_lowercase().contains("mariadb"),
            galera,
        })
    }
}

/// The connection options of a `mysql://` or `mariadb://` URL, TLS ([`tls`]) taken
/// out of its parameters first.
fn parse_url(url: &str) -> Result<(Opts, tls::Tls), DriverError> {
    let normalized = match url.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("mariadb") => format!("mysql://{rest}"),
        _ => url.to_string(),
    };
    let mut tls = tls::Tls::default();
    let normalized = crate::take_params(&normalized, |k, v| tls.take(k, v))?;
    let opts = Opts::from_url(&normalized).map_err(|e| {
        DriverError::new(
            DriverErrorKind::InvalidUrl,
            format!("invalid MySQL URL {}: {e}", strata_core::redact(url)),
        )
    })?;
    // Sessions in UTC, so `applied_at` reads back as what was written.
    let builder = OptsBuilder::from_opts(opts)
        .init(vec!["SET time_zone = '+00:00'"])
        .stmt_cache_size(16)
        .prefer_socket(false)
        .ssl_opts(tls.ssl_opts()?);
    Ok((builder.into(), tls))
}

/// The first connection, which settles `PREFERRED`: a server that offers no TLS is
/// reached in plaintext, and the options returned say so for every later connection.
async fn open_first(opts: Opts, tls: &tls::Tls) -> Result<(Conn, Opts), DriverError> {
    match open(&opts).await {
        Err(e)
            if tls.mode == tls::Mode::Preferred
                && e.message.contains("server does not have this capability") =>
        {
            let plain: Opts = OptsBuilder::from_opts(opts).ssl_opts(None).into();
            Ok((open(&plain).await?, plain))
        }
        Err(mut e) if e.message.contains("server does not have this capability") => {
            e.detail = Some(format!(
                "{} asks for TLS and the server does not offer it",
                tls.mode_name()
            ));
            e.transient = false;
            Err(e)
        }
        Err(mut e)
            if e.message.contains("certificate") || e.message.contains("InvalidCertificate") =>
        {
            e.detail = Some(tls.advice());
            e.transient = false;
            Err(e)
        }
        other => other.map(|c| (c, opts)),
    }
}

/// Opens a connection; refused or reset connections are transient errors.
async fn open(opts: &Opts) -> Result<Conn, DriverError> {
    let connecting = Conn::new(opts.clone());
    let conn = tokio::time::timeout(Duration::from_secs(10), connecting)
        .await
        .map_err(|_| {
            DriverError::new(
                DriverErrorKind::Connect,
                format!("cannot connect to {}: timed out after 10s", describe(opts)),
            )
            .retryable(true)
        })?
        .map_err(|e| {
            let err = exec::db_error(&e);
            DriverError::new(
                DriverErrorKind::Connect,
                format!("cannot connect to {}: {}", describe(opts), err.message),
            )
            .retryable(err.transient)
        })?;
    Ok(conn)
}

/// "mysql://user@host:port/db", never the password.
fn describe(opts: &Opts) -> String {
    format!(
        "mysql://{}@{}:{}/{}",
        opts.user().unwrap_or(""),
        opts.ip_or_hostname(),
        opts.tcp_port(),
        opts.db_name().unwrap_or("")
    )
}

#[async_trait]
impl Driver for MySqlDriver<'_> {
    fn kind(&self) -> &'static str {
        "mysql"
    }

    async fn query_text(
        &mut self,
        sql: &str,
    ) -> Result<Option<Vec<Vec<Option<String>>>>, DriverError> {
        history::rows(&mut self.conn, sql).await.map(Some)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            transactional_ddl: false,
        }
    }

    /// A server with `read_only` (a replica, usually) accepts no migration: strata's
    /// account typically has the privilege that bypasses it, so it is refused here
    /// rather than left to write to a replica.
    async fn topology(&mut self) -> Result<strata_core::Topology, DriverError> {
        let cell = |mut rows: Vec<crate::history::Cells>, i: usize| {
            rows.pop()
                .and_then(|mut r| r.get_mut(i).and_then(Option::take))
                .unwrap_or_default()
        };
        let read_only = cell(
            history::rows(&mut self.conn, "SELECT @@global.read_only").await?,
            0,
        ) == "1";
        let cipher = cell(
            history::rows(&mut self.conn, "SHOW SESSION STATUS LIKE 'Ssl_cipher'").await?,
            1,
        );
        Ok(strata_core::Topology {
            role: Some(if read_only { "read-only" } else { "primary" }.into()),
            read_only: read_only.then(|| {
                "this server is read-only (read_only = ON: a replica, usually)".to_string()
            }),
            encrypted: Some(!cipher.is_empty()),
            cluster: self.galera.then(|| "galera".to_string()),
            lock: self.galera.then(|| {
                "lease unless `lock` is set: a Galera node's GET_LOCK is not cluster-wide"
                    .to_string()
            }),
        })
    }

    async fn server_version(&mut self) -> Result<String, DriverError> {
        let v: Option<String> = self
            .conn
            .query_first("SELECT VERSION()")
            .await
            .map_err(|e| exec::db_error(&e))?;
        let v = v.unwrap_or_default();
        Ok(if self.mariadb || v.contains("MariaDB") {
            format!("MariaDB {v}")
        } else {
            format!("MySQL {v}")
        })
    }

    async fn lock(&mut self, opts: &LockOptions) -> Result<(), DriverError> {
        let mode = match (self.galera, opts.explicit, opts.mode) {
            (true, false, _) => LockMode::Lease,
            (true, true, LockMode::Session) => {
                tracing::warn!("lock = \"session\" on a Galera node locks this node only: runs on other nodes are not excluded");
                LockMode::Session
            }
            (_, _, mode) => mode,
        };
        match mode {
            LockMode::Session => {
                lock::acquire(&mut self.conn, &self.lock_name, opts.patience()).await
            }
            LockMode::Lease => {
                let lease = lock::acquire_lease(
                    &mut self.conn,
                    &self.opts,
                    &self.book.current,
                    &self.holder,
                    opts.lease,
                    opts.patience(),
                )
                .await?;
                self.lease = Some(lease);
                Ok(())
            }
        }
    }

    async fn unlock(&mut self) -> Result<(), DriverError> {
        match self.lease.take() {
            Some(lease) => lock::release_lease(&mut self.conn, &self.book.current, lease).await,
            None => lock::release(&mut self.conn, &self.lock_name).await,
        }
    }

    async fn lock_holder(&mut self) -> Result<Option<String>, DriverError> {
        if let Some(h) = lock::holder(&mut self.conn, &self.lock_name).await {
            return Ok(Some(h));
        }
        Ok(lock::lease_owner(&mut self.conn, &self.book.current).await)
    }

    async fn reconnect(&mut self) -> Result<(), DriverError> {
        self.lease = None;
        self.conn = Handle::Owned(open(&self.opts).await?);
        Ok(())
    }

    /// The native client, for code migrations.
    fn client(&mut self) -> Option<&mut (dyn std::any::Any + Send)> {
        Some(&mut *self.conn)
    }

    async fn ensure_history(&mut self) -> Result<(), DriverError> {
        history::ensure(&mut self.conn, &mut self.book).await
    }

    async fn has_history(&mut self) -> Result<bool, DriverError> {
        history::probe(&mut self.conn, &mut self.book).await?;
        self.book.has_history()
    }

    async fn applied(&mut self) -> Result<Vec<AppliedMigration>, DriverError> {
        if !self.has_history().await? {
            return Ok(vec![]);
        }
        let rows = history::rows(
            &mut self.conn,
            &crate::history::applied_sql(self.book.active()),
        )
        .await?;
        Ok(rows.into_iter().map(crate::history::applied_row).collect())
    }

    async fn execute(&mut self, change: &Change<'_>) -> Result<Duration, DriverError> {
        let session = exec::Session {
            opts: &self.opts,
            mariadb: self.mariadb,
        };
        exec::execute(&mut self.conn, self.book.active(), &session, change).await
    }

    async fn audit(&mut self, entry: &AuditEntry) -> Result<(), DriverError> {
        if !self.has_history().await? {
            return Ok(());
        }
        history::run(
            &mut self.conn,
            &[crate::history::audit_row(self.book.active(), entry)],
        )
        .await
    }

    async fn audit_log(&mut self, limit: usize) -> Result<Vec<AuditRecord>, DriverError> {
        if !self.has_history().await? {
            return Ok(vec![]);
        }
        let sql = crate::history::audit_log_sql(self.book.active(), limit);
        let rows = history::rows(&mut self.conn, &sql).await?;
        Ok(rows.into_iter().map(crate::history::audit_record).collect())
    }

    async fn metadata(&mut self) -> Result<Vec<(String, String)>, DriverError> {
        if !self.has_history().await? {
            return Ok(vec![]);
        }
        let rows = history::rows(
            &mut self.conn,
            &crate::history::metadata_sql(self.book.active()),
        )
        .await?;
        Ok(rows
            .into_iter()
            .map(crate::history::metadata_pair)
            .collect())
    }

    fn backup_extension(&self) -> &'static str {
        "sql"
    }

    async fn backup(&mut self, dest: &Path) -> Result<(), DriverError> {
        tools::dump(&self.opts, dest).await
    }

    async fn restore(&mut self, src: &Path) -> Result<(), DriverError> {
        tools::restore(&mut self.conn, &self.opts, src).await
    }
}
