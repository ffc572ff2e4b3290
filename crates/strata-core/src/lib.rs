//! strata's core: the migration model, reading migration directories, checksums and
//! `strata.sum`, ordering and planning, the [`Driver`] trait and the [`Migrator`] run
//! loop. No database client crates here: drivers live in `strata-drivers`.

pub mod adopt;
pub mod backup;
mod code;
mod config;
pub mod ddl;
pub mod diff;
pub mod docops;
mod driver;
mod embed;
mod error;
mod event;
pub mod fleet;
pub mod generate;
pub mod graph;
mod info;
pub mod lint;
mod migration;
mod migrator;
mod plan;
pub mod policy;
mod project;
pub mod schema;
pub mod source;
pub mod sql;
pub mod sum;
pub mod verify;
mod version;

pub use backup::{BackupConfig, BackupInfo, BackupStore};
pub use code::{CodeContext, CodeError, CodeMigration, CodeRef, CODE_MARKER};
pub use config::{
    redact, Config, ConfigFile, EnvironmentConfig, InitSql, LockMode, Overrides, ServerConfig,
    Settings, TokenConfig, UrlSource, DEFAULT_DATABASE_URL,
};
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
