//! Migrations compiled into a program by `strata::embed_migrations!("dir")`: the macro
//! reads the directory at build time (a bad file is a compile error naming file and
//! line), computes every checksum then, and emits [`EmbeddedMigration`]s; at run time
//! [`Embedded`] turns them back into a [`Migrator`] without touching the disk.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::Settings;
use crate::error::{Result, SourceError};
use crate::event::Silent;
use crate::migration::{Checksum, Dependency, Format, Migration, MigrationKind, Script};
use crate::migrator::{Migrator, RunOptions, RunReport};
use crate::plan::Target;
use crate::source::{self, Source};
use crate::version::Version;
use crate::Driver;

/// One migration as the macro wrote it down.
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedMigration {
    pub id: &'static str,
    pub version: &'static str,
    pub name: &'static str,
    pub description: Option<&'static str>,
    pub repeatable: bool,
    /// `sql` or `operations`.
    pub format: &'static str,
    pub up: &'static str,
    pub down: Option<&'static str>,
    /// SHA-256 of `up`, computed by the macro.
    pub checksum: &'static str,
    pub transactional: bool,
    pub dependencies: &'static [&'static str],
    pub timeout_ms: Option<u64>,
    /// The file it came from, for messages.
    pub path: &'static str,
}

/// A migrations directory compiled into the program.
#[derive(Debug, Clone, Copy)]
pub struct Embedded {
    pub dir: &'static str,
    pub migrations: &'static [EmbeddedMigration],
}

impl Embedded {
    /// The migrator for these migrations, checked as `Migrator::from_dir` checks a directory.
    pub fn migrator(&self) -> Result<Migrator> {
        let mut found = Vec::with_capacity(self.migrations.len());
        for e in self.migrations {
            let path = PathBuf::from(e.path);
            let script = |sql: &str| Script::inline(sql, &path, 1);
            let checksum = Checksum::of(e.up);
            if checksum.as_str() != e.checksum {
                return Err(SourceError::new(
                    &path,
                    None,
                    "embedded checksum does not match the embedded script",
                )
                .into());
            }
            found.push(Migration {
                id: e.id.into(),
                version: Version::new(e.version),
                name: e.name.into(),
                description: e.description.map(str::to_string),
                kind: if e.repeatable {
                    MigrationKind::Repeatable
                } else {
                    MigrationKind::Versioned
                },
                up: script(e.up),
                down: e.down.map(script),
                checksum,
                baseline: crate::migration::header_is_baseline(e.up),
                transactional: e.transactional,
                outside_transaction: None,
                dependencies: e
                    .dependencies
                    .iter()
                    .map(|d| Dependency {
                        target: d.to_string(),
                        path: path.clone(),
                        line: 1,
                    })
                    .collect(),
                timeout: e.timeout_ms.map(Duration::from_millis),
                source: path.clone(),
                format: if e.format == "operations" {
                    Format::Operations
                } else {
                    Format::Sql
                },
                code: None,
            });
        }
        source::diesel_order(&mut found);
        source::check_duplicates(&found)?;
        let migrations = crate::plan::order(found)?;
        Ok(Migrator::from_source(Source {
            not_runnable: vec![],
            dir: PathBuf::from(self.dir),
            migrations,
            manifest: None,
        }))
    }

    /// Applies every pending migration on a connected driver.
    pub async fn run_on(&self, d: &mut dyn Driver) -> Result<RunReport> {
        self.migrator()?
            .with_settings(&Settings::default())
            .up(d, &Target::Head, &RunOptions::default(), &mut Silent)
            .await
    }

    /// True when `AUTO_MIGRATE` is `true` (or `1`): the switch an application checks
    /// before migrating on start-up.
    pub fn auto_migrate_enabled() -> bool {
        std::env::var("AUTO_MIGRATE")
            .map(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
            .unwrap_or(false)
    }
}
