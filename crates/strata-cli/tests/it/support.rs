//! Test databases and helpers.
//!
//! PostgreSQL tests read `STRATA_TEST_POSTGRES_URL` (an admin URL; each test creates and
//! drops its own database). When it is unset or unreachable they print why and return,
//! unless `STRATA_TEST_REQUIRE` names the engine, in which case they fail. MySQL and
//! MariaDB tests read `STRATA_TEST_MYSQL_URL` the same way.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};

use assert_cmd::Command;
use mysql_async::prelude::Queryable;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub fn required(engine: &str) -> bool {
    std::env::var("STRATA_TEST_REQUIRE")
        .map(|v| v.split(',').any(|e| e.trim() == engine))
        .unwrap_or(false)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime for test setup")
}

/// A database for one test.
pub enum TestDb {
    Sqlite {
        _dir: tempfile::TempDir,
        path: PathBuf,
    },
    Postgres {
        admin: String,
        name: String,
        url: String,
    },
    MySql {
        admin: String,
        name: String,
        url: String,
    },
    /// Only in builds with the `duckdb` feature (scripts/test enables it).
    DuckDb {
        _dir: tempfile::TempDir,
        path: PathBuf,
    },
}

/// The admin URL an engine's tests use, or None with a printed reason (a panic when the
/// engine is required).
fn admin_url(engine: &str, var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            assert!(
                !required(engine),
                "STRATA_TEST_REQUIRE includes {engine} but {var} is unset"
            );
            eprintln!("skipped {test} on {engine}: {var} is not set (scripts/test sets it)");
            None
        }
    }
}

fn db_name(test: &str) -> String {
    format!(
        "strata_t_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst),
        &test.replace(|c: char| !c.is_ascii_alphanumeric(), "_")[..test.len().min(20)]
    )
    .to_lowercase()
}

impl TestDb {
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("test.db");
        TestDb::Sqlite { _dir: dir, path }
    }

    /// A fresh PostgreSQL database, or None (with a printed reason) when none is configured.
    pub fn postgres(test: &str) -> Option<TestDb> {
        let admin = admin_url("postgres", "STRATA_TEST_POSTGRES_URL", test)?;
        let name = db_name(test);
        let created = runtime().block_on(async {
            let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls).await?;
            tokio::spawn(conn);
            client
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .await
        });
        if let Err(e) = created {
            assert!(
                !required("postgres"),
                "PostgreSQL at STRATA_TEST_POSTGRES_URL is required but unusable: {e}"
            );
            eprintln!("skipped {test}: PostgreSQL unreachable: {e}");
            return None;
        }
        let mut url = url_with_db(&admin, &name);
        if !url.contains("application_name") {
            url.push_str(if url.contains('?') { "&" } else { "?" });
            url.push_str("application_name=strata-test");
        }
        Some(TestDb::Postgres { admin, name, url })
    }

    /// A fresh MySQL/MariaDB database, or None (with a printed reason) when none is configured.
    pub fn mysql(test: &str) -> Option<TestDb> {
        let admin = admin_url("mysql", "STRATA_TEST_MYSQL_URL", test)?;
        let name = db_name(test);
        if let Err(e) = mysql_exec(&admin, &format!("CREATE DATABASE {name}")) {
            assert!(
                !required("mysql"),
                "MySQL at STRATA_TEST_MYSQL_URL is required but unusable: {e}"
            );
            eprintln!("skipped {test}: MySQL unreachable: {e}");
            return None;
        }
        let url = url_with_db(&admin, &name);
        Some(TestDb::MySql { admin, name, url })
    }

    /// A fresh DuckDB file, when this build has DuckDB; else None with the reason.
    pub fn duckdb(test: &str) -> Option<TestDb> {
        if !cfg!(feature = "duckdb") {
            assert!(
                !required("duckdb"),
                "STRATA_TEST_REQUIRE includes duckdb but the tests were built without the duckdb feature"
            );
            eprintln!("skipped {test} on duckdb: built without the duckdb feature (scripts/test enables it when libduckdb is available)");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("test.duckdb");
        Some(TestDb::DuckDb { _dir: dir, path })
    }

    pub fn url(&self) -> String {
        match self {
            TestDb::Sqlite { path, .. } => format!("sqlite://{}", path.display()),
            TestDb::DuckDb { path, .. } => format!("duckdb://{}", path.display()),
            TestDb::Postgres { url, .. } | TestDb::MySql { url, .. } => url.clone(),
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, TestDb::Postgres { .. })
    }

    pub fn is_mysql(&self) -> bool {
        matches!(self, TestDb::MySql { .. })
    }

    /// How `query` prints a boolean column.
    pub fn bool_text(&self, b: bool) -> &'static str {
        match (self.is_postgres(), b) {
            (true, true) => "t",
            (true, false) => "f",
            (false, true) => "1",
            (false, false) => "0",
        }
    }

    /// Runs a query and returns every row as text columns joined by `|`. `{history}`,
    /// `{audit}`, `{metadata}` and `{lease}` stand for strata's tables on this engine.
    pub fn query(&self, sql: &str) -> Vec<String> {
        let sql = &strata_tables(sql, self.is_postgres());
        match self {
            TestDb::Sqlite { path, .. } => {
                let conn = rusqlite::Connection::open(path).expect("open sqlite");
                let mut stmt = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
                let n = stmt.column_count();
                let rows = stmt
                    .query_map([], |r| {
                        Ok((0..n)
                            .map(|i| match r.get_ref(i).unwrap() {
                                rusqlite::types::ValueRef::Null => "NULL".to_string(),
                                rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                                rusqlite::types::ValueRef::Real(v) => v.to_string(),
                                rusqlite::types::ValueRef::Text(t)
                                | rusqlite::types::ValueRef::Blob(t) => {
                                    String::from_utf8_lossy(t).into_owned()
                                }
                            })
                            .collect::<Vec<_>>()
                            .join("|"))
                    })
                    .unwrap();
                rows.map(|r| r.unwrap()).collect()
            }
            TestDb::Postgres { url, .. } => pg_query(url, sql),
            TestDb::MySql { url, .. } => mysql_query(url, sql),
            TestDb::DuckDb { path, .. } => duckdb_query(path, sql),
        }
    }

    /// Runs a statement that returns no rows (DDL, an insert), panicking on failure.
    pub fn exec(&self, sql: &str) {
        match self {
            TestDb::MySql { url, .. } => {
                mysql_exec(url, &strata_tables(sql, false)).unwrap_or_else(|e| panic!("{sql}: {e}"))
            }
            _ => {
                self.query(sql);
            }
        }
    }

    /// Whether a statement succeeds (a constraint holding, a column existing).
    pub fn succeeds(&self, sql: &str) -> bool {
        match self {
            TestDb::MySql { url, .. } => mysql_exec(url, &strata_tables(sql, false)).is_ok(),
            _ => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.query(sql))).is_ok(),
        }
    }

    /// User tables (not strata's), sorted.
    pub fn tables(&self) -> Vec<String> {
        match self {
            TestDb::Sqlite { .. } => self.query("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' AND substr(name, 1, 7) <> 'strata_' ORDER BY name"),
            TestDb::Postgres { .. } => self.query("SELECT table_name FROM information_schema.tables WHERE table_schema='public' AND table_type='BASE TABLE' AND substr(table_name, 1, 7) <> 'strata_' ORDER BY 1"),
            TestDb::MySql { .. } => self.query("SELECT table_name FROM information_schema.tables WHERE table_schema=DATABASE() AND table_type='BASE TABLE' AND substr(table_name, 1, 7) <> 'strata_' ORDER BY 1"),
            TestDb::DuckDb { path, .. } => {
                if !path.exists() {
                    return vec![];
                }
                self.query("SELECT table_name FROM information_schema.tables WHERE table_type='BASE TABLE' AND substr(table_name, 1, 7) <> 'strata_' ORDER BY 1")
            }
        }
    }

    /// A text dump of schema and data: equal before and after means nothing changed.
    pub fn dump(&self) -> String {
        match self {
            TestDb::Sqlite { path, .. } => {
                if !path.exists() {
                    return "(no file)".into();
                }
                let conn = rusqlite::Connection::open(path).unwrap();
                let mut out = self
                    .query("SELECT type, name, sql FROM sqlite_master ORDER BY type, name")
                    .join("\n");
                let tables: Vec<String> =
                    self.query("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name");
                for t in tables {
                    let rows = self.query(&format!("SELECT * FROM \"{t}\""));
                    out.push_str(&format!("\n{t}: {rows:?}"));
                }
                drop(conn);
                out
            }
            TestDb::Postgres { .. } => {
                let mut out = self
                    .query(
                        "SELECT CASE n.nspname WHEN 'public' THEN '' ELSE n.nspname || '.' END || c.relname, c.relkind, coalesce(string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull, ', ' ORDER BY a.attnum), '') \
                         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
                         WHERE n.nspname NOT IN ('pg_catalog','information_schema','pg_toast') GROUP BY n.nspname, c.relname, c.relkind ORDER BY 1",
                    )
                    .join("\n");
                out.push('\n');
                out.push_str(&self.query("SELECT proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public' ORDER BY 1").join(","));
                out.push('\n');
                out.push_str(&self.query("SELECT typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = 'public' AND t.typtype = 'e' ORDER BY 1").join(","));
                // Application tables by name, strata's as `strata.NAME`.
                for t in self.query("SELECT CASE table_schema WHEN 'public' THEN '' ELSE table_schema || '.' END || table_name FROM information_schema.tables WHERE table_schema IN ('public', 'strata') AND table_type='BASE TABLE' ORDER BY 1") {
                    let rows = self.query(&format!("SELECT md5(coalesce(string_agg(x::text, ',' ORDER BY x::text), '')) FROM {t} x"));
                    out.push_str(&format!("\n{t}: {rows:?}"));
                }
                out
            }
            TestDb::DuckDb { path, .. } => {
                if !path.exists() {
                    return "(no file)".into();
                }
                let mut out = self
                    .query("SELECT table_name, column_name, data_type FROM information_schema.columns ORDER BY 1, ordinal_position")
                    .join("\n");
                for t in self.query("SELECT table_name FROM information_schema.tables WHERE table_type='BASE TABLE' ORDER BY 1") {
                    let mut rows = self.query(&format!("SELECT * FROM \"{t}\""));
                    rows.sort();
                    out.push_str(&format!("\n{t}: {rows:?}"));
                }
                out
            }
            TestDb::MySql { .. } => {
                let mut out = String::new();
                for (t, kind) in self
                    .query("SELECT table_name, table_type FROM information_schema.tables WHERE table_schema=DATABASE() ORDER BY 1")
                    .iter()
                    .map(|r| r.split_once('|').unwrap())
                {
                    let create = self.query(&format!("SHOW CREATE TABLE `{t}`"));
                    // AUTO_INCREMENT counters move with inserts that were rolled back.
                    let create: Vec<String> = create
                        .iter()
                        .map(|c| c.split(" AUTO_INCREMENT=").next().unwrap().to_string())
                        .collect();
                    let mut rows = Vec::new();
                    if kind == "BASE TABLE" {
                        rows = self.query(&format!("SELECT * FROM `{t}`"));
                        rows.sort();
                    }
                    // One line a table, starting with its name, as the other engines'.
                    out.push_str(&format!("{t}: {kind} {create:?} rows {rows:?}\n"));
                }
                out.push_str(&self.query("SELECT routine_name FROM information_schema.routines WHERE routine_schema=DATABASE() ORDER BY 1").join(","));
                out
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let TestDb::MySql { admin, name, .. } = self {
            if std::env::var("STRATA_TEST_KEEP").is_ok() {
                eprintln!("kept database {name}");
                return;
            }
            let _ = mysql_exec(admin, &format!("DROP DATABASE IF EXISTS {name}"));
        }
        if let TestDb::Postgres { admin, name, .. } = self {
            if std::env::var("STRATA_TEST_KEEP").is_ok() {
                eprintln!("kept database {name}");
                return;
            }
            let (admin, name) = (admin.clone(), name.clone());
            let _ = runtime().block_on(async move {
                let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls).await?;
                tokio::spawn(conn);
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
            });
        }
    }
}

/// Runs a query on PostgreSQL; every row as text columns joined by `|`.
pub fn pg_query(url: &str, sql: &str) -> Vec<String> {
    runtime().block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(conn);
        let msgs = client
            .simple_query(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        msgs.into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                    (0..r.len())
                        .map(|i| r.get(i).unwrap_or("NULL").to_string())
                        .collect::<Vec<_>>()
                        .join("|"),
                ),
                _ => None,
            })
            .collect()
    })
}

async fn mysql_conn(url: &str) -> Result<mysql_async::Conn, mysql_async::Error> {
    let opts = mysql_async::Opts::from_url(&url.replacen("mariadb://", "mysql://", 1))
        .expect("a MySQL URL");
    let mut c = mysql_async::Conn::new(opts).await?;
    // Test queries are written once for every engine: `||` concatenates, `"x"` quotes.
    c.query_drop("SET SESSION sql_mode = CONCAT(@@sql_mode, ',PIPES_AS_CONCAT,ANSI_QUOTES')")
        .await?;
    Ok(c)
}

/// Runs statements on MySQL.
pub fn mysql_exec(url: &str, sql: &str) -> Result<(), mysql_async::Error> {
    runtime().block_on(async {
        let mut c = mysql_conn(url).await?;
        c.query_drop(sql).await?;
        c.disconnect().await
    })
}

/// Runs a query on MySQL; every row as text columns joined by `|`.
pub fn mysql_query(url: &str, sql: &str) -> Vec<String> {
    runtime().block_on(async {
        let mut c = mysql_conn(url).await.expect("connect to MySQL");
        let rows: Vec<mysql_async::Row> =
            c.query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        let _ = c.disconnect().await;
        rows.into_iter()
            .map(|r| {
                r.unwrap()
                    .into_iter()
                    .map(|v| match v {
                        mysql_async::Value::NULL => "NULL".to_string(),
                        mysql_async::Value::Bytes(b) => String::from_utf8_lossy(&b).into_owned(),
                        mysql_async::Value::Int(i) => i.to_string(),
                        mysql_async::Value::UInt(u) => u.to_string(),
                        mysql_async::Value::Float(f) => f.to_string(),
                        mysql_async::Value::Double(f) => f.to_string(),
                        other => other.as_sql(true),
                    })
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect()
    })
}

/// Runs a query on a DuckDB file; every row as text columns joined by `|`.
#[cfg(feature = "duckdb")]
pub fn duckdb_query(path: &Path, sql: &str) -> Vec<String> {
    use duckdb::types::Value;
    let conn = duckdb::Connection::open(path).expect("open duckdb");
    let mut stmt = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut rows = stmt.query([]).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut out = Vec::new();
    while let Some(r) = rows.next().unwrap() {
        let n = r.as_ref().column_count();
        let cols: Vec<String> = (0..n)
            .map(|i| match r.get::<_, Value>(i).unwrap() {
                Value::Null => "NULL".into(),
                Value::Boolean(b) => (if b { "1" } else { "0" }).into(),
                Value::Text(t) => t,
                Value::TinyInt(v) => v.to_string(),
                Value::SmallInt(v) => v.to_string(),
                Value::Int(v) => v.to_string(),
                Value::BigInt(v) => v.to_string(),
                Value::HugeInt(v) => v.to_string(),
                Value::UTinyInt(v) => v.to_string(),
                Value::USmallInt(v) => v.to_string(),
                Value::UInt(v) => v.to_string(),
                Value::UBigInt(v) => v.to_string(),
                Value::Double(v) => v.to_string(),
                Value::Float(v) => v.to_string(),
                other => format!("{other:?}"),
            })
            .collect();
        out.push(cols.join("|"));
    }
    out
}

#[cfg(not(feature = "duckdb"))]
pub fn duckdb_query(_: &Path, _: &str) -> Vec<String> {
    unreachable!("TestDb::duckdb returns None in builds without DuckDB")
}

/// A PostgreSQL database the test did not create (a throwaway cluster's).
pub struct ExternalDb(pub String);

impl ExternalDb {
    pub fn query(&self, sql: &str) -> Vec<String> {
        pg_query(&self.0, &strata_tables(sql, true))
    }
}

/// `sql` with `{history}`, `{audit}`, `{metadata}` and `{lease}` replaced by strata's
/// default table names: in the `strata` schema on PostgreSQL, `strata_`-prefixed elsewhere.
pub fn strata_tables(sql: &str, postgres: bool) -> String {
    let prefix = if postgres { "strata." } else { "strata_" };
    sql.replace("{history}", &format!("{prefix}schema_migrations"))
        .replace("{audit}", &format!("{prefix}audit_log"))
        .replace("{metadata}", &format!("{prefix}application_metadata"))
        .replace("{lease}", &format!("{prefix}schema_migrations_lock"))
}

fn url_with_db(admin: &str, db: &str) -> String {
    let (base, query) = admin
        .split_once('?')
        .map(|(b, q)| (b, Some(q)))
        .unwrap_or((admin, None));
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let path_start = base[scheme_end..]
        .find('/')
        .map(|i| i + scheme_end)
        .unwrap_or(base.len());
    let mut u = format!("{}/{db}", &base[..path_start]);
    if let Some(q) = query {
        u.push('?');
        u.push_str(q);
    }
    u
}

/// A migrations directory in a temp dir, built file by file.
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    pub fn new() -> Project {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("migrations")).unwrap();
        Project { dir }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn migrations(&self) -> PathBuf {
        self.dir.path().join("migrations")
    }

    pub fn file(&self, name: &str, text: &str) -> &Self {
        let p = self.migrations().join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(p, text).unwrap();
        self
    }

    pub fn remove(&self, name: &str) {
        std::fs::remove_file(self.migrations().join(name)).unwrap();
    }

    /// `strata` run in the project root against `db`, with `--dir migrations`.
    pub fn strata(&self, db: &TestDb, args: &[&str]) -> Output {
        strata_in(self.root(), &db.url(), &self.migrations(), args)
    }
}

/// `strata` in `cwd` with no URL flag and none of the variables that choose a database
/// or environment: what a project's own files say decides.
pub fn strata_bare(cwd: &Path, args: &[&str]) -> Output {
    Command::cargo_bin("strata")
        .expect("the strata binary")
        .current_dir(cwd)
        .env_remove("DATABASE_URL")
        .env_remove("STRATA_ENV")
        .env_remove("ENV")
        .env("NO_COLOR", "1")
        .args(args)
        .output()
        .expect("run strata")
}

pub fn strata_in(cwd: &Path, url: &str, dir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::cargo_bin("strata").expect("the strata binary");
    cmd.current_dir(cwd)
        .env_remove("DATABASE_URL")
        .env_remove("STRATA_ENV")
        .env_remove("ENV")
        .env_remove("BACKUP_LOCATION")
        .env_remove("BACKUP_BEFORE_MIGRATION")
        .env("NO_COLOR", "1");
    cmd.arg("--database-url")
        .arg(url)
        .arg("--dir")
        .arg(dir)
        .args(args);
    cmd.output().expect("run strata")
}

/// `strata up` in `cwd` (its `migrations` directory) against `url`, started and left
/// running, its output piped.
pub fn spawn_up(cwd: &Path, url: &str) -> std::process::Child {
    std::process::Command::new(assert_cmd::cargo::cargo_bin("strata"))
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .args(["--database-url", url, "--dir", "migrations", "up"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn strata")
}

/// `processes` concurrent `strata up` runs in `cwd` (its `migrations` directory); each
/// must succeed.
pub fn up_in_parallel(cwd: &Path, url: &str, processes: usize) {
    let children: Vec<_> = (0..processes).map(|_| spawn_up(cwd, url)).collect();
    for c in children {
        ok(&c.wait_with_output().unwrap());
    }
}

pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success, printing both streams otherwise.
#[track_caller]
pub fn ok(o: &Output) -> String {
    assert_eq!(
        code(o),
        0,
        "expected success\nstdout:\n{}\nstderr:\n{}",
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\nstderr: {}", stdout(o), stderr(o)))
}

/// Every engine the test can reach: SQLite always, PostgreSQL and MySQL when configured.
/// The tests that loop over it are the driver conformance suite: each engine must pass
/// the same assertions (with its own semantics where they differ, e.g. MySQL's DDL).
pub fn engines(test: &str) -> Vec<TestDb> {
    let mut v = vec![TestDb::sqlite()];
    v.extend(TestDb::postgres(test));
    v.extend(TestDb::mysql(test));
    v.extend(TestDb::duckdb(test));
    v
}

/// `../shared/corpora`, found from the repository, or None with a printed reason.
pub fn corpora(test: &str) -> Option<PathBuf> {
    if let Ok(p) = std::env::var("STRATA_CORPORA") {
        return Some(PathBuf::from(p));
    }
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    for a in here.ancestors() {
        for c in [a.join("shared/corpora"), a.join("../shared/corpora")] {
            if c.is_dir() {
                return Some(c);
            }
        }
    }
    assert!(!required("corpora"), "STRATA_TEST_REQUIRE includes corpora but ../shared/corpora was not found (set STRATA_CORPORA)");
    eprintln!("skipped {test}: ../shared/corpora not found (set STRATA_CORPORA)");
    None
}

/// A small deterministic generator (xorshift), so a failing trial can be replayed.
pub struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A fault trial's seed: the variable `var` when set (to replay a failure), else the
/// clock; the caller prints it.
pub fn seed(var: &str) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        })
}
