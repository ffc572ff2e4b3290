//! Reading a migrations directory into [`Migration`]s.
//!
//! # The format
//!
//! strata reads every layout below from one directory, mixed freely:
//!
//! ```text
//! migrations/
//!   001_initial_schema.sql            strata: header comments, optional `-- strata:down` section
//!   002_users.sql + 002_users.down.sql   rollback as a sibling (`.rollback.sql` also accepted)
//!   003_prefs.json + 003_prefs.sql    JSON metadata pair (+ 003_prefs_rollback.sql)
//!   004_x.up.sql + 004_x.down.sql     golang-migrate / sqlx reversible
//!   20240101120000_x.sql              sqlx (first line `-- no-transaction`), dbmate, goose
//!   V5__add_index.sql, U5__add_index.sql, R__views.sql     Flyway versioned, undo, repeatable
//!   V0006.Name.up.sql + .down.sql     Flyway-like pairs (authelia)
//!   2019-09-12-150000_name/up.sql     diesel directory (+ down.sql, metadata.toml)
//!   1528395834/up.sql + metadata.yaml directory with `parents` (sourcegraph)
//!   migration_config.yaml             optional manifest: dependencies, descriptions, settings
//!   strata.sum                        integrity file (see [`crate::sum`])
//! ```
//!
//! A SQL file may start with header comments (case-insensitive): `-- Migration: <file>`,
//! `-- Description: …`, `-- Version: <app version>`, `-- Created: <RFC 3339>`,
//! `-- Depends: 001, 002`, and directives `-- strata:no-transaction`,
//! `-- strata:timeout 600s`. Section markers `-- strata:up` / `-- strata:down`, dbmate's
//! `-- migrate:up [transaction:false]` / `-- migrate:down` and goose's `-- +goose Up` /
//! `-- +goose Down` / `-- +goose NO TRANSACTION` split a file into up and down scripts.
//! Files that match no layout (README.md, .gitkeep, schema dumps) are ignored.
//!
//! Every problem is a [`SourceError`] naming the file and line; nothing is executed
//! before the whole directory has been read.

mod manifest;
mod sqlfile;

pub use manifest::Manifest;

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::docops;
use crate::error::SourceError;
use crate::migration::{Checksum, Dependency, Format, Migration, MigrationKind, Script};
use crate::version::Version;

/// The migrations of one directory, in plan order, plus the manifest if any.
#[derive(Debug, Clone)]
pub struct Source {
    pub dir: PathBuf,
    pub migrations: Vec<Migration>,
    pub manifest: Option<Manifest>,
    /// Files named like migrations that strata cannot run (goose `.go` migrations,
    /// code of other languages), with why: reported, never silently skipped.
    pub not_runnable: Vec<NotRunnable>,
}

/// A file that looks like a migration but is not one strata can run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NotRunnable {
    pub file: PathBuf,
    pub reason: String,
}

/// Reads a migrations directory. A missing directory reads as empty.
pub fn read_dir(dir: &Path) -> Result<Source, SourceError> {
    let mut found: Vec<Migration> = Vec::new();
    // Key: the stem the down belongs to. Ordered, so an error names the same file on
    // every run.
    let mut downs: BTreeMap<String, Script> = BTreeMap::new();
    let mut undo: HashMap<String, Script> = HashMap::new(); // Flyway U<version>: key is version
    let mut json_meta: HashMap<String, PathBuf> = HashMap::new();

    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Never "nothing to do": a mistyped --dir would report an up-to-date
            // database (and create an empty one) without applying a thing.
            return Err(SourceError::new(dir, None, "the migrations directory does not exist")
                .with_help("check --dir (or `migrations` in strata.toml); `strata create NAME` starts a new one"));
        }
        Err(e) => {
            return Err(SourceError::new(
                dir,
                None,
                format!("cannot read directory: {e}"),
            ))
        }
    };
    // Names only: each path is built when its file is read, not held for the listing.
    let mut names: Vec<(String, bool)> = Vec::new();
    for entry in entries {
        let entry = entry
            .map_err(|e| SourceError::new(dir, None, format!("cannot read directory: {e}")))?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            return Err(SourceError::new(
                &path,
                None,
                "file name is not valid UTF-8",
            ));
        };
        // The directory listing says what each entry is: no `stat` per file (a sixth
        // of `status` on 10,000 files). Symbolic links are followed as before.
        let is_dir = match entry.file_type() {
            Ok(t) if !t.is_symlink() => t.is_dir(),
            _ => path.is_dir(),
        };
        names.push((name, is_dir));
    }
    names.sort_unstable();
    // Sized once: growing a vector of 10,000 migrations by doubling held two copies.
    found.reserve_exact(names.len());

    // Entries that are no migration, reported when nothing else is found.
    let mut skipped: Vec<&str> = Vec::new();
    let mut not_runnable_files: Vec<NotRunnable> = Vec::new();
    for (name, is_dir) in &names {
        let path = &dir.join(name);
        if *is_dir {
            match read_migration_dir(name, path)? {
                Some(m) => found.push(m),
                None => skipped.push(name),
            }
            continue;
        }
        let Some(layout) = FileLayout::classify(name) else {
            if let Some(reason) = not_runnable(name) {
                not_runnable_files.push(NotRunnable {
                    file: path.clone(),
                    reason,
                });
            }
            skipped.push(name);
            continue;
        };
        match layout {
            FileLayout::Down { stem } => {
                downs.insert(stem, whole_file(path)?);
            }
            FileLayout::FlywayUndo { version } => {
                undo.insert(version, whole_file(path)?);
            }
            FileLayout::JsonMeta { stem } => {
                json_meta.insert(stem, path.clone());
            }
            FileLayout::Up {
                stem,
                version,
                name: mname,
                kind,
            } => {
                let text = read_text(path)?;
                let parsed = sqlfile::parse(&Arc::from(path.as_path()), &text)?;
                if let Some((header, line)) = &parsed.header_migration {
                    let header_stem = header.trim_end_matches(".sql");
                    if header_stem != stem && header != name {
                        return Err(SourceError::new(path, Some(*line), format!("header says `Migration: {header}` but the file is {name}"))
                            .with_help("fix the header or rename the file; a copied file often keeps its old header"));
                    }
                }
                found.push(build(&stem, version, mname, kind, path.clone(), parsed));
            }
        }
    }

    skipped.retain(|n| !n.starts_with('.') && !KNOWN_FILES.contains(n));
    if found.is_empty() && json_meta.is_empty() && !skipped.is_empty() {
        let shown: Vec<&str> = skipped.iter().take(10).copied().collect();
        return Err(SourceError::new(
            dir,
            None,
            format!(
                "no file here is a migration strata can read ({} entr{} skipped: {}{})",
                skipped.len(),
                if skipped.len() == 1 { "y" } else { "ies" },
                shown.join(", "),
                if skipped.len() > shown.len() { ", ..." } else { "" }
            ),
        )
        .with_help("migration files are named like 001_name.sql, V1__name.sql, 20240101120000_name.up.sql or <version>_<name>/up.sql (see the file formats in the docs)"));
    }
    drop(names);
    // JSON files without a SQL sibling are document-store migrations.
    let mut doc_stems: Vec<String> = Vec::new();
    if !json_meta.is_empty() {
        let sql_ids: std::collections::HashSet<&str> =
            found.iter().map(|m| m.id.as_str()).collect();
        doc_stems = json_meta
            .keys()
            .filter(|stem| !sql_ids.contains(stem.as_str()))
            .cloned()
            .collect();
    }
    doc_stems.sort();
    for stem in doc_stems {
        let path = json_meta.remove(&stem).expect("listed above");
        found.push(read_operations(&stem, &path)?);
    }

    // Attach sibling rollbacks and JSON metadata.
    for m in &mut found {
        if let Some(d) = downs.remove(&m.id) {
            if m.down.is_some() {
                return Err(SourceError::new(
                    &d.path,
                    None,
                    format!(
                        "{} already has a down section; keep one rollback script",
                        m.source.display()
                    ),
                ));
            }
            m.down = Some(d);
        }
        if let Some(d) = undo.remove(m.version.as_str()) {
            m.down = Some(d);
        }
        if let Some(meta) = json_meta.remove(&m.id) {
            apply_json_meta(&meta, m)?;
        }
        if m.format == Format::Operations {
            attach_inverse(m)?;
        } else if let Some(d) = m.down.as_ref().filter(|d| is_json(&d.path)) {
            return Err(SourceError::new(
                &d.path,
                None,
                format!(
                    "a JSON rollback for the SQL migration {}",
                    m.source.display()
                ),
            ));
        }
    }
    // golang-migrate and sqlx pair up and down by version, whatever the names say
    // (`30_add_x.up.sql` with `30_drop_x.down.sql`): a down whose name matches no up
    // belongs to the one migration of its version that has no rollback yet.
    for (stem, d) in downs {
        let version = split_version(&stem).map(|(v, _)| v).unwrap_or_default();
        let mut same: Vec<&mut Migration> = found
            .iter_mut()
            .filter(|m| m.version.as_str() == version && m.kind == MigrationKind::Versioned)
            .collect();
        match same.as_mut_slice() {
            [m] if m.down.is_none() => m.down = Some(d),
            [m] => {
                return Err(SourceError::new(
                    &d.path,
                    None,
                    format!(
                        "a second rollback for version {version}: {} already has one",
                        m.source.display()
                    ),
                ))
            }
            [] => {
                return Err(SourceError::new(
                    &d.path,
                    None,
                    format!("rollback script without a migration (no up script for version {version})"),
                )
                .with_help("name it after its migration, e.g. 001_name.down.sql next to 001_name.sql or 001_name.up.sql"))
            }
            _ => {
                return Err(SourceError::new(
                    &d.path,
                    None,
                    format!("rollback script `{stem}` matches no migration by name, and {} migrations have version {version}", same.len()),
                )
                .with_help("name the rollback after its migration (<stem>.down.sql)"))
            }
        }
    }

    let manifest_path = dir.join("migration_config.yaml");
    let manifest = if manifest_path.exists() {
        let m = Manifest::read(&manifest_path)?;
        m.apply_to(&mut found)?;
        Some(m)
    } else {
        None
    };

    diesel_order(&mut found);
    check_duplicates(&found)?;
    let migrations = crate::plan::order(found)?;
    for n in &not_runnable_files {
        tracing::warn!("{}: not run: {}", n.file.display(), n.reason);
    }
    Ok(Source {
        dir: dir.to_path_buf(),
        migrations,
        manifest,
        not_runnable: not_runnable_files,
    })
}

/// A diesel project (dashed versions, every numeric version a timestamp) orders as
/// diesel does: the digits compared as text.
pub(crate) fn diesel_order(found: &mut [Migration]) {
    let numeric: Vec<&str> = found
        .iter()
        .filter(|m| m.version.is_numeric())
        .map(|m| m.version.as_str())
        .collect();
    if numeric.iter().any(|v| Version::is_dashed(v))
        && numeric.iter().all(|v| v.replace('-', "").len() >= 8)
    {
        for m in found.iter_mut() {
            m.version = m.version.clone().in_diesel_order();
        }
    }
}

/// A migration file's bytes, without a UTF-8 byte-order mark. Anything but a regular
/// file (a FIFO, a device such as `/dev/zero` behind a symbolic link, a socket) is
/// refused before a byte is read: reading one could block forever or never end.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, SourceError> {
    let cannot = |e: std::io::Error| SourceError::new(path, None, format!("cannot read file: {e}"));
    let mut options = fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Opening a FIFO for reading waits for a writer unless non-blocking; for a
        // regular file the flag changes nothing.
        options.custom_flags(libc::O_NONBLOCK);
    }
    let mut file = options.open(path).map_err(cannot)?;
    let meta = file.metadata().map_err(cannot)?;
    if !meta.is_file() {
        return Err(SourceError::new(path, None, "not a regular file")
            .with_help("a migration must be a regular file (or a symbolic link to one); move this entry out of the migrations directory"));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    std::io::Read::read_to_end(&mut file, &mut bytes).map_err(cannot)?;
    if bytes.starts_with(&[0xef, 0xbb, 0xbf]) {
        // Editors on Windows write one; left in, it would hide the header's first line.
        bytes.drain(..3);
    }
    Ok(bytes)
}

/// Files a migrations directory holds besides migrations (Prisma's
/// `migration_lock.toml` names the provider).
const KNOWN_FILES: &[&str] = &[
    "strata.sum",
    "migration_config.yaml",
    "migration_lock.toml",
    "README.md",
    "README",
];

/// Why a file named like a migration (`00002_add_users.go`, or `add_users.sql` without
/// a version) cannot run, or `None` for a file that does not look like one.
fn not_runnable(name: &str) -> Option<String> {
    let (stem, ext) = name.rsplit_once('.')?;
    if ext == "sql" {
        // Classified already when it has a version: this one has none.
        return Some("no version number: migrations are ordered by the number their name starts with (001_name.sql, V1__name.sql, 20240101120000_name.sql)".into());
    }
    let stem = stem.strip_suffix(".up").unwrap_or(stem);
    split_version(stem)?;
    let what = match ext {
        "go" => "a goose Go migration: it is compiled into the application; port it to SQL or a strata code migration",
        "rs" => "Rust source: register it as a code migration (strata::code) in the application",
        "js" | "ts" | "mjs" | "cjs" | "py" | "rb" | "java" | "kt" | "cs" | "php" => {
            "code in a language strata does not run; port it to SQL"
        }
        "sh" | "bash" => "a shell script; strata runs SQL and JSON operations only",
        _ => return None,
    };
    Some(what.to_string())
}

pub(crate) fn read_text(path: &Path) -> Result<String, SourceError> {
    let bytes = read_file(path)?;
    if bytes.starts_with(&[0xff, 0xfe]) || bytes.starts_with(&[0xfe, 0xff]) {
        return Err(SourceError::new(
            path,
            Some(1),
            "file is UTF-16 (it starts with a UTF-16 byte-order mark)",
        )
        .with_help("save the file as UTF-8"));
    }
    if let Some(at) = bytes.iter().position(|&b| b == 0) {
        let line = bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        return Err(SourceError::new(path, Some(line), "file contains a NUL byte")
            .with_help("SQL text never holds NUL bytes: the file is binary or damaged, and engines cut statements at one"));
    }
    String::from_utf8(bytes).map_err(|e| {
        let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = good.iter().filter(|&&b| b == b'\n').count() + 1;
        SourceError::new(path, Some(line), "file is not valid UTF-8")
            .with_help("save the file as UTF-8")
    })
}

/// A script that is a whole file.
fn whole_file(path: &Path) -> Result<Script, SourceError> {
    let text = read_text(path)?;
    Ok(Script::in_file(&Arc::from(path), &text, 0..text.len(), 1))
}

fn build(
    stem: &str,
    version: String,
    name: String,
    kind: MigrationKind,
    path: PathBuf,
    f: sqlfile::SqlFile,
) -> Migration {
    let up = f.up.unwrap_or_else(|| Script::inline("", &path, 1));
    Migration {
        id: stem.to_string(),
        version: Version::new(version),
        name,
        description: f.description,
        kind,
        checksum: f.checksum.unwrap_or_else(|| Checksum::of("")),
        baseline: f.baseline,
        up,
        down: f.down,
        transactional: !f.no_transaction && f.outside_transaction.is_none(),
        outside_transaction: f.outside_transaction,
        dependencies: f.dependencies,
        timeout: f.timeout,
        source: path,
        format: crate::migration::Format::Sql,
        code: None,
    }
}

/// How a file name maps to a layout.
#[derive(Debug, PartialEq)]
enum FileLayout {
    Up {
        stem: String,
        version: String,
        name: String,
        kind: MigrationKind,
    },
    /// A rollback for the migration whose id is `stem`.
    Down {
        stem: String,
    },
    FlywayUndo {
        version: String,
    },
    JsonMeta {
        stem: String,
    },
}

impl FileLayout {
    fn classify(file: &str) -> Option<Self> {
        if let Some(stem) = file.strip_suffix(".json") {
            for suffix in ["_rollback", ".rollback", ".down"] {
                if let Some(up) = stem
                    .strip_suffix(suffix)
                    .filter(|s| split_version(s).is_some())
                {
                    return Some(FileLayout::Down { stem: up.into() });
                }
            }
            return split_version(stem).map(|_| FileLayout::JsonMeta {
                stem: stem.to_string(),
            });
        }
        let base = file.strip_suffix(".sql")?;
        // Flyway: V1_1__name.sql, U1_1__name.sql, R__name.sql
        if let Some(rest) = base.strip_prefix("R__") {
            return Some(FileLayout::Up {
                stem: base.into(),
                version: base.into(),
                name: rest.into(),
                kind: MigrationKind::Repeatable,
            });
        }
        for (prefix, undo) in [("V", false), ("U", true)] {
            if let Some((v, name)) = base.strip_prefix(prefix).and_then(|r| r.split_once("__")) {
                if !v.is_empty()
                    && v.bytes()
                        .all(|b| b.is_ascii_digit() || b == b'_' || b == b'.')
                {
                    let version = v.replace('_', ".");
                    return Some(if undo {
                        FileLayout::FlywayUndo { version }
                    } else {
                        FileLayout::Up {
                            stem: base.into(),
                            version,
                            name: name.into(),
                            kind: MigrationKind::Versioned,
                        }
                    });
                }
            }
        }
        // V0001.Name.up.sql / .down.sql (authelia)
        if let Some(rest) = base.strip_prefix('V') {
            if let Some((v, tail)) = rest.split_once('.') {
                if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
                    if let Some(name) = tail.strip_suffix(".up") {
                        let stem = format!("V{v}.{name}");
                        return Some(FileLayout::Up {
                            stem,
                            version: v.into(),
                            name: name.into(),
                            kind: MigrationKind::Versioned,
                        });
                    }
                    if let Some(name) = tail.strip_suffix(".down") {
                        return Some(FileLayout::Down {
                            stem: format!("V{v}.{name}"),
                        });
                    }
                }
            }
        }
        for suffix in [".down", ".rollback", "_rollback"] {
            if let Some(stem) = base.strip_suffix(suffix) {
                if split_version(stem).is_some() {
                    return Some(FileLayout::Down { stem: stem.into() });
                }
            }
        }
        let stem = base.strip_suffix(".up").unwrap_or(base);
        let (version, name) = split_version(stem)?;
        Some(FileLayout::Up {
            stem: stem.into(),
            version,
            name,
            kind: MigrationKind::Versioned,
        })
    }
}

/// `001_name` -> ("001", "name"); `2019-09-12-150000_name` -> (…); `001` -> ("001", "").
fn split_version(stem: &str) -> Option<(String, String)> {
    let (v, name) = stem.split_once('_').unwrap_or((stem, ""));
    let ok = !v.is_empty()
        && v.as_bytes()[0].is_ascii_digit()
        && v.bytes()
            .all(|b| b.is_ascii_digit() || b == b'-' || b == b'.');
    ok.then(|| (v.to_string(), name.to_string()))
}

/// A directory migration: diesel (`up.sql`, `down.sql`, `metadata.toml`) or one with
/// `metadata.yaml` listing `parents`. Directories without `up.sql` are not migrations.
fn read_migration_dir(dir_name: &str, dir: &Path) -> Result<Option<Migration>, SourceError> {
    // diesel and friends: up.sql (+ down.sql); Prisma: migration.sql, forward only.
    let up_path = ["up.sql", "migration.sql"]
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file());
    let Some(up_path) = up_path else {
        return Ok(None);
    };
    let Some((version, name)) = split_version(dir_name) else {
        return Err(SourceError::new(
            dir,
            None,
            "migration directory name does not start with a version",
        )
        .with_help("name it <version>_<name>, e.g. 2024-01-01-000000_create_users"));
    };
    let text = read_text(&up_path)?;
    let parsed = sqlfile::parse(&Arc::from(up_path.as_path()), &text)?;
    let mut m = build(
        dir_name,
        version,
        name,
        MigrationKind::Versioned,
        up_path,
        parsed,
    );
    m.source = dir.to_path_buf();
    let down_path = dir.join("down.sql");
    if down_path.is_file() {
        m.down = Some(whole_file(&down_path)?);
    }
    let toml_path = dir.join("metadata.toml");
    if toml_path.is_file() {
        let text = read_text(&toml_path)?;
        let meta: toml::Table =
            toml::from_str(&text).map_err(|e| toml_error(&toml_path, &text, &e))?;
        if let Some(v) = meta.get("run_in_transaction") {
            m.transactional = v.as_bool().ok_or_else(|| {
                SourceError::new(
                    &toml_path,
                    None,
                    "`run_in_transaction` must be true or false",
                )
            })?;
            // Said explicitly: that wins over detection.
            m.outside_transaction = None;
        }
    }
    let yaml_path = dir.join("metadata.yaml");
    if yaml_path.is_file() {
        let text = read_text(&yaml_path)?;
        let meta: DirMeta = serde_yaml::from_str(&text).map_err(|e| yaml_error(&yaml_path, &e))?;
        if let Some(n) = meta.name {
            m.description = Some(n);
        }
        for p in meta.parents {
            let target = match p {
                serde_yaml::Value::String(s) => s,
                serde_yaml::Value::Number(n) => n.to_string(),
                _ => {
                    return Err(SourceError::new(
                        &yaml_path,
                        Some(line_of(&text, "parents")),
                        "`parents` must list versions",
                    ))
                }
            };
            m.dependencies.push(Dependency {
                target,
                path: yaml_path.clone(),
                line: line_of(&text, "parents"),
            });
        }
        if meta.create_index_concurrently {
            m.transactional = false;
        }
    }
    Ok(Some(m))
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct DirMeta {
    name: Option<String>,
    #[serde(default)]
    parents: Vec<serde_yaml::Value>,
    #[serde(default)]
    create_index_concurrently: bool,
}

/// `NNN_name.json` beside `NNN_name.sql`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonMeta {
    version: Option<serde_json::Value>,
    name: Option<String>,
    description: Option<String>,
    #[allow(dead_code)]
    database_type: Option<String>,
    #[allow(dead_code)]
    migration_type: Option<String>,
    #[serde(default)]
    dependencies: Vec<serde_json::Value>,
    transactional: Option<bool>,
    #[allow(dead_code)]
    author: Option<String>,
    #[allow(dead_code)]
    created_at: Option<String>,
    #[allow(dead_code)]
    rollback_supported: Option<bool>,
    /// Document-store operations (checked by [`docops`]); absent for SQL pairs.
    operations: Option<serde_json::Value>,
}

fn apply_json_meta(path: &Path, m: &mut Migration) -> Result<(), SourceError> {
    let text = read_text(path)?;
    let meta: JsonMeta = serde_json::from_str(&text).map_err(|e| {
        SourceError::new(
            path,
            Some(e.line()),
            format!("malformed JSON metadata: {e}"),
        )
        .with_column(Some(e.column()))
    })?;
    if meta.operations.is_some() && m.format != Format::Operations {
        return Err(SourceError::new(
            path,
            Some(line_of(&text, "\"operations\"")),
            format!("document-store operations beside the SQL file {}", m.source.display()),
        )
        .with_help("a migration is either SQL (NNN_name.json + NNN_name.sql) or JSON operations (NNN_name.json alone)"));
    }
    if let Some(v) = meta.version {
        let v = scalar_string(&v).ok_or_else(|| {
            SourceError::new(
                path,
                Some(line_of(&text, "\"version\"")),
                "`version` must be a string or number",
            )
        })?;
        m.version = Version::new(v);
    }
    if let Some(n) = meta.name {
        m.name = n;
    }
    if meta.description.is_some() {
        m.description = meta.description;
    }
    if let Some(t) = meta.transactional {
        m.transactional = t;
    }
    let dep_line = line_of(&text, "\"dependencies\"");
    for d in meta.dependencies {
        let target = scalar_string(&d).ok_or_else(|| {
            SourceError::new(path, Some(dep_line), "dependencies must be versions")
        })?;
        m.dependencies.push(Dependency {
            target,
            path: path.to_path_buf(),
            line: dep_line,
        });
    }
    Ok(())
}

/// A document-store migration: `NNN_name.json` with `operations` and no SQL sibling.
fn read_operations(stem: &str, path: &Path) -> Result<Migration, SourceError> {
    let text = read_text(path)?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        SourceError::new(path, Some(e.line()), format!("malformed JSON: {e}"))
            .with_column(Some(e.column()))
    })?;
    if !docops::is_operations(&value) {
        return Err(SourceError::new(
            path,
            Some(1),
            "JSON metadata without its SQL file, and no `operations`",
        )
        .with_help(format!(
            "add {stem}.sql beside it, or list document-store operations under `operations`"
        )));
    }
    let (version, name) = split_version(stem).expect("classified as versioned");
    docops::parse_text(&text, path)?;
    let (up, checksum) = Script::in_file_with_checksum(&Arc::from(path), &text, 0..text.len(), 1);
    let mut m = Migration {
        id: stem.to_string(),
        version: Version::new(version),
        name,
        description: None,
        kind: MigrationKind::Versioned,
        checksum,
        baseline: false,
        up,
        down: None,
        // Document stores run operation by operation, tracked like MySQL DDL.
        transactional: false,
        outside_transaction: None,
        dependencies: vec![],
        timeout: None,
        source: path.to_path_buf(),
        format: Format::Operations,
        code: None,
    };
    apply_json_meta(path, &mut m)?;
    m.transactional = false;
    Ok(m)
}

/// Checks a document-store migration's rollback file, or derives the default inverse.
fn attach_inverse(m: &mut Migration) -> Result<(), SourceError> {
    match &m.down {
        Some(d) if !is_json(&d.path) => Err(SourceError::new(
            &d.path,
            None,
            format!(
                "a SQL rollback for the document-store migration {}",
                m.source.display()
            ),
        )),
        Some(d) => docops::parse(d).map(|_| ()),
        None => {
            let ops = docops::parse(&m.up)?;
            m.down = docops::inverse(&ops).map(|sql| Script::inline(sql, &m.up.path, 1));
            Ok(())
        }
    }
}

fn is_json(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "json")
}

fn scalar_string(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// 1-based line of the first occurrence of `needle`, or 1.
pub(crate) fn line_of(text: &str, needle: &str) -> usize {
    text.find(needle)
        .map(|i| text[..i].matches('\n').count() + 1)
        .unwrap_or(1)
}

pub(crate) fn yaml_error(path: &Path, e: &serde_yaml::Error) -> SourceError {
    let loc = e.location();
    SourceError::new(
        path,
        loc.as_ref().map(|l| l.line()),
        format!("malformed YAML: {e}"),
    )
    .with_column(loc.map(|l| l.column()))
}

pub(crate) fn toml_error(path: &Path, text: &str, e: &toml::de::Error) -> SourceError {
    let line = e
        .span()
        .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
    SourceError::new(path, line, format!("malformed TOML: {}", e.message()))
}

pub(crate) fn check_duplicates(found: &[Migration]) -> Result<(), SourceError> {
    let mut seen: BTreeMap<&Version, &Migration> = BTreeMap::new();
    for m in found.iter().filter(|m| m.kind == MigrationKind::Versioned) {
        if let Some(first) = seen.insert(&m.version, m) {
            return Err(SourceError::new(
                &m.source,
                None,
                format!(
                    "version {} is used twice: {} and {}",
                    m.version,
                    first.source.display(),
                    m.source.display()
                ),
            )
            .with_help("give one of them the next free version"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_every_layout() {
        use FileLayout::*;
        let up = |stem: &str, v: &str, n: &str| Up {
            stem: stem.into(),
            version: v.into(),
            name: n.into(),
            kind: MigrationKind::Versioned,
        };
        assert_eq!(
            FileLayout::classify("001_init.sql"),
            Some(up("001_init", "001", "init"))
        );
        assert_eq!(
            FileLayout::classify("001_init.up.sql"),
            Some(up("001_init", "001", "init"))
        );
        assert_eq!(
            FileLayout::classify("001_init.down.sql"),
            Some(Down {
                stem: "001_init".into()
            })
        );
        assert_eq!(
            FileLayout::classify("001_init.rollback.sql"),
            Some(Down {
                stem: "001_init".into()
            })
        );
        assert_eq!(
            FileLayout::classify("001_init_rollback.sql"),
            Some(Down {
                stem: "001_init".into()
            })
        );
        assert_eq!(
            FileLayout::classify("V1_1__add.sql"),
            Some(up("V1_1__add", "1.1", "add"))
        );
        assert_eq!(
            FileLayout::classify("U1_1__add.sql"),
            Some(FlywayUndo {
                version: "1.1".into()
            })
        );
        assert!(matches!(
            FileLayout::classify("R__views.sql"),
            Some(Up {
                kind: MigrationKind::Repeatable,
                ..
            })
        ));
        assert_eq!(
            FileLayout::classify("V0007.Name.up.sql"),
            Some(up("V0007.Name", "0007", "Name"))
        );
        assert_eq!(
            FileLayout::classify("V0007.Name.down.sql"),
            Some(Down {
                stem: "V0007.Name".into()
            })
        );
        assert_eq!(
            FileLayout::classify("001_init.json"),
            Some(JsonMeta {
                stem: "001_init".into()
            })
        );
        assert_eq!(FileLayout::classify("README.md"), None);
        assert_eq!(FileLayout::classify("schema.sql"), None);
    }
}
