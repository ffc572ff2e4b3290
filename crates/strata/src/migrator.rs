//! [`Migrator`]: the library's one entry point. Build it from a directory or from
//! [`embed_migrations!`](crate::embed_migrations), add code migrations and options,
//! then run it on a URL or a connection ([`Database`]).

use std::path::Path;

use strata_core::{
    CodeMigration, HealthReport, Migration, Reporter, Result, RunOptions, RunReport, Settings,
    Silent, StatusReport, Target,
};
use strata_drivers::HistoryNames;

use crate::database::Database;

/// Migrations to apply, with the options to apply them with.
///
/// ```no_run
/// # async fn demo(client: &mut tokio_postgres::Client) -> Result<(), strata::Error> {
/// let migrator = strata::Migrator::from_dir("migrations")?;
/// // On a URL: strata opens (and closes) its own connection.
/// let status = migrator.status("sqlite://app.db").await?;
/// println!("{} pending", status.count(strata::MigrationState::Pending));
/// // On the application's own PostgreSQL client.
/// let report = migrator.up(client, strata::Target::Head).await?;
/// println!("applied {} migrations", report.done.len());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Migrator {
    inner: strata_core::Migrator,
    options: RunOptions,
    names: HistoryNames,
}

impl From<strata_core::Migrator> for Migrator {
    fn from(inner: strata_core::Migrator) -> Self {
        Migrator {
            inner,
            options: RunOptions::default(),
            names: HistoryNames::default(),
        }
    }
}

impl Migrator {
    /// Reads a migrations directory: SQL files in any of the layouts strata reads
    /// (its own, Flyway, golang-migrate, dbmate, sqlx, diesel, Prisma, ...). A bad file is
    /// an [`Error::Source`](crate::Error::Source) naming file and line.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        strata_core::Migrator::from_dir(dir).map(Migrator::from)
    }

    /// Adds a migration written in Rust, ordered with the files by version. A version
    /// that a file or another code migration already has is refused.
    pub fn register(self, code: impl CodeMigration + 'static) -> Result<Self> {
        Ok(Migrator {
            inner: self.inner.register(code)?,
            ..self
        })
    }

    /// Timeouts, retries, lock and session settings (those of `strata.toml`'s
    /// `[settings]`); they take precedence over the migrations directory's manifest.
    pub fn settings(self, settings: &Settings) -> Self {
        Migrator {
            inner: self.inner.with_settings(settings),
            ..self
        }
    }

    /// How runs go: dry run, out-of-order, resume, backups ([`RunOptions`]).
    pub fn options(self, options: RunOptions) -> Self {
        Migrator { options, ..self }
    }

    /// Plans and reports without changing anything.
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.options.dry_run = dry_run;
        self
    }

    /// Where strata's history table lives (its name, schema or a table prefix), when not
    /// in the default place.
    pub fn history_table(self, names: HistoryNames) -> Self {
        Migrator { names, ..self }
    }

    /// Every migration, in the order they apply.
    pub fn migrations(&self) -> &[Migration] {
        self.inner.migrations()
    }

    /// Applies pending migrations up to `target` ([`Target::Head`]: all), each one
    /// once even when many processes start together (they share strata's migration
    /// lock). A failure stops the run: what came before it stays applied and is
    /// named by the error.
    pub async fn up<'a>(&self, db: impl Database<'a>, target: Target) -> Result<RunReport> {
        self.up_reporting(db, target, &mut Silent).await
    }

    /// [`up`](Self::up), sending each step's [`Event`](crate::Event) to `reporter`.
    pub async fn up_reporting<'a>(
        &self,
        db: impl Database<'a>,
        target: Target,
        reporter: &mut dyn Reporter,
    ) -> Result<RunReport> {
        let mut conn = db.connect(&self.names).await?;
        self.inner
            .up(conn.driver(), &target, &self.options, reporter)
            .await
    }

    /// Rolls back everything applied after `target` (`Target::Relative(-1)`: the last
    /// migration; [`Target::Base`]: all of them), with each migration's down script or
    /// code.
    pub async fn rollback<'a>(&self, db: impl Database<'a>, target: Target) -> Result<RunReport> {
        let mut conn = db.connect(&self.names).await?;
        self.inner
            .rollback(conn.driver(), &target, &self.options, &mut Silent)
            .await
    }

    /// Every migration with its state (applied, pending, failed, modified, ...).
    pub async fn status<'a>(&self, db: impl Database<'a>) -> Result<StatusReport> {
        let mut conn = db.connect(&self.names).await?;
        self.inner.status(conn.driver()).await
    }

    /// What an application's health endpoint reports: reachable, current version,
    /// pending and failed migrations, drift, judged healthy / degraded / unhealthy. A
    /// database that cannot be reached is a report, not an error.
    pub async fn health<'a>(&self, db: impl Database<'a>) -> HealthReport {
        match db.connect(&self.names).await {
            Ok(mut conn) => self.inner.health(Ok(conn.driver())).await,
            Err(e) => self.inner.health(Err(&e)).await,
        }
    }

    /// The core migrator, for what this type does not cover (repair, stamp, history, the
    /// REST API's `ApiState::with_migrations`).
    pub fn core(&self) -> &strata_core::Migrator {
        &self.inner
    }

    /// See [`core`](Self::core).
    pub fn into_core(self) -> strata_core::Migrator {
        self.inner
    }
}
