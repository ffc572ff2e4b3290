//! Error types, one per area, wrapped by [`Error`]. Each carries what a caller needs to
//! say *what* and *where*: the file and line for bad input, the migration and statement
//! for a failed run. Messages are lower-case without a trailing period.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::migration::Checksum;

/// Bad input in a migrations directory, manifest or config file. Nothing ran.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub struct SourceError {
    /// The file (or directory) the problem is in.
    pub path: PathBuf,
    /// 1-based line, when the problem is on one line.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// What is wrong, lower-case, without a trailing period.
    pub message: String,
    /// How to fix it, when known.
    pub help: Option<String>,
}

impl SourceError {
    /// An error about `path`, at `line` when the problem is on one line.
    pub fn new(path: impl AsRef<Path>, line: Option<usize>, message: impl Into<String>) -> Self {
        SourceError {
            path: path.as_ref().to_path_buf(),
            line,
            column: None,
            message: message.into(),
            help: None,
        }
    }
    /// Adds how to fix it.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
    /// Adds the column.
    pub fn with_column(mut self, column: Option<usize>) -> Self {
        self.column = column;
        self
    }
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
            if let Some(c) = self.column {
                write!(f, ":{c}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

/// The plan cannot be made: the request or the history is not one strata will act on.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
// Each variant is documented; its fields (`version`, `name`, `path`, `done`, ...) are
// the values its message names.
#[allow(missing_docs)]
pub enum PlanError {
    /// The target names no migration.
    #[error("unknown target `{0}`: not a version, a migration id, head, base, -N or +N")]
    UnknownTarget(String),
    /// The migration to roll back is not applied.
    #[error("migration {version} is not applied")]
    NotApplied { version: String },
    /// The migration has no rollback script (or code).
    #[error("migration {version} has no rollback script")]
    NoRollback {
        version: String,
        path: Option<PathBuf>,
    },
    /// Applied migrations depend on the one to roll back.
    #[error("applied migrations depend on {version}: {dependents}")]
    HasDependents { version: String, dependents: String },
    #[error(
        "pending migration {version} is older than applied migration {applied}: out of order (two branches merged?)"
    )]
    /// A pending migration is older than an applied one.
    OutOfOrder {
        version: String,
        applied: String,
        path: PathBuf,
    },
    /// An applied migration's file changed since it was applied.
    #[error("migration {version} was applied with checksum {applied}, file now hashes to {now}")]
    Modified {
        version: String,
        applied: String,
        now: String,
        path: PathBuf,
    },
    /// An applied migration's file is gone.
    #[error("migration {version} ({name}) is applied but its file is missing")]
    Missing { version: String, name: String },
    /// A migration's run broke midway and left a `failed` row.
    #[error("migration {version} failed midway ({done} statements done)")]
    Failed { version: String, done: i64 },
    /// The migration to stamp is already applied.
    #[error("migration {version} is already applied")]
    AlreadyApplied { version: String },
    /// A code migration's row, met by a program that does not register that code.
    #[error("migration {version} ({name}) was applied by the application's code migration, which is not registered here")]
    CodeNotRegistered { version: String, name: String },
    /// A code migration failed when the application ran it.
    #[error("code migration {version} ({name}) failed when the application ran it")]
    CodeFailed { version: String, name: String },
    /// A statement's outcome is unknown: its run stopped while it was running.
    #[error("statement {statement} of migration {version} was running when its run stopped, so whether it took effect is unknown")]
    InDoubt { version: String, statement: i64 },
    /// A rollback stopped midway.
    #[error("the rollback of migration {version} stopped midway ({done} statements done)")]
    RollbackStopped { version: String, done: i64 },
}

impl PlanError {
    /// What the `strata` command suggests doing about it: the messages themselves only
    /// describe the state, since an application's way out is not a command line.
    pub fn hint(&self) -> Option<&'static str> {
        Some(match self {
            PlanError::HasDependents { .. } => "`--cascade` rolls them back first",
            PlanError::OutOfOrder { .. } => "`--allow-out-of-order` applies it",
            PlanError::Modified { .. } => {
                "if the change is deliberate, `strata repair` re-records the checksum"
            }
            PlanError::Failed { .. } => {
                "fix it, then `strata up --resume` runs the rest, or `strata repair` clears the row"
            }
            PlanError::InDoubt { .. } => {
                "check the database, then `--resume --in-doubt=done` (it did) or `--resume --in-doubt=rerun` (it did not)"
            }
            PlanError::RollbackStopped { .. } => {
                "`strata rollback --resume` finishes it (or finish it by hand, then `strata repair`)"
            }
            PlanError::CodeNotRegistered { .. } => {
                "only the application that registers the code migration can roll it back"
            }
            PlanError::CodeFailed { .. } => {
                "the application runs it again when it resumes; `strata repair` clears the row"
            }
            _ => return None,
        })
    }

    pub(crate) fn modified(
        version: &str,
        applied: &Checksum,
        now: &Checksum,
        path: PathBuf,
    ) -> Self {
        PlanError::Modified {
            version: version.into(),
            applied: applied.short().into(),
            now: now.short().into(),
            path,
        }
    }
}

/// What kind of database failure a [`DriverError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DriverErrorKind {
    /// The server could not be reached.
    Connect,
    /// The URL is malformed or names a database this build does not support (bad input).
    InvalidUrl,
    /// A statement failed.
    Query,
    /// The migration lock was not granted within `lock_timeout`.
    LockTimeout,
    /// Another kind of failure (I/O, protocol).
    Other,
    /// The database is in a state strata will not act on (a foreign table under one of
    /// strata's names, a history that disappeared): refused for safety, exit 3.
    Refused,
}

/// Where in a script a statement failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementRef {
    /// 1-based index of the statement in the script.
    pub index: usize,
    /// 1-based line of the file where the statement, or the server's error position, is.
    pub line: usize,
    /// The file the statement is in.
    pub path: PathBuf,
    /// The statement's first line, for messages.
    pub excerpt: String,
}

impl StatementRef {
    /// Statement `index` (0-based) of `script`, whose text is `sql`, located at byte
    /// `at` of it.
    pub fn new(
        script: &crate::migration::Script,
        sql: &str,
        stmt: &crate::sql::Statement,
        index: usize,
        at: usize,
    ) -> Self {
        let text = stmt.text(sql);
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with("--"))
            .unwrap_or("");
        let excerpt = if line.chars().count() > 60 {
            format!("{}…", line.chars().take(60).collect::<String>())
        } else {
            line.to_string()
        };
        StatementRef {
            index: index + 1,
            line: script.line_at(sql, at),
            path: script.path.to_path_buf(),
            excerpt,
        }
    }
}

/// A database operation failed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DriverError {
    /// What kind of failure it is.
    pub kind: DriverErrorKind,
    /// The server's (or client's) message.
    pub message: String,
    /// SQLSTATE or engine error code, when the server sent one.
    pub code: Option<String>,
    /// Server detail, hint and context lines.
    pub detail: Option<String>,
    /// The statement that failed, with its file and line.
    pub statement: Option<StatementRef>,
    /// Worth retrying: the connection was lost or refused, or the server reported a
    /// serialization failure, deadlock, lock wait timeout or shutdown.
    pub transient: bool,
    /// The underlying error (a code migration's own, say), for
    /// [`std::error::Error::source`]; its text is already in `message`.
    pub cause: Option<std::sync::Arc<dyn std::error::Error + Send + Sync>>,
}

/// A script that could not be read where the driver needed it.
impl From<SourceError> for DriverError {
    fn from(e: SourceError) -> Self {
        DriverError::new(DriverErrorKind::Other, e.to_string())
    }
}

impl DriverError {
    /// An error of `kind` with `message`.
    pub fn new(kind: DriverErrorKind, message: impl Into<String>) -> Self {
        DriverError {
            kind,
            message: message.into(),
            code: None,
            detail: None,
            statement: None,
            transient: false,
            cause: None,
        }
    }

    /// Keeps `cause` as this error's source.
    pub fn caused_by(mut self, cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        self.cause = Some(std::sync::Arc::from(cause.into()));
        self
    }
    /// Marks the error as worth retrying.
    pub fn retryable(mut self, transient: bool) -> Self {
        self.transient = transient;
        self
    }
    /// A failed statement.
    pub fn query(message: impl Into<String>) -> Self {
        Self::new(DriverErrorKind::Query, message)
    }
    /// Adds what to do about it (shown on its own line).
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

impl std::error::Error for DriverError {
    /// The error itself (a `tokio_postgres::Error`, a `rusqlite::Error`, ...), so a
    /// caller can downcast it.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        let cause = self.cause.as_deref()?;
        Some(cause)
    }
}

impl fmt::Display for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(s) = &self.statement {
            write!(
                f,
                "statement {} at {}:{} (`{}`): ",
                s.index,
                s.path.display(),
                s.line,
                s.excerpt
            )?;
        }
        f.write_str(&self.message)?;
        if let Some(c) = &self.code {
            write!(f, " [{c}]")?;
        }
        if let Some(d) = &self.detail {
            write!(f, "\n{d}")?;
        }
        Ok(())
    }
}

/// `e` and every error under it, joined by `: ` (`db error: ERROR: relation "x" does
/// not exist`), skipping a source whose text its parent already shows.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(inner) = next {
        let part = inner.to_string();
        if !text.contains(&part) {
            text = format!("{text}: {part}");
        }
        next = inner.source();
    }
    text
}

/// Every error the library returns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad input in a migration file, manifest or config file (exit 2).
    #[error(transparent)]
    Source(#[from] SourceError),
    /// `strata.sum` does not match the directory (edited, inserted or reordered migrations).
    #[error("{0}")]
    SumMismatch(SourceError),
    /// The history is in a state this request cannot go on from ([`PlanError`]).
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// A migration failed; what ran before it in this run stays applied.
    #[error("migration {id} failed: {source}")]
    Migration {
        /// The migration's id (`002_add_slug`).
        id: String,
        /// Its version.
        version: String,
        /// The statement's (or code's) failure.
        source: DriverError,
    },
    /// A database failure outside a migration: connecting, locking, reading the history.
    #[error(transparent)]
    Driver(#[from] DriverError),
    /// A configuration value is invalid (exit 2).
    #[error("{0}")]
    Config(String),
    /// Refused for safety (protected environment without confirmation, ...).
    #[error("{0}")]
    Refused(String),
}

impl Error {
    /// The process exit code SPEC section 2 assigns to this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Source(_) | Error::Config(_) => 2,
            Error::Plan(p) => match p {
                PlanError::UnknownTarget(_)
                | PlanError::NotApplied { .. }
                | PlanError::NoRollback { .. }
                | PlanError::AlreadyApplied { .. } => 2,
                PlanError::HasDependents { .. }
                | PlanError::OutOfOrder { .. }
                | PlanError::Modified { .. }
                | PlanError::Missing { .. }
                | PlanError::Failed { .. }
                | PlanError::InDoubt { .. }
                | PlanError::RollbackStopped { .. }
                | PlanError::CodeNotRegistered { .. }
                | PlanError::CodeFailed { .. } => 3,
            },
            Error::Driver(d)
                if matches!(
                    d.kind,
                    DriverErrorKind::LockTimeout | DriverErrorKind::Refused
                ) =>
            {
                3
            }
            Error::Driver(d) if d.kind == DriverErrorKind::InvalidUrl => 2,
            Error::Refused(_) | Error::SumMismatch(_) => 3,
            // The history refused the run's write (another run recorded the version,
            // strata's tables vanished): a safety stop, not a failed statement.
            Error::Migration { source, .. } if source.kind == DriverErrorKind::Refused => 3,
            Error::Migration { .. } | Error::Driver(_) => 1,
        }
    }

    /// A migration cut short by a transient failure (`cut`: its id, version and
    /// error), when `later` ended the retries before it could run again: the error still
    /// names the migration, with what ended the retries as its message.
    pub(crate) fn unfinished(cut: (String, String, DriverError), later: Error) -> Error {
        let (id, version, first) = cut;
        let mut source = match later {
            Error::Driver(d) => d,
            other => DriverError::new(DriverErrorKind::Other, other.to_string()),
        };
        source.statement = None;
        source.detail = Some(format!(
            "it was interrupted ({first}) and could not be run again; `strata status` through any server that is up shows whether it took effect"
        ));
        Error::Migration {
            id,
            version,
            source,
        }
    }

    /// SPEC's error object: `{"error":{"kind","message","file","line"}}`. Messages
    /// never carry a password: URLs are redacted where errors are made.
    pub fn to_json(&self) -> serde_json::Value {
        let (file, line) = self
            .location()
            .map(|(p, l)| (Some(p), l))
            .unwrap_or((None, None));
        serde_json::json!({ "error": { "kind": self.kind(), "message": self.to_string(), "file": file, "line": line } })
    }

    /// A stable snake_case name for JSON output.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Source(_) => "invalid_source",
            Error::SumMismatch(_) => "sum_mismatch",
            Error::Config(_) => "invalid_config",
            Error::Plan(p) => match p {
                PlanError::UnknownTarget(_) => "unknown_target",
                PlanError::NotApplied { .. } => "not_applied",
                PlanError::NoRollback { .. } => "no_rollback",
                PlanError::HasDependents { .. } => "has_dependents",
                PlanError::OutOfOrder { .. } => "out_of_order",
                PlanError::Modified { .. } => "drift",
                PlanError::Missing { .. } => "missing",
                PlanError::Failed { .. } => "failed_state",
                PlanError::AlreadyApplied { .. } => "already_applied",
                PlanError::InDoubt { .. } => "in_doubt",
                PlanError::RollbackStopped { .. } => "rollback_stopped",
                PlanError::CodeNotRegistered { .. } => "code_not_registered",
                PlanError::CodeFailed { .. } => "code_failed",
            },
            Error::Migration { .. } => "migration_failed",
            Error::Driver(d) => match d.kind {
                DriverErrorKind::Connect => "connection_failed",
                DriverErrorKind::InvalidUrl => "invalid_url",
                DriverErrorKind::LockTimeout => "lock_timeout",
                DriverErrorKind::Refused => "refused",
                _ => "database_error",
            },
            Error::Refused(_) => "refused",
        }
    }

    /// True when running the command again may succeed (see [`DriverError::transient`]).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Driver(d) | Error::Migration { source: d, .. } => {
                d.transient && d.kind != DriverErrorKind::LockTimeout
            }
            _ => false,
        }
    }

    /// What the `strata` command suggests doing about it ([`PlanError::hint`]).
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            Error::Plan(p) => p.hint(),
            _ => None,
        }
    }

    /// The file and line the error is about, when there is one.
    pub fn location(&self) -> Option<(PathBuf, Option<usize>)> {
        match self {
            Error::Source(e) | Error::SumMismatch(e) => Some((e.path.clone(), e.line)),
            Error::Plan(PlanError::OutOfOrder { path, .. } | PlanError::Modified { path, .. }) => {
                Some((path.clone(), None))
            }
            Error::Plan(PlanError::NoRollback { path: Some(p), .. }) => Some((p.clone(), None)),
            Error::Migration {
                source: DriverError {
                    statement: Some(s), ..
                },
                ..
            } => Some((s.path.clone(), Some(s.line))),
            _ => None,
        }
    }
}

/// A result with strata's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
