//! Authoring: `diff --schema` round trips (declared schema -> migration -> apply ->
//! diff is empty, and the generated down restores the start) for each object kind on
//! PostgreSQL and SQLite.

use crate::support::*;

const BASE: &str = "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL, name VARCHAR(50), legacy TEXT);\nCREATE TABLE old_stuff (id INTEGER);\n-- strata:down\nDROP TABLE old_stuff;\nDROP TABLE users;\n";
const USERS: &str = "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL, name VARCHAR(50), legacy TEXT);\n";
const OLD: &str = "CREATE TABLE old_stuff (id INTEGER);\n";

/// (object kind, declared schema, engines: p = PostgreSQL, s = SQLite)
#[rustfmt::skip]
fn cases() -> Vec<(&'static str, String, &'static str)> {
    vec![
        ("table added and dropped", format!("{USERS}CREATE TABLE orgs (id INTEGER PRIMARY KEY, title TEXT NOT NULL);\n"), "ps"),
        ("column added", format!("{OLD}CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL, name VARCHAR(50), legacy TEXT, age INTEGER);\n"), "ps"),
        ("column dropped", format!("{OLD}CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL, name VARCHAR(50));\n"), "ps"),
        ("column type", format!("{OLD}CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL, name VARCHAR(120), legacy TEXT);\n"), "ps"),
        ("column null", format!("{OLD}CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, name VARCHAR(50) NOT NULL, legacy TEXT);\n"), "ps"),
        ("column default", format!("{OLD}CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL DEFAULT 'none', name VARCHAR(50), legacy TEXT);\n"), "ps"),
        ("index", format!("{OLD}{USERS}CREATE INDEX users_name ON users (name);\nCREATE UNIQUE INDEX users_email_lower ON users (lower(email));\n"), "ps"),
        ("unique constraint", format!("{OLD}CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, name VARCHAR(50), legacy TEXT);\n"), "ps"),
        ("check constraint", format!("{OLD}CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL CHECK (email <> ''), name VARCHAR(50), legacy TEXT);\n"), "ps"),
        ("foreign key", format!("{USERS}CREATE TABLE old_stuff (id INTEGER, user_id INTEGER REFERENCES users (id) ON DELETE CASCADE);\n"), "ps"),
        ("view", format!("{OLD}{USERS}CREATE VIEW named AS SELECT id, name FROM users WHERE name IS NOT NULL;\n"), "ps"),
        ("enum", format!("{OLD}CREATE TYPE mood AS ENUM ('happy', 'sad');\nCREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL, name VARCHAR(50), legacy TEXT, mood mood);\n"), "p"),
    ]
}

/// The user schema of a test database: PostgreSQL's catalog dump; for SQLite each
/// object's name and type, each table's columns and its constraints' statement text.
fn shape(db: &TestDb) -> String {
    if db.is_postgres() {
        // strata's own tables change with every run (audit rows, metadata).
        return db
            .dump()
            .lines()
            .filter(|l| !l.starts_with("strata."))
            .collect::<Vec<_>>()
            .join("\n");
    }
    let mut out = Vec::new();
    for row in db.query("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' AND substr(name, 1, 7) <> 'strata_' ORDER BY type, name") {
        let name = row.split('|').nth(1).unwrap().to_string();
        out.push(row.clone());
        if row.starts_with("table|") {
            out.extend(db.query(&format!("SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info('{name}')")));
            out.extend(db.query(&format!("SELECT \"table\", \"from\", \"to\", on_delete FROM pragma_foreign_key_list('{name}')")));
            let sql = db.query(&format!("SELECT sql FROM sqlite_master WHERE name = '{name}'"));
            out.push(sql[0].split_once('(').map(|(_, b)| b.to_string()).unwrap_or_default());
        }
    }
    out.join("\n")
}

#[test]
fn diff_round_trips_each_object_kind() {
    for (kind, declared, engines) in cases() {
        let mut dbs = Vec::new();
        if engines.contains('s') {
            dbs.push(TestDb::sqlite());
        }
        if engines.contains('p') {
            dbs.extend(TestDb::postgres("diff_kinds"));
        }
        for db in dbs {
            let p = Project::new();
            p.file("001_base.sql", BASE);
            std::fs::write(p.root().join("schema.sql"), &declared).unwrap();
            let at = format!("{kind} on {}", db.url());
            ok(&p.strata(&db, &["up"]));
            let before = shape(&db);

            let dry = ok(&p.strata(&db, &["diff", "--schema", "schema.sql", "--dry-run"]));
            assert!(dry.contains("-- strata:down"), "{at}: {dry}");
            assert!(
                !p.migrations().join("002_schema_diff.sql").exists(),
                "{at}: a dry run writes nothing"
            );
            let made = ok(&p.strata(&db, &["diff", "--schema", "schema.sql"]));
            assert!(made.contains("002_schema_diff.sql"), "{at}: {made}");
            assert!(
                p.migrations().join("strata.sum").exists(),
                "{at}: diff updates strata.sum"
            );
            ok(&p.strata(&db, &["up"]));
            let again = ok(&p.strata(&db, &["diff", "--schema", "schema.sql"]));
            assert!(
                again.contains("No difference"),
                "{at}: the second diff is empty:\n{again}\n{}",
                std::fs::read_to_string(p.migrations().join("002_schema_diff.sql")).unwrap()
            );
            assert!(!p.migrations().join("003_schema_diff.sql").exists(), "{at}");
            // The generated down restores the schema 001 built, in the database and as
            // diff sees it (the difference is again exactly the generated migration's).
            ok(&p.strata(&db, &["rollback"]));
            assert_eq!(shape(&db), before, "{at}: the down restores the database");
            p.remove("002_schema_diff.sql");
            ok(&p.strata(&db, &["sum"]));
            let restored = ok(&p.strata(&db, &["diff", "--schema", "schema.sql", "--dry-run"]));
            assert_eq!(restored, dry, "{at}: the down restores the start");
        }
    }
}

#[test]
fn diff_reports_bad_declared_schema_with_its_file() {
    let p = Project::new();
    p.file("001_base.sql", BASE);
    std::fs::write(p.root().join("schema.sql"), "CREATE TABLE x (id INTEGER;\n").unwrap();
    let db = TestDb::sqlite();
    let o = p.strata(&db, &["diff", "--schema", "schema.sql"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("schema.sql"), "{}", stderr(&o));
    let missing = p.strata(&db, &["diff", "--schema", "nope.sql"]);
    assert_eq!(code(&missing), 2, "{}", stderr(&missing));
    assert!(
        db.tables().is_empty(),
        "diff never touches the configured database"
    );
}

/// `generate`: every template on every dialect it supports, its SQL snapshotted, then
/// applied and rolled back on the real database, checking what it does each way.
#[test]
fn generate_templates_apply_and_roll_back_on_each_engine() {
    let mut dbs = vec![TestDb::sqlite()];
    dbs.extend(TestDb::postgres("generate"));
    dbs.extend(TestDb::mysql("generate"));
    for db in dbs {
        let dialect = if db.is_postgres() {
            "postgres"
        } else if db.is_mysql() {
            "mysql"
        } else {
            "sqlite"
        };
        let p = Project::new();
        p.file("001_base.sql", "CREATE TABLE orgs (id BIGINT PRIMARY KEY);\nCREATE TABLE users (id BIGINT PRIMARY KEY, email VARCHAR(255) NOT NULL, name VARCHAR(100), org_id BIGINT);\nINSERT INTO orgs (id) VALUES (1);\nINSERT INTO users (id, email, name, org_id) VALUES (1, 'a@x', NULL, 1);\n-- strata:down\nDROP TABLE users;\nDROP TABLE orgs;\n");
        ok(&p.strata(&db, &["up"]));
        // (template, arguments, check that holds only while the migration is applied)
        #[rustfmt::skip]
        let cases: Vec<(&str, Vec<&str>, &str, bool)> = vec![
            ("add_column", vec!["add-column", "users", "nickname", "VARCHAR(50)", "--not-null", "--default", "'anon'"], "SELECT nickname FROM users WHERE nickname = 'anon'", true),
            ("add_index", vec!["add-index", "users", "email", "--unique"], "INSERT INTO users (id, email) VALUES (2, 'a@x')", false),
            ("add_foreign_key", vec!["add-foreign-key", "users", "org_id", "orgs", "--on-delete", "cascade"], "INSERT INTO users (id, email, org_id) VALUES (3, 'c@x', 99)", false),
            ("create_table", vec!["create-table", "projects", "title:VARCHAR(200)!", "budget:INTEGER", "--timestamps", "--soft-delete"], "INSERT INTO projects (title) VALUES ('p')", true),
            ("rename_column", vec!["rename-column", "users", "name", "full_name"], "SELECT full_name FROM users", true),
            ("add_check_constraint", vec!["add-check-constraint", "users", "email_not_empty", "email <> ''"], "INSERT INTO users (id, email) VALUES (4, '')", false),
            ("data_migration", vec!["data-migration", "users", "--set", "name = 'unknown'", "--where", "name IS NULL", "--revert", "name = NULL"], "SELECT id FROM users WHERE name = 'unknown'", true),
        ];
        for (template, args, check, holds) in cases {
            let mut full = vec!["generate"];
            full.extend(&args);
            let o = p.strata(&db, &full);
            let at = format!("{template} on {dialect}");
            if dialect == "sqlite" && matches!(template, "add_foreign_key" | "add_check_constraint")
            {
                assert_eq!(code(&o), 2, "{at}: {}", stderr(&o));
                assert!(
                    stderr(&o).contains("diff --schema"),
                    "{at}: names the way out: {}",
                    stderr(&o)
                );
                continue;
            }
            ok(&o);
            let file = std::fs::read_dir(p.migrations())
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|f| f.extension().is_some_and(|x| x == "sql"))
                .max()
                .unwrap();
            let text = std::fs::read_to_string(&file).unwrap();
            let body: String = text
                .lines()
                .filter(|l| !l.starts_with("-- Created:"))
                .collect::<Vec<_>>()
                .join("\n");
            insta::assert_snapshot!(format!("generate_{template}_{dialect}"), body);
            let check_ok = |db: &TestDb| {
                let ok = if check.starts_with("SELECT") {
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| db.query(check)))
                        .map(|r| !r.is_empty())
                        .unwrap_or(false)
                } else {
                    db.succeeds(check)
                };
                ok == holds
            };
            ok(&p.strata(&db, &["up"]));
            assert!(
                check_ok(&db),
                "{at}: applied, `{check}` should {}",
                if holds { "succeed" } else { "fail" }
            );
            ok(&p.strata(&db, &["rollback"]));
            if !check.starts_with("INSERT INTO projects") {
                // Undo what the check inserted, if it did.
                let _ = db.succeeds("DELETE FROM users WHERE id > 1");
            }
            assert!(
                !check_ok(&db) || template == "data_migration" && !holds,
                "{at}: rolled back, `{check}` must flip"
            );
            // Leave the directory as it was for the next template.
            std::fs::remove_file(&file).unwrap();
            ok(&p.strata(&db, &["sum"]));
        }
    }
}

/// `squash --to V`: new databases get the baseline, databases past V are unaffected,
/// one stopped inside the squashed range is refused, and objects a baseline cannot
/// reproduce stop the squash before any file changes.
#[test]
fn squash_replaces_the_migrations_up_to_v() {
    let mut dbs = vec![(TestDb::sqlite(), TestDb::sqlite(), TestDb::sqlite())];
    if let (Some(a), Some(b), Some(c)) = (
        TestDb::postgres("squash_a"),
        TestDb::postgres("squash_b"),
        TestDb::postgres("squash_c"),
    ) {
        dbs.push((a, b, c));
    }
    for (old, new, stopped) in dbs {
        let pg = old.is_postgres();
        let id = if pg {
            "id SERIAL PRIMARY KEY"
        } else {
            "id INTEGER PRIMARY KEY"
        };
        let p = Project::new();
        p.file("001_users.sql", &format!("CREATE TABLE users ({id}, email TEXT NOT NULL UNIQUE);\n-- strata:down\nDROP TABLE users;\n"))
            .file("002_posts.sql", &format!("-- Depends: 001\nCREATE TABLE posts ({id}, user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE, title TEXT CHECK (title <> ''));\nCREATE INDEX posts_user ON posts (user_id);\nCREATE VIEW titles AS SELECT title FROM posts;\n-- strata:down\nDROP VIEW titles;\nDROP TABLE posts;\n"))
            .file("003_tags.sql", "-- Depends: 001\nCREATE TABLE tags (name TEXT PRIMARY KEY);\n-- strata:down\nDROP TABLE tags;\n");
        ok(&p.strata(&stopped, &["up", "--target", "001"]));
        ok(&p.strata(&old, &["sum"]));
        ok(&p.strata(&old, &["up"]));
        let at = if pg { "postgres" } else { "sqlite" };

        let out = ok(&p.strata(&old, &["squash", "--to", "002"]));
        assert!(out.contains("Squashed 2 migration(s)"), "{at}: {out}");
        let mut files: Vec<String> = std::fs::read_dir(p.migrations())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        assert_eq!(
            files,
            ["002_baseline.sql", "003_tags.sql", "strata.sum"],
            "{at}"
        );
        ok(&p.strata(&old, &["validate"]));

        // Past V: nothing pending, nothing missing or modified, nothing to do.
        let s = json(&p.strata(&old, &["status", "--json"]));
        let states: Vec<&str> = s["migrations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["state"].as_str().unwrap())
            .collect();
        assert_eq!(states, ["applied", "applied"], "{at}: {s}");
        assert!(
            ok(&p.strata(&old, &["up"])).contains("Nothing to do"),
            "{at}"
        );

        // New: the baseline and 003 build the same schema.
        let applied = json(&p.strata(&new, &["up", "--json"]));
        assert_eq!(
            applied["applied"].as_array().unwrap().len(),
            2,
            "{at}: {applied}"
        );
        assert_eq!(
            shape(&new),
            shape(&old),
            "{at}: the baseline builds what 001 and 002 built"
        );
        ok(&p.strata(&new, &["verify", "--roundtrip"]));

        // Stopped inside the squashed range: refused, naming the baseline.
        let o = p.strata(&stopped, &["up"]);
        assert_eq!(code(&o), 3, "{at}: {}", stderr(&o));
        assert!(stderr(&o).contains("002_baseline"), "{at}: {}", stderr(&o));
    }
}

#[test]
fn squash_refuses_what_a_baseline_would_lose() {
    let Some(db) = TestDb::postgres("squash_fn") else {
        return;
    };
    let p = Project::new();
    p.file("001_users.sql", "CREATE TABLE users (id INTEGER PRIMARY KEY);\nCREATE FUNCTION one() RETURNS integer AS $$ SELECT 1 $$ LANGUAGE sql;\n-- strata:down\nDROP FUNCTION one();\nDROP TABLE users;\n");
    let o = p.strata(&db, &["squash", "--to", "001"]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("function public.one()"),
        "{}",
        stderr(&o)
    );
    assert!(
        p.migrations().join("001_users.sql").exists(),
        "nothing changed"
    );
}

#[test]
fn graph_as_mermaid_and_dot() {
    let p = Project::new();
    p.file("001_users.sql", "CREATE TABLE users (id INTEGER);\n")
        .file(
            "002_posts.sql",
            "-- Depends: 001\nCREATE TABLE posts (id INTEGER);\n",
        )
        .file(
            "003_tags.sql",
            "-- Depends: 001, 002\nCREATE TABLE tags (id INTEGER);\n",
        );
    let db = TestDb::sqlite();
    let m = ok(&p.strata(&db, &["graph"]));
    assert_eq!(
        m,
        "flowchart LR\n  m0[\"001 users\"]\n  m1[\"002 posts\"]\n  m2[\"003 tags\"]\n  m0 --> m1\n  m0 --> m2\n  m1 --> m2\n"
    );
    let d = ok(&p.strata(&db, &["graph", "--format", "dot"]));
    assert!(
        d.starts_with("digraph migrations {") && d.trim_end().ends_with('}'),
        "{d}"
    );
    assert_eq!(d.matches(" -> ").count(), 3, "{d}");
    assert!(d.contains("m2 [label=\"003 tags\"];"), "{d}");
    assert!(db.tables().is_empty(), "graph reads files only");
}

#[test]
fn create_follows_the_directory_numbering() {
    let db = TestDb::sqlite();
    let p = Project::new();
    p.file("0009_first.sql", "CREATE TABLE a (id INTEGER);\n");
    let c = json(&p.strata(&db, &["create", "Add user settings", "--json"]));
    assert_eq!(c["version"], "0010", "four digits stay four digits");
    let text = std::fs::read_to_string(p.migrations().join("0010_add_user_settings.sql")).unwrap();
    assert!(
        text.contains("-- strata:up") && text.contains("-- strata:down"),
        "{text}"
    );
    let sum = std::fs::read_to_string(p.migrations().join("strata.sum")).unwrap();
    assert!(
        sum.contains("0010_add_user_settings"),
        "strata.sum lists the new file:\n{sum}"
    );

    // --template fills the file from a generate template, under create's name.
    p.file(
        "0011_users.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT);\n",
    );
    ok(&p.strata(
        &db,
        &[
            "create",
            "Unique emails",
            "--template",
            "add-index",
            "users",
            "email",
            "--unique",
        ],
    ));
    let text = std::fs::read_to_string(p.migrations().join("0012_unique_emails.sql")).unwrap();
    assert!(
        text.contains("-- Description: Unique emails")
            && text.contains("CREATE UNIQUE INDEX IF NOT EXISTS users_email_key ON users (email);"),
        "{text}"
    );
    ok(&p.strata(&db, &["up"]));
    assert!(
        !db.succeeds("INSERT INTO users (id, email) VALUES (1, 'a'), (2, 'a')"),
        "the unique index exists"
    );
    let bad = p.strata(&db, &["create", "x", "--template", "add-index"]);
    assert_eq!(code(&bad), 2, "{}", stderr(&bad));

    let t = Project::new();
    t.file("20240101120000_first.sql", "CREATE TABLE a (id INTEGER);\n");
    let c = json(&t.strata(&db, &["create", "Second", "--json"]));
    let v = c["version"].as_str().unwrap();
    assert!(
        v.len() == 14 && v > "20240101120000",
        "timestamps stay timestamps: {v}"
    );
    ok(&t.strata(&TestDb::sqlite(), &["validate"]));
}
