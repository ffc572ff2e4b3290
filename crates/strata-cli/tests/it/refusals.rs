//! Inputs that must be refused before anything runs (exit 2, file and line, the
//! database as it was), and the history bugs of issue 16, each pinned by a test named
//! for it.

use std::os::unix::fs::symlink;
use std::time::{Duration, Instant};

use crate::support::*;

fn refused(p: &Project, db: &TestDb, args: &[&str], needle: &str) -> String {
    let before = db.dump();
    let o = p.strata(db, args);
    let err = stderr(&o);
    assert_eq!(code(&o), 2, "{args:?}: {err}");
    assert!(
        err.contains(needle),
        "{args:?}: wanted `{needle}` in: {err}"
    );
    assert_eq!(db.dump(), before, "{args:?} changed the database");
    err
}

#[test]
fn utf8_bom_does_not_hide_the_header() {
    let db = TestDb::sqlite();
    let p = Project::new();
    p.file(
        "001_a.sql",
        "\u{feff}-- Depends: 999\nCREATE TABLE a (id INTEGER);\n",
    );
    refused(&p, &db, &["up"], "999");
    // Without the bad dependency the BOM is simply not part of the script.
    p.file(
        "001_a.sql",
        "\u{feff}-- Description: with a BOM\nCREATE TABLE a (id INTEGER);\n",
    );
    let o = p.strata(&db, &["up"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(db.tables(), ["a"]);
}

#[test]
fn fifo_and_device_named_like_migrations_are_refused_without_reading() {
    let db = TestDb::sqlite();
    let p = Project::new();
    p.file("001_a.sql", "CREATE TABLE a (id INTEGER);\n");
    let fifo = p.migrations().join("002_x.sql");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let started = Instant::now();
    let err = refused(&p, &db, &["status"], "not a regular file");
    assert!(err.contains("002_x.sql"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    std::fs::remove_file(&fifo).unwrap();
    symlink("/dev/zero", p.migrations().join("002_zero.sql")).unwrap();
    let err = refused(&p, &db, &["up"], "not a regular file");
    assert!(err.contains("002_zero.sql"), "{err}");
}

#[test]
fn nul_bytes_are_refused_with_their_line() {
    for db in engines("refuse_nul") {
        let p = Project::new();
        p.file(
            "001_a.sql",
            "CREATE TABLE a (x INTEGER);\n\0\nDROP TABLE b;\n",
        );
        let err = refused(&p, &db, &["up"], "NUL byte");
        assert!(err.contains("001_a.sql:2"), "{err}");
    }
}

#[test]
fn unterminated_comment_string_and_dollar_quote_are_refused() {
    for db in engines("refuse_unterminated") {
        let p = Project::new();
        p.file(
            "001_a.sql",
            "CREATE TABLE a (x INTEGER);\n/* forgot to close\nINSERT INTO a VALUES (1);\n",
        );
        let err = refused(&p, &db, &["up"], "block comment is never closed");
        assert!(err.contains("001_a.sql:2"), "{err}");
        p.file(
            "001_a.sql",
            "CREATE TABLE a (x INTEGER);\nINSERT INTO a VALUES ('open);\n",
        );
        refused(&p, &db, &["up"], "string is never closed");
        refused(&p, &db, &["up", "--dry-run"], "string is never closed");
    }
    let db = TestDb::sqlite();
    let p = Project::new();
    p.file(
        "001_f.sql",
        "CREATE TABLE f (x INTEGER);\nSELECT $body$ never closed;\n",
    );
    refused(&p, &db, &["up"], "dollar-quoted string is never closed");
}

#[test]
fn section_marker_inside_a_literal_or_comment_is_refused() {
    let db = TestDb::sqlite();
    let p = Project::new();
    p.file(
        "001_f.sql",
        "CREATE TABLE f (x TEXT);\nINSERT INTO f VALUES ('first line\n-- strata:down\nstill the string');\n",
    );
    let err = refused(&p, &db, &["status"], "section marker");
    assert!(err.contains("001_f.sql:3"), "{err}");
    p.file(
        "001_f.sql",
        "CREATE TABLE f (x TEXT);\n/*\n-- strata:down\n*/\n",
    );
    refused(&p, &db, &["up"], "section marker");
    // Outside literals it is a marker as always.
    p.file(
        "001_f.sql",
        "CREATE TABLE f (x TEXT);\n-- strata:down\nDROP TABLE f;\n",
    );
    assert_eq!(code(&p.strata(&db, &["up"])), 0);
    assert_eq!(db.tables(), ["f"]);
}

#[test]
fn goose_statement_begin_without_end_is_refused() {
    let db = TestDb::sqlite();
    let p = Project::new();
    p.file(
        "001_g.sql",
        "-- +goose Up\n-- +goose StatementBegin\nCREATE TABLE g (x INTEGER);\n-- +goose Down\nDROP TABLE g;\n",
    );
    let err = refused(&p, &db, &["up"], "StatementBegin` without a `StatementEnd");
    assert!(err.contains("001_g.sql:2"), "{err}");
}

#[test]
fn missing_dir_is_an_input_error_and_creates_no_database() {
    let p = Project::new();
    let url = format!("sqlite://{}", p.root().join("strata.db").display());
    let o = strata_in(p.root(), &url, &p.root().join("does-not-exist"), &["up"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
    assert!(!p.root().join("strata.db").exists());
}

#[test]
fn directory_without_any_migration_is_an_input_error_listing_what_it_skipped() {
    let db = TestDb::sqlite();
    let p = Project::new();
    p.file("create_users.sql", "CREATE TABLE users (id INTEGER);\n")
        .file("notes.txt", "todo\n");
    let err = refused(&p, &db, &["up"], "no file here is a migration");
    assert!(
        err.contains("create_users.sql") && err.contains("notes.txt"),
        "{err}"
    );
}

#[test]
fn db_variables_are_validated_by_name() {
    let p = Project::new();
    p.file("001_a.sql", "CREATE TABLE a (id INTEGER);\n");
    for (k, v) in [
        ("DB_HOST", "db.internal/x?y="),
        ("DB_PORT", "abc"),
        ("DB_NAME", "x/../postgres"),
    ] {
        let mut cmd = assert_cmd::Command::cargo_bin("strata").unwrap();
        let o = cmd
            .current_dir(p.root())
            .env_remove("DATABASE_URL")
            .env("DB_HOST", "127.0.0.1")
            .env("DB_NAME", "app")
            .env(k, v)
            .args(["--dir", "migrations", "status"])
            .output()
            .unwrap();
        assert_eq!(code(&o), 2, "{k}={v}: {}", stderr(&o));
        assert!(stderr(&o).contains(k), "{k}: {}", stderr(&o));
        assert!(
            !p.root().join("strata.db").exists(),
            "{k}: fell back to SQLite"
        );
    }
}

#[test]
fn password_in_a_query_parameter_is_never_printed() {
    let p = Project::new();
    p.file("001_a.sql", "CREATE TABLE a (id INTEGER);\n");
    let url = "postgres://nobody@127.0.0.1:1/none?password=hunter2&connect_timeout=1";
    for args in [&["status"][..], &["info", "--json"], &["health", "--json"]] {
        let o = strata_in(p.root(), url, &p.migrations(), args);
        let all = format!("{}{}", stdout(&o), stderr(&o));
        assert!(!all.contains("hunter2"), "{args:?}: {all}");
    }
}

#[test]
fn environment_names_are_protected_whatever_their_case() {
    let db = TestDb::sqlite();
    let p = Project::new();
    p.file(
        "001_a.sql",
        "CREATE TABLE a (id INTEGER);\n-- strata:down\nDROP TABLE a;\n",
    );
    assert_eq!(code(&p.strata(&db, &["up"])), 0);
    for env in ["PROD", "Prod", "Production"] {
        let o = p.strata(&db, &["--env", env, "rollback"]);
        assert_eq!(code(&o), 3, "--env {env}: {}", stderr(&o));
        assert_eq!(db.tables(), ["a"]);
    }
}

#[test]
fn transaction_control_inside_a_transactional_migration_is_refused() {
    for db in engines("refuse_begin_commit") {
        let p = Project::new();
        p.file("001_ok.sql", "CREATE TABLE ok (a INTEGER);\n").file(
            "002_tx.sql",
            "BEGIN;\nCREATE TABLE tx1 (a INTEGER);\nCOMMIT;\nCREATE TABLE tx2 (a INTEGER);\n",
        );
        let err = refused(&p, &db, &["up"], "controls its own transaction");
        assert!(
            err.contains("002_tx.sql:1") && err.contains("no-transaction"),
            "{err}"
        );
        assert!(db.tables().is_empty(), "nothing ran, 001 included");
        // As a no-transaction migration the same file is the author's to run.
        p.file(
            "002_tx.sql",
            "-- strata:no-transaction\nBEGIN;\nCREATE TABLE tx1 (a INTEGER);\nCOMMIT;\n",
        );
        let o = p.strata(&db, &["up"]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
    }
}

/// When two runs both believe they hold the lock, the database refuses the second
/// history row: the migration's transaction (its effects included) rolls back.
#[test]
fn second_apply_of_a_version_fails_in_the_database() {
    for db in engines("second_apply") {
        let p = Project::new();
        // 001 records 002 itself, as a run on another node would have done meanwhile.
        let history = strata_tables("{history}", db.is_postgres());
        p.file("001_a.sql", "CREATE TABLE a (id INTEGER);\n").file(
            "002_b.sql",
            &format!(
                "INSERT INTO a (id) VALUES (1);\nINSERT INTO {history} (version, name, checksum, applied_at) VALUES ('002', 'b', '{}', '2020-01-01T00:00:00Z');\n",
                "0".repeat(64)
            ),
        );
        if db.is_postgres() || db.is_mysql() {
            // DuckDB and SQLite need applied_at written; the servers fill it in.
            let text = std::fs::read_to_string(p.migrations().join("002_b.sql")).unwrap();
            p.file(
                "002_b.sql",
                &text
                    .replace(", applied_at) VALUES", ") VALUES")
                    .replace(", '2020-01-01T00:00:00Z')", ")"),
            );
        }
        let o = p.strata(&db, &["up"]);
        assert_eq!(code(&o), 3, "{}", stderr(&o));
        assert!(
            stderr(&o).contains("recorded by another run"),
            "{}",
            stderr(&o)
        );
        // 002's own insert rolled back with the refused history row.
        assert_eq!(db.query("SELECT count(*) FROM a"), ["0"]);
    }
}

/// PostgreSQL reports each completed statement of a simple query before an error
/// without a position: the failing statement is named without running the script again.
#[test]
fn postgres_failing_statement_is_found_without_running_twice() {
    let Some(db) = TestDb::postgres("pg_no_rerun") else {
        return;
    };
    db.exec("CREATE SEQUENCE s");
    let p = Project::new();
    p.file(
        "001_a.sql",
        "SELECT nextval('s');\nSELECT pg_sleep(0.5);\nSELECT 1/0;\n",
    );
    let started = Instant::now();
    let o = p.strata(&db, &["up"]);
    let took = started.elapsed();
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("statement 3") && stderr(&o).contains("001_a.sql:3"),
        "{}",
        stderr(&o)
    );
    // Sequences are not transactional: one call, one step.
    assert_eq!(db.query("SELECT last_value FROM s"), ["1"]);
    assert!(took < Duration::from_millis(4000), "{took:?}");
}

/// SQLite commits each migration on its own: a run killed in the middle keeps what
/// finished before, and the application could write between migrations.
#[test]
fn sqlite_keeps_finished_migrations_when_killed_mid_run() {
    let db = TestDb::sqlite();
    let p = Project::new();
    p.file("001_a.sql", "CREATE TABLE a (id INTEGER);\n")
        .file("002_b.sql", "CREATE TABLE b (id INTEGER);\n")
        // Slow: a few seconds of recursive counting.
        .file(
            "003_slow.sql",
            "CREATE TABLE slow AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 50000000) SELECT count(*) AS n FROM c;\n",
        );
    let bin = assert_cmd::cargo::cargo_bin("strata");
    let mut child = std::process::Command::new(bin)
        .current_dir(p.root())
        .args(["--database-url", &db.url(), "--dir", "migrations", "up"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until 002 is committed (a reader sees it while 003 runs), then kill.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = std::panic::catch_unwind(|| db.query("SELECT count(*) FROM {history}"));
        if matches!(seen.as_deref(), Ok([n]) if n.as_str() == "2") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "002 was never committed on its own"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        db.query("SELECT version FROM {history} ORDER BY id"),
        ["001", "002"]
    );
    assert_eq!(db.tables(), ["a", "b"]);
    let o = p.strata(&db, &["up"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(db.tables(), ["a", "b", "slow"]);
}

/// A killed rollback is visible (failed, rolling back), `health` says so, a plain
/// `rollback` refuses, and `rollback --resume` finishes it exactly.
#[test]
fn killed_rollback_leaves_a_visible_stopped_rollback_that_resumes() {
    let Some(db) = TestDb::mysql("killed_rollback") else {
        return;
    };
    let p = Project::new();
    p.file("001_t1.sql", "CREATE TABLE t1 (a INTEGER);\n-- strata:down\nDROP TABLE t1;\n")
        .file(
            "002_t2.sql",
            "CREATE TABLE t2 (a INTEGER);\n-- strata:down\nDROP TABLE t2;\nDO SLEEP(3);\nDROP TABLE t1;\n",
        );
    ok(&p.strata(&db, &["up"]));
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("strata"))
        .current_dir(p.root())
        .args([
            "--database-url",
            &db.url(),
            "--dir",
            "migrations",
            "down",
            "002",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(db.tables(), ["t1"], "t2 dropped, t1 not yet");
    assert_eq!(
        db.query("SELECT success, statements_done, in_flight, direction FROM {history} WHERE version = '002'"),
        ["0|1|2|down"]
    );
    let s = json(&p.strata(&db, &["status", "--json"]));
    assert_eq!(s["migrations"][1]["state"], "failed");
    assert_eq!(code(&p.strata(&db, &["health"])), 2);
    let o = p.strata(&db, &["down", "002"]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(stderr(&o).contains("rollback --resume"), "{}", stderr(&o));
    let o = p.strata(&db, &["down", "002", "--resume"]);
    assert_eq!(code(&o), 3, "the sleep is in doubt: {}", stderr(&o));
    assert!(stderr(&o).contains("--in-doubt"), "{}", stderr(&o));
    ok(&p.strata(&db, &["down", "002", "--resume", "--in-doubt", "rerun"]));
    assert!(db.tables().is_empty());
    assert_eq!(db.query("SELECT version FROM {history}"), ["001"]);
}

/// `up --resume` skips the statements that completed; when the file's first statements
/// changed since, it refuses, naming the first changed one, instead of recording
/// statements that never ran.
#[test]
fn resume_refuses_when_completed_statements_changed() {
    let Some(db) = TestDb::mysql("resume_changed") else {
        return;
    };
    let p = Project::new();
    p.file(
        "001_a.sql",
        "CREATE TABLE a1 (x INTEGER);\nCREATE TABLE a2 (x INTEGER);\nCRATE TABLE a3 (x INTEGER);\nCREATE TABLE a4 (x INTEGER);\n",
    );
    assert_eq!(code(&p.strata(&db, &["up"])), 1);
    assert_eq!(
        db.query("SELECT success, statements_done, in_flight FROM {history}"),
        ["0|2|NULL"],
        "a refused statement is not in doubt"
    );
    p.file(
        "001_a.sql",
        "CREATE TABLE b1 (x INTEGER);\nCREATE TABLE a2 (x INTEGER);\nCREATE TABLE a3 (x INTEGER);\nCREATE TABLE a4 (x INTEGER);\n",
    );
    let o = p.strata(&db, &["up", "--resume"]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("statement 1 of migration 001_a changed"),
        "{}",
        stderr(&o)
    );
    let v = p.strata(&db, &["validate"]);
    assert_ne!(code(&v), 0, "validate must not call this consistent");
    // Only the statement that failed was fixed: the resume runs it and the rest.
    p.file(
        "001_a.sql",
        "CREATE TABLE a1 (x INTEGER);\nCREATE TABLE a2 (x INTEGER);\nCREATE TABLE a3 (x INTEGER);\nCREATE TABLE a4 (x INTEGER);\n",
    );
    ok(&p.strata(&db, &["up", "--resume"]));
    assert_eq!(db.tables(), ["a1", "a2", "a3", "a4"]);
}

/// The protected-environment gate reads the history without the lock: a live run's
/// in-progress row is not a failure, so a second run waits and then finds nothing to do.
#[test]
fn waiting_run_does_not_mistake_a_live_run_for_a_failed_one() {
    let Some(db) = TestDb::postgres("waiting_run") else {
        return;
    };
    let p = Project::new();
    p.file(
        "001_slow.sql",
        "-- strata:no-transaction\nCREATE TABLE s (a INTEGER);\nSELECT pg_sleep(2);\n",
    );
    let first = std::process::Command::new(assert_cmd::cargo::cargo_bin("strata"))
        .current_dir(p.root())
        .args(["--database-url", &db.url(), "--dir", "migrations", "up"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    // The first run's row says `success=false` now.
    assert_eq!(
        db.query("SELECT count(*) FROM {history} WHERE NOT success"),
        ["1"]
    );
    let second = p.strata(&db, &["--env", "prod", "up", "--yes"]);
    let first = first.wait_with_output().unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert_eq!(code(&second), 0, "{}", stderr(&second));
    assert_eq!(db.query("SELECT count(*) FROM {history}"), ["1"]);
}

/// A dropped connection (the backend terminated mid-run) is retried: every migration,
/// transactional or not, is applied exactly once.
#[test]
fn terminated_backend_mid_run_is_retried_and_applies_each_migration_once() {
    terminated_backend_mid_run("");
}

/// With the lease lock the retry takes back its own lease at once (one holder name per
/// driver, kept across reconnects) instead of waiting 30 s for it to expire.
#[test]
fn retry_after_a_dropped_connection_takes_back_its_own_lease() {
    terminated_backend_mid_run("lock = \"lease\"\nlease_seconds = 30\nlock_timeout_seconds = 5\n");
}

fn terminated_backend_mid_run(settings: &str) {
    let Some(db) = TestDb::postgres("terminated_backend") else {
        return;
    };
    db.exec("CREATE TABLE ledger (k TEXT)");
    let p = Project::new();
    for k in 1..=8 {
        let header = if k % 2 == 0 {
            "-- strata:no-transaction\n"
        } else {
            ""
        };
        p.file(
            &format!("{k:03}_m{k}.sql"),
            &format!("{header}CREATE TABLE m{k} (a INTEGER);\nINSERT INTO ledger VALUES ('{k}');\nSELECT pg_sleep(0.15);\n"),
        );
    }
    std::fs::write(
        p.root().join("strata.toml"),
        format!("[settings]\nretry_attempts = 5\nretry_delay_seconds = 1\n{settings}"),
    )
    .unwrap();
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("strata"))
        .current_dir(p.root())
        .args(["--database-url", &db.url(), "--dir", "migrations", "up"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut terminated = 0;
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(400));
        let n = db.query("SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()) t");
        terminated += n[0].parse::<usize>().unwrap();
    }
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(terminated > 0, "no backend was terminated");
    assert_eq!(
        db.query("SELECT count(*) FROM {history} WHERE success"),
        ["8"]
    );
    assert_eq!(
        db.query("SELECT count(*), count(DISTINCT k) FROM ledger"),
        ["8|8"]
    );
    eprintln!("terminated {terminated} backend(s); the run finished with each migration once");
}

/// `lint` reports what `up` would refuse: transaction control inside a transactional
/// migration, with its line.
#[test]
fn lint_reports_transaction_control_in_a_transactional_migration() {
    let p = Project::new();
    p.file(
        "001_tx.sql",
        "CREATE TABLE a (id INTEGER);\nBEGIN;\nINSERT INTO a VALUES (1);\nCOMMIT;\n",
    );
    let o = strata_in(p.root(), "sqlite://lint.db", &p.migrations(), &["lint"]);
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    let out = stdout(&o);
    assert!(
        out.contains("transaction-control") && out.contains("001_tx.sql:2"),
        "{out}"
    );
}
