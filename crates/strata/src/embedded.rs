//! What [`embed_migrations!`](crate::embed_migrations) expands to.

use strata_core::{CodeMigration, Embedded, Result, RunReport, StatusReport, Target};

use crate::database::Database;
use crate::Migrator;

/// A migrations directory compiled into the program by
/// [`embed_migrations!`](crate::embed_migrations): every script and its checksum, read
/// at build time. `Copy` and `const`, so it can live in a `static`.
///
/// ```no_run
/// static MIGRATIONS: strata::EmbeddedMigrations = strata::embed_migrations!("migrations");
///
/// # async fn demo(conn: &mut rusqlite::Connection) -> Result<(), strata::Error> {
/// MIGRATIONS.run(conn).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedMigrations(Embedded);

impl EmbeddedMigrations {
    #[doc(hidden)]
    pub const fn new(embedded: Embedded) -> Self {
        EmbeddedMigrations(embedded)
    }

    /// The [`Migrator`] for these migrations, to add code migrations or options.
    pub fn migrator(&self) -> Result<Migrator> {
        self.0.migrator().map(Migrator::from)
    }

    /// [`migrator`](Self::migrator) with a code migration added.
    pub fn register(&self, code: impl CodeMigration + 'static) -> Result<Migrator> {
        self.migrator()?.register(code)
    }

    /// Applies every pending migration on a URL or a connection ([`Database`]).
    pub async fn run<'a>(&self, db: impl Database<'a>) -> Result<RunReport> {
        self.migrator()?.up(db, Target::Head).await
    }

    /// [`run`](Self::run) when the `AUTO_MIGRATE` environment variable is `true`
    /// (or `1`, `yes`); `None` otherwise, without connecting.
    pub async fn run_if_enabled<'a>(&self, db: impl Database<'a>) -> Result<Option<RunReport>> {
        if Embedded::auto_migrate_enabled() {
            self.run(db).await.map(Some)
        } else {
            Ok(None)
        }
    }

    /// Every migration with its state, for an application's health endpoint.
    pub async fn status<'a>(&self, db: impl Database<'a>) -> Result<StatusReport> {
        self.migrator()?.status(db).await
    }
}
