//! Many `strata up` processes at once: each migration applied exactly once, all exit 0.

use crate::support::*;

fn race(db: &TestDb, processes: usize, migrations: usize, config: &str) {
    let p = Project::new();
    std::fs::write(p.root().join("strata.toml"), config).unwrap();
    for i in 1..=migrations {
        // Plain CREATE TABLE: a second apply would fail loudly.
        p.file(
            &format!("{i:03}_t{i}.sql"),
            &format!("CREATE TABLE t{i} (id INTEGER);\nINSERT INTO t{i} VALUES ({i});\n"),
        );
    }
    up_in_parallel(p.root(), &db.url(), processes);
    assert_eq!(
        db.query("SELECT count(*) FROM {history}"),
        [migrations.to_string()]
    );
    assert_eq!(
        db.query("SELECT count(*) FROM {audit} WHERE operation = 'apply'"),
        [migrations.to_string()]
    );
    assert_eq!(db.tables().len(), migrations);
}

#[test]
fn sixteen_processes_apply_each_migration_once_on_postgres() {
    let Some(db) = TestDb::postgres("concurrency") else {
        return;
    };
    race(&db, 16, 30, "");
}

#[test]
fn sixteen_processes_with_a_lease_lock_apply_each_migration_once() {
    let Some(db) = TestDb::postgres("concurrency_lease") else {
        return;
    };
    race(
        &db,
        16,
        30,
        "[settings]\nlock = \"lease\"\nlease_seconds = 5\n",
    );
    // Released on the way out: no lease row is left behind.
    assert_eq!(db.query("SELECT count(*) FROM {lease}"), ["0"]);
}

#[test]
fn sixteen_processes_apply_each_migration_once_on_mysql() {
    let Some(db) = TestDb::mysql("concurrency") else {
        return;
    };
    race(&db, 16, 30, "");
}

#[test]
fn sixteen_processes_with_a_lease_lock_on_mysql() {
    let Some(db) = TestDb::mysql("concurrency_lease") else {
        return;
    };
    race(
        &db,
        16,
        30,
        "[settings]\nlock = \"lease\"\nlease_seconds = 5\n",
    );
    assert_eq!(db.query("SELECT count(*) FROM {lease}"), ["0"]);
}

#[test]
fn eight_processes_apply_each_migration_once_on_duckdb() {
    let Some(db) = TestDb::duckdb("concurrency") else {
        return;
    };
    race(&db, 8, 30, "");
}

#[test]
fn sixteen_processes_apply_each_migration_once_on_sqlite() {
    race(&TestDb::sqlite(), 16, 30, "");
}
