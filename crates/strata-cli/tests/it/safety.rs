//! Lock waits and retries, the lease lock, repair, health and backups.

use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::*;

fn config(p: &Project, text: &str) {
    std::fs::write(p.root().join("strata.toml"), text).unwrap();
}

/// Opens a transaction on `url`, runs `sql` in it, reports the backend pid, holds the
/// transaction for `hold`, then commits.
fn hold_transaction(
    url: String,
    sql: &'static str,
    hold: Duration,
) -> (std::thread::JoinHandle<()>, i32) {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            let pid: i32 = client
                .query_one("SELECT pg_backend_pid()", &[])
                .await
                .unwrap()
                .get(0);
            client.batch_execute("BEGIN").await.unwrap();
            client.batch_execute(sql).await.unwrap();
            tx.send(pid).unwrap();
            tokio::time::sleep(hold).await;
            client.batch_execute("COMMIT").await.unwrap();
        });
    });
    (handle, rx.recv().expect("the blocker started"))
}

#[test]
fn a_migration_behind_a_long_transaction_fails_fast_names_the_blocker_and_retries() {
    let Some(db) = TestDb::postgres("lock_wait") else {
        return;
    };
    let p = Project::new();
    p.file("001_t.sql", "CREATE TABLE t (id INTEGER);\n");
    p.file("002_alter.sql", "ALTER TABLE t ADD COLUMN note TEXT;\n");
    config(
        &p,
        "[settings]\nlock_wait_ms = 300\nretry_attempts = 5\nretry_delay_seconds = 1\n",
    );
    ok(&p.strata(&db, &["up", "--target", "001"]));
    // A reporting query left open: it holds ACCESS SHARE on t for 3 s.
    let (blocker, pid) = hold_transaction(
        db.url(),
        "SELECT count(*) FROM t /* nightly report */",
        Duration::from_secs(3),
    );
    let child = Command::new(assert_cmd::cargo::cargo_bin("strata"))
        .current_dir(p.root())
        .env("NO_COLOR", "1")
        .args(["--database-url", &db.url(), "--dir", "migrations", "up"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Meanwhile the application keeps reading t: the ALTER waiting for its lock must
    // never hold these up for longer than lock_wait_ms.
    let reads_started = Instant::now();
    let mut slowest = Duration::ZERO;
    while reads_started.elapsed() < Duration::from_millis(2500) {
        let t = Instant::now();
        let rows = db.query("SET statement_timeout = '1500ms'; SELECT count(*) FROM t");
        assert_eq!(rows.len(), 1);
        slowest = slowest.max(t.elapsed());
        std::thread::sleep(Duration::from_millis(100));
    }
    blocker.join().unwrap();
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    assert_eq!(code(&o), 0, "{err}");
    assert!(
        err.contains(&format!("blocking: pid {pid}")),
        "the blocking session is not named:\n{err}"
    );
    assert!(
        err.contains("nightly report"),
        "the blocking query is not shown:\n{err}"
    );
    assert!(err.contains("lock_wait_ms"), "{err}");
    assert_eq!(
        db.query("SELECT count(*) FROM information_schema.columns WHERE table_name = 't' AND column_name = 'note'"),
        ["1"]
    );
    let retries = db.query("SELECT record_id FROM {audit} WHERE operation = 'retry'");
    assert!(
        !retries.is_empty() && retries.iter().all(|r| r == "002"),
        "{retries:?}"
    );
    eprintln!("slowest application read while the migration waited: {slowest:?}");
}

/// `hold_transaction` on MySQL: the connection id instead of the pid.
fn hold_mysql_transaction(
    url: String,
    sql: &'static str,
    hold: Duration,
) -> (std::thread::JoinHandle<()>, u64) {
    use mysql_async::prelude::Queryable;
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut c = mysql_async::Conn::new(mysql_async::Opts::from_url(&url).unwrap())
                .await
                .unwrap();
            let id: u64 = c
                .query_first("SELECT CONNECTION_ID()")
                .await
                .unwrap()
                .unwrap();
            c.query_drop("START TRANSACTION").await.unwrap();
            c.query_drop(sql).await.unwrap();
            tx.send(id).unwrap();
            tokio::time::sleep(hold).await;
            c.query_drop("COMMIT").await.unwrap();
        });
    });
    (handle, rx.recv().expect("the blocker started"))
}

/// MySQL: the ALTER queues for the metadata lock behind an open transaction, gives up
/// after `lock_wait_ms` (rounded up to MySQL's whole seconds), names the connection,
/// and is retried until it goes through.
#[test]
fn a_mysql_migration_behind_a_long_transaction_names_the_blocker_and_retries() {
    let Some(db) = TestDb::mysql("lock_wait") else {
        return;
    };
    let p = Project::new();
    p.file("001_t.sql", "CREATE TABLE t (id INTEGER);\n");
    p.file("002_alter.sql", "ALTER TABLE t ADD COLUMN note TEXT;\n");
    config(
        &p,
        "[settings]\nlock_wait_ms = 300\nretry_attempts = 5\nretry_delay_seconds = 1\n",
    );
    ok(&p.strata(&db, &["up", "--target", "001"]));
    let (blocker, id) = hold_mysql_transaction(
        db.url(),
        "SELECT count(*) FROM t /* nightly report */",
        Duration::from_secs(3),
    );
    let o = p.strata(&db, &["up"]);
    blocker.join().unwrap();
    let err = stderr(&o);
    assert_eq!(code(&o), 0, "{err}");
    assert!(
        err.contains(&format!("blocking: connection {id} ")),
        "the blocking connection is not named:\n{err}"
    );
    assert!(err.contains("lock_wait_ms"), "{err}");
    assert_eq!(
        db.query("SELECT count(*) FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = 't' AND column_name = 'note'"),
        ["1"]
    );
    let retries = db.query("SELECT record_id FROM {audit} WHERE operation = 'retry'");
    assert!(
        !retries.is_empty() && retries.iter().all(|r| r == "002"),
        "{retries:?}"
    );
}

#[test]
fn an_expired_lease_is_taken_over_and_a_live_one_is_named() {
    let Some(db) = TestDb::postgres("lease") else {
        return;
    };
    let p = Project::new();
    p.file("001_a.sql", "CREATE TABLE a (id INTEGER);\n");
    config(
        &p,
        "[settings]\nlock = \"lease\"\nlease_seconds = 2\nlock_timeout_seconds = 1\n",
    );
    // A holder that died without releasing: its lease runs 3 more seconds.
    ok(&p.strata(&db, &["status"]));
    db.query(
        "CREATE SCHEMA IF NOT EXISTS strata; CREATE TABLE {lease} (name TEXT PRIMARY KEY, holder TEXT NOT NULL, acquired_at TIMESTAMPTZ NOT NULL, heartbeat_at TIMESTAMPTZ NOT NULL, expires_at TIMESTAMPTZ NOT NULL); \
         INSERT INTO {lease} VALUES ('migrate', 'ghost@elsewhere pid 1', now(), now(), now() + interval '3 seconds')",
    );
    let o = p.strata(&db, &["up"]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(stderr(&o).contains("ghost@elsewhere"), "{}", stderr(&o));
    let h = json(&p.strata(&db, &["--json", "health"]));
    assert!(
        h["lock_holder"].as_str().unwrap_or("").contains("ghost"),
        "{h}"
    );
    assert_eq!(db.tables(), Vec::<String>::new());
    config(
        &p,
        "[settings]\nlock = \"lease\"\nlease_seconds = 2\nlock_timeout_seconds = 15\n",
    );
    ok(&p.strata(&db, &["up"]));
    assert_eq!(db.tables(), ["a"]);
    assert_eq!(db.query("SELECT count(*) FROM {lease}"), ["0"]);
}

#[test]
fn a_killed_lease_holder_is_taken_over_after_expiry() {
    let Some(db) = TestDb::postgres("lease_kill") else {
        return;
    };
    let p = Project::new();
    for i in 1..=4 {
        p.file(
            &format!("{i:03}_t{i}.sql"),
            &format!("SELECT pg_sleep(0.5);\nCREATE TABLE t{i} (id INTEGER);\n"),
        );
    }
    config(
        &p,
        "[settings]\nlock = \"lease\"\nlease_seconds = 2\nlock_timeout_seconds = 30\n",
    );
    let mut first = Command::new(assert_cmd::cargo::cargo_bin("strata"))
        .current_dir(p.root())
        .args(["--database-url", &db.url(), "--dir", "migrations", "up"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once it holds the lease.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let held = std::panic::catch_unwind(|| db.query("SELECT count(*) FROM {lease}"));
        if matches!(held.as_deref(), Ok([n]) if n == "1") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the first run never took the lease"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    first.kill().unwrap();
    first.wait().unwrap();
    let started = Instant::now();
    let o = p.strata(&db, &["up"]);
    let err = stderr(&o);
    assert_eq!(code(&o), 0, "{err}");
    assert!(err.contains("waiting for the migration lease"), "{err}");
    eprintln!(
        "took over a killed holder's lease in {:?}",
        started.elapsed()
    );
    assert_eq!(db.query("SELECT count(*) FROM {history}"), ["4"]);
    assert_eq!(db.tables().len(), 4);
}

#[test]
fn repair_clears_failed_rows_and_rerecords_edited_checksums() {
    for db in engines("repair") {
        let p = Project::new();
        p.file("001_a.sql", "CREATE TABLE a (id INTEGER);\n");
        p.file(
            "002_b.sql",
            "-- strata:no-transaction\nCREATE TABLE b (id INTEGER);\nINSERT INTO missing_table VALUES (1);\n",
        );
        assert_eq!(code(&p.strata(&db, &["up"])), 1);
        // The failed row blocks further runs, and health says so.
        let o = p.strata(&db, &["up"]);
        assert_eq!(code(&o), 3, "{}", stderr(&o));
        let h = p.strata(&db, &["--json", "health"]);
        assert_eq!(code(&h), 2);
        assert_eq!(json(&h)["failed"], serde_json::json!(["002"]));
        // Dry run: says what it would do, changes nothing.
        let before = db.dump();
        let dry = json(&p.strata(&db, &["--json", "repair", "--dry-run"]));
        assert_eq!(dry["repaired"][0]["action"], "cleared_failed");
        assert_eq!(db.dump(), before);
        // The manual fix: undo the half, fix the file; then repair and up.
        db.query("DROP TABLE b");
        p.file(
            "002_b.sql",
            "-- strata:no-transaction\nCREATE TABLE b (id INTEGER);\nINSERT INTO b VALUES (1);\n",
        );
        ok(&p.strata(&db, &["repair"]));
        ok(&p.strata(&db, &["up"]));
        assert_eq!(db.tables(), ["a", "b"]);

        // An edited migration: refused until repaired, then applied state is kept.
        p.file("001_a.sql", "-- reviewed\nCREATE TABLE a (id INTEGER);\n");
        let o = p.strata(&db, &["up"]);
        assert_eq!(code(&o), 3);
        assert_eq!(code(&p.strata(&db, &["health"])), 1);
        let out = ok(&p.strata(&db, &["repair"]));
        assert!(out.contains("Repaired 1 row"), "{out}");
        let s = json(&p.strata(&db, &["--json", "status"]));
        assert!(s["migrations"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["state"] == "applied"));
        assert_eq!(code(&p.strata(&db, &["health"])), 0);
        let ops = db.query("SELECT operation FROM {audit} WHERE operation = 'repair'");
        assert_eq!(ops.len(), 2, "one audit row per repaired row");
        // CRLF line endings are not an edit.
        let text = std::fs::read_to_string(p.migrations().join("001_a.sql")).unwrap();
        p.file("001_a.sql", &text.replace('\n', "\r\n"));
        ok(&p.strata(&db, &["up"]));
    }
}

#[test]
fn health_is_0_1_or_2() {
    for db in engines("health") {
        let p = Project::new();
        p.file("001_a.sql", "CREATE TABLE a (id INTEGER);\n");
        let o = p.strata(&db, &["--json", "health"]);
        assert_eq!(code(&o), 1, "pending migrations are degraded");
        let h = json(&o);
        assert_eq!(h["status"], "degraded");
        assert_eq!(h["pending"], 1);
        assert_eq!(h["reachable"], true);
        assert!(h["latency_ms"].as_f64().is_some());
        ok(&p.strata(&db, &["up"]));
        let o = p.strata(&db, &["health"]);
        assert_eq!(code(&o), 0, "{}", stdout(&o));
        assert!(stdout(&o).contains("healthy"));
        assert!(stdout(&o).contains("history tables present"));
        if let TestDb::Sqlite { path, .. } = &db {
            // Someone holding the write lock: degraded, and said so.
            let writer = rusqlite::Connection::open(path).unwrap();
            writer.execute_batch("BEGIN IMMEDIATE").unwrap();
            let o = p.strata(&db, &["--json", "health"]);
            assert_eq!(code(&o), 1);
            assert!(json(&o)["lock_holder"].is_string(), "{}", stdout(&o));
            writer.execute_batch("ROLLBACK").unwrap();
        }
    }
    let p = Project::new();
    let o = strata_in(
        p.root(),
        "postgres://u:pw@127.0.0.1:1/db",
        &p.migrations(),
        &["--json", "health"],
    );
    assert_eq!(code(&o), 2);
    let h = json(&o);
    assert_eq!(h["reachable"], false);
    assert_eq!(h["status"], "unhealthy");
}

/// A dump without the audit log (and SQLite's sequence counter that follows it).
fn without_audit(dump: &str) -> String {
    dump.lines()
        .filter(|l| {
            !l.starts_with("strata_audit_log:")
                && !l.starts_with("strata.audit_log:")
                && !l.starts_with("sqlite_sequence:")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn backups_round_trip(db: &TestDb) {
    let p = Project::new();
    p.file(
        "001_a.sql",
        "CREATE TABLE a (id INTEGER);\nINSERT INTO a VALUES (1);\n-- strata:down\nDROP TABLE a;\n",
    );
    p.file(
        "002_b.sql",
        "CREATE TABLE b (id INTEGER);\n-- strata:down\nDROP TABLE b;\n",
    );
    p.file(
        "003_c.sql",
        "CREATE TABLE c (id INTEGER);\n-- strata:down\nDROP TABLE c;\n",
    );
    ok(&p.strata(db, &["up", "--target", "002"]));
    let before = db.dump();
    let created = json(&p.strata(db, &["--json", "backup", "create"]));
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["schema_version"], "002");
    assert!(created["size_bytes"].as_u64().unwrap() > 0);
    assert!(p
        .root()
        .join("backups")
        .join(created["file"].as_str().unwrap())
        .exists());
    // Changes after the backup: a migration, data, an object outside migrations.
    ok(&p.strata(db, &["up"]));
    db.query("INSERT INTO a VALUES (2)");
    db.query("CREATE TABLE stray (id INTEGER)");
    assert_ne!(db.dump(), before);
    ok(&p.strata(db, &["backup", "restore", &id]));
    // Everything is as it was, but for the restore's own audit row.
    assert_eq!(
        without_audit(&db.dump()),
        without_audit(&before),
        "restore did not bring back the backed-up state"
    );
    let restores = db.query("SELECT record_id FROM {audit} WHERE operation = 'restore'");
    assert_eq!(restores, ["002"]);
    let s = json(&p.strata(db, &["--json", "status"]));
    assert_eq!(s["current"], "002");
    // An unknown id is bad input and changes nothing.
    let now = db.dump();
    let o = p.strata(db, &["backup", "restore", "nope"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert_eq!(db.dump(), now);

    // Automatic backups before a run, with retention keeping only the newest.
    config(
        &p,
        "[backup]\nbackup_before_migration = true\nbackup_retention_days = 0\n",
    );
    let out = ok(&p.strata(db, &["up"]));
    assert!(out.contains("Backup "), "{out}");
    let list = json(&p.strata(db, &["--json", "backup", "list"]));
    let all = list["backups"].as_array().unwrap();
    assert_eq!(all.len(), 1, "retention keeps the newest only: {list}");
    assert_eq!(all[0]["reason"], "before up");
    assert_eq!(all[0]["schema_version"], "002");
    // Nothing to do: no backup is taken.
    ok(&p.strata(db, &["up"]));
    let list = json(&p.strata(db, &["--json", "backup", "list"]));
    assert_eq!(list["backups"].as_array().unwrap().len(), 1);
    // BACKUP_LOCATION moves them.
    let elsewhere = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("strata"));
    let o = cmd
        .current_dir(p.root())
        .env("BACKUP_LOCATION", elsewhere.path())
        .args([
            "--database-url",
            &db.url(),
            "--dir",
            "migrations",
            "backup",
            "create",
        ])
        .output()
        .unwrap();
    ok(&o);
    assert_eq!(
        std::fs::read_dir(elsewhere.path()).unwrap().count(),
        2,
        "a data file and its sidecar"
    );
}

#[test]
fn backups_create_list_restore_and_retention_on_postgres() {
    let Some(db) = TestDb::postgres("backups") else {
        return;
    };
    backups_round_trip(&db);
}

#[test]
fn backups_create_list_restore_and_retention_on_mysql() {
    let Some(db) = TestDb::mysql("backups") else {
        return;
    };
    backups_round_trip(&db);
}

#[test]
fn backups_create_list_restore_and_retention_on_duckdb() {
    let Some(db) = TestDb::duckdb("backups") else {
        return;
    };
    backups_round_trip(&db);
}

#[test]
fn backups_create_list_restore_and_retention_on_sqlite() {
    backups_round_trip(&TestDb::sqlite());
}

#[test]
fn protected_environments_guard_every_dangerous_command() {
    let db = TestDb::sqlite();
    let p = Project::new();
    p.file(
        "001_a.sql",
        "CREATE TABLE a (id INTEGER);\n-- strata:down\nDROP TABLE a;\n",
    );
    p.file(
        "002_b.sql",
        "CREATE TABLE b (id INTEGER);\n-- strata:down\nDROP TABLE b;\n",
    );
    config(&p, "[environments.staging]\nprotected = true\n");
    // `.env.staging` supplies the database for that environment.
    std::fs::write(
        p.root().join(".env.staging"),
        format!("DATABASE_URL={}\n", db.url()),
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::new(assert_cmd::cargo::cargo_bin("strata"))
            .current_dir(p.root())
            .env_remove("DATABASE_URL")
            .env("STRATA_ENV", "staging")
            .args(["--dir", "migrations"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    ok(&run(&["up", "--target", "001"]));
    let before = db.dump();
    for args in [
        &["down", "001"][..],
        &["rollback"],
        &["stamp", "002"],
        &["repair"],
        &["backup", "restore", "x"],
    ] {
        let o = run(args);
        assert_eq!(code(&o), 3, "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("--yes"), "{args:?}: {}", stderr(&o));
        assert_eq!(db.dump(), before, "{args:?} changed the database");
    }
    ok(&run(&["stamp", "002", "--yes"]));
    ok(&run(&["backup", "create"]));
    ok(&run(&["down", "001", "--yes"]));
    assert!(db.tables().is_empty());
}
