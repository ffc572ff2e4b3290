//! Failing migrations leave nothing of themselves behind; errors name migration,
//! statement, file and line; drift and failed state are refused.

use crate::support::*;

#[test]
fn failing_migration_leaves_nothing_and_names_statement_and_line() {
    for db in engines("failing_migration") {
        let p = Project::new();
        p.file("001_ok.sql", "CREATE TABLE ok_table (id INTEGER);\n")
            .file("002_bad.sql", "-- Description: fails at its second statement\nCREATE TABLE half (id INTEGER);\n\nINSERT INTO half (id) VALUES (1);\nCRATE TABLE typo (id INTEGER);\n")
            .file("003_never.sql", "CREATE TABLE never (id INTEGER);\n");
        let o = p.strata(&db, &["up"]);
        assert_eq!(code(&o), 1, "{}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains("migration 002_bad failed"), "{err}");
        assert!(err.contains("statement 3"), "{err}");
        assert!(err.contains("002_bad.sql:5"), "{err}");
        assert!(err.contains("CRATE"), "{err}");
        // The failure is audited although its transaction rolled back.
        let audit = db.query("SELECT operation || ':' || record_id FROM {audit} ORDER BY id");
        assert_eq!(audit, ["apply:001", "failure:002"]);
        if db.is_mysql() {
            mysql_failure_is_recorded_and_resumed(&db, &p);
            continue;
        }
        // 001 stays applied; nothing of 002 remains; 003 never ran.
        assert_eq!(db.tables(), ["ok_table"]);
        assert_eq!(db.query("SELECT version FROM {history}"), ["001"]);
        // JSON error shape.
        let j = json(&p.strata(&db, &["up", "--json"]));
        assert_eq!(j["error"]["kind"], "migration_failed");
        assert_eq!(j["error"]["line"], 5);
        assert!(j["error"]["file"]
            .as_str()
            .unwrap()
            .ends_with("002_bad.sql"));
    }
}

/// MySQL commits DDL as it goes, so 002's first two statements stay: the history says
/// so (`failed`, 2 statements done), further runs are refused, and after the file is
/// fixed `up --resume` runs statement 3 on and then 003.
fn mysql_failure_is_recorded_and_resumed(db: &TestDb, p: &Project) {
    assert_eq!(db.tables(), ["half", "ok_table"]);
    assert_eq!(
        db.query("SELECT version, success, statements_done FROM {history} ORDER BY id"),
        ["001|1|1", "002|0|2"]
    );
    let s = json(&p.strata(db, &["status", "--json"]));
    assert_eq!(s["migrations"][1]["state"], "failed");
    let o = p.strata(db, &["up"]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(stderr(&o).contains("2 statements done"), "{}", stderr(&o));
    p.file("002_bad.sql", "-- Description: fixed\nCREATE TABLE half (id INTEGER);\n\nINSERT INTO half (id) VALUES (1);\nCREATE TABLE typo (id INTEGER);\n");
    let o = p.strata(db, &["up", "--resume"]);
    assert!(ok(&o).contains("resuming at statement 3"), "{}", stdout(&o));
    assert_eq!(db.tables(), ["half", "never", "ok_table", "typo"]);
    // Statement 1 and 2 ran once: one row in `half`.
    assert_eq!(db.query("SELECT count(*) FROM half"), ["1"]);
    assert_eq!(
        db.query("SELECT version, success, statements_done FROM {history} ORDER BY id"),
        ["001|1|1", "002|1|3", "003|1|1"]
    );
}

#[test]
fn runtime_error_without_position_is_located_by_replay() {
    let Some(db) = TestDb::postgres("runtime_error") else {
        return;
    };
    let p = Project::new();
    p.file("001_data.sql", "CREATE TABLE t (id INTEGER PRIMARY KEY);\nINSERT INTO t VALUES (1);\nINSERT INTO t VALUES (2);\nINSERT INTO t VALUES (1);\nINSERT INTO t VALUES (3);\n");
    let o = p.strata(&db, &["up"]);
    assert_eq!(code(&o), 1);
    let err = stderr(&o);
    assert!(
        err.contains("statement 4") && err.contains("001_data.sql:4"),
        "{err}"
    );
    assert!(
        err.contains("duplicate key") && err.contains("23505"),
        "{err}"
    );
    assert!(db.tables().is_empty());
}

#[test]
fn non_transactional_failure_records_progress_and_resumes() {
    for db in engines("non_transactional") {
        let p = Project::new();
        let bad = "-- strata:no-transaction\nCREATE TABLE nt1 (id INTEGER);\nCREATE TABLE nt2 (id INTEGER);\nINSERT INTO missing_table VALUES (1);\nCREATE TABLE nt3 (id INTEGER);\n";
        p.file("001_nt.sql", bad)
            .file("002_after.sql", "CREATE TABLE after_nt (id INTEGER);\n");
        let o = p.strata(&db, &["up"]);
        assert_eq!(code(&o), 1, "{}", stderr(&o));
        assert!(stderr(&o).contains("statement 3"), "{}", stderr(&o));
        let row = db.query("SELECT success, statements_done FROM {history} WHERE version = '001'");
        let falsy = format!("{}|2", db.bool_text(false));
        assert_eq!(row, [falsy]);
        assert_eq!(db.tables(), ["nt1", "nt2"]);
        let s = json(&p.strata(&db, &["status", "--json"]));
        assert_eq!(s["migrations"][0]["state"], "failed");
        // Blocked until resumed or repaired.
        let o = p.strata(&db, &["up"]);
        assert_eq!(code(&o), 3, "{}", stderr(&o));
        assert!(stderr(&o).contains("--resume"), "{}", stderr(&o));
        // Fix the file, resume from statement 3.
        p.file("001_nt.sql", &bad.replace("missing_table", "nt1"));
        let o = p.strata(&db, &["up", "--resume"]);
        ok(&o);
        assert!(
            stdout(&o).contains("resuming at statement 3"),
            "{}",
            stdout(&o)
        );
        assert_eq!(db.tables(), ["after_nt", "nt1", "nt2", "nt3"]);
        let row = db.query("SELECT success, statements_done FROM {history} WHERE version = '001'");
        assert_eq!(row, [format!("{}|4", db.bool_text(true))]);
        assert_eq!(db.query("SELECT count(*) FROM nt1"), ["1"]);
    }
}

#[test]
fn concurrently_runs_outside_a_transaction_on_postgres() {
    let Some(db) = TestDb::postgres("concurrently") else {
        return;
    };
    let p = Project::new();
    p.file("001_t.sql", "CREATE TABLE big (id INTEGER, v TEXT);\n")
        .file("002_idx.sql", "-- strata:no-transaction\nCREATE INDEX CONCURRENTLY big_v ON big (v);\n-- strata:down\nDROP INDEX CONCURRENTLY big_v;\n");
    ok(&p.strata(&db, &["up"]));
    assert_eq!(
        db.query("SELECT indexname FROM pg_indexes WHERE tablename = 'big'"),
        ["big_v"]
    );
    ok(&p.strata(&db, &["rollback"]));
    assert!(db
        .query("SELECT indexname FROM pg_indexes WHERE tablename = 'big'")
        .is_empty());
}

#[test]
fn drift_missing_and_out_of_order_are_refused() {
    for db in engines("drift") {
        let p = Project::new();
        p.file("001_a.sql", "CREATE TABLE a (id INTEGER);\n")
            .file("003_c.sql", "CREATE TABLE c (id INTEGER);\n");
        ok(&p.strata(&db, &["up"]));
        // A branch merged an older migration.
        p.file("002_b.sql", "CREATE TABLE b (id INTEGER);\n");
        let o = p.strata(&db, &["up"]);
        assert_eq!(code(&o), 3, "{}", stderr(&o));
        assert!(stderr(&o).contains("out of order"), "{}", stderr(&o));
        assert_eq!(code(&p.strata(&db, &["validate"])), 3);
        ok(&p.strata(&db, &["up", "--allow-out-of-order"]));
        assert_eq!(db.tables(), ["a", "b", "c"]);
        // An applied file edited: `modified`, refused. CRLF alone is not an edit.
        p.file("001_a.sql", "CREATE TABLE a (id INTEGER);\r\n");
        assert!(ok(&p.strata(&db, &["up"])).contains("Nothing to do"));
        p.file("001_a.sql", "CREATE TABLE a (id BIGINT);\n");
        let s = json(&p.strata(&db, &["status", "--json"]));
        assert_eq!(s["migrations"][0]["state"], "modified");
        let o = p.strata(&db, &["up"]);
        assert_eq!(code(&o), 3);
        assert!(
            stderr(&o).contains("was applied with checksum"),
            "{}",
            stderr(&o)
        );
        let v = p.strata(&db, &["validate", "--json"]);
        assert_eq!(code(&v), 3);
        assert_eq!(json(&v)["findings"][0]["kind"], "modified");
        // An applied file deleted: `missing`.
        p.file("001_a.sql", "CREATE TABLE a (id INTEGER);\n");
        p.remove("003_c.sql");
        let s = json(&p.strata(&db, &["status", "--json"]));
        assert_eq!(
            s["migrations"].as_array().unwrap().last().unwrap()["state"],
            "missing"
        );
        assert_eq!(code(&p.strata(&db, &["up"])), 3);
    }
}

#[test]
fn sum_file_catches_edits_and_reordering() {
    let db = TestDb::sqlite();
    let p = Project::new();
    p.file("001_a.sql", "CREATE TABLE a (id INTEGER);\n")
        .file("002_b.sql", "CREATE TABLE b (id INTEGER);\n");
    ok(&p.strata(&db, &["sum"]));
    ok(&p.strata(&db, &["up", "--target", "001"]));
    // An edit to a migration this database has not applied: recorded, then applied.
    p.file("002_b.sql", "CREATE TABLE b (id INTEGER, x INTEGER);\n");
    let o = p.strata(&db, &["up"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("strata.sum updated: 002_b"),
        "{}",
        stderr(&o)
    );
    assert_eq!(db.tables(), ["a", "b"]);
    // An edit to an applied one: refused.
    p.file("001_a.sql", "CREATE TABLE a (id INTEGER, y INTEGER);\n");
    let o = p.strata(&db, &["up"]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("migration 001_a changed since strata.sum was written"),
        "{}",
        stderr(&o)
    );
    // Reordered (a merge): refused too.
    p.file("001_a.sql", "CREATE TABLE a (id INTEGER);\n");
    p.file("000_c.sql", "CREATE TABLE c (id INTEGER);\n");
    let o = p.strata(&db, &["up"]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("inserted, removed or reordered"),
        "{}",
        stderr(&o)
    );
    assert_eq!(db.tables(), ["a", "b"]);
}

#[test]
fn lock_timeout_names_the_holder_and_exits_3() {
    let Some(db) = TestDb::postgres("lock_timeout") else {
        return;
    };
    let p = Project::new();
    p.file("001_a.sql", "CREATE TABLE a (id INTEGER);\n");
    std::fs::write(
        p.root().join("strata.toml"),
        "[settings]\nlock_timeout_seconds = 1\n",
    )
    .unwrap();
    // Learn the key strata uses by holding the lock from a strata-shaped session: run
    // strata once, then hold every advisory lock key it took from another connection.
    ok(&p.strata(&db, &["up"]));
    p.file("002_b.sql", "CREATE TABLE b (id INTEGER);\n");
    let url = db.url();
    let holder = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            // The key: fnv1a("strata:public.schema_migrations"), as strata computes it.
            let mut h: u64 = 0xcbf29ce484222325;
            for b in "strata:public.schema_migrations".bytes() {
                h ^= b as u64;
                h = h.wrapping_mul(0x100000001b3);
            }
            c.execute("SELECT pg_advisory_lock($1)", &[&(h as i64)])
                .await
                .unwrap();
            tokio::time::sleep(std::time::Duration::from_secs(4)).await;
        })
    });
    std::thread::sleep(std::time::Duration::from_millis(700));
    let started = std::time::Instant::now();
    let o = p.strata(&db, &["up"]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    assert!(stderr(&o).contains("held by pid"), "{}", stderr(&o));
    assert_eq!(db.tables(), ["a"]);
    holder.join().unwrap();
    ok(&p.strata(&db, &["up"]));
    assert_eq!(db.tables(), ["a", "b"]);
}

#[test]
fn protected_environment_refuses_without_yes() {
    let db = TestDb::sqlite();
    let p = Project::new();
    p.file(
        "001_a.sql",
        "CREATE TABLE a (id INTEGER);\n-- strata:down\nDROP TABLE a;\n",
    );
    ok(&p.strata(&db, &["up"]));
    let o = p.strata(&db, &["--env", "prod", "rollback"]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(stderr(&o).contains("--yes"));
    assert_eq!(db.tables(), ["a"]);
    // Confirmed, but a protected rollback also wants a recent backup.
    let o = p.strata(&db, &["--env", "prod", "rollback", "--yes"]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("strata backup create"),
        "{}",
        stderr(&o)
    );
    assert_eq!(db.tables(), ["a"]);
    ok(&p.strata(&db, &["--env", "prod", "backup", "create"]));
    ok(&p.strata(&db, &["--env", "prod", "rollback", "--yes"]));
    assert!(db.tables().is_empty());
}
