//! Runs on connections the application already has: every migration applied once
//! when several connections race, a failure that leaves the connection usable and
//! outside any transaction, and the application's client still its own afterwards.

use std::path::Path;

use strata::{Migrator, Target};

fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("migrations")).unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join("migrations").join(name), text).unwrap();
    }
    dir
}

/// 001 creates `log`; 002 to 005 each insert one row into it.
fn five_inserts() -> tempfile::TempDir {
    let dir = dir_with(&[("001_log.sql", "CREATE TABLE log (n INTEGER);\n")]);
    for v in 2..=5 {
        std::fs::write(
            dir.path().join("migrations").join(format!("00{v}_row.sql")),
            format!("INSERT INTO log (n) VALUES ({v});\n"),
        )
        .unwrap();
    }
    dir
}

fn count(path: &Path, sql: &str) -> i64 {
    let c = strata::rusqlite::Connection::open(path).unwrap();
    c.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_borrowed_sqlite_connections_apply_each_migration_once() {
    let dir = five_inserts();
    let db = dir.path().join("app.db");
    let migrator = Migrator::from_dir(dir.path().join("migrations")).unwrap();
    let runs: Vec<_> = (0..6)
        .map(|_| {
            let migrator = migrator.clone();
            let db = db.clone();
            tokio::spawn(async move {
                let mut conn = strata::rusqlite::Connection::open(&db).unwrap();
                let report = migrator.up(&mut conn, Target::Head).await.unwrap();
                // The connection is the application's again, outside any transaction.
                assert!(conn.is_autocommit());
                report.done.len()
            })
        })
        .collect();
    let mut applied = 0;
    for r in runs {
        applied += r.await.unwrap();
    }
    assert_eq!(applied, 5, "five migrations, applied once between six runs");
    assert_eq!(count(&db, "SELECT count(*) FROM log"), 4);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM strata_schema_migrations WHERE success = 1"
        ),
        5
    );
}

#[tokio::test]
async fn a_failure_on_a_borrowed_connection_names_the_line_and_leaves_it_usable() {
    let dir = dir_with(&[
        ("001_t.sql", "CREATE TABLE t (id INTEGER);\n"),
        (
            "002_bad.sql",
            "INSERT INTO t VALUES (1);\nINSERT INTO nowhere VALUES (2);\n",
        ),
    ]);
    let migrator = Migrator::from_dir(dir.path().join("migrations")).unwrap();
    let mut conn = strata::rusqlite::Connection::open(dir.path().join("app.db")).unwrap();
    let err = migrator.up(&mut conn, Target::Head).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("002_bad.sql:2"), "{text}");
    assert!(text.contains("nowhere"), "{text}");
    assert!(conn.is_autocommit(), "no transaction left open");
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        rows, 0,
        "the failed migration's first statement was rolled back"
    );
    let status = migrator.status(&mut conn).await.unwrap();
    assert_eq!(status.current.as_deref(), Some("001"));
    assert_eq!(status.count(strata::MigrationState::Pending), 1);
}

fn postgres_url() -> Option<String> {
    match std::env::var("STRATA_TEST_POSTGRES_URL") {
        Ok(url) => Some(url),
        Err(_) => {
            let required = std::env::var("STRATA_TEST_REQUIRE").unwrap_or_default();
            assert!(
                !required.split(',').any(|e| e == "postgres"),
                "STRATA_TEST_REQUIRE names postgres but STRATA_TEST_POSTGRES_URL is not set"
            );
            eprintln!("skipped: set STRATA_TEST_POSTGRES_URL");
            None
        }
    }
}

#[tokio::test]
async fn a_borrowed_postgres_client_migrates_in_its_own_schema_and_stays_usable() {
    use strata::tokio_postgres::{connect, NoTls};
    let Some(url) = postgres_url() else { return };
    let (mut client, conn) = connect(&url, NoTls).await.unwrap();
    tokio::spawn(conn);
    let schema = format!("borrowed_{}", std::process::id());
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}; SET search_path = {schema}"
        ))
        .await
        .unwrap();
    let dir = dir_with(&[
        (
            "001_t.sql",
            "CREATE TABLE t (id int);\n-- strata:down\nDROP TABLE t;\n",
        ),
        (
            "002_row.sql",
            "INSERT INTO t VALUES (1);\n-- strata:down\nDELETE FROM t;\n",
        ),
    ]);
    let migrator = Migrator::from_dir(dir.path().join("migrations")).unwrap();
    let report = migrator.up(&mut client, Target::Head).await.unwrap();
    assert_eq!(report.done.len(), 2);
    // The tables landed in the session's schema, and the client is still the app's.
    let n: i64 = client
        .query_one(&format!("SELECT count(*) FROM {schema}.t"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    let status = migrator.status(&mut client).await.unwrap();
    assert_eq!(status.current.as_deref(), Some("002"));
    // The session chose its schema: strata's history is kept there too, apart from
    // other tenants of the database.
    let history: i64 = client
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name LIKE '%schema_migrations'",
            &[&schema],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(history, 1, "the history table is in {schema}");
    migrator.rollback(&mut client, Target::Base).await.unwrap();
    let left: i64 = client
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 AND table_name = 't'",
            &[&schema],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "rolled back on the same client");
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

#[cfg(feature = "mysql")]
#[tokio::test]
async fn a_borrowed_mysql_connection_migrates_its_default_database() {
    use strata::mysql_async::prelude::Queryable;
    let Ok(url) = std::env::var("STRATA_TEST_MYSQL_URL") else {
        let required = std::env::var("STRATA_TEST_REQUIRE").unwrap_or_default();
        assert!(
            !required.split(',').any(|e| e == "mysql"),
            "STRATA_TEST_MYSQL_URL is not set"
        );
        eprintln!("skipped: set STRATA_TEST_MYSQL_URL");
        return;
    };
    let mut admin = strata::mysql_async::Conn::from_url(&url).await.unwrap();
    let name = format!("borrowed_{}", std::process::id());
    admin
        .query_drop(format!(
            "DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name}"
        ))
        .await
        .unwrap();
    admin.query_drop(format!("USE {name}")).await.unwrap();
    let dir = dir_with(&[
        ("001_t.sql", "CREATE TABLE t (id int);\n"),
        ("002_row.sql", "INSERT INTO t VALUES (1);\n"),
    ]);
    let migrator = Migrator::from_dir(dir.path().join("migrations")).unwrap();
    let report = migrator.up(&mut admin, Target::Head).await.unwrap();
    assert_eq!(report.done.len(), 2);
    let n: Option<i64> = admin.query_first("SELECT count(*) FROM t").await.unwrap();
    assert_eq!(n, Some(1));
    let again = migrator.up(&mut admin, Target::Head).await.unwrap();
    assert!(again.done.is_empty());
    admin
        .query_drop(format!("DROP DATABASE {name}"))
        .await
        .unwrap();
}

/// A code migration whose client call fails: the error says what the server said
/// (not just `db error`), and `source()` reaches the client crate's own error.
struct BadQuery;

#[strata::async_trait]
impl strata::CodeMigration for BadQuery {
    fn version(&self) -> &str {
        "002"
    }
    fn name(&self) -> &str {
        "bad_query"
    }
    async fn up(&self, db: &mut strata::CodeContext<'_>) -> Result<(), strata::CodeError> {
        if let Some(c) = db.client::<strata::rusqlite::Connection>() {
            c.execute("UPDATE nowhere SET x = 1", [])?;
        } else if let Some(c) = db.client::<strata::tokio_postgres::Client>() {
            c.execute("UPDATE nowhere SET x = 1", &[]).await?;
        }
        Ok(())
    }
}

fn source_chain<'e>(
    e: &'e (dyn std::error::Error + 'static),
) -> Vec<&'e (dyn std::error::Error + 'static)> {
    let mut out = vec![e];
    while let Some(next) = out.last().unwrap().source() {
        out.push(next);
    }
    out
}

#[tokio::test]
async fn a_failing_code_migration_keeps_its_error_and_its_source_chain() {
    let dir = dir_with(&[("001_t.sql", "CREATE TABLE t (id INTEGER);\n")]);
    let migrator = Migrator::from_dir(dir.path().join("migrations"))
        .unwrap()
        .register(BadQuery)
        .unwrap();
    let mut conn = strata::rusqlite::Connection::open(dir.path().join("app.db")).unwrap();
    let err = migrator.up(&mut conn, Target::Head).await.unwrap_err();
    assert!(err.to_string().contains("no such table: nowhere"), "{err}");
    let chain = source_chain(&err);
    assert!(
        chain
            .iter()
            .any(|e| e.downcast_ref::<strata::rusqlite::Error>().is_some()),
        "the rusqlite error is reachable through source(): {chain:?}"
    );
    let recorded: String = conn
        .query_row(
            "SELECT new_values FROM strata_audit_log WHERE operation = 'failure'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(recorded.contains("no such table: nowhere"), "{recorded}");

    let Some(url) = postgres_url() else { return };
    let (mut client, connection) =
        strata::tokio_postgres::connect(&url, strata::tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    let schema = format!("code_error_{}", std::process::id());
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}; SET search_path = {schema}"
        ))
        .await
        .unwrap();
    let err = migrator.up(&mut client, Target::Head).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("relation \"nowhere\" does not exist"),
        "not just `db error`: {err}"
    );
    let chain = source_chain(&err);
    assert!(chain
        .iter()
        .any(|e| e.downcast_ref::<strata::tokio_postgres::Error>().is_some()));
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

/// A run that dies midway (here: a reporter that panics after the first migration)
/// hands the application's SQLite connection back outside strata's write transaction,
/// with what finished committed: the application's next writes are its own.
#[test]
fn a_run_dropped_midway_leaves_the_borrowed_sqlite_connection_usable() {
    struct PanicAfterFirst;
    impl strata::Reporter for PanicAfterFirst {
        fn report(&mut self, event: strata::Event<'_>) {
            if let strata::Event::StepFinished { .. } = event {
                panic!("the application's reporter failed");
            }
        }
    }
    let dir = five_inserts();
    let db = dir.path().join("app.db");
    let migrator = Migrator::from_dir(dir.path().join("migrations")).unwrap();
    let mut conn = strata::rusqlite::Connection::open(&db).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let died = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(migrator.up_reporting(&mut conn, Target::Head, &mut PanicAfterFirst))
    }));
    assert!(died.is_err(), "the reporter's panic ended the run");
    assert!(
        conn.is_autocommit(),
        "no strata transaction left open on the app's connection"
    );
    // Another connection can write at once: nobody holds SQLite's write lock.
    let other = strata::rusqlite::Connection::open(&db).unwrap();
    other
        .execute_batch("CREATE TABLE app_own (id INTEGER)")
        .unwrap();
    // The next run finishes the job, and each migration took effect once.
    rt.block_on(migrator.up(&mut conn, Target::Head)).unwrap();
    assert_eq!(count(&db, "SELECT count(*) FROM log"), 4);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM strata_schema_migrations WHERE success = 1"
        ),
        5
    );
}
