//! Migrations written in Rust: [`CodeMigration`], registered next to file migrations with
//! [`crate::Migrator::register`] and planned with them in one order.
//!
//! A code migration runs between two history writes, as a non-transactional SQL
//! migration does: a `success=false` row first, then the code, then the row marked done.
//! A crash or an error in between leaves a `failed` row that blocks later runs until
//! `up --resume` (which runs the code again, so write it to be re-runnable) or
//! `repair`. Code that wants atomicity opens its own transaction on the client.

use std::any::Any;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;

use crate::driver::Driver;
use crate::migration::{Checksum, Dependency, Format, Migration, MigrationKind, Script};
use crate::version::Version;

/// What a code migration's `up`/`down` may fail with.
pub type CodeError = Box<dyn std::error::Error + Send + Sync>;

/// The first line of the scripts that stand for code in plans and the history table.
pub const CODE_MARKER: &str = "-- strata:code";

/// A migration written in Rust.
///
/// ```
/// use strata_core::{CodeMigration, CodeContext, CodeError};
///
/// struct BackfillSlugs;
///
/// #[async_trait::async_trait]
/// impl CodeMigration for BackfillSlugs {
///     fn version(&self) -> &str { "004" }
///     fn name(&self) -> &str { "backfill_slugs" }
///     async fn up(&self, db: &mut CodeContext<'_>) -> Result<(), CodeError> {
///         // db.client::<tokio_postgres::Client>() on PostgreSQL, ...
///         let _ = db.kind();
///         Ok(())
///     }
/// }
/// ```
#[async_trait]
pub trait CodeMigration: Send + Sync {
    /// The version, ordered with the file migrations' versions.
    fn version(&self) -> &str;
    /// A short name, part of the migration's id (`003_fill_slugs`) and history row.
    fn name(&self) -> &str;
    /// A description shown by `list` and `status`.
    fn description(&self) -> Option<&str> {
        None
    }
    /// Versions this migration needs first, as `Depends:` takes them (`docs:1.1.0` names
    /// another database of the project).
    fn dependencies(&self) -> Vec<String> {
        vec![]
    }
    /// What the checksum covers. Code cannot be hashed at run time, so change this (a
    /// revision number, say) when `up` changes meaning and drift detection should see it.
    fn checksum_input(&self) -> String {
        format!("{}:{}", self.version(), self.name())
    }
    /// False when there is no `down`: rolling back is then refused before anything runs.
    fn reversible(&self) -> bool {
        true
    }
    /// Applies the migration on the driver's own client ([`CodeContext::client`]).
    async fn up(&self, db: &mut CodeContext<'_>) -> Result<(), CodeError>;
    /// Undoes `up` (the default refuses: a migration without a down).
    async fn down(&self, db: &mut CodeContext<'_>) -> Result<(), CodeError> {
        let _ = db;
        Err(format!("migration {} has no down", self.version()).into())
    }
}

/// What a code migration gets: the database kind and the driver's own client.
pub struct CodeContext<'a> {
    driver: &'a mut dyn Driver,
}

impl<'a> CodeContext<'a> {
    pub(crate) fn new(driver: &'a mut dyn Driver) -> Self {
        CodeContext { driver }
    }

    /// `postgres`, `sqlite`, `mysql`, `duckdb`, `mongodb`, `elasticsearch`.
    pub fn kind(&self) -> &'static str {
        self.driver.kind()
    }

    /// The driver's native client, when it is a `T`: `tokio_postgres::Client`,
    /// `rusqlite::Connection`, `mysql_async::Conn`, `duckdb::Connection`,
    /// `mongodb::Database`, or `strata_drivers::elasticsearch::Client` (see
    /// [`Driver::client`]).
    pub fn client<T: Any>(&mut self) -> Option<&mut T> {
        self.driver.client()?.downcast_mut::<T>()
    }

    /// [`client`](Self::client), or an error that says which client this database has:
    /// a `T` from another version of the client crate is a different type, so take the
    /// crate from `strata` (`strata::tokio_postgres::Client`, `strata::rusqlite::Connection`).
    pub fn require<T: Any>(&mut self) -> Result<&mut T, CodeError> {
        let kind = self.kind();
        let native = match kind {
            "postgres" => "strata::tokio_postgres::Client",
            "sqlite" => "strata::rusqlite::Connection",
            "mysql" => "strata::mysql_async::Conn",
            "duckdb" => "strata::duckdb::Connection",
            "mongodb" => "strata::mongodb::Database",
            _ => "strata::drivers::elasticsearch::Client",
        };
        self.client::<T>().ok_or_else(|| {
            format!(
                "this code migration asked for a `{}`, but the {kind} driver's client is a `{native}` (of the client crate version strata uses)",
                std::any::type_name::<T>()
            )
            .into()
        })
    }
}

/// A shared handle on registered code, so [`Migration`] stays `Clone` and `Debug`.
#[derive(Clone)]
pub struct CodeRef(pub Arc<dyn CodeMigration>);

impl fmt::Debug for CodeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CodeMigration({})", self.0.version())
    }
}

/// What a code migration without a `down` records as its rollback: a marker that
/// says the row is code's ([`crate::AppliedMigration::is_code`]), never run.
pub(crate) fn irreversible_marker(version: &str) -> String {
    format!("{CODE_MARKER} irreversible {version}")
}

/// The [`Migration`] that stands for registered code in plans, status and the history.
pub(crate) fn migration(code: Arc<dyn CodeMigration>) -> Migration {
    let version = code.version().to_string();
    let path = PathBuf::from(format!("<code migration {version} {}>", code.name()));
    let up_text = format!("{CODE_MARKER} {}", code.checksum_input());
    let checksum = Checksum::of(&up_text);
    let up = Script::inline(up_text, &path, 1);
    let down = code
        .reversible()
        .then(|| Script::inline(format!("{CODE_MARKER} down {version}"), &path, 1));
    let dependencies = code
        .dependencies()
        .into_iter()
        .map(|target| Dependency {
            target,
            path: path.clone(),
            line: 1,
        })
        .collect();
    Migration {
        id: format!("{version}_{}", code.name()),
        version: Version::new(version),
        name: code.name().to_string(),
        description: code.description().map(str::to_string),
        kind: MigrationKind::Versioned,
        checksum,
        baseline: false,
        up,
        down,
        transactional: false,
        outside_transaction: None,
        dependencies,
        timeout: None,
        source: path,
        format: Format::Code,
        code: Some(CodeRef(code)),
    }
}
