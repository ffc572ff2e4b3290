//! Turning flags into core types: the merged [`Config`], the [`Migrator`], a connected
//! driver, and confirmation for protected environments. The one place clap meets core.

use std::io::{BufRead, IsTerminal, Write};

use strata_core::{
    BackupPolicy, BackupStore, Config, Driver, DriverErrorKind, Error, Migrator, Overrides,
    RunOptions, UrlSource,
};
use strata_drivers::HistoryNames;

use crate::args::GlobalArgs;

#[derive(Clone)]
pub struct Context {
    pub config: Config,
    pub global: GlobalArgs,
}

impl Context {
    pub fn load(global: &GlobalArgs) -> Result<Self, Error> {
        let overrides = Overrides {
            database_url: global.database_url.clone(),
            dir: global.dir.clone(),
            config: global.config.clone(),
            env: global.env.clone(),
        };
        let config = Config::load(&overrides, &|k| std::env::var(k).ok())?;
        Ok(Context {
            config,
            global: global.clone(),
        })
    }

    /// A multi-database project (`[databases.NAME]`), unless `--database-url` names
    /// one database directly.
    pub fn is_project(&self) -> bool {
        !self.config.databases.is_empty() && self.global.database_url.is_none()
    }

    /// The databases `--databases` selects (all when not given), each as a context of
    /// its own.
    pub fn members(&self) -> Result<Vec<(String, Context)>, Error> {
        Ok(self
            .config
            .select(&self.global.databases)?
            .into_iter()
            .map(|(name, config)| {
                (
                    name,
                    Context {
                        config,
                        global: self.global.clone(),
                    },
                )
            })
            .collect())
    }

    pub fn migrator(&self) -> Result<Migrator, Error> {
        Ok(Migrator::from_dir(&self.config.dir)?.with_settings(&self.config.settings))
    }

    /// Connects once: read-only commands answer at once when the database is down.
    pub async fn connect(&self) -> Result<Box<dyn Driver>, Error> {
        let names = HistoryNames {
            table: self.config.history_table.clone(),
            schema: self.config.schema.clone(),
        };
        strata_drivers::connect(&self.config.database_url, &names)
            .await
            .map_err(|mut e| {
                if e.kind == DriverErrorKind::InvalidUrl {
                    e.detail = Some(format!("the URL was set by {}", self.url_origin()));
                }
                e.into()
            })
    }

    /// Which setting the database URL came from, for errors about it.
    fn url_origin(&self) -> String {
        match self.config.url_source {
            UrlSource::Flag => "--database-url".into(),
            UrlSource::Environment => "DATABASE_URL (or DB_HOST/DB_NAME/...)".into(),
            UrlSource::ConfigFile => match &self.config.config_path {
                Some(p) => format!("database_url in {}", p.display()),
                None => "the config file".into(),
            },
            UrlSource::Default => "the default".into(),
        }
    }

    /// Connects for a command that changes state, retrying a refused or lost
    /// connection `retry_attempts` times (a deploy racing a database restart).
    pub async fn connect_for_change(&self) -> Result<Box<dyn Driver>, Error> {
        let settings = &self.config.settings;
        let mut attempt = 0;
        loop {
            match self.connect().await {
                Err(e) if e.is_transient() && attempt < settings.retry_attempts() => {
                    attempt += 1;
                    let delay = settings.retry_delay() * attempt;
                    tracing::warn!(
                        attempt,
                        of = settings.retry_attempts(),
                        "cannot connect, retrying in {}s: {e}",
                        delay.as_secs_f64()
                    );
                    tokio::time::sleep(delay).await;
                }
                other => return other,
            }
        }
    }

    /// Options of a state-changing run: dry run, `DB_ECHO`, and the backup policy.
    pub fn run_options(&self, dry_run: bool, rollback: bool) -> RunOptions {
        RunOptions {
            dry_run,
            echo: self.echo(),
            backup: self.backup_policy(rollback),
            ..Default::default()
        }
    }

    /// Where backups of this database go.
    pub fn backups(&self) -> BackupStore {
        BackupStore::new(&self.config.backup, self.database())
    }

    /// Backups around a run: one before it when configured, and for rollbacks in a
    /// protected environment, the demand that a recent one exists.
    pub fn backup_policy(&self, rollback: bool) -> Option<BackupPolicy> {
        let b = &self.config.backup;
        let require_recent =
            (rollback && self.config.protected && b.require_for_rollback()).then(|| b.max_age());
        let before_run = b.before_migration();
        (before_run || require_recent.is_some()).then(|| BackupPolicy {
            store: self.backups(),
            before_run,
            require_recent,
        })
    }

    /// The URL safe to print.
    pub fn database(&self) -> String {
        strata_core::redact(&self.config.database_url)
    }

    /// `DB_ECHO=true` logs every statement.
    pub fn echo(&self) -> bool {
        std::env::var("DB_ECHO")
            .map(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
            .unwrap_or(false)
    }

    /// In a protected environment, asks before a dangerous command; `--yes` answers.
    /// Refuses (exit 3) when nobody can answer.
    pub fn confirm(&self, action: &str) -> Result<(), Error> {
        if !self.config.protected || self.global.yes {
            return Ok(());
        }
        let env = self.config.env.as_deref().unwrap_or("this environment");
        if !std::io::stdin().is_terminal() {
            return Err(Error::Refused(format!(
                "{env} is protected: `{action}` needs confirmation; pass --yes to confirm"
            )));
        }
        eprint!(
            "{env} is protected. {action} on {}? Type `yes` to continue: ",
            self.database()
        );
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        if answer.trim() == "yes" {
            Ok(())
        } else {
            Err(Error::Refused(format!("`{action}` not confirmed")))
        }
    }
}
