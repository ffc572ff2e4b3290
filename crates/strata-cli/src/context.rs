//! Turning flags into core types: the merged [`Config`], the [`Migrator`], a connected
//! driver, and confirmation for protected environments. The one place clap meets core.

use std::io::{BufRead, IsTerminal, Write};

use strata_core::policy::{self, Consent};
use strata_core::{BackupStore, Config, Driver, Error, Migrator, Overrides, RunOptions};

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
        self.config.migrator()
    }

    pub async fn connect(&self) -> Result<Box<dyn Driver>, Error> {
        strata_drivers::connect_config(&self.config).await
    }

    pub async fn connect_for_change(&self) -> Result<Box<dyn Driver>, Error> {
        strata_drivers::connect_for_change(&self.config).await
    }

    /// Options of a state-changing run: dry run, `DB_ECHO`, and the backup policy.
    pub fn run_options(&self, dry_run: bool, rollback: bool) -> RunOptions {
        RunOptions {
            dry_run,
            echo: self.echo(),
            backup: self.config.backup_policy(rollback),
            ..Default::default()
        }
    }

    /// Where backups of this database go.
    pub fn backups(&self) -> BackupStore {
        self.config.backups()
    }

    /// The URL safe to print.
    pub fn database(&self) -> String {
        self.config.redacted_url()
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
        let given = Consent {
            confirmed: self.global.yes,
            ..Consent::default()
        };
        let Err(refusal) = policy::confirm(&self.config, action, &given) else {
            return Ok(());
        };
        let env = self.config.env.as_deref().unwrap_or("this environment");
        if !std::io::stdin().is_terminal() {
            return Err(Error::Refused(format!("{refusal}; pass --yes to confirm")));
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
