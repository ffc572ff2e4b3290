//! PostgreSQL: one `tokio-postgres` connection per run, a session advisory lock, and
//! each migration with its history row, audit row and metadata in one transaction
//! (PostgreSQL's DDL is transactional, so a failed migration leaves nothing behind).

mod exec;
mod history;
mod lock;
mod pooler;
mod schema;
mod target;
mod tls;
mod tools;

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use strata_core::schema::Schema;
use strata_core::{
    AppliedMigration, AuditEntry, AuditRecord, Capabilities, Change, Driver, DriverError,
    DriverErrorKind, LockMode, LockOptions, Script,
};
use tokio_postgres::Client;

use target::Target;

use crate::layout::{Bookkeeping, Dialect};
use crate::{Handle, HistoryNames};

/// A connection to PostgreSQL: one strata opened from a URL ([`PgDriver::connect`]) or
/// the application's own client ([`PgDriver::borrowed`]).
pub struct PgDriver<'a> {
    client: Handle<'a, Client>,
    /// Kept to reconnect after a transient failure, for the lease heartbeat and for
    /// pg_dump; unknown for a borrowed client.
    target: Option<Target>,
    /// strata's tables ([`crate::layout`]).
    book: Bookkeeping,
    /// The tables in use now (`book.active()`) and their prepared statements.
    tables: history::Tables,
    lock_key: i64,
    /// Held in lease mode.
    lease: Option<lock::Lease>,
    /// This driver's name as a lease holder, the same across reconnects.
    holder: String,
    /// Reached through a pooler ([`pooler`]): no session lock, no session state.
    pooled: bool,
}

impl PgDriver<'static> {
    /// Connects. The URL's password never appears in errors.
    pub async fn connect(url: &str, names: &HistoryNames) -> Result<Self, DriverError> {
        // `?search_path=tenant_42` (a fleet of schemas) and TLS are ours, not
        // tokio-postgres's ([`target`]).
        let target = Target::parse(url)?;
        let search_path = target.search_path.clone();
        let client = target.open().await?;
        if let Some(want) = &search_path {
            verify_search_path(&client, want, &target).await?;
        }
        PgDriver::with(Handle::Owned(client), Some(target), search_path, names).await
    }
}

impl<'a> PgDriver<'a> {
    /// Runs on the application's own client, in its session's `search_path` (a session
    /// that set its own keeps strata's tables in its first schema, as a URL's
    /// `?search_path=` does). The
    /// migration lock is the same session advisory lock a URL run takes; behind a
    /// connection pooler (which needs a lease and a second connection) and for
    /// pg_dump backups, strata needs a URL instead.
    pub async fn borrowed(
        client: &'a mut Client,
        names: &HistoryNames,
    ) -> Result<Self, DriverError> {
        // A session that set its own search_path (`SET search_path = tenant_42`) is a
        // tenant, as a URL's `?search_path=` is: its history lives in its first schema,
        // not in the `strata` schema the database's other tenants share.
        let rows = history::rows(
            client,
            "SELECT current_setting('search_path'), \
             (SELECT reset_val FROM pg_settings WHERE name = 'search_path')",
        )
        .await?;
        let (now, default) = match rows.into_iter().next() {
            Some(r) => (r[0].clone(), r[1].clone()),
            None => (None, None),
        };
        let search_path = now.filter(|n| Some(n) != default.as_ref());
        PgDriver::with(Handle::Borrowed(client), None, search_path, names).await
    }

    async fn with(
        client: Handle<'a, Client>,
        target: Option<Target>,
        search_path: Option<String>,
        names: &HistoryNames,
    ) -> Result<Self, DriverError> {
        // Qualify strata's tables with the schema they belong in, so a migration that
        // changes search_path cannot make the history insert land elsewhere.
        let first_in_path = search_path
            .as_deref()
            .and_then(|p| p.split(',').next())
            .map(|s| s.trim().trim_matches('"').to_string());
        let tenant = first_in_path.is_some();
        let home = match names.schema.clone().or(first_in_path) {
            Some(s) => s,
            None => history::rows(&client, "SELECT current_schema()")
                .await?
                .into_iter()
                .next()
                .and_then(|r| r.into_iter().next().flatten())
                .unwrap_or_else(|| "public".into()),
        };
        let pooled = pooler::detect(&client).await?;
        let book = Bookkeeping::new(Dialect::Postgres, names, Some(&home), tenant);
        // Named after the history's place in the earlier layout, so runs of strata
        // versions before and after the move still exclude each other.
        let lock_key = crate::fnv1a(&format!(
            "strata:{}.{}",
            book.legacy.schema.as_deref().unwrap_or(&home),
            book.legacy.history.name
        ));
        Ok(PgDriver {
            client,
            target,
            tables: history::Tables::new(book.active()),
            book,
            lock_key,
            lease: None,
            holder: crate::lease_holder(),
            pooled,
        })
    }
}

/// A plain connection to what `url` names (a URL or conninfo, TLS as it says): for
/// creating and dropping scratch databases.
pub(crate) async fn connect_admin(url: &str) -> Result<Client, DriverError> {
    Target::parse(url)?.open().await
}

/// Whether `s` is a libpq key/value connection string (`host=… dbname=…`).
pub fn is_conninfo(s: &str) -> bool {
    target::is_conninfo(s)
}

/// The tenant's `search_path` rides in the startup `options`, which a pooler may drop
/// (PgBouncer's `ignore_startup_parameters`): then the migrations would land in the
/// default schema while strata's tables go to the tenant's. Refused instead.
async fn verify_search_path(
    client: &Client,
    want: &str,
    target: &Target,
) -> Result<(), DriverError> {
    let rows = history::rows(client, "SELECT current_setting('search_path')").await?;
    let have = rows
        .into_iter()
        .next()
        .and_then(|r| r.into_iter().next().flatten())
        .unwrap_or_default();
    let norm = |s: &str| s.replace([' ', '"'], "");
    if norm(&have) == norm(want) {
        return Ok(());
    }
    Err(DriverError::new(
        DriverErrorKind::Refused,
        format!(
            "{} did not apply search_path={want} (the session's is `{have}`); refusing to migrate the wrong schema",
            target.describe()
        ),
    )
    .with_detail(
        "a connection pooler may drop the startup `options` parameter: connect to PostgreSQL directly, or set the role's search_path (ALTER ROLE … SET search_path)",
    ))
}

impl PgDriver<'_> {
    fn target(&self, what: &str) -> Result<&Target, DriverError> {
        self.target
            .as_ref()
            .ok_or_else(|| crate::borrowed_cannot(what))
    }

    /// Points `tables` at the layout the last probe found (an earlier layout's tables
    /// until they are moved).
    fn follow_layout(&mut self) {
        if self.tables.names != *self.book.active() {
            self.tables = history::Tables::new(self.book.active());
        }
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
impl Driver for PgDriver<'_> {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    async fn query_text(
        &mut self,
        sql: &str,
    ) -> Result<Option<Vec<Vec<Option<String>>>>, DriverError> {
        history::rows(&self.client, sql).await.map(Some)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            transactional_ddl: true,
        }
    }

    async fn schema(&mut self) -> Result<Schema, DriverError> {
        let own_schema = (self.book.current.schema != self.book.legacy.schema)
            .then_some(self.book.current.schema.as_deref())
            .flatten();
        schema::introspect(&self.client, &self.tables.own_names(), own_schema).await
    }

    async fn run_script(&mut self, script: &Script) -> Result<(), DriverError> {
        let sql = script.text()?;
        self.client.batch_execute(&sql).await.map_err(|e| {
            let mut err = exec::db_error(&e);
            err.detail = Some(format!("in {}", script.path.display()));
            err
        })
    }

    async fn server_version(&mut self) -> Result<String, DriverError> {
        let rows = history::rows(&self.client, "SELECT version()").await?;
        Ok(rows
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next().flatten())
            .unwrap_or_default())
    }

    /// A standby (in recovery) or a server whose transactions are read-only by default
    /// accepts no migration; whether this session is over TLS.
    async fn topology(&mut self) -> Result<strata_core::Topology, DriverError> {
        let mut rows = history::rows(
            &self.client,
            "SELECT pg_is_in_recovery()::text, current_setting('default_transaction_read_only'), \
             (SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid())",
        )
        .await?;
        let mut row = rows.pop().unwrap_or_default().into_iter();
        let mut next = || row.next().flatten().unwrap_or_default();
        let (recovery, read_only, ssl) = (next() == "true", next() == "on", next());
        let (role, why) = if recovery {
            (
                "standby",
                Some("this server is a hot standby (in recovery) and accepts no writes; a multi-host URL with target_session_attrs=read-write connects to whichever server is the primary"),
            )
        } else if read_only {
            (
                "read-only",
                Some("this server makes every transaction read-only (default_transaction_read_only = on)"),
            )
        } else {
            ("primary", None)
        };
        Ok(strata_core::Topology {
            role: Some(role.into()),
            read_only: why.map(str::to_string),
            encrypted: Some(ssl == "true"),
            cluster: self.pooled.then(|| "pooler".to_string()),
            lock: self.pooled.then(|| {
                "lease unless `lock` is set: behind a pooler each transaction may run in another server session, so a session lock holds nothing"
                    .to_string()
            }),
        })
    }

    async fn lock(&mut self, opts: &LockOptions) -> Result<(), DriverError> {
        let mode = match (self.pooled, opts.explicit, opts.mode) {
            (true, false, _) => LockMode::Lease,
            (true, true, LockMode::Session) => {
                tracing::warn!("lock = \"session\" behind a connection pooler: the advisory lock is taken in whichever server session runs that query and excludes nothing");
                LockMode::Session
            }
            (_, _, mode) => mode,
        };
        match mode {
            LockMode::Session => lock::acquire(&self.client, self.lock_key, opts.patience()).await,
            LockMode::Lease => {
                let lease = lock::acquire_lease(
                    &self.client,
                    self.target("the migration lease (lock = \"lease\", or a connection pooler)")?,
                    &history::Tables::new(&self.book.current),
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
            Some(lease) => {
                lock::release_lease(
                    &self.client,
                    &history::Tables::new(&self.book.current),
                    lease,
                )
                .await
            }
            None => lock::release(&self.client, self.lock_key).await,
        }
    }

    async fn lock_holder(&mut self) -> Result<Option<String>, DriverError> {
        if let Some(h) = lock::holder(&self.client, self.lock_key).await {
            return Ok(Some(h));
        }
        Ok(lock::lease_owner(&self.client, &history::Tables::new(&self.book.current)).await)
    }

    async fn reconnect(&mut self) -> Result<(), DriverError> {
        // Stop renewing; the row expires unless the next attempt takes it back.
        self.lease = None;
        let fresh = self
            .target("reconnecting after a lost connection")?
            .open()
            .await?;
        self.client = Handle::Owned(fresh);
        Ok(())
    }

    /// The native client, for code migrations.
    fn client(&mut self) -> Option<&mut (dyn std::any::Any + Send)> {
        Some(&mut *self.client)
    }

    async fn ensure_history(&mut self) -> Result<(), DriverError> {
        let ensured = history::ensure(&self.client, &mut self.book).await;
        self.follow_layout();
        ensured
    }

    async fn has_history(&mut self) -> Result<bool, DriverError> {
        history::probe(&self.client, &mut self.book).await?;
        self.follow_layout();
        self.book.has_history()
    }

    async fn applied(&mut self) -> Result<Vec<AppliedMigration>, DriverError> {
        if !self.has_history().await? {
            return Ok(vec![]);
        }
        let rows = history::rows(
            &self.client,
            &crate::history::applied_sql(&self.tables.names),
        )
        .await?;
        Ok(rows.into_iter().map(crate::history::applied_row).collect())
    }

    async fn execute(&mut self, change: &Change<'_>) -> Result<Duration, DriverError> {
        let session = exec::Session {
            client: &self.client,
            target: self.target.as_ref(),
            pooled: self.pooled,
        };
        exec::execute(&session, &self.tables, change).await
    }

    async fn audit(&mut self, entry: &AuditEntry) -> Result<(), DriverError> {
        if !self.has_history().await? {
            return Ok(());
        }
        history::run(
            &self.client,
            &[crate::history::audit_row(&self.tables.names, entry)],
        )
        .await
    }

    async fn audit_log(&mut self, limit: usize) -> Result<Vec<AuditRecord>, DriverError> {
        if !self.has_history().await? {
            return Ok(vec![]);
        }
        let sql = crate::history::audit_log_sql(&self.tables.names, limit);
        let rows = history::rows(&self.client, &sql).await?;
        Ok(rows.into_iter().map(crate::history::audit_record).collect())
    }

    async fn metadata(&mut self) -> Result<Vec<(String, String)>, DriverError> {
        if !self.has_history().await? {
            return Ok(vec![]);
        }
        let rows = history::rows(
            &self.client,
            &crate::history::metadata_sql(&self.tables.names),
        )
        .await?;
        Ok(rows
            .into_iter()
            .map(crate::history::metadata_pair)
            .collect())
    }

    fn backup_extension(&self) -> &'static str {
        "dump"
    }

    async fn backup(&mut self, dest: &Path) -> Result<(), DriverError> {
        tools::dump(self.target("a pg_dump backup")?, dest).await
    }

    async fn restore(&mut self, src: &Path) -> Result<(), DriverError> {
        let target = self.target("restoring a pg_dump backup")?;
        tools::restore(&self.client, target, src).await
    }
}
