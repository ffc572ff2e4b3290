//! Configuration: `strata.toml`, the environment and flags, merged into one [`Config`].
//!
//! Precedence, highest first: command-line flags, environment variables
//! (`DATABASE_URL`, or `DB_HOST`/`DB_PORT`/`DB_NAME`/`DB_USER`/`DB_PASSWORD`/`DB_SSL_MODE`),
//! the selected `[environments.NAME]` table, the top level of `strata.toml`, the
//! manifest's `settings:`, and finally the embedded default `sqlite://strata.db`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::backup::{BackupConfig, BackupStore};
use crate::error::SourceError;
use crate::migrator::{BackupPolicy, Migrator};

/// The database used when nothing else is configured.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://strata.db";

/// Tunables of a run. Every field is optional so layers can be merged; the accessors
/// apply the defaults SPEC section 4 lists.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Statement timeout for a migration (default 300).
    pub timeout_seconds: Option<u64>,
    /// Times a run starts over after a transient failure (default 3).
    pub retry_attempts: Option<u32>,
    /// The wait before the first retry, growing with each one (default 5).
    pub retry_delay_seconds: Option<u64>,
    /// Connection attempts to repeat when the database cannot be reached at the start
    /// (default 0: a database that is down fails at once, as in every command); for a
    /// deploy that races a database start-up (Flyway's `connectRetries`).
    pub connect_retries: Option<u32>,
    /// How long a run waits for the migration lock (default 60).
    pub lock_timeout_seconds: Option<u64>,
    /// How long one statement may wait for a table lock before failing with a retryable
    /// error (default 2000).
    pub lock_wait_ms: Option<u64>,
    /// Statements run at the start of every migration session.
    pub init_sql: Option<InitSql>,
    /// Apply pending migrations older than applied ones without `--allow-out-of-order`.
    pub out_of_order: Option<bool>,
    /// Whether dry runs are allowed (default true).
    pub dry_run_enabled: Option<bool>,
    /// Whether rollbacks are allowed (default true).
    pub rollback_enabled: Option<bool>,
    /// `session` (advisory/engine lock, the default) or `lease` (a row with an expiry).
    pub lock: Option<LockMode>,
    /// Lease length for `lock = "lease"` (default 30).
    pub lease_seconds: Option<u64>,
}

/// How the migration lock is held.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LockMode {
    /// A lock owned by the database session (PostgreSQL advisory lock, SQLite write
    /// lock): released by the server the moment the session ends.
    #[default]
    Session,
    /// A row with holder, expiry and heartbeat, for poolers and engines without
    /// session locks; a killed holder's lease runs out.
    Lease,
}

/// `init_sql` as one string or a list of statements.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum InitSql {
    One(String),
    Many(Vec<String>),
}

impl Settings {
    /// Fills every unset field from `lower`.
    pub fn or(mut self, lower: &Settings) -> Settings {
        macro_rules! fill { ($($f:ident),*) => { $( if self.$f.is_none() { self.$f = lower.$f.clone(); } )* } }
        fill!(
            timeout_seconds,
            retry_attempts,
            retry_delay_seconds,
            connect_retries,
            lock_timeout_seconds,
            lock_wait_ms,
            init_sql,
            out_of_order,
            dry_run_enabled,
            rollback_enabled,
            lock,
            lease_seconds
        );
        self
    }
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_seconds.unwrap_or(300))
    }
    pub fn lock_timeout(&self) -> Duration {
        Duration::from_secs(self.lock_timeout_seconds.unwrap_or(60))
    }
    pub fn lock_wait(&self) -> Duration {
        Duration::from_millis(self.lock_wait_ms.unwrap_or(2000))
    }
    pub fn retry_attempts(&self) -> u32 {
        self.retry_attempts.unwrap_or(3)
    }
    pub fn connect_retries(&self) -> u32 {
        self.connect_retries.unwrap_or(0)
    }
    pub fn retry_delay(&self) -> Duration {
        Duration::from_secs(self.retry_delay_seconds.unwrap_or(5))
    }
    pub fn out_of_order(&self) -> bool {
        self.out_of_order.unwrap_or(false)
    }
    pub fn rollback_enabled(&self) -> bool {
        self.rollback_enabled.unwrap_or(true)
    }
    pub fn lock_mode(&self) -> LockMode {
        self.lock.unwrap_or_default()
    }
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_seconds.unwrap_or(30).max(1))
    }
    pub fn init_sql(&self) -> Vec<String> {
        match &self.init_sql {
            None => vec![],
            Some(InitSql::One(s)) => vec![s.clone()],
            Some(InitSql::Many(v)) => v.clone(),
        }
    }
}

/// `strata.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(alias = "url")]
    pub database_url: Option<String>,
    /// The migrations directory.
    pub migrations: Option<PathBuf>,
    /// strata's history table (default: `schema_migrations` in the `strata` schema on
    /// PostgreSQL, `strata_schema_migrations` elsewhere).
    pub history_table: Option<String>,
    /// The schema (PostgreSQL) or database (MySQL) of strata's tables.
    pub schema: Option<String>,
    /// The prefix of strata's table names (default `strata_`; none in PostgreSQL's own
    /// `strata` schema).
    pub table_prefix: Option<String>,
    pub env: Option<String>,
    #[serde(default)]
    pub settings: Settings,
    #[serde(default)]
    pub environments: BTreeMap<String, EnvironmentConfig>,
    /// `[databases.NAME]`, in file order (read through `ConfigFile::databases`).
    pub databases: Option<toml::Table>,
    /// `[server]`: `strata serve`'s bind address, TLS files and API tokens.
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub backup: BackupConfig,
    /// `[fleet]`: `file = "fleet.toml"` (or `targets = [...]`), `concurrency`, `canary`.
    pub fleet: Option<FleetConfig>,
}

/// `[databases.NAME]`: one database of a multi-database project.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    #[serde(alias = "database_url")]
    pub url: Option<String>,
    #[serde(alias = "migrations")]
    pub dir: Option<PathBuf>,
    pub history_table: Option<String>,
    pub schema: Option<String>,
    pub table_prefix: Option<String>,
    #[serde(default)]
    pub settings: Settings,
    #[serde(default)]
    pub backup: BackupConfig,
}

/// `[fleet]` in `strata.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    /// A fleet file: one URL a line, or a TOML `targets` list.
    pub file: Option<PathBuf>,
    /// The targets inline.
    pub targets: Option<Vec<String>>,
    pub concurrency: Option<usize>,
    pub canary: Option<usize>,
}

/// `[server]` in `strata.toml`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// `--bind` when not given (default `127.0.0.1:8080`).
    pub bind: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Host names the server answers to besides IP addresses and `localhost` (the
    /// name clients and a reverse proxy use). Any other `Host` is refused, so a DNS
    /// rebinding page cannot reach a loopback server through a name it controls.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Origins (`https://ops.example.com`) whose pages may send state-changing
    /// requests, besides the server's own console.
    #[serde(default)]
    pub origins: Vec<String>,
    /// `[server.tokens] NAME = { role = "operator", sha256 = "<hex>" }`: the SHA-256
    /// of each bearer token, never the token itself.
    #[serde(default)]
    pub tokens: BTreeMap<String, TokenConfig>,
}

/// One API token: its role (`viewer` or `operator`) and the hex SHA-256 of the token.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    pub role: String,
    pub sha256: String,
}

/// `[environments.NAME]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentConfig {
    #[serde(alias = "url")]
    pub database_url: Option<String>,
    pub migrations: Option<PathBuf>,
    pub protected: Option<bool>,
    #[serde(default)]
    pub settings: Settings,
    #[serde(default)]
    pub backup: BackupConfig,
}

impl ConfigFile {
    /// Reads and validates a config file.
    pub fn read(path: &Path) -> Result<Self, SourceError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SourceError::new(path, None, format!("cannot read config: {e}")))?;
        let file: ConfigFile =
            toml::from_str(&text).map_err(|e| crate::source::toml_error(path, &text, &e))?;
        file.databases(path, &text)?;
        Ok(file)
    }

    /// `[databases.NAME]` entries in file order, each validated.
    fn databases(
        &self,
        path: &Path,
        text: &str,
    ) -> Result<Vec<(String, DatabaseConfig)>, SourceError> {
        let Some(table) = &self.databases else {
            return Ok(vec![]);
        };
        table
            .iter()
            .map(|(name, v)| {
                let line = crate::source::line_of(text, &format!("[databases.{name}"));
                let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                if !valid {
                    return Err(SourceError::new(
                        path,
                        Some(line),
                        format!("database name `{name}` must be letters, digits, `_` or `-`, starting with a letter"),
                    ));
                }
                let db: DatabaseConfig = v.clone().try_into().map_err(|e: toml::de::Error| {
                    SourceError::new(path, Some(line), format!("[databases.{name}]: {}", e.message()))
                })?;
                Ok((name.clone(), db))
            })
            .collect()
    }
}

/// Where the database URL came from, for `info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UrlSource {
    Flag,
    Environment,
    ConfigFile,
    Default,
}

impl std::fmt::Display for UrlSource {
    /// Where the URL came from, in the words a user configured it with.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UrlSource::Flag => "--database-url",
            UrlSource::Environment => "DATABASE_URL",
            UrlSource::ConfigFile => "strata.toml",
            UrlSource::Default => "the default",
        })
    }
}

/// What the caller (CLI flags, server options) says, before merging.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub database_url: Option<String>,
    pub dir: Option<PathBuf>,
    pub config: Option<PathBuf>,
    pub env: Option<String>,
}

/// The merged configuration of one run.
#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
    pub url_source: UrlSource,
    pub dir: PathBuf,
    pub config_path: Option<PathBuf>,
    pub env: Option<String>,
    pub protected: bool,
    /// strata's table names as configured; `None` for the engine's default layout.
    pub history_table: Option<String>,
    pub schema: Option<String>,
    pub table_prefix: Option<String>,
    pub settings: Settings,
    pub backup: BackupConfig,
    /// `[databases.NAME]` of a multi-database project, in file order; each a whole
    /// single-database config (see `Config::database`). Empty otherwise.
    pub databases: Vec<(String, Config)>,
    pub fleet: Option<FleetConfig>,
    pub server: ServerConfig,
}

impl Config {
    /// The databases a command acts on: `--databases a,b` (in project order), or all.
    pub fn select(&self, names: &[String]) -> Result<Vec<(String, Config)>, SourceError> {
        let origin = self
            .config_path
            .clone()
            .unwrap_or_else(|| PathBuf::from("--databases"));
        for n in names {
            if !self.databases.iter().any(|(d, _)| d == n) {
                let known: Vec<&str> = self.databases.iter().map(|(d, _)| d.as_str()).collect();
                return Err(SourceError::new(
                    &origin,
                    None,
                    format!(
                        "--databases names `{n}`, which is not a [databases.NAME] of the project"
                    ),
                )
                .with_help(if known.is_empty() {
                    "this project has no [databases] section".to_string()
                } else {
                    format!("defined: {}", known.join(", "))
                }));
            }
        }
        Ok(self
            .databases
            .iter()
            .filter(|(d, _)| names.is_empty() || names.contains(d))
            .cloned()
            .collect())
    }

    /// Merges flags, environment, `strata.toml` and defaults. `getenv` is the environment
    /// (injected so tests need not mutate the process environment).
    pub fn load(
        o: &Overrides,
        getenv: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, SourceError> {
        let config_path = match &o.config {
            Some(p) => Some(p.clone()),
            None => Some(PathBuf::from("strata.toml")).filter(|p| p.exists()),
        };
        let file = match &config_path {
            Some(p) => ConfigFile::read(p)?,
            None => ConfigFile::default(),
        };
        let env = o
            .env
            .clone()
            .or_else(|| getenv("STRATA_ENV"))
            .or_else(|| getenv("ENV"))
            .or(file.env.clone())
            .filter(|e| !e.is_empty());
        // `.env.NAME` and `.env` supply variables the real environment does not set.
        let dotenv = read_dotenv(env.as_deref())?;
        let var = |k: &str| {
            getenv(k)
                .or_else(|| dotenv.get(k).cloned())
                .filter(|v| !v.is_empty())
        };
        let env_cfg = match &env {
            // `--env PROD` is the `prod` environment: names compare without case.
            Some(name) => file
                .environments
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone()),
            None => None,
        };
        if let (Some(name), Some(path)) = (&env, &config_path) {
            if env_cfg.is_none() && !file.environments.is_empty() {
                return Err(SourceError::new(
                    path,
                    None,
                    format!("environment `{name}` is not defined"),
                )
                .with_help(format!(
                    "defined: {}",
                    file.environments
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        let env_cfg = env_cfg.unwrap_or_default();

        let (database_url, url_source) = if let Some(u) = &o.database_url {
            (u.clone(), UrlSource::Flag)
        } else if let Some(u) = var("DATABASE_URL") {
            (u, UrlSource::Environment)
        } else if let Some(u) = compose_url(&var)? {
            (u, UrlSource::Environment)
        } else if let Some(u) = env_cfg.database_url.clone().or(file.database_url.clone()) {
            (u, UrlSource::ConfigFile)
        } else {
            (DEFAULT_DATABASE_URL.to_string(), UrlSource::Default)
        };
        let dir = o
            .dir
            .clone()
            .or(env_cfg.migrations.clone())
            .or(file.migrations.clone())
            .unwrap_or_else(|| PathBuf::from("migrations"));
        let protected = env_cfg.protected.unwrap_or_else(|| {
            env.as_deref().is_some_and(|e| {
                e.eq_ignore_ascii_case("prod") || e.eq_ignore_ascii_case("production")
            })
        });
        let settings = env_cfg.settings.or(&file.settings);
        let backup = backup_from_env(&var)?.or(&env_cfg.backup).or(&file.backup);
        let history_table = file.history_table.clone();
        let mut databases = Vec::new();
        if let Some(path) = &config_path {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            for (name, db) in file.databases(path, &text)? {
                // DATABASE_URL_<NAME> overrides, so each environment can point elsewhere.
                let key = format!(
                    "DATABASE_URL_{}",
                    name.to_ascii_uppercase().replace('-', "_")
                );
                let url = var(&key).or(db.url.clone()).ok_or_else(|| {
                    SourceError::new(
                        path,
                        Some(crate::source::line_of(&text, &format!("[databases.{name}"))),
                        format!("[databases.{name}] has no url (nor is {key} set)"),
                    )
                })?;
                databases.push((
                    name.clone(),
                    Config {
                        database_url: url,
                        url_source: UrlSource::ConfigFile,
                        dir: db
                            .dir
                            .clone()
                            .unwrap_or_else(|| PathBuf::from("migrations").join(&name)),
                        config_path: config_path.clone(),
                        env: env.clone(),
                        protected,
                        history_table: db.history_table.clone().or(history_table.clone()),
                        schema: db.schema.clone().or(file.schema.clone()),
                        table_prefix: db.table_prefix.clone().or(file.table_prefix.clone()),
                        settings: db.settings.clone().or(&settings),
                        backup: db.backup.clone().or(&backup),
                        databases: vec![],
                        fleet: None,
                        server: ServerConfig::default(),
                    },
                ));
            }
        }
        Ok(Config {
            database_url,
            url_source,
            dir,
            config_path,
            protected,
            env,
            history_table,
            schema: file.schema.clone(),
            table_prefix: file.table_prefix.clone(),
            settings,
            backup,
            databases,
            fleet: file.fleet.clone(),
            server: file.server.clone(),
        })
    }

    /// The database URL safe to print.
    pub fn redacted_url(&self) -> String {
        redact(&self.database_url)
    }

    /// Where backups of this database go.
    pub fn backups(&self) -> BackupStore {
        BackupStore::new(&self.backup, self.redacted_url())
    }

    /// Backups around a run: one before it when configured, and for rollbacks in a
    /// protected environment, the demand that a recent one exists.
    pub fn backup_policy(&self, rollback: bool) -> Option<BackupPolicy> {
        let b = &self.backup;
        let require_recent =
            (rollback && self.protected && b.require_for_rollback()).then(|| b.max_age());
        let before_run = b.before_migration();
        (before_run || require_recent.is_some()).then(|| BackupPolicy {
            store: self.backups(),
            before_run,
            require_recent,
        })
    }

    /// The migrations of this database, read from its directory, with its settings.
    pub fn migrator(&self) -> crate::Result<Migrator> {
        Ok(Migrator::from_dir(&self.dir)?.with_settings(&self.settings))
    }
}

/// `BACKUP_LOCATION`, `BACKUP_ENABLED`, `BACKUP_BEFORE_MIGRATION`, `BACKUP_RETENTION_DAYS`.
fn backup_from_env(var: &dyn Fn(&str) -> Option<String>) -> Result<BackupConfig, SourceError> {
    let flag = |k: &str| -> Result<Option<bool>, SourceError> {
        var(k)
            .map(|v| match v.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => Err(SourceError::new(
                    k,
                    None,
                    format!("`{v}` is not true or false"),
                )),
            })
            .transpose()
    };
    Ok(BackupConfig {
        enabled: flag("BACKUP_ENABLED")?,
        backup_before_migration: flag("BACKUP_BEFORE_MIGRATION")?,
        backup_retention_days: var("BACKUP_RETENTION_DAYS")
            .map(|v| {
                v.parse().map_err(|_| {
                    SourceError::new(
                        "BACKUP_RETENTION_DAYS",
                        None,
                        format!("`{v}` is not a number of days"),
                    )
                })
            })
            .transpose()?,
        location: var("BACKUP_LOCATION").map(PathBuf::from),
        ..Default::default()
    })
}

/// `.env.NAME` (when an environment is named) over `.env`, as sqlx-cli, diesel_cli and
/// dbmate read them: variables the real environment does not set. Parsed by dotenvy
/// (quotes, escapes, `export`, `# comments` after a value); a line it cannot read is an
/// error naming the file and line.
fn read_dotenv(env: Option<&str>) -> Result<BTreeMap<String, String>, SourceError> {
    let mut out = BTreeMap::new();
    let files = env
        .map(|e| PathBuf::from(format!(".env.{e}")))
        .into_iter()
        .chain([PathBuf::from(".env")]);
    for path in files {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        for item in dotenvy::from_read_iter(text.as_bytes()) {
            match item {
                // The more specific file, read first, wins.
                Ok((k, v)) => {
                    out.entry(k).or_insert(v);
                }
                Err(e) => {
                    let (line, message) = match &e {
                        dotenvy::Error::LineParse(l, _) => (
                            text.lines()
                                .position(|t| t.contains(l.lines().next().unwrap_or(l)))
                                .map(|i| i + 1),
                            "expected KEY=VALUE".to_string(),
                        ),
                        other => (None, format!("cannot read: {other}")),
                    };
                    return Err(SourceError::new(&path, line, message)
                        .with_help("write KEY=VALUE lines; quote a value that holds spaces or #"));
                }
            }
        }
    }
    Ok(out)
}

/// `DB_HOST` and friends as a PostgreSQL URL (or `DB_TYPE=mysql`), when `DB_HOST` or `DB_NAME` is set.
/// The URL `DB_HOST`, `DB_PORT`, `DB_NAME`, `DB_USER`, `DB_PASSWORD`, `DB_SSL_MODE`
/// (and `DB_TYPE`) compose, or `None` when neither host nor name is set. A value that
/// cannot be what its name says is an error naming the variable: silently dropping it
/// once sent a run to a local SQLite file, or to another database.
fn compose_url(var: &dyn Fn(&str) -> Option<String>) -> Result<Option<String>, SourceError> {
    let host = var("DB_HOST");
    let name = var("DB_NAME");
    if host.is_none() && name.is_none() {
        return Ok(None);
    }
    let bad = |k: &str, v: &str, why: &str| SourceError::new(k, None, format!("`{v}` {why}"));
    let scheme = var("DB_TYPE").unwrap_or_else(|| "postgres".into());
    if !scheme
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '+')
    {
        return Err(bad(
            "DB_TYPE",
            &scheme,
            "is not a database type such as postgres or mysql",
        ));
    }
    let mut u = url::Url::parse(&format!("{scheme}://localhost")).map_err(|_| {
        bad(
            "DB_TYPE",
            &scheme,
            "is not a database type such as postgres or mysql",
        )
    })?;
    let host = host.unwrap_or_else(|| "localhost".into());
    let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        host.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    };
    if !host_ok || u.set_host(Some(&host)).is_err() {
        return Err(bad(
            "DB_HOST",
            &host,
            "is not a host name or address (no port, path or query: use DB_PORT and DB_NAME)",
        ));
    }
    if let Some(p) = var("DB_PORT") {
        let port: u16 = p
            .trim()
            .parse()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| bad("DB_PORT", &p, "is not a port number (1-65535)"))?;
        u.set_port(Some(port))
            .map_err(|_| bad("DB_PORT", &p, "cannot be set on this URL"))?;
    }
    if let Some(user) = var("DB_USER") {
        u.set_username(&user)
            .map_err(|_| bad("DB_USER", &user, "cannot be a user name in a URL"))?;
    }
    if let Some(pw) = var("DB_PASSWORD") {
        u.set_password(Some(&pw))
            .map_err(|_| SourceError::new("DB_PASSWORD", None, "cannot be set on this URL"))?;
    }
    let name = name.unwrap_or_default();
    if name.contains(['/', '\\', '?', '#']) || name == ".." || name == "." {
        return Err(bad(
            "DB_NAME",
            &name,
            "is not a database name (no `/`, `?` or `#`)",
        ));
    }
    // Percent-encoded by hand: `set_path` would resolve `.` and `..` segments.
    u.set_path(&url::form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>());
    if let Some(ssl) = var("DB_SSL_MODE") {
        let known = [
            "disable",
            "allow",
            "prefer",
            "require",
            "verify-ca",
            "verify-full",
        ];
        if !known.iter().any(|k| k.eq_ignore_ascii_case(&ssl)) {
            return Err(bad(
                "DB_SSL_MODE",
                &ssl,
                &format!("is not one of {}", known.join(", ")),
            ));
        }
        u.query_pairs_mut()
            .append_pair("sslmode", &ssl.to_ascii_lowercase());
    }
    Ok(Some(u.to_string()))
}

/// Query parameters and conninfo keys that carry secrets.
fn is_secret_key(k: &str) -> bool {
    ["password", "sslpassword", "pass", "pwd"]
        .iter()
        .any(|s| k.eq_ignore_ascii_case(s))
}

/// A URL with its password replaced by `***`, for every message, log line and response.
pub fn redact(url: &str) -> String {
    // A key/value conninfo string (`host=db password=secret`).
    if !url.contains("://") && url.contains('=') {
        return url
            .split(' ')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if is_secret_key(k.trim()) => format!("{k}=***"),
                _ => kv.to_string(),
            })
            .collect::<Vec<_>>()
            .join(" ");
    }
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            if u.query_pairs().any(|(k, _)| is_secret_key(&k)) {
                let pairs: Vec<(String, String)> = u
                    .query_pairs()
                    .map(|(k, v)| {
                        let v = if is_secret_key(&k) {
                            "***".into()
                        } else {
                            v.into_owned()
                        };
                        (k.into_owned(), v)
                    })
                    .collect();
                u.query_pairs_mut().clear().extend_pairs(pairs);
            }
            u.to_string()
        }
        // Not parseable: hide anything between `:` and `@` after the scheme, and every
        // secret query parameter.
        Err(_) => {
            let (base, query) = match url.split_once('?') {
                Some((b, q)) => (b, Some(q)),
                None => (url, None),
            };
            let mut out = match (base.find("://"), base.rfind('@')) {
                (Some(s), Some(at)) if at > s => {
                    let auth = &base[s + 3..at];
                    match auth.find(':') {
                        Some(c) => format!("{}{}:***{}", &base[..s + 3], &auth[..c], &base[at..]),
                        None => base.to_string(),
                    }
                }
                _ => base.to_string(),
            };
            if let Some(q) = query {
                let q: Vec<String> = q
                    .split('&')
                    .map(|kv| match kv.split_once('=') {
                        Some((k, _)) if is_secret_key(k) => format!("{k}=***"),
                        _ => kv.to_string(),
                    })
                    .collect();
                out.push('?');
                out.push_str(&q.join("&"));
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("sqlite://strata.db"), "sqlite://strata.db");
        assert!(!redact("postgres://u:se cret@h:bad/db").contains("se cret"));
        for u in [
            "postgres://u@h/db?password=hunter2",
            "postgres://u@h/db?sslmode=require&PASSWORD=hunter2",
            "mysql://u@h:bad/db?password=hunter2",
            "host=h user=u password=hunter2 dbname=db",
        ] {
            let r = redact(u);
            assert!(!r.contains("hunter2") && r.contains("***"), "{u} -> {r}");
        }
    }

    #[test]
    fn composes_from_db_vars() {
        let vars: BTreeMap<&str, &str> = [
            ("DB_HOST", "db"),
            ("DB_NAME", "app"),
            ("DB_USER", "me"),
            ("DB_PASSWORD", "p@ss"),
            ("DB_PORT", "5433"),
        ]
        .into();
        let u = compose_url(&|k| vars.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(u.as_deref(), Some("postgres://me:p%40ss@db:5433/app"));
    }

    #[test]
    fn db_vars_that_cannot_be_what_they_say_are_refused_by_name() {
        for (k, v) in [
            ("DB_HOST", "db.internal/x?y="),
            ("DB_HOST", "db:5432"),
            ("DB_PORT", "abc"),
            ("DB_PORT", "70000"),
            ("DB_NAME", "x/../postgres"),
            ("DB_SSL_MODE", "sometimes"),
        ] {
            let vars: BTreeMap<&str, &str> = [("DB_HOST", "db"), ("DB_NAME", "app"), (k, v)].into();
            let e = compose_url(&|n| vars.get(n).map(|v| v.to_string())).unwrap_err();
            assert_eq!(e.path, std::path::PathBuf::from(k), "{k}={v}");
        }
    }

    #[test]
    fn default_is_embedded_sqlite() {
        let c = Config::load(
            &Overrides {
                config: None,
                ..Default::default()
            },
            &|_| None,
        )
        .unwrap();
        assert_eq!(c.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(c.url_source, UrlSource::Default);
    }
}
