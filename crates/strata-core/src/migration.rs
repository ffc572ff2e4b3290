//! The migration model: a [`Migration`] is what a directory holds, an
//! [`AppliedMigration`] is what a history table says. They are separate types on purpose:
//! comparing them is what `status`, drift detection and the planner do.

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::SourceError;
use crate::version::Version;

/// SHA-256 of a script with CRLF normalised to LF, as 64 lowercase hex digits.
///
/// The algorithm and the normalisation are fixed forever: every history table ever
/// written stores these values, and changing either would flag every migration as
/// modified.
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Checksum(String);

impl Checksum {
    /// Hashes a script's text.
    pub fn of(text: &str) -> Self {
        Checksum::from_digest(&sha256_lf(text))
    }

    fn from_digest(d: &[u8; 32]) -> Self {
        Checksum(hex::encode(d))
    }

    /// Wraps a stored hex checksum.
    pub fn from_hex(s: impl Into<String>) -> Self {
        Checksum(s.into().trim().to_ascii_lowercase())
    }

    /// The version as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 hex digits, for messages.
    pub fn short(&self) -> &str {
        &self.0[..self.0.len().min(12)]
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Checksum({})", self.short())
    }
}

/// SHA-256 of `text` with CRLF normalised to LF, without allocating a copy.
fn sha256_lf(text: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    let mut rest = text;
    // `find(char)` is a vectorised byte search; most scripts have no `\r` at all.
    while let Some(i) = rest.find('\r') {
        if rest[i + 1..].starts_with('\n') {
            h.update(&rest.as_bytes()[..i]);
            h.update(b"\n");
            rest = &rest[i + 2..];
        } else {
            h.update(&rest.as_bytes()[..=i]);
            rest = &rest[i + 1..];
        }
    }
    h.update(rest.as_bytes());
    h.finalize().into()
}

/// One script (up or down) with where it came from, so errors can name file and line.
///
/// A script read from a migrations directory does not keep its text: it keeps the
/// byte range of its file and a hash of that range, and reads the file again when the
/// text is needed. `status` and `validate` on 10,000 migrations then hold the file
/// list, not the SQL; a file edited between reading the directory and running it is
/// refused instead of run unseen.
#[derive(Clone)]
pub struct Script {
    /// The file the script is in (a `<...>` name for embedded and code scripts).
    pub path: Arc<Path>,
    /// 1-based line in `path` where the text starts.
    pub first_line: usize,
    body: Body,
}

#[derive(Clone)]
enum Body {
    /// Held in memory: embedded, code, generated and stored scripts.
    Text(Arc<str>),
    /// `path[start..end]`, whose SHA-256 (CRLF as LF, as in [`Checksum`]) began with
    /// `digest` when it was read.
    File {
        start: u32,
        end: u32,
        digest: [u8; 16],
    },
}

impl Script {
    /// A script whose text is held in memory; `path` names it in errors.
    pub fn inline(sql: impl Into<Arc<str>>, path: impl AsRef<Path>, first_line: usize) -> Self {
        Script {
            path: Arc::from(path.as_ref()),
            first_line,
            body: Body::Text(sql.into()),
        }
    }

    /// The script `file[range]` of the file `path` whose whole text is `file`: only the
    /// range and its hash are kept.
    pub(crate) fn in_file(
        path: &Arc<Path>,
        file: &str,
        range: std::ops::Range<usize>,
        first_line: usize,
    ) -> Self {
        Script::in_file_with_checksum(path, file, range, first_line).0
    }

    /// [`Script::in_file`], and the script's [`Checksum`] from the same single pass of
    /// the hash over its text.
    pub(crate) fn in_file_with_checksum(
        path: &Arc<Path>,
        file: &str,
        range: std::ops::Range<usize>,
        first_line: usize,
    ) -> (Self, Checksum) {
        let full = sha256_lf(&file[range.clone()]);
        let checksum = Checksum::from_digest(&full);
        let (start, end) = match (u32::try_from(range.start), u32::try_from(range.end)) {
            (Ok(s), Ok(e)) => (s, e),
            // Past 4 GiB: keep the text rather than an offset that does not fit.
            _ => return (Script::inline(&file[range], path, first_line), checksum),
        };
        let script = Script {
            path: path.clone(),
            first_line,
            body: Body::File {
                start,
                end,
                digest: prefix(&full),
            },
        };
        (script, checksum)
    }

    /// The script's text: read from its file again if it was read from one. A file
    /// that changed since the directory was read is an error, never a different
    /// script run under the old checksum.
    pub fn text(&self) -> Result<Cow<'_, str>, SourceError> {
        let (start, end, want) = match &self.body {
            Body::Text(t) => return Ok(Cow::Borrowed(t)),
            Body::File { start, end, digest } => (*start as usize, *end as usize, digest),
        };
        let changed = || {
            SourceError::new(
                &self.path,
                None,
                "the file changed while strata was running",
            )
            .with_help("run the command again; it reads the directory afresh")
        };
        let mut bytes = crate::source::read_file(&self.path)?;
        if end > bytes.len() {
            return Err(changed());
        }
        bytes.truncate(end);
        bytes.drain(..start);
        let text = String::from_utf8(bytes).map_err(|_| changed())?;
        if prefix(&sha256_lf(&text)) != *want {
            return Err(changed());
        }
        Ok(Cow::Owned(text))
    }

    /// The 1-based line in the file for a byte offset into `text` (this script's text).
    pub fn line_at(&self, text: &str, byte: usize) -> usize {
        let byte = byte.min(text.len());
        self.first_line
            + text.as_bytes()[..byte]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
    }

    /// True for the stand-in script of a code migration (see [`crate::CodeMigration`]).
    pub fn is_code_marker(&self) -> bool {
        matches!(&self.body, Body::Text(t) if t.starts_with(crate::code::CODE_MARKER))
    }

    /// True when the script holds nothing but comments and white space (or cannot be
    /// read, which running it reports).
    pub fn is_blank(&self) -> bool {
        self.text().is_ok_and(|t| crate::sql::split(&t).is_empty())
    }
}

/// A script serializes as its text (what a dry run shows).
impl Serialize for Script {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text().map_err(serde::ser::Error::custom)?)
    }
}

impl fmt::Debug for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Script({}:{})", self.path.display(), self.first_line)
    }
}

/// The first 16 bytes of a SHA-256: enough to notice an edited file.
fn prefix(full: &[u8; 32]) -> [u8; 16] {
    let mut out = [0; 16];
    out.copy_from_slice(&full[..16]);
    out
}

/// Whether a migration runs once (versioned) or again whenever it changes (repeatable).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrationKind {
    /// Runs once, in version order.
    Versioned,
    /// Runs again whenever its checksum changes (`R__name.sql`).
    Repeatable,
}

/// A dependency as written, kept with its location for error messages.
#[derive(Clone, Debug)]
pub struct Dependency {
    /// A version or a migration id, as written; `NAME:VERSION` names a migration of
    /// another database of the project (`docs:1.1.0`).
    pub target: String,
    /// The file the dependency is written in.
    pub path: PathBuf,
    /// Its 1-based line.
    pub line: usize,
}

impl Dependency {
    /// `(database, version)` when the dependency is on another database's migration.
    pub fn external(&self) -> Option<(&str, &str)> {
        let (db, version) = self.target.split_once(':')?;
        let name_like = db.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && db
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        (name_like && !version.is_empty()).then_some((db, version))
    }
}

/// What a migration's scripts are written in, which decides the databases that run it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// SQL statements (SQL databases).
    Sql,
    /// A JSON `operations` array (MongoDB, Elasticsearch; see [`crate::docops`]).
    Operations,
    /// Rust code registered through the library ([`crate::CodeMigration`]).
    Code,
}

/// A migration on disk (or, for [`Format::Code`], registered in the program).
#[derive(Clone, Debug)]
pub struct Migration {
    /// The file stem or directory name, e.g. `002_user_preferences`.
    pub id: String,
    /// The version that orders it.
    pub version: Version,
    /// The name part of the id.
    pub name: String,
    /// A `-- Description:` header, when there is one.
    pub description: Option<String>,
    /// Versioned or repeatable.
    pub kind: MigrationKind,
    /// The script that applies it.
    pub up: Script,
    /// The script that rolls it back, when there is one.
    pub down: Option<Script>,
    /// SHA-256 of the up script.
    pub checksum: Checksum,
    /// False for `-- strata:no-transaction` and its synonyms, and for a migration
    /// holding a statement that cannot run in a transaction.
    pub transactional: bool,
    /// Why it runs outside a transaction when no directive says so: the statement that
    /// cannot run in one (`CREATE INDEX CONCURRENTLY at line 3`).
    pub outside_transaction: Option<String>,
    /// Migrations that must be applied first (`-- Depends:`).
    pub dependencies: Vec<Dependency>,
    /// `-- strata:timeout`, overriding the configured timeout.
    pub timeout: Option<Duration>,
    /// The file (or directory) that defines the migration.
    pub source: PathBuf,
    /// SQL, document operations or code.
    pub format: Format,
    /// The code of a [`Format::Code`] migration.
    pub code: Option<crate::code::CodeRef>,
    /// A baseline written by `squash` (`-- strata:baseline` in its header): it
    /// replaces every migration up to its version.
    pub baseline: bool,
}

impl Migration {
    /// A baseline written by `squash`: it replaces every migration up to its version.
    pub fn is_baseline(&self) -> bool {
        self.baseline
    }

    /// The rollback script's text, read from its file (stored with the history row).
    pub fn down_text(&self) -> Result<Option<String>, SourceError> {
        Ok(match &self.down {
            Some(d) => Some(d.text()?.into_owned()),
            None => None,
        })
    }
}

/// Whether a script's leading comments hold `-- strata:baseline`.
pub(crate) fn header_is_baseline(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .take_while(|l| l.is_empty() || l.starts_with("--"))
        .any(|l| l.eq_ignore_ascii_case("-- strata:baseline"))
}

/// A row of the history table.
#[derive(Clone, Debug, Serialize)]
pub struct AppliedMigration {
    /// The version.
    pub version: String,
    /// The name recorded with it.
    pub name: String,
    /// The description recorded with it.
    pub description: Option<String>,
    /// When it was applied.
    pub applied_at: DateTime<Utc>,
    /// The checksum of the script that ran.
    pub checksum: Checksum,
    /// How long it took.
    pub execution_time_ms: i64,
    /// The rollback script as it was when applied (a code migration's marker).
    pub rollback_sql: Option<String>,
    /// False while a non-transactional migration runs, and after it broke midway.
    pub success: bool,
    /// Statements completed, for a run tracked statement by statement.
    pub statements_done: i64,
    /// Who applied it.
    pub applied_by: Option<String>,
    /// How far a run tracked statement by statement got, beyond the count.
    pub progress: Progress,
}

impl AppliedMigration {
    /// Written by a code migration ([`crate::CodeMigration`]): the application
    /// registers it, so a program without it (the CLI) must not ask for its file, run
    /// its stand-in rollback or offer to re-run it.
    pub fn is_code(&self) -> bool {
        self.rollback_sql
            .as_deref()
            .is_some_and(|s| s.starts_with(crate::code::CODE_MARKER))
    }
}

/// The exact state of a migration run statement by statement (a non-transactional
/// migration, any MySQL DDL migration, a rollback of one), kept in its history row so a
/// crash at any instant leaves a history that says what happened.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Progress {
    /// [`crate::sql::statement_hash`] of each completed statement, in order: `--resume`
    /// refuses when the file's statements no longer match them.
    pub statement_hashes: Vec<String>,
    /// The 1-based statement started and not known to have finished: after a crash its
    /// outcome is unknown ("in doubt") until the user says (`--in-doubt=done|rerun`).
    pub in_flight: Option<i64>,
    /// The run was a rollback (the row stays until it finishes; `rollback --resume`).
    pub rolling_back: bool,
}

/// The state `status` reports for a migration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrationState {
    /// Applied, and its file unchanged.
    Applied,
    /// Not applied yet.
    Pending,
    /// Applied, but the file now hashes differently.
    Modified,
    /// Applied, but its file is gone.
    Missing,
    /// A non-transactional run broke midway.
    Failed,
}

impl fmt::Display for MigrationState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Applied => "applied",
            Self::Pending => "pending",
            Self::Modified => "modified",
            Self::Missing => "missing",
            Self::Failed => "failed",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_ignores_crlf() {
        assert_eq!(Checksum::of("a;\r\nb;\r\n"), Checksum::of("a;\nb;\n"));
        assert_ne!(Checksum::of("a;\nb;\n"), Checksum::of("a;\nb;"));
        // A lone CR is kept; only CRLF pairs become LF (values stored forever).
        let raw = |t: &str| Checksum(hex::encode(Sha256::digest(t.as_bytes())));
        assert_eq!(Checksum::of("a\rb"), raw("a\rb"));
        assert_eq!(Checksum::of("a\r\r\nb\r"), raw("a\r\nb\r"));
        assert_eq!(
            Checksum::of("").as_str(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
