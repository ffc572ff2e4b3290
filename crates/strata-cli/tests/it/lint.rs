//! `strata lint`: each rule with a migration that triggers it and its safe twin that
//! does not; `up --dry-run` showing findings; a protected environment refusing errors
//! without `--allow-unsafe`; and lint over every corpus without crashing.

use serde_json::Value;

use crate::support::*;

const BASE: &str = "CREATE TABLE users (id BIGINT PRIMARY KEY, email TEXT, name TEXT, org_id BIGINT);\n-- strata:down\nDROP TABLE users;\n";

fn lint(p: &Project, dialect: &str) -> (i32, Value) {
    let o = strata_in(
        p.root(),
        "sqlite://unused.db",
        &p.migrations(),
        &["lint", "--json", "--dialect", dialect],
    );
    assert!(
        matches!(code(&o), 0 | 1),
        "lint crashed or refused: {}",
        stderr(&o)
    );
    (code(&o), json(&o))
}

fn rules_at(v: &Value, migration: &str) -> Vec<(String, u64)> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["migration"] == migration && f["severity"] != "info")
        .map(|f| {
            (
                f["rule"].as_str().unwrap().to_string(),
                f["line"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// (rule, dialect, unsafe 002, its safe twin)
#[rustfmt::skip]
const CASES: &[(&str, &str, &str, &str)] = &[
    ("volatile-default", "postgres",
     "ALTER TABLE users ADD COLUMN token UUID DEFAULT gen_random_uuid();",
     "ALTER TABLE users ADD COLUMN token UUID;\nALTER TABLE users ALTER COLUMN token SET DEFAULT gen_random_uuid();"),
    ("not-null-without-default", "postgres",
     "ALTER TABLE users ADD COLUMN plan TEXT NOT NULL;",
     "ALTER TABLE users ADD COLUMN plan TEXT NOT NULL DEFAULT 'free';"),
    ("not-null-without-default", "sqlite",
     "ALTER TABLE users ADD COLUMN plan TEXT NOT NULL;",
     "ALTER TABLE users ADD COLUMN plan TEXT NOT NULL DEFAULT 'free';"),
    ("not-null-without-default", "mysql",
     "ALTER TABLE users ADD COLUMN plan VARCHAR(10) NOT NULL;",
     "ALTER TABLE users ADD COLUMN plan VARCHAR(10) NOT NULL DEFAULT 'free';"),
    ("index-not-concurrent", "postgres",
     "CREATE INDEX users_email ON users (email);",
     "-- strata:no-transaction\nCREATE INDEX CONCURRENTLY users_email ON users (email);"),
    // Detected and run outside a transaction by itself: only a forced one is wrong.
    ("concurrently-in-transaction", "postgres",
     "-- strata:transaction\nCREATE INDEX CONCURRENTLY users_email ON users (email);",
     "-- strata:no-transaction\nCREATE INDEX CONCURRENTLY users_email ON users (email);"),
    ("constraint-not-valid", "postgres",
     "ALTER TABLE users ADD CONSTRAINT users_org FOREIGN KEY (org_id) REFERENCES users (id);",
     "ALTER TABLE users ADD CONSTRAINT users_org FOREIGN KEY (org_id) REFERENCES users (id) NOT VALID;\nALTER TABLE users VALIDATE CONSTRAINT users_org;"),
    ("constraint-not-valid", "postgres",
     "ALTER TABLE users ADD CONSTRAINT email_lower CHECK (email = lower(email));",
     "ALTER TABLE users ADD CONSTRAINT email_lower CHECK (email = lower(email)) NOT VALID;"),
    ("column-type-change", "postgres",
     "ALTER TABLE users ALTER COLUMN name TYPE VARCHAR(100);",
     "ALTER TABLE users ADD COLUMN name_v2 VARCHAR(100);"),
    ("column-type-change", "mysql",
     "ALTER TABLE users MODIFY COLUMN name VARCHAR(100);",
     "ALTER TABLE users ADD COLUMN name_v2 VARCHAR(100);"),
    ("set-not-null", "postgres",
     "ALTER TABLE users ALTER COLUMN email SET NOT NULL;",
     "ALTER TABLE users ADD CONSTRAINT email_nn CHECK (email IS NOT NULL) NOT VALID;"),
    ("rename-column", "postgres",
     "ALTER TABLE users RENAME COLUMN name TO full_name;",
     "ALTER TABLE users ADD COLUMN full_name TEXT;"),
    ("rename-table", "postgres",
     "ALTER TABLE users RENAME TO accounts;",
     "CREATE VIEW accounts AS SELECT * FROM users;"),
    ("drop-column", "postgres",
     "ALTER TABLE users DROP COLUMN name;",
     "ALTER TABLE users ALTER COLUMN name DROP NOT NULL;"),
    ("drop-table", "sqlite",
     "DROP TABLE users;",
     "CREATE TABLE users_archive (id BIGINT);"),
];

#[test]
fn each_rule_fires_on_its_migration_and_not_on_the_safe_twin() {
    for (rule, dialect, bad, safe) in CASES {
        for (sql, expect) in [(bad, true), (safe, false)] {
            let p = Project::new();
            p.file("001_users.sql", BASE);
            // Two lines of header before the statement: the finding names line 3.
            p.file(
                "002_change.sql",
                &format!("-- Description: {rule}\n\n{sql}\n-- strata:down\nSELECT 1;\n"),
            );
            let (code, v) = lint(&p, dialect);
            let found = rules_at(&v, "002_change");
            let hit = found.iter().any(|(r, _)| r == rule);
            assert_eq!(
                hit, expect,
                "{rule} on {dialect}: {sql}\nfindings: {found:?}"
            );
            if expect {
                let line = found.iter().find(|(r, _)| r == rule).unwrap().1;
                let f = v["findings"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|f| f["rule"] == *rule)
                    .unwrap();
                assert!(
                    line == 3 || (line == 4 && sql.starts_with("--")),
                    "{rule}: line {line}"
                );
                assert!(f["file"].as_str().unwrap().ends_with("002_change.sql"));
                assert!(
                    !f["fix"].as_str().unwrap().is_empty(),
                    "{rule} names the safe alternative"
                );
                let severity = f["severity"].as_str().unwrap();
                assert_eq!(
                    code,
                    if severity == "error" { 1 } else { 0 },
                    "{rule}: exit code"
                );
            } else {
                assert!(
                    found
                        .iter()
                        .all(|(r, _)| !r.contains("not-null") && r != rule),
                    "{rule} safe twin: {found:?}"
                );
            }
        }
    }
}

#[test]
fn a_table_created_in_the_same_migration_is_not_locked_by_anyone() {
    let p = Project::new();
    p.file("001_t.sql", "CREATE TABLE t (id BIGINT, x TEXT);\nCREATE INDEX t_x ON t (x);\nALTER TABLE t ADD COLUMN y TEXT NOT NULL;\nALTER TABLE t ADD CONSTRAINT t_y CHECK (y <> '');\n-- strata:down\nDROP TABLE t;\n");
    let (code, v) = lint(&p, "postgres");
    assert_eq!(code, 0, "{v}");
    assert!(rules_at(&v, "001_t").is_empty(), "{v}");
}

#[test]
fn missing_rollback_and_unparsable_statements() {
    let p = Project::new();
    p.file("001_t.sql", "CREATE TABLE t (id BIGINT);\nCREATE FUNCTION f() RETURNS trigger AS $$ BEGIN RETURN NEW; END $$ LANGUAGE plpgsql;\nTHIS IS NOT SQL AT ALL;\n");
    let (exit, v) = lint(&p, "postgres");
    assert_eq!(exit, 0, "warnings and notes do not fail lint: {v}");
    assert_eq!(rules_at(&v, "001_t"), [("no-rollback".to_string(), 1)]);
    let notes: Vec<u64> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "not-analysed")
        .map(|f| f["line"].as_u64().unwrap())
        .collect();
    assert!(
        notes.contains(&3),
        "the unparsable statement is reported, not fatal: {v}"
    );
    assert_eq!(v["not_analysed"].as_u64().unwrap() as usize, notes.len());
    let text = ok(&strata_in(
        p.root(),
        "sqlite://unused.db",
        &p.migrations(),
        &["lint", "--dialect", "postgres"],
    ));
    assert!(text.contains("001_t.sql:1: warning[no-rollback]"), "{text}");
    assert!(text.contains("statement(s) not analysed"), "{text}");
    // One file by path; a path that is not a migration is an input error.
    let one = strata_in(
        p.root(),
        "sqlite://unused.db",
        &p.migrations(),
        &["lint", "--dialect", "postgres", "migrations/001_t.sql"],
    );
    assert!(
        stdout(&one).contains("1 migration(s) linted"),
        "{}",
        stdout(&one)
    );
    let bad = strata_in(
        p.root(),
        "sqlite://unused.db",
        &p.migrations(),
        &["lint", "nope.sql"],
    );
    assert_eq!(code(&bad), 2, "{}", stderr(&bad));
}

#[test]
fn up_dry_run_shows_findings_and_protected_up_refuses_errors() {
    let Some(db) = TestDb::postgres("lint_gate") else {
        return;
    };
    let p = Project::new();
    p.file("001_users.sql", BASE);
    ok(&p.strata(&db, &["up"]));
    p.file(
        "002_index.sql",
        "CREATE INDEX users_email ON users (email);\n-- strata:down\nDROP INDEX users_email;\n",
    );
    let dry = p.strata(&db, &["up", "--dry-run"]);
    assert!(
        ok(&dry).contains("error[index-not-concurrent]"),
        "{}",
        stdout(&dry)
    );
    let dry = json(&p.strata(&db, &["up", "--dry-run", "--json"]));
    assert_eq!(dry["lint"][0]["rule"], "index-not-concurrent", "{dry}");

    let refused = p.strata(&db, &["--env", "prod", "up"]);
    assert_eq!(code(&refused), 3, "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("--allow-unsafe"),
        "{}",
        stderr(&refused)
    );
    assert!(db
        .query("SELECT indexname FROM pg_indexes WHERE indexname = 'users_email'")
        .is_empty());
    // Outside production the same plan runs; in production, with --allow-unsafe.
    ok(&p.strata(&db, &["--env", "prod", "up", "--allow-unsafe"]));
    assert_eq!(
        db.query("SELECT indexname FROM pg_indexes WHERE indexname = 'users_email'"),
        ["users_email"]
    );
}

/// Lint reads every corpus without crashing; lemmy-0.19's well-known locking
/// migrations are flagged.
#[test]
fn lint_reads_every_corpus() {
    let Some(c) = corpora("lint_corpora") else {
        return;
    };
    #[rustfmt::skip]
    let dirs = [
        ("lemmy-0.19/migrations", "postgres"), ("lemmy/migrations", "postgres"),
        ("vaultwarden/migrations/postgresql", "postgres"), ("vaultwarden/migrations/mysql", "mysql"),
        ("vaultwarden/migrations/sqlite", "sqlite"),
        ("authelia/internal/storage/migrations/postgres", "postgres"),
        ("authelia/internal/storage/migrations/mysql", "mysql"),
        ("authelia/internal/storage/migrations/sqlite", "sqlite"),
        ("atuin/crates/atuin-server-postgres/migrations", "postgres"),
        ("atuin/crates/atuin-client/migrations", "sqlite"),
        ("atuin/crates/atuin-server-sqlite/migrations", "sqlite"),
    ];
    for (dir, dialect) in dirs {
        let path = c.join(dir);
        if !path.exists() {
            continue;
        }
        let o = strata_in(
            &c,
            "sqlite://unused.db",
            &path,
            &["lint", "--json", "--dialect", dialect],
        );
        assert!(matches!(code(&o), 0 | 1), "{dir}: {}", stderr(&o));
        let v = json(&o);
        eprintln!(
            "{dir}: {} errors, {} warnings, {} not analysed",
            v["errors"], v["warnings"], v["not_analysed"]
        );
        if dir == "lemmy-0.19/migrations" {
            let add_indexes: Vec<_> = v["findings"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|f| f["migration"] == "2020-01-11-012452_add_indexes")
                .collect();
            assert!(
                add_indexes.len() >= 10
                    && add_indexes
                        .iter()
                        .all(|f| f["rule"] == "index-not-concurrent"),
                "{add_indexes:?}"
            );
        }
    }
}

/// `verify --roundtrip` on SQLite: a sound project passes; a rollback that fails, one
/// that leaves a table behind and a missing one are each named.
#[test]
fn verify_roundtrip_names_broken_rollbacks() {
    let p = Project::new();
    p.file("001_users.sql", BASE)
        .file("002_posts.sql", "CREATE TABLE posts (id INTEGER PRIMARY KEY);\nCREATE INDEX posts_id ON posts (id);\n-- strata:down\nDROP TABLE posts;\n");
    let db = TestDb::sqlite();
    let good = p.strata(&db, &["verify", "--roundtrip"]);
    assert!(ok(&good).contains("passed"), "{}", stdout(&good));
    assert!(
        db.tables().is_empty(),
        "verify never touches the configured database"
    );

    p.file("003_tags.sql", "CREATE TABLE tags (id INTEGER);\nCREATE TABLE tag_log (id INTEGER);\n-- strata:down\nDROP TABLE tags;\n")
        .file("004_bad_down.sql", "ALTER TABLE users ADD COLUMN plan TEXT;\n-- strata:down\nALTER TABLE nope DROP COLUMN plan;\n")
        .file("005_no_down.sql", "CREATE TABLE audit (id INTEGER);\n");
    let o = p.strata(&db, &["verify", "--roundtrip", "--json"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let v = json(&o);
    let found: Vec<(String, String)> = v["roundtrip"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["kind"].as_str().unwrap().into(),
                p["migration"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("no_rollback".to_string(), "005_no_down".to_string()),
            ("rollback_failed".into(), "004_bad_down".into()),
            ("leaves_behind".into(), "003_tags".into()),
        ],
        "{v}"
    );
    let left = &v["roundtrip"]["problems"][2]["detail"];
    assert!(left.as_str().unwrap().contains("table tag_log"), "{left}");
    let failed = &v["roundtrip"]["problems"][1];
    assert!(
        failed["file"]
            .as_str()
            .unwrap()
            .ends_with("004_bad_down.sql")
            && failed["line"] == 3,
        "{failed}"
    );
}
