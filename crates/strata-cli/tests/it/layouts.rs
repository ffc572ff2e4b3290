//! Other tools' migration layouts, read as those tools read them.

use crate::support::*;

/// golang-migrate (and sqlx) pair an up and a down by version, not by name: one real
/// project has six pairs like `30_add_magic_metadata.up.sql` with
/// `30_drop_magic_metadata.down.sql`. Such a tree applies and rolls back; a down with
/// no up of its version is an error naming that file, the same file on every run.
#[test]
fn golang_migrate_pairs_up_and_down_by_version() {
    let db = TestDb::sqlite();
    let p = Project::new();
    p.file(
        "1_create_users.up.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY);\n",
    )
    .file("1_create_users.down.sql", "DROP TABLE users;\n")
    .file(
        "30_add_magic_metadata.up.sql",
        "CREATE TABLE magic (id INTEGER);\n",
    )
    .file("30_drop_magic_metadata.down.sql", "DROP TABLE magic;\n")
    .file("31_add_tags.up.sql", "CREATE TABLE tags (id INTEGER);\n")
    .file("31_remove_tags.down.sql", "DROP TABLE tags;\n");
    ok(&p.strata(&db, &["up"]));
    assert_eq!(db.tables(), ["magic", "tags", "users"]);
    let list = json(&p.strata(&db, &["--json", "list"]));
    let with_rollback: Vec<&str> = list["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["has_rollback"] == true)
        .map(|m| m["version"].as_str().unwrap())
        .collect();
    assert_eq!(with_rollback, ["1", "30", "31"], "{list}");
    ok(&p.strata(&db, &["rollback", "1"]));
    assert_eq!(db.tables(), ["users"], "both rollbacks ran");

    p.file("40_orphan.down.sql", "DROP TABLE nothing;\n")
        .file("50_zzz_orphan.down.sql", "DROP TABLE nothing;\n");
    let errors: Vec<String> = (0..4)
        .map(|_| {
            let out = p.strata(&db, &["status"]);
            assert_eq!(code(&out), 2, "{}", stderr(&out));
            stderr(&out)
        })
        .collect();
    assert!(errors[0].contains("40_orphan.down.sql"), "{}", errors[0]);
    assert!(errors[0].contains("version 40"), "{}", errors[0]);
    assert!(
        errors.iter().all(|e| e == &errors[0]),
        "the same error every run: {errors:?}"
    );
}

/// Flyway runs a script holding `CREATE/DROP INDEX CONCURRENTLY` outside a transaction
/// by itself; golang-migrate never wraps a file. strata detects the statements that
/// cannot run in a transaction and runs such a migration in its tracked
/// non-transactional mode, saying so in `list`, the dry run and `lint`; an explicit
/// `-- strata:transaction` still wins (and then fails as the server says).
#[test]
fn statements_that_cannot_run_in_a_transaction_are_detected() {
    let Some(db) = TestDb::postgres("outside_tx") else {
        return;
    };
    let p = Project::new();
    p.file(
        "V1__items.sql",
        "CREATE TABLE items (id int PRIMARY KEY, a int);\nCREATE INDEX items_a ON items (a);\n",
    )
    .file(
        "V2__swap_index.sql",
        "-- a real tree's comment\nDROP INDEX CONCURRENTLY items_a;\nCREATE INDEX CONCURRENTLY items_a2 ON items (a);\n",
    )
    .file("V3__vacuum.sql", "VACUUM items;\n");
    let list = ok(&p.strata(&db, &["list"]));
    assert!(
        list.contains("2: outside a transaction (DROP INDEX CONCURRENTLY at line 2"),
        "{list}"
    );
    assert!(
        list.contains("3: outside a transaction (VACUUM at line 1"),
        "{list}"
    );
    let dry = ok(&p.strata(&db, &["up", "--dry-run"]));
    assert!(
        dry.contains("(no transaction: DROP INDEX CONCURRENTLY at line 2 cannot run in one)"),
        "{dry}"
    );
    let lint = json(&p.strata(&db, &["--json", "lint"]));
    let rules: Vec<&str> = lint["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "outside-transaction")
        .map(|f| f["migration"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["V2__swap_index", "V3__vacuum"], "{lint}");
    ok(&p.strata(&db, &["up"]));
    assert_eq!(
        db.query("SELECT indexname FROM pg_indexes WHERE tablename = 'items' ORDER BY 1"),
        ["items_a2", "items_pkey"]
    );

    // Forced into a transaction: the server refuses, nothing is recorded.
    p.file(
        "V4__forced.sql",
        "-- strata:transaction\nCREATE INDEX CONCURRENTLY items_a3 ON items (a);\n",
    );
    let forced = p.strata(&db, &["up"]);
    assert_ne!(code(&forced), 0);
    assert!(
        stderr(&forced).contains("cannot run inside a transaction block"),
        "{}",
        stderr(&forced)
    );
    assert_eq!(
        db.query("SELECT count(*) FROM {history} WHERE version = '4'"),
        ["0"]
    );
}
