//! The real corpora in `../shared/corpora`, applied unchanged.

use std::path::Path;

use serde_json::Value;

use crate::support::*;

/// A dump without strata's own tables, to compare user schemas.
fn without_strata_tables(dump: &str) -> String {
    dump.lines()
        .filter(|l| !["strata_", "strata."].iter().any(|t| l.starts_with(t)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn up_all(db: &TestDb, dir: &Path, expected: usize) {
    let o = strata_in(dir.parent().unwrap(), &db.url(), dir, &["up", "--json"]);
    ok(&o);
    assert_eq!(
        json(&o)["applied"].as_array().unwrap().len(),
        expected,
        "{}",
        dir.display()
    );
    let s = json(&strata_in(
        dir.parent().unwrap(),
        &db.url(),
        dir,
        &["status", "--json"],
    ));
    let states: Vec<_> = s["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["state"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(states.len(), expected);
    assert!(states.iter().all(|s| s == "applied"), "{states:?}");
}

#[test]
fn lemmy_0_19_applies_on_postgres_and_broken_downs_are_named() {
    let (Some(c), Some(db)) = (corpora("lemmy"), TestDb::postgres("lemmy")) else {
        return;
    };
    let dir = c.join("lemmy-0.19/migrations");
    up_all(&db, &dir, 233);
    // Its down scripts are known to be broken upstream: strata names which and where.
    let o = strata_in(
        dir.parent().unwrap(),
        &db.url(),
        &dir,
        &["rollback", "base"],
    );
    assert_eq!(code(&o), 1);
    let err = stderr(&o);
    assert!(
        err.contains("migration 2023-07-05-000058_person-admin failed"),
        "{err}"
    );
    assert!(
        err.contains("statement 1 at") && err.contains("person-admin/down.sql:1"),
        "{err}"
    );
    assert!(err.contains("does not exist"), "{err}");
    // Everything rolled back before it stayed rolled back; it and older stay applied.
    let s = json(&strata_in(
        dir.parent().unwrap(),
        &db.url(),
        &dir,
        &["status", "--json"],
    ));
    let rows = s["migrations"].as_array().unwrap();
    let failed_at = rows
        .iter()
        .position(|m| m["version"] == "2023-07-05-000058")
        .unwrap();
    assert!(rows[..=failed_at].iter().all(|m| m["state"] == "applied"));
    assert!(rows[failed_at + 1..]
        .iter()
        .all(|m| m["state"] == "pending"));
}

#[test]
fn vaultwarden_postgresql_and_sqlite_apply() {
    let Some(c) = corpora("vaultwarden") else {
        return;
    };
    let sqlite = TestDb::sqlite();
    up_all(&sqlite, &c.join("vaultwarden/migrations/sqlite"), 56);
    if let Some(pg) = TestDb::postgres("vaultwarden") {
        up_all(&pg, &c.join("vaultwarden/migrations/postgresql"), 46);
    }
}

#[test]
fn vaultwarden_mysql_applies_with_init_sql() {
    let (Some(c), Some(db)) = (corpora("vaultwarden"), TestDb::mysql("vaultwarden_mysql")) else {
        return;
    };
    let dir = c.join("vaultwarden/migrations/mysql");
    // Its tree declares foreign keys to tables created later, which MariaDB 10.5+
    // enforces: without init_sql the first such migration fails, named, and stays failed.
    let o = strata_in(dir.parent().unwrap(), &db.url(), &dir, &["up"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("Foreign key constraint"),
        "{}",
        stderr(&o)
    );
    let failed = db.query("SELECT count(*) FROM {history} WHERE success = 0");
    assert_eq!(failed, ["1"]);
    // With `init_sql` (as Flyway's initSql) it applies unchanged, from a fresh database.
    drop(db);
    let db = TestDb::mysql("vaultwarden_mysql").unwrap();
    let cfg = tempfile::tempdir().unwrap();
    std::fs::write(
        cfg.path().join("strata.toml"),
        "[settings]\ninit_sql = \"SET foreign_key_checks=0\"\n",
    )
    .unwrap();
    let o = strata_in(cfg.path(), &db.url(), &dir, &["up", "--json"]);
    assert_eq!(
        json(&o)["applied"].as_array().unwrap().len(),
        55,
        "{}",
        stderr(&o)
    );
    assert!(db.tables().contains(&"users_organizations".to_string()));
}

#[test]
fn authelia_mysql_applies_with_its_procedures() {
    let (Some(c), Some(db)) = (corpora("authelia"), TestDb::mysql("authelia_mysql")) else {
        return;
    };
    let dir = c.join("authelia/internal/storage/migrations/mysql");
    up_all(&db, &dir, 26);
    // V0007 creates procedures with `BEGIN … END;` bodies and no DELIMITER lines, and
    // calls them: the splitter kept each body whole.
    let routines = db.query(
        "SELECT count(*) FROM information_schema.routines WHERE routine_schema = DATABASE()",
    );
    assert_eq!(routines, ["2"]);
    assert!(
        db.tables().contains(&"webauthn_credentials".to_string()),
        "{:?}",
        db.tables()
    );
}

#[test]
fn authelia_postgres_round_trips_to_an_identical_schema() {
    let (Some(c), Some(db)) = (corpora("authelia"), TestDb::postgres("authelia")) else {
        return;
    };
    let dir = c.join("authelia/internal/storage/migrations/postgres");
    let empty = db.dump();
    up_all(&db, &dir, 26);
    let first = db.dump();
    ok(&strata_in(
        dir.parent().unwrap(),
        &db.url(),
        &dir,
        &["rollback", "--to", "base"],
    ));
    assert!(db.tables().is_empty(), "{:?}", db.tables());
    let after_down = db.dump();
    // Only strata's own tables (and their data) differ from the empty database.
    assert_eq!(
        without_strata_tables(&after_down),
        without_strata_tables(&empty)
    );
    ok(&strata_in(dir.parent().unwrap(), &db.url(), &dir, &["up"]));
    assert_eq!(
        without_strata_tables(&db.dump()),
        without_strata_tables(&first)
    );
}

#[test]
fn atuin_applies_on_postgres_and_sqlite() {
    let Some(c) = corpora("atuin") else { return };
    if let Some(pg) = TestDb::postgres("atuin") {
        up_all(
            &pg,
            &c.join("atuin/crates/atuin-server-postgres/migrations"),
            20,
        );
    }
    up_all(
        &TestDb::sqlite(),
        &c.join("atuin/crates/atuin-server-sqlite/migrations"),
        7,
    );
    up_all(
        &TestDb::sqlite(),
        &c.join("atuin/crates/atuin-client/migrations"),
        12,
    );
    let scripts = TestDb::sqlite();
    let dir = c.join("atuin/crates/atuin-scripts/migrations");
    up_all(&scripts, &dir, 2);
    // Its newest down script is MySQL syntax (`drop index` in ALTER TABLE), an upstream
    // bug SQLite rejects: strata names it and rolls back nothing of it.
    let o = strata_in(
        dir.parent().unwrap(),
        &scripts.url(),
        &dir,
        &["rollback", "base"],
    );
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("20250402170430_unique_names.down.sql:2"),
        "{}",
        stderr(&o)
    );
    assert_eq!(scripts.query("SELECT count(*) FROM {history}"), ["2"]);
}

/// river's SQL is a template: a copy with the `/* TEMPLATE: schema */` markers removed.
fn river_copy(src: &Path) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("migrations");
    std::fs::create_dir(&out).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let text = std::fs::read_to_string(e.path())
            .unwrap()
            .replace("/* TEMPLATE: schema */", "");
        std::fs::write(out.join(e.file_name()), text).unwrap();
    }
    tmp
}

#[test]
fn river_round_trips_on_postgres() {
    let (Some(c), Some(db)) = (corpora("river"), TestDb::postgres("river")) else {
        return;
    };
    for (tree, n) in [
        ("river/riverdriver/riverpgxv5/migration/main", 7),
        ("river/rivermigrate/migration/commit_required", 3),
    ] {
        let copy = river_copy(&c.join(tree));
        let dir = copy.path().join("migrations");
        up_all(&db, &dir, n);
        let first = db.dump();
        ok(&strata_in(
            copy.path(),
            &db.url(),
            &dir,
            &["rollback", "base"],
        ));
        assert!(db.tables().is_empty(), "{tree}: {:?}", db.tables());
        ok(&strata_in(copy.path(), &db.url(), &dir, &["up"]));
        assert_eq!(
            without_strata_tables(&db.dump()),
            without_strata_tables(&first),
            "{tree}"
        );
        ok(&strata_in(
            copy.path(),
            &db.url(),
            &dir,
            &["rollback", "base"],
        ));
    }
}

/// `verify --roundtrip` on the corpora: authelia and river pass; vaultwarden's and
/// lemmy-0.19's known-broken rollbacks are named with their statement.
#[test]
fn verify_roundtrip_on_the_corpora() {
    let (Some(c), Some(db)) = (corpora("verify"), TestDb::postgres("verify_corpora")) else {
        return;
    };
    let verify = |dir: &Path| {
        let o = strata_in(
            dir.parent().unwrap(),
            &db.url(),
            dir,
            &["verify", "--roundtrip", "--json"],
        );
        assert!(
            matches!(code(&o), 0 | 1),
            "{}: {}",
            dir.display(),
            stderr(&o)
        );
        (code(&o), json(&o))
    };
    let problems = |v: &Value| -> Vec<(String, String)> {
        v["roundtrip"]["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["kind"].as_str().unwrap().to_string(),
                    p["migration"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let (code, v) = verify(&c.join("authelia/internal/storage/migrations/postgres"));
    assert_eq!((code, problems(&v)), (0, vec![]), "{v}");
    assert_eq!(v["roundtrip"]["rollbacks_ok"], 26);
    for tree in [
        "river/riverdriver/riverpgxv5/migration/main",
        "river/rivermigrate/migration/commit_required",
    ] {
        let copy = river_copy(&c.join(tree));
        let (code, v) = verify(&copy.path().join("migrations"));
        assert_eq!((code, problems(&v)), (0, vec![]), "{tree}: {v}");
    }

    let (code, v) = verify(&c.join("vaultwarden/migrations/postgresql"));
    assert_eq!(code, 1);
    let found = problems(&v);
    assert!(
        found.contains(&(
            "rollback_failed".into(),
            "2022-07-27-110000_add_group_support".into()
        )),
        "{found:?}"
    );
    assert!(
        found.contains(&(
            "leaves_behind".into(),
            "2023-06-17-200424_create_auth_requests_table".into()
        )),
        "{found:?}"
    );
    let failed = v["roundtrip"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["kind"] == "rollback_failed")
        .unwrap();
    assert!(
        failed["detail"]
            .as_str()
            .unwrap()
            .contains("DROP TABLE groups"),
        "{failed}"
    );
    assert!(
        failed["file"].as_str().unwrap().ends_with("down.sql") && failed["line"] == 1,
        "{failed}"
    );
    assert_eq!(
        v["roundtrip"]["notes"].as_array().unwrap().len(),
        26,
        "the template-only downs are noted"
    );

    let (code, v) = verify(&c.join("lemmy-0.19/migrations"));
    assert_eq!(code, 1);
    let found = problems(&v);
    eprintln!("lemmy-0.19: {found:?}");
    for broken in [
        "2023-07-05-000058_person-admin",
        "2022-05-20-135341_embed-url",
        "2020-10-13-212240_create_report_tables",
    ] {
        assert!(
            found.contains(&("rollback_failed".into(), broken.into())),
            "{broken}: {found:?}"
        );
    }
}

/// `lint` without a database URL picks each shared tree's dialect from what the tree
/// says (its directory's name, its SQL), and says where the choice came from; a
/// PostgreSQL tree was once linted as SQLite (3 errors and 222 statements not analysed
/// instead of 131 errors).
#[test]
fn lint_picks_each_corpus_trees_dialect() {
    let Some(root) = corpora("lint_dialects") else {
        return;
    };
    let cases = [
        ("lemmy-0.19/migrations", "postgres"),
        ("vaultwarden/migrations/postgresql", "postgres"),
        ("vaultwarden/migrations/mysql", "mysql"),
        ("vaultwarden/migrations/sqlite", "sqlite"),
        ("authelia/internal/storage/migrations/postgres", "postgres"),
        ("authelia/internal/storage/migrations/mysql", "mysql"),
        ("authelia/internal/storage/migrations/sqlite", "sqlite"),
        ("river/riverdriver/riverpgxv5/migration/main", "postgres"),
        ("river/riverdriver/riversqlite/migration/main", "sqlite"),
        ("river/rivermigrate/migration/commit_required", "postgres"),
        ("atuin/crates/atuin-server-postgres/migrations", "postgres"),
        ("atuin/crates/atuin-server-sqlite/migrations", "sqlite"),
    ];
    let cwd = tempfile::tempdir().unwrap();
    for (tree, want) in cases {
        let out = assert_cmd::Command::cargo_bin("strata")
            .unwrap()
            .current_dir(cwd.path())
            .env_remove("DATABASE_URL")
            .env_remove("DB_HOST")
            .env_remove("DB_NAME")
            .args(["--json", "lint", "--dir"])
            .arg(root.join(tree))
            .output()
            .unwrap();
        let report = json(&out);
        assert_eq!(
            report["dialect"], want,
            "{tree}: {}",
            report["dialect_from"]
        );
        assert!(
            !report["dialect_from"]
                .as_str()
                .unwrap_or("")
                .contains("default"),
            "{tree}: {}",
            report["dialect_from"]
        );
    }
}
