//! strata's core: the migration model, reading migration directories, checksums and
//! `strata.sum`, ordering and planning, the [`Driver`] trait and the [`Migrator`] run
//! loop. No database client crates here: drivers live in `strata-drivers`.

#![deny(missing_docs)]

#[doc(hidden)]
pub mod adopt;
#[doc(hidden)]
pub mod backup;
mod code;
#[doc(hidden)]
pub mod config;
#[doc(hidden)]
pub mod ddl;
#[doc(hidden)]
pub mod diff;
#[doc(hidden)]
pub mod docops;
mod driver;
#[doc(hidden)]
pub mod embed;
mod error;
mod event;
#[doc(hidden)]
pub mod fleet;
#[doc(hidden)]
pub mod generate;
#[doc(hidden)]
pub mod graph;
mod info;
#[doc(hidden)]
pub mod lint;
mod migration;
mod migrator;
mod plan;
#[doc(hidden)]
pub mod policy;
#[doc(hidden)]
pub mod project;
#[doc(hidden)]
pub mod schema;
#[doc(hidden)]
pub mod source;
#[doc(hidden)]
pub mod sql;
#[doc(hidden)]
pub mod sum;
#[doc(hidden)]
pub mod verify;
mod version;

pub use backup::{BackupConfig, BackupInfo, BackupStore};
pub use code::{CodeContext, CodeError, CodeMigration, CodeRef, CODE_MARKER};
pub use config::{
    redact, Config, ConfigFile, EnvironmentConfig, InitSql, Overrides, ServerConfig, TokenConfig,
    UrlSource, DEFAULT_DATABASE_URL,
};
pub use config::{LockMode, Settings};
pub use driver::{
    AuditEntry, AuditRecord, Capabilities, Change, Driver, LockOptions, Record, Topology,
};
pub use embed::{Embedded, EmbeddedMigration};
pub use error::{
    DriverError, DriverErrorKind, Error, PlanError, Result, SourceError, StatementRef,
};
pub use event::{Event, Reporter, Silent};
pub use info::info;
pub use migration::{
    AppliedMigration, Checksum, Dependency, Format, Migration, MigrationKind, MigrationState,
    Progress, Script,
};
pub use migrator::{
    Actor, BackupPolicy, Finding, HealthReport, HealthStatus, Mark, Migrator, RepairAction,
    RepairReport, RunOptions, RunReport, StatusReport, StepResult, StoppedRun,
};
pub use plan::{
    check_history, order, plan_down, plan_mark, plan_rollback, plan_up, states, Catalog, Direction,
    InDoubt, Plan, StatusRow, Step, Stopped, Target, UpOptions,
};
pub use project::{Member, MemberReport, Project};
pub use source::{read_dir, Manifest, Source};
pub use verify::Scratch;
pub use version::Version;
