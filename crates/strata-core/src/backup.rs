//! Backups on disk: where they go (`BACKUP_LOCATION`, default `./backups`), what each is
//! (a data file the driver writes plus a JSON sidecar saying which database, when and
//! why), retention, and the "recent backup" check a protected rollback needs.
//!
//! The bytes are the driver's business ([`crate::Driver::backup`]); this module only
//! names, lists and prunes files. A backup is written under a `.partial` name and
//! renamed when complete, so a crash never leaves a file that looks finished.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::driver::Driver;
use crate::error::{DriverError, DriverErrorKind, Error, Result};

/// `[backup]` in `strata.toml` (and `BACKUP_*` variables).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BackupConfig {
    /// Backups may be taken at all (`backup create` works regardless).
    pub enabled: Option<bool>,
    /// Take a backup before every run that changes the schema.
    #[serde(alias = "before_migration")]
    pub backup_before_migration: Option<bool>,
    /// Delete backups older than this many days (the newest is always kept).
    #[serde(alias = "retention_days")]
    pub backup_retention_days: Option<u64>,
    /// Directory for backups (`BACKUP_LOCATION`), default `./backups`.
    pub location: Option<PathBuf>,
    /// In a protected environment, rollback needs a backup at most this old (default 24).
    pub max_age_hours: Option<u64>,
    /// In a protected environment, refuse rollback without a recent backup (default true).
    pub require_for_rollback: Option<bool>,
}

impl BackupConfig {
    /// Fills unset fields from `lower`.
    pub fn or(mut self, lower: &BackupConfig) -> BackupConfig {
        macro_rules! fill { ($($f:ident),*) => { $( if self.$f.is_none() { self.$f = lower.$f.clone(); } )* } }
        fill!(
            enabled,
            backup_before_migration,
            backup_retention_days,
            location,
            max_age_hours,
            require_for_rollback
        );
        self
    }
    pub fn location(&self) -> PathBuf {
        self.location
            .clone()
            .unwrap_or_else(|| PathBuf::from("backups"))
    }
    pub fn before_migration(&self) -> bool {
        self.enabled.unwrap_or(true) && self.backup_before_migration.unwrap_or(false)
    }
    pub fn retention(&self) -> Option<Duration> {
        self.backup_retention_days
            .map(|d| Duration::from_secs(d * 86_400))
    }
    pub fn max_age(&self) -> Duration {
        Duration::from_secs(self.max_age_hours.unwrap_or(24) * 3600)
    }
    pub fn require_for_rollback(&self) -> bool {
        self.require_for_rollback.unwrap_or(true)
    }
}

/// One backup, as its sidecar file describes it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BackupInfo {
    pub id: String,
    pub created_at: DateTime<Utc>,
    /// Driver kind (`postgres`, `sqlite`).
    pub kind: String,
    /// The database URL with its password redacted.
    pub database: String,
    /// The data file's name, inside the backup directory.
    pub file: String,
    pub size_bytes: u64,
    /// `manual`, `before up`, `before rollback`...
    pub reason: String,
    /// The newest applied version when the backup was taken.
    pub schema_version: Option<String>,
}

/// A directory of backups of one database.
#[derive(Debug, Clone)]
pub struct BackupStore {
    pub dir: PathBuf,
    /// The redacted URL of the database, so one directory can serve several.
    pub database: String,
    pub retention: Option<Duration>,
}

fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::Driver(DriverError::new(
        DriverErrorKind::Other,
        format!("{}: {e}", path.display()),
    ))
}

impl BackupStore {
    pub fn new(config: &BackupConfig, database: impl Into<String>) -> Self {
        BackupStore {
            dir: config.location(),
            database: database.into(),
            retention: config.retention(),
        }
    }

    /// Backs the database up now, then applies retention.
    pub async fn create(
        &self,
        d: &mut dyn Driver,
        reason: &str,
        schema_version: Option<String>,
    ) -> Result<BackupInfo> {
        std::fs::create_dir_all(&self.dir).map_err(|e| io_error(&self.dir, e))?;
        let now = Utc::now();
        // Millisecond ids sort by time and do not collide within one process.
        let id = now.format("%Y%m%dT%H%M%S%3fZ").to_string();
        let file = format!("{id}.{}", d.backup_extension());
        let data = self.dir.join(&file);
        let partial = self.dir.join(format!("{file}.partial"));
        let _ = std::fs::remove_file(&partial);
        if let Err(e) = d.backup(&partial).await {
            let _ = std::fs::remove_file(&partial);
            return Err(e.into());
        }
        std::fs::rename(&partial, &data).map_err(|e| io_error(&data, e))?;
        let info = BackupInfo {
            id: id.clone(),
            created_at: now,
            kind: d.kind().to_string(),
            database: self.database.clone(),
            size_bytes: std::fs::metadata(&data).map(|m| m.len()).unwrap_or(0),
            file,
            reason: reason.to_string(),
            schema_version,
        };
        let meta = self.dir.join(format!("{id}.json"));
        let text = serde_json::to_string_pretty(&info).expect("backup info serializes");
        std::fs::write(&meta, text).map_err(|e| io_error(&meta, e))?;
        self.prune(now)?;
        Ok(info)
    }

    /// Backups of this database, newest first.
    pub fn list(&self) -> Result<Vec<BackupInfo>> {
        let mut out = self.all()?;
        out.retain(|b| b.database == self.database);
        Ok(out)
    }

    /// Every backup in the directory, whatever database, newest first.
    fn all(&self) -> Result<Vec<BackupInfo>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(io_error(&self.dir, e)),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            match serde_json::from_str::<BackupInfo>(&text) {
                Ok(b) if self.dir.join(&b.file).exists() => out.push(b),
                Ok(_) => tracing::warn!("{}: its data file is gone", path.display()),
                Err(e) => tracing::warn!("{}: not a strata backup: {e}", path.display()),
            }
        }
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        Ok(out)
    }

    /// The backup with this id (of any database in the directory).
    pub fn get(&self, id: &str) -> Result<BackupInfo> {
        self.all()?.into_iter().find(|b| b.id == id).ok_or_else(|| {
            Error::Config(format!(
                "no backup `{id}` in {}; `strata backup list` shows them",
                self.dir.display()
            ))
        })
    }

    /// Replaces the database's contents with backup `id`.
    pub async fn restore(&self, d: &mut dyn Driver, id: &str) -> Result<BackupInfo> {
        let info = self.get(id)?;
        if info.kind != d.kind() {
            return Err(Error::Refused(format!(
                "backup {id} is of a {} database; this one is {}",
                info.kind,
                d.kind()
            )));
        }
        d.restore(&self.dir.join(&info.file)).await?;
        Ok(info)
    }

    /// The newest backup, if it is younger than `max_age`.
    pub fn recent(&self, max_age: Duration) -> Result<Option<BackupInfo>> {
        let newest = self.list()?.into_iter().next();
        Ok(newest.filter(|b| {
            Utc::now()
                .signed_duration_since(b.created_at)
                .to_std()
                .map(|age| age <= max_age)
                .unwrap_or(true)
        }))
    }

    /// Deletes this database's backups older than the retention, keeping the newest.
    fn prune(&self, now: DateTime<Utc>) -> Result<()> {
        let Some(keep) = self.retention else {
            return Ok(());
        };
        for old in self.list()?.into_iter().skip(1) {
            let age = now.signed_duration_since(old.created_at).to_std();
            if age.map(|a| a > keep).unwrap_or(false) {
                tracing::info!(id = %old.id, "deleting backup past retention");
                let _ = std::fs::remove_file(self.dir.join(&old.file));
                let _ = std::fs::remove_file(self.dir.join(format!("{}.json", old.id)));
            }
        }
        Ok(())
    }
}
