//! Backups with the MySQL client tools: `mysqldump` (or `mariadb-dump`) to write one,
//! `mysql` to load one. Writing our own dumper would miss object kinds (routines,
//! triggers, views); these tools know them all. The password reaches them in
//! `MYSQL_PWD`, never on a command line.
//!
//! MySQL cannot restore in one transaction (DDL commits as it goes), so a restore first
//! loads the dump into a scratch database: a dump that does not load is refused before
//! the real database is touched. Only then is the database emptied and the dump loaded.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};
use strata_core::{DriverError, DriverErrorKind};

use super::exec::db_error;
use super::history::quote;

/// `STRATA_MYSQL_BIN/name` when that is set, else `name` from `PATH`.
fn tool(name: &str) -> PathBuf {
    match std::env::var_os("STRATA_MYSQL_BIN") {
        Some(dir) => Path::new(&dir).join(name),
        None => PathBuf::from(name),
    }
}

/// The first of `names` that runs (`mysqldump` is `mariadb-dump` on newer MariaDB).
fn find_tool(names: &[&str]) -> PathBuf {
    for n in names {
        let p = tool(n);
        if Command::new(&p)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
        {
            return p;
        }
    }
    tool(names[0])
}

fn command(names: &[&str], opts: &Opts) -> Command {
    let mut c = Command::new(find_tool(names));
    c.arg(format!("--host={}", opts.ip_or_hostname()))
        .arg(format!("--port={}", opts.tcp_port()))
        .arg("--protocol=TCP");
    if let Some(u) = opts.user() {
        c.arg(format!("--user={u}"));
    }
    match opts.pass() {
        Some(pw) => c.env("MYSQL_PWD", pw),
        None => c.env_remove("MYSQL_PWD"),
    };
    c
}

fn tool_error(name: &str, e: impl std::fmt::Display) -> DriverError {
    DriverError::new(DriverErrorKind::Other, format!("{name}: {e}"))
}

/// Runs a prepared command, feeding it `stdin` when given; a failure is its stderr.
async fn run(
    name: &'static str,
    mut c: Command,
    stdin: Option<PathBuf>,
) -> Result<(), DriverError> {
    let out = tokio::task::spawn_blocking(move || {
        if let Some(path) = stdin {
            c.stdin(std::fs::File::open(path)?);
        }
        c.output()
    })
    .await
    .map_err(|e| tool_error(name, e))?
    .map_err(|e| {
        tool_error(
            name,
            format!("cannot run it ({e}); is the MySQL/MariaDB client installed? (STRATA_MYSQL_BIN names its directory)"),
        )
    })?;
    if !out.status.success() {
        return Err(tool_error(
            name,
            format!(
                "failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    Ok(())
}

/// Dumps the URL's database (schema, data, routines, triggers) to `dest`.
pub(super) async fn dump(opts: &Opts, dest: &Path) -> Result<(), DriverError> {
    let db = opts.db_name().unwrap_or_default();
    let mut c = command(&["mysqldump", "mariadb-dump"], opts);
    c.args([
        "--single-transaction",
        "--routines",
        "--triggers",
        "--hex-blob",
        "--no-tablespaces",
        "--skip-comments",
    ])
    .arg(format!("--result-file={}", dest.display()))
    .arg("--")
    .arg(db);
    run("mysqldump", c, None).await
}

/// Replaces the database's contents with the dump at `src`, after proving the dump
/// loads into a scratch database.
pub(super) async fn restore(conn: &mut Conn, opts: &Opts, src: &Path) -> Result<(), DriverError> {
    let db = opts.db_name().unwrap_or_default().to_string();
    let scratch = format!("{}_strata_restore", &db[..db.len().min(40)]);
    recreate(conn, &scratch, &db).await?;
    let checked = load(opts, &scratch, src).await;
    let _ = conn
        .query_drop(format!("DROP DATABASE IF EXISTS {}", quote(&scratch)))
        .await;
    checked.map_err(|mut e| {
        e.message = format!(
            "the backup does not load, so nothing was changed: {}",
            e.message
        );
        e
    })?;
    recreate(conn, &db, &db).await?;
    let loaded = load(opts, &db, src).await;
    conn.query_drop(format!("USE {}", quote(&db)))
        .await
        .map_err(|e| db_error(&e))?;
    loaded
}

/// Drops and creates `name` with the character set and collation of `like`.
async fn recreate(conn: &mut Conn, name: &str, like: &str) -> Result<(), DriverError> {
    let (charset, collation): (String, String) = conn
        .exec_first(
            "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
            (like,),
        )
        .await
        .map_err(|e| db_error(&e))?
        .unwrap_or(("utf8mb4".into(), "utf8mb4_general_ci".into()));
    for sql in [
        format!("DROP DATABASE IF EXISTS {}", quote(name)),
        format!(
            "CREATE DATABASE {} CHARACTER SET {charset} COLLATE {collation}",
            quote(name)
        ),
    ] {
        conn.query_drop(sql).await.map_err(|e| db_error(&e))?;
    }
    Ok(())
}

async fn load(opts: &Opts, db: &str, src: &Path) -> Result<(), DriverError> {
    let mut c = command(&["mysql", "mariadb"], opts);
    c.arg("--batch").arg(format!("--database={db}"));
    run("mysql", c, Some(src.to_path_buf())).await
}
