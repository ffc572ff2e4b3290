//! Taking over a database another migration tool manages: each tool's history table
//! written as the tool documents it for the first half of a tree, then `strata adopt`
//! and `strata up` apply the second half once, never the first, and leave the tool's
//! table as it was.

use crate::support::*;

/// One tool: its layout (file name, text) for migration `n` (creating table `t{n}`),
/// the DDL of its history table and the rows saying migrations 1 and 2 are applied.
struct Tool {
    name: &'static str,
    table: &'static str,
    file: fn(usize) -> (String, String),
    ddl: fn(bool) -> String,
    rows: &'static str,
}

fn create(n: usize) -> String {
    format!("CREATE TABLE t{n} (id INTEGER);\n")
}

fn tools() -> Vec<Tool> {
    vec![
        Tool {
            name: "diesel",
            table: "__diesel_schema_migrations",
            file: |n| (format!("2024-01-01-00000{n}_t{n}/up.sql"), create(n)),
            ddl: |_| "CREATE TABLE __diesel_schema_migrations (version VARCHAR(50) PRIMARY KEY NOT NULL, run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)".into(),
            rows: "INSERT INTO __diesel_schema_migrations (version) VALUES ('20240101000001'), ('20240101000002')",
        },
        Tool {
            name: "sqlx",
            table: "_sqlx_migrations",
            file: |n| (format!("2024010100000{n}_t{n}.sql"), create(n)),
            ddl: |pg| format!("CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL, checksum {} NOT NULL, execution_time BIGINT NOT NULL)", if pg { "BYTEA" } else { "BLOB" }),
            rows: "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (20240101000001, 't1', TRUE, '', 1), (20240101000002, 't2', TRUE, '', 1)",
        },
        Tool {
            name: "golang-migrate",
            table: "schema_migrations",
            file: |n| (format!("{n}_t{n}.up.sql"), create(n)),
            ddl: |_| "CREATE TABLE schema_migrations (version BIGINT NOT NULL PRIMARY KEY, dirty BOOLEAN NOT NULL)".into(),
            rows: "INSERT INTO schema_migrations VALUES (2, FALSE)",
        },
        Tool {
            name: "flyway",
            table: "flyway_schema_history",
            file: |n| (format!("V{n}__t{n}.sql"), create(n)),
            ddl: |_| "CREATE TABLE flyway_schema_history (installed_rank INT PRIMARY KEY, version VARCHAR(50), description VARCHAR(200) NOT NULL, type VARCHAR(20) NOT NULL, script VARCHAR(1000) NOT NULL, checksum INT, installed_by VARCHAR(100) NOT NULL, installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, execution_time INT NOT NULL, success BOOLEAN NOT NULL)".into(),
            rows: "INSERT INTO flyway_schema_history (installed_rank, version, description, type, script, checksum, installed_by, execution_time, success) VALUES (1, '1', 't1', 'SQL', 'V1__t1.sql', 0, 'me', 1, TRUE), (2, '2', 't2', 'SQL', 'V2__t2.sql', 0, 'me', 1, TRUE)",
        },
        Tool {
            name: "dbmate",
            table: "schema_migrations",
            file: |n| (format!("2024010100000{n}_t{n}.sql"), format!("-- migrate:up\n{}-- migrate:down\nDROP TABLE t{n};\n", create(n))),
            ddl: |_| "CREATE TABLE schema_migrations (version VARCHAR(128) PRIMARY KEY)".into(),
            rows: "INSERT INTO schema_migrations (version) VALUES ('20240101000001'), ('20240101000002')",
        },
        Tool {
            name: "goose",
            table: "goose_db_version",
            file: |n| (format!("0000{n}_t{n}.sql"), format!("-- +goose Up\n{}-- +goose Down\nDROP TABLE t{n};\n", create(n))),
            ddl: |_| "CREATE TABLE goose_db_version (id INTEGER PRIMARY KEY, version_id BIGINT NOT NULL, is_applied BOOLEAN NOT NULL, tstamp TIMESTAMP DEFAULT CURRENT_TIMESTAMP)".into(),
            // 3 was applied and rolled back again: its latest row says so.
            rows: "INSERT INTO goose_db_version (id, version_id, is_applied) VALUES (1, 0, TRUE), (2, 1, TRUE), (3, 2, TRUE), (4, 3, TRUE), (5, 3, FALSE)",
        },
        Tool {
            name: "refinery",
            table: "refinery_schema_history",
            file: |n| (format!("V{n}__t{n}.sql"), create(n)),
            ddl: |_| "CREATE TABLE refinery_schema_history (version INT4 PRIMARY KEY, name VARCHAR(255), applied_on VARCHAR(255), checksum VARCHAR(255))".into(),
            rows: "INSERT INTO refinery_schema_history VALUES (1, 't1', '2024-01-01', '1'), (2, 't2', '2024-01-01', '2')",
        },
        Tool {
            name: "prisma",
            table: "_prisma_migrations",
            file: |n| (format!("2024010100000{n}_t{n}/migration.sql"), create(n)),
            ddl: |_| "CREATE TABLE _prisma_migrations (id VARCHAR(36) PRIMARY KEY, checksum VARCHAR(64) NOT NULL, finished_at TIMESTAMP, migration_name VARCHAR(255) NOT NULL, logs TEXT, rolled_back_at TIMESTAMP, started_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, applied_steps_count INTEGER NOT NULL DEFAULT 0)".into(),
            rows: "INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name, applied_steps_count) VALUES ('a', 'x', CURRENT_TIMESTAMP, '20240101000001_t1', 1), ('b', 'x', CURRENT_TIMESTAMP, '20240101000002_t2', 1)",
        },
    ]
}

#[test]
fn every_tools_history_is_adopted_and_never_run_again() {
    let mut engines = vec![("sqlite", TestDb::sqlite())];
    if let Some(pg) = TestDb::postgres("adopt") {
        engines.push(("postgres", pg));
    }
    for (engine, _) in &engines {
        for tool in tools() {
            let db = match *engine {
                "sqlite" => TestDb::sqlite(),
                _ => TestDb::postgres("adopt_tool").unwrap(),
            };
            let what = format!("{} on {engine}", tool.name);
            let p = Project::new();
            for n in 1..=4 {
                let (file, text) = (tool.file)(n);
                p.file(&file, &text);
            }
            // What the tool did: its table, and the first two migrations' objects.
            db.exec(&(tool.ddl)(db.is_postgres()));
            db.exec(tool.rows);
            db.exec(&create(1));
            db.exec(&create(2));
            let before = db.query(&format!("SELECT * FROM {} ORDER BY 1", tool.table));

            let status = ok(&p.strata(&db, &["status"]));
            assert!(
                status.contains(&format!(
                    "managed by {} ({}): 2 applied",
                    tool.name, tool.table
                )),
                "{what}: {status}"
            );
            let refused = p.strata(&db, &["up"]);
            assert_eq!(code(&refused), 3, "{what}: {}", stderr(&refused));
            assert!(
                stderr(&refused).contains("strata adopt"),
                "{what}: {}",
                stderr(&refused)
            );

            let adopted = ok(&p.strata(&db, &["adopt"]));
            assert!(
                adopted.contains("2 migration(s) recorded"),
                "{what}: {adopted}"
            );
            let up = ok(&p.strata(&db, &["up"]));
            assert!(up.contains("Applied 2 migration(s)"), "{what}: {up}");
            assert_eq!(
                db.query("SELECT count(*) FROM {history} WHERE success"),
                ["4"],
                "{what}"
            );
            assert_eq!(
                db.query("SELECT count(*) FROM {audit} WHERE operation = 'adopt'"),
                ["2"],
                "{what}"
            );
            assert_eq!(
                db.query(&format!("SELECT * FROM {} ORDER BY 1", tool.table)),
                before,
                "{what}: the tool's table is never written"
            );
        }
    }
}

/// A failed or dirty state in the other tool's table is refused with what to do, and
/// nothing is written.
#[test]
fn a_dirty_history_is_not_adopted() {
    let db = TestDb::sqlite();
    let p = Project::new();
    p.file("1_t1.up.sql", &create(1))
        .file("2_t2.up.sql", &create(2));
    db.exec("CREATE TABLE schema_migrations (version BIGINT NOT NULL PRIMARY KEY, dirty BOOLEAN NOT NULL)");
    db.exec("INSERT INTO schema_migrations VALUES (2, TRUE)");
    let out = p.strata(&db, &["adopt"]);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("dirty at version 2"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("migrate force"), "{}", stderr(&out));
    assert_eq!(
        db.query("SELECT count(*) FROM sqlite_master WHERE name LIKE 'strata%'"),
        ["0"],
        "nothing written"
    );
    assert_eq!(
        db.query("SELECT version, dirty FROM schema_migrations"),
        ["2|1"]
    );
}

/// dbmate itself (from npm, scripts/othertools) migrates the first half of a tree on
/// SQLite and PostgreSQL; `strata adopt` + `strata up` apply the second half once, and
/// dbmate's table stays as dbmate wrote it (dbmate still sees all four applied).
#[test]
fn a_database_dbmate_migrated_is_adopted() {
    let Some(dbmate) = std::env::var_os("STRATA_DBMATE") else {
        assert!(
            !required("dbmate"),
            "STRATA_TEST_REQUIRE includes dbmate but STRATA_DBMATE is unset (scripts/othertools installs it)"
        );
        eprintln!("skipped a_database_dbmate_migrated_is_adopted: dbmate not installed (scripts/othertools)");
        return;
    };
    let mut dbs = vec![TestDb::sqlite()];
    if let Some(pg) = TestDb::postgres("adopt_dbmate") {
        dbs.push(pg);
    }
    for db in dbs {
        let dbmate_url = match &db {
            TestDb::Sqlite { path, .. } => format!("sqlite:{}", path.display()),
            other => format!("{}&sslmode=disable", other.url()),
        };
        let run_dbmate = |p: &Project, args: &[&str]| {
            let out = std::process::Command::new(&dbmate)
                .arg("--url")
                .arg(&dbmate_url)
                .arg("--migrations-dir")
                .arg(p.migrations())
                .arg("--no-dump-schema")
                .args(args)
                .output()
                .expect("dbmate");
            assert!(
                out.status.success(),
                "dbmate {args:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let p = Project::new();
        let file = |n: usize| {
            (
                format!("2024010100000{n}_t{n}.sql"),
                format!(
                    "-- migrate:up\n{}\n-- migrate:down\nDROP TABLE t{n};\n",
                    create(n)
                ),
            )
        };
        for n in 1..=2 {
            let (f, t) = file(n);
            p.file(&f, &t);
        }
        run_dbmate(&p, &["up"]);
        for n in 3..=4 {
            let (f, t) = file(n);
            p.file(&f, &t);
        }
        let before = db.query("SELECT version FROM schema_migrations ORDER BY 1");
        assert_eq!(before, ["20240101000001", "20240101000002"]);
        let status = ok(&p.strata(&db, &["status"]));
        assert!(
            status.contains("managed by dbmate (schema_migrations): 2 applied"),
            "{status}"
        );
        ok(&p.strata(&db, &["adopt"]));
        let up = ok(&p.strata(&db, &["up"]));
        assert!(up.contains("Applied 2 migration(s)"), "{up}");
        assert_eq!(db.tables().iter().filter(|t| t.starts_with('t')).count(), 4);
        assert_eq!(
            db.query("SELECT version FROM schema_migrations ORDER BY 1"),
            before
        );
        // dbmate, unaware of strata, sees 3 and 4 pending: its table was never written.
        let dbmate_status = run_dbmate(&p, &["status"]);
        assert!(dbmate_status.contains("Pending: 2"), "{dbmate_status}");
    }
}
