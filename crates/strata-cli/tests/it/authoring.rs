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
            .filter(|l| !l.starts_with("audit_log") && !l.starts_with("application_metadata"))
            .collect::<Vec<_>>()
            .join("\n");
    }
    let mut out = Vec::new();
    for row in db.query("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' AND name NOT IN ('schema_migrations', 'audit_log', 'application_metadata') ORDER BY type, name") {
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
