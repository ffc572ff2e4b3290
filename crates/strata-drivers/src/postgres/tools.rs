//! Backups with PostgreSQL's own tools: `pg_dump -Fc` to write one, and `pg_restore`
//! piped into `psql --single-transaction` to restore one. Writing our own dumper would
//! miss object kinds; these tools know them all.
//!
//! Restore makes the database what it was at backup time, not a merge: the user
//! schemas are dropped first, in the same transaction as the restore, so a failed
//! restore changes nothing. The connection goes to the tools in `PG*` variables,
//! keeping the password off their command lines.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use strata_core::{DriverError, DriverErrorKind};
use tokio_postgres::config::Host;
use tokio_postgres::Client;

use super::target::Target;
use super::tls::Mode;

use super::exec::db_error;

/// `STRATA_PG_BIN/name` when that is set, else `name` from `PATH`.
fn tool(name: &str) -> PathBuf {
    match std::env::var_os("STRATA_PG_BIN") {
        Some(dir) => Path::new(&dir).join(name),
        None => PathBuf::from(name),
    }
}

fn command(name: &str, target: &Target) -> Command {
    let config = &target.config;
    let mut c = Command::new(tool(name));
    match config.get_hosts().first() {
        Some(Host::Tcp(h)) => {
            c.env("PGHOST", h);
        }
        Some(Host::Unix(p)) => {
            c.env("PGHOST", p);
        }
        None => {}
    }
    if let Some(port) = config.get_ports().first() {
        c.env("PGPORT", port.to_string());
    }
    if let Some(u) = config.get_user() {
        c.env("PGUSER", u);
    }
    if let Some(db) = config.get_dbname() {
        c.env("PGDATABASE", db);
    }
    match config.get_password() {
        Some(pw) => {
            c.env("PGPASSWORD", String::from_utf8_lossy(pw).as_ref());
        }
        None => {
            c.env_remove("PGPASSWORD");
        }
    }
    let ssl = match target.tls.mode {
        Mode::Disable => "disable",
        Mode::Prefer => "prefer",
        Mode::Require => "require",
        Mode::VerifyCa => "verify-ca",
        Mode::VerifyFull => "verify-full",
    };
    for (var, path) in [
        ("PGSSLROOTCERT", &target.tls.root_cert),
        ("PGSSLCERT", &target.tls.cert),
        ("PGSSLKEY", &target.tls.key),
    ] {
        match path {
            Some(p) => c.env(var, p),
            None => c.env_remove(var),
        };
    }
    c.env("PGSSLMODE", ssl)
        .env("PGAPPNAME", "strata-backup")
        .env("PGCONNECT_TIMEOUT", "10");
    c
}

fn tool_error(name: &str, e: impl std::fmt::Display) -> DriverError {
    DriverError::new(DriverErrorKind::Other, format!("{name}: {e}"))
}

/// Runs a prepared command to completion, turning a failure into its stderr.
async fn run(name: &'static str, mut c: Command) -> Result<Vec<u8>, DriverError> {
    let out = tokio::task::spawn_blocking(move || c.output())
        .await
        .map_err(|e| tool_error(name, e))?
        .map_err(|e| tool_error(name, format!("cannot run it ({e}); is the PostgreSQL client installed? (STRATA_PG_BIN names its directory)")))?;
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
    Ok(out.stdout)
}

pub(super) async fn dump(target: &Target, dest: &Path) -> Result<(), DriverError> {
    let mut c = command("pg_dump", target);
    c.arg("--format=custom").arg("--file").arg(dest);
    run("pg_dump", c).await.map(|_| ())
}

pub(super) async fn restore(
    client: &Client,
    target: &Target,
    src: &Path,
) -> Result<(), DriverError> {
    let mut list = command("pg_restore", target);
    list.arg("--list").arg(src);
    let toc = String::from_utf8_lossy(&run("pg_restore", list).await?).into_owned();
    let dump_creates_public = toc.lines().any(|l| l.contains(" SCHEMA - public "));
    let prelude = prelude(client, dump_creates_public).await?;

    let src = src.to_path_buf();
    let mut restore = command("pg_restore", target);
    restore
        .arg("--file=-")
        .arg(&src)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut psql = command("psql", target);
    psql.args([
        "-X",
        "-q",
        "--single-transaction",
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
    ])
    .arg(prelude)
    .args(["-f", "-"])
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    tokio::task::spawn_blocking(move || -> Result<(), DriverError> {
        let mut producer = restore.spawn().map_err(|e| tool_error("pg_restore", e))?;
        let stdout = producer.stdout.take().expect("piped above");
        psql.stdin(Stdio::from(stdout));
        let consumer = psql.spawn().map_err(|e| tool_error("psql", e))?;
        let consumed = consumer
            .wait_with_output()
            .map_err(|e| tool_error("psql", e))?;
        let produced = producer
            .wait_with_output()
            .map_err(|e| tool_error("pg_restore", e))?;
        if !produced.status.success() {
            return Err(tool_error(
                "pg_restore",
                String::from_utf8_lossy(&produced.stderr).trim(),
            ));
        }
        if !consumed.status.success() {
            return Err(tool_error(
                "psql",
                format!(
                    "restore failed and was rolled back: {}",
                    String::from_utf8_lossy(&consumed.stderr).trim()
                ),
            ));
        }
        Ok(())
    })
    .await
    .map_err(|e| tool_error("restore", e))?
}

/// SQL that empties the database's user schemas, recreating `public` as it is now
/// (owner and grants) when the dump expects it to exist.
async fn prelude(client: &Client, dump_creates_public: bool) -> Result<String, DriverError> {
    let drops: String = client
        .query_typed_one(
            "SELECT coalesce(string_agg(format('DROP SCHEMA %I CASCADE;', nspname), ' '), '') \
             FROM pg_namespace WHERE nspname !~ '^pg_' AND nspname <> 'information_schema'",
            &[],
        )
        .await
        .map_err(|e| db_error(&e))?
        .get(0);
    let mut sql = format!("SET client_min_messages = warning; {drops}");
    if !dump_creates_public {
        let public = client
            .query_typed_opt(
                "SELECT format('CREATE SCHEMA public AUTHORIZATION %I;', pg_get_userbyid(nspowner)) || \
                   coalesce((SELECT string_agg(format(' GRANT %s ON SCHEMA public TO %s;', privilege_type, \
                     CASE WHEN grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(grantee)) END), '') \
                     FROM aclexplode(nspacl) WHERE grantee <> nspowner), '') || \
                   coalesce(format(' COMMENT ON SCHEMA public IS %L;', obj_description(oid, 'pg_namespace')), '') \
                 FROM pg_namespace WHERE nspname = 'public'",
                &[],
            )
            .await
            .map_err(|e| db_error(&e))?;
        sql.push(' ');
        sql.push_str(
            &public
                .map(|r| r.get::<_, String>(0))
                .unwrap_or_else(|| "CREATE SCHEMA public;".into()),
        );
    }
    sql.push_str(" RESET client_min_messages;");
    Ok(sql)
}
