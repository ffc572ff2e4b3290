//! What every request shares: the configuration, the tokens, where migrations come
//! from, which databases have a run in progress, and the metrics.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use strata_core::{Config, Error, Migrator};

use crate::auth::Tokens;
use crate::book::RunBook;
use crate::error::ApiError;
use crate::metrics::Metrics;

/// Builds the migrator for one database's config. The default reads the config's
/// directory on every request, as the CLI does, so new files show up without a
/// restart; an application serving embedded or code migrations supplies its own.
pub type MigratorFactory = Arc<dyn Fn(&Config) -> Result<Migrator, Error> + Send + Sync>;

/// The router's state; cheap to clone.
#[derive(Clone)]
pub struct ApiState(Arc<Inner>);

struct Inner {
    config: Config,
    tokens: Tokens,
    migrators: MigratorFactory,
    /// Databases with a run in progress through this server.
    busy: Mutex<HashSet<String>>,
    metrics: Arc<Metrics>,
    book: RunBook,
}

/// One database a request addresses: the project member named by `?database=`, or the
/// only database of a single-database config.
#[derive(Clone)]
pub(crate) struct Db {
    /// `default`, or the member's name (metrics label and run key).
    pub name: String,
    pub config: Config,
    /// A member of a multi-database project: runs go through [`strata_core::Project`]
    /// so cross-database dependencies hold.
    pub in_project: bool,
}

impl ApiState {
    /// The state for `config`'s databases and these tokens.
    pub fn new(config: Config, tokens: Tokens) -> Self {
        ApiState(Arc::new(Inner {
            config,
            tokens,
            migrators: Arc::new(|c: &Config| c.migrator()),
            busy: Mutex::new(HashSet::new()),
            metrics: Arc::new(Metrics::default()),
            book: RunBook::default(),
        }))
    }

    /// Serves migrations from `f` instead of the configured directory (embedded
    /// migrations, registered code migrations). Call before cloning the state.
    pub fn with_migrations(
        mut self,
        f: impl Fn(&Config) -> Result<Migrator, Error> + Send + Sync + 'static,
    ) -> Self {
        Arc::get_mut(&mut self.0)
            .expect("with_migrations is called before the state is shared")
            .migrators = Arc::new(f);
        self
    }

    /// The configuration served.
    pub fn config(&self) -> &Config {
        &self.0.config
    }

    /// The API tokens.
    pub fn tokens(&self) -> &Tokens {
        &self.0.tokens
    }

    pub(crate) fn metrics(&self) -> &Arc<Metrics> {
        &self.0.metrics
    }

    pub(crate) fn book(&self) -> &RunBook {
        &self.0.book
    }

    pub(crate) fn migrator(&self, config: &Config) -> Result<Migrator, Error> {
        (self.0.migrators)(config)
    }

    /// Every database this server reaches.
    pub(crate) fn all(&self) -> Vec<Db> {
        let c = &self.0.config;
        if c.databases.is_empty() {
            return vec![Db {
                name: "default".into(),
                config: c.clone(),
                in_project: false,
            }];
        }
        c.databases
            .iter()
            .map(|(name, config)| Db {
                name: name.clone(),
                config: config.clone(),
                in_project: true,
            })
            .collect()
    }

    /// The database `?database=NAME` names; in a multi-database project the name is
    /// required.
    pub(crate) fn database(&self, name: Option<&str>) -> Result<Db, ApiError> {
        let all = self.all();
        let names = || {
            all.iter()
                .map(|d| d.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match name {
            None if all.len() == 1 => Ok(all[0].clone()),
            None => Err(ApiError::bad_request(format!(
                "this project has several databases: choose one with ?database=NAME ({})",
                names()
            ))),
            Some(n) => all.iter().find(|d| d.name == n).cloned().ok_or_else(|| {
                ApiError::not_found(
                    "unknown_database",
                    format!("no database `{n}`; databases: {}", names()),
                )
            }),
        }
    }

    /// Claims `db` for a run, or answers 409 while another run of it is in progress.
    pub(crate) fn claim(&self, db: &str) -> Result<RunGuard, ApiError> {
        let mut busy = self.0.busy.lock().unwrap_or_else(|p| p.into_inner());
        if !busy.insert(db.to_string()) {
            return Err(ApiError::busy(format!(
                "a run on database `{db}` is already in progress; try again when it has finished"
            )));
        }
        Ok(RunGuard {
            state: self.clone(),
            db: db.to_string(),
        })
    }
}

/// Releases a claimed database when the run ends, however it ends.
pub(crate) struct RunGuard {
    state: ApiState,
    db: String,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        let mut busy = self.state.0.busy.lock().unwrap_or_else(|p| p.into_inner());
        busy.remove(&self.db);
    }
}
