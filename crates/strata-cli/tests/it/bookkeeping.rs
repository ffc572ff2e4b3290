//! strata's own tables never collide with an application's or another tool's, an
//! earlier layout is moved in place without losing a row, and a history that
//! disappears is reported instead of silently started over (issue 16, item 1).

use crate::support::*;

/// A project that drops a legacy `schema_migrations` and creates its own `audit_log`
/// and `application_metadata`: common names that strata used to take.
#[test]
fn migrations_may_drop_and_create_tables_named_like_stratas_old_ones() {
    for db in engines("bookkeeping_names") {
        let p = Project::new();
        p.file(
            "001_legacy.sql",
            "CREATE TABLE schema_migrations (version BIGINT NOT NULL PRIMARY KEY, dirty BOOLEAN NOT NULL);\n",
        )
        .file("002_drop_legacy.sql", "DROP TABLE IF EXISTS schema_migrations;\n")
        .file(
            "003_app_tables.sql",
            "CREATE TABLE audit_log (id INTEGER PRIMARY KEY, message TEXT);\nCREATE TABLE application_metadata (k VARCHAR(20) PRIMARY KEY, v TEXT);\nINSERT INTO audit_log (id, message) VALUES (1, 'hello');\n",
        );
        let o = p.strata(&db, &["up"]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert_eq!(
            db.query("SELECT version FROM {history} ORDER BY id"),
            ["001", "002", "003"]
        );
        assert_eq!(db.tables(), ["application_metadata", "audit_log"]);
        assert_eq!(db.query("SELECT message FROM audit_log"), ["hello"]);
        let s = json(&p.strata(&db, &["status", "--json"]));
        assert_eq!(s["current"], "003");
    }
}

/// golang-migrate's (and dbmate's) `schema_migrations(version, dirty)` stays theirs.
#[test]
fn another_tools_schema_migrations_table_is_left_alone() {
    for db in engines("bookkeeping_golang_migrate") {
        let p = Project::new();
        p.file("001_t.sql", "CREATE TABLE t (id INTEGER);\n");
        let setup = "CREATE TABLE schema_migrations (version BIGINT NOT NULL PRIMARY KEY, dirty BOOLEAN NOT NULL)";
        db.exec(setup);
        db.exec("INSERT INTO schema_migrations (version, dirty) VALUES (7, false)");
        let o = p.strata(&db, &["up"]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert_eq!(db.query("SELECT version FROM {history}"), ["001"]);
        let dirty = db.bool_text(false);
        assert_eq!(
            db.query("SELECT version, dirty FROM schema_migrations"),
            [format!("7|{dirty}")]
        );
    }
}

/// A configured name that is an application's table is refused, never reused.
#[test]
fn configured_history_table_that_is_not_stratas_is_refused() {
    for db in engines("bookkeeping_collision") {
        let p = Project::new();
        p.file("001_t.sql", "CREATE TABLE t (id INTEGER);\n");
        // On PostgreSQL strata's tables have a schema of their own: name the
        // application's to make the names meet.
        let schema = if db.is_postgres() {
            "schema = \"public\"\n"
        } else {
            ""
        };
        std::fs::write(
            p.root().join("strata.toml"),
            format!("{schema}history_table = \"orders\"\n"),
        )
        .unwrap();
        db.exec("CREATE TABLE orders (id INTEGER, total INTEGER)");
        let before = db.dump();
        let o = p.strata(&db, &["up"]);
        assert_eq!(code(&o), 3, "{}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains("orders") && err.contains("not one of strata's tables"),
            "{err}"
        );
        assert_eq!(db.dump(), before, "nothing changed");
        let o = p.strata(&db, &["status"]);
        assert_eq!(code(&o), 3, "status refuses too: {}", stderr(&o));
    }
}

/// A database migrated by an earlier strata (its tables unprefixed in the application's
/// schema) is read where it is, and moved in place under the lock on the next change,
/// with every row kept and an audit row saying so.
#[test]
fn earlier_layout_is_upgraded_in_place_losing_nothing() {
    for db in engines("bookkeeping_upgrade") {
        let p = Project::new();
        p.file(
            "001_a.sql",
            "CREATE TABLE a (id INTEGER);\n-- strata:down\nDROP TABLE a;\n",
        )
        .file(
            "002_b.sql",
            "CREATE TABLE b (id INTEGER);\n-- strata:down\nDROP TABLE b;\n",
        );
        // Apply with today's layout, then move the tables back to where an earlier
        // strata kept them.
        let o = p.strata(&db, &["up", "--target", "001"]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let moves: Vec<String> = if db.is_postgres() {
            ["schema_migrations", "application_metadata", "audit_log"]
                .iter()
                .map(|t| format!("ALTER TABLE strata.{t} SET SCHEMA public"))
                .chain(["DROP SCHEMA strata".to_string()])
                .collect()
        } else {
            ["schema_migrations", "application_metadata", "audit_log"]
                .iter()
                .map(|t| format!("ALTER TABLE strata_{t} RENAME TO {t}"))
                .collect()
        };
        for m in &moves {
            db.exec(m);
        }
        // Read in place: 001 applied, 002 pending.
        let s = json(&p.strata(&db, &["status", "--json"]));
        assert_eq!(s["current"], "001", "{s}");
        assert_eq!(s["migrations"][1]["state"], "pending");
        // The next change moves them, then applies 002.
        let o = p.strata(&db, &["up"]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert_eq!(
            db.query("SELECT version FROM {history} ORDER BY id"),
            ["001", "002"]
        );
        assert_eq!(
            db.query("SELECT operation FROM {audit} ORDER BY id"),
            ["apply", "upgrade", "apply"]
        );
        assert_eq!(db.tables(), ["a", "b"], "no strata table left behind");
        let o = p.strata(&db, &["rollback", "base"]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert!(db.tables().is_empty());
    }
}

/// A history dropped from under its metadata table is reported, never recreated empty
/// (on MariaDB a `DROP TABLE` autocommits, so a migration could do this).
#[test]
fn dropped_history_is_reported_not_started_over() {
    for db in engines("bookkeeping_dropped") {
        let p = Project::new();
        p.file("001_a.sql", "CREATE TABLE a (id INTEGER);\n");
        let o = p.strata(&db, &["up"]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let drop = if db.is_postgres() {
            "DROP TABLE strata.schema_migrations"
        } else {
            "DROP TABLE strata_schema_migrations"
        };
        db.exec(drop);
        for args in [&["up"][..], &["status"][..]] {
            let o = p.strata(&db, args);
            assert_eq!(code(&o), 3, "{args:?}: {}", stderr(&o));
            assert!(
                stderr(&o).contains("something dropped it"),
                "{}",
                stderr(&o)
            );
        }
        let o = p.strata(&db, &["health"]);
        assert_eq!(code(&o), 2, "{}", stdout(&o));
    }
}
