//! Every command on every engine, checked against what the database holds afterwards.

use crate::support::*;

fn three(p: &Project) {
    p.file("001_users.sql", "-- Description: users table\nCREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL);\n-- strata:down\nDROP TABLE users;\n")
        .file("002_posts.up.sql", "CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER);\n")
        .file("002_posts.down.sql", "DROP TABLE posts;\n")
        .file("003_tags.sql", "-- Depends: 001\nCREATE TABLE tags (id INTEGER PRIMARY KEY);\nINSERT INTO tags (id) VALUES (1), (2);\n-- strata:down\nDROP TABLE tags;\n");
}

#[test]
fn up_status_rollback_round_trip() {
    for db in engines("up_status_rollback_round_trip") {
        let p = Project::new();
        three(&p);
        let s = json(&p.strata(&db, &["status", "--json"]));
        assert_eq!(s["head"], "003");
        assert!(s["current"].is_null());
        assert!(s["migrations"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["state"] == "pending"));

        let up = p.strata(&db, &["up", "--json"]);
        ok(&up);
        let up = json(&up);
        assert_eq!(up["dry_run"], false);
        let applied: Vec<_> = up["applied"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["version"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(applied, ["001", "002", "003"]);
        assert_eq!(db.tables(), ["posts", "tags", "users"]);

        let s = json(&p.strata(&db, &["--json", "status"]));
        assert_eq!(s["current"], "003");
        let m = &s["migrations"][2];
        assert_eq!(m["state"], "applied");
        assert_eq!(m["depends_on"], serde_json::json!(["001"]));
        assert_eq!(m["checksum"].as_str().unwrap().len(), 64);
        assert!(m["applied_at"].is_string() && m["execution_time_ms"].is_number());

        // History rows carry checksum, stored rollback SQL, who applied.
        let rows = db.query("SELECT version, checksum, rollback_sql, success, applied_by FROM {history} ORDER BY id");
        assert_eq!(rows.len(), 3);
        assert!(rows[1].contains("DROP TABLE posts;"), "{rows:?}");
        let meta = db.query("SELECT value FROM {metadata} WHERE \"key\" = 'schema_version'");
        assert_eq!(meta, ["003"]);

        // up again: nothing to do.
        assert!(ok(&p.strata(&db, &["up"])).contains("Nothing to do"));

        let rb = json(&p.strata(&db, &["rollback", "--json"]));
        assert_eq!(rb["rolled_back"][0]["version"], "003");
        assert_eq!(db.tables(), ["posts", "users"]);
        assert_eq!(
            db.query("SELECT value FROM {metadata} WHERE \"key\" = 'schema_version'"),
            ["002"]
        );

        ok(&p.strata(&db, &["rollback", "--to", "base"]));
        assert!(db.tables().is_empty());
        assert!(db.query("SELECT version FROM {history}").is_empty());

        // Audit: every apply and rollback, newest first in history.
        let ops = db.query("SELECT operation || ':' || record_id FROM {audit} ORDER BY id");
        assert_eq!(
            ops,
            [
                "apply:001",
                "apply:002",
                "apply:003",
                "rollback:003",
                "rollback:002",
                "rollback:001"
            ]
        );
        let h = json(&p.strata(&db, &["history", "--json", "--limit", "2"]));
        assert_eq!(h["events"].as_array().unwrap().len(), 2);
        assert_eq!(h["events"][0]["operation"], "rollback");
        assert_eq!(h["events"][0]["version"], "001");
        // The words status uses: the same version, name and timing fields.
        assert_eq!(h["events"][0]["name"], "users");
        assert!(h["events"][1]["execution_time_ms"].is_i64(), "{h}");
    }
}

#[test]
fn targets_plus_minus_version_and_id() {
    for db in engines("targets") {
        let p = Project::new();
        three(&p);
        ok(&p.strata(&db, &["up", "--target", "+1"]));
        assert_eq!(db.tables(), ["users"]);
        ok(&p.strata(&db, &["up", "--target", "002_posts"]));
        assert_eq!(db.tables(), ["posts", "users"]);
        ok(&p.strata(&db, &["migrate", "--target", "head"]));
        assert_eq!(db.tables().len(), 3);
        ok(&p.strata(&db, &["rollback", "-2"]));
        assert_eq!(db.tables(), ["users"]);
        ok(&p.strata(&db, &["up"]));
        ok(&p.strata(&db, &["rollback", "001"]));
        assert_eq!(db.tables(), ["users"]);
        let bad = p.strata(&db, &["up", "--target", "999"]);
        assert_eq!(code(&bad), 2, "{}", stderr(&bad));
        assert!(stderr(&bad).contains("unknown target `999`"));
    }
}

#[test]
fn dry_run_prints_sql_and_changes_nothing() {
    for db in engines("dry_run") {
        let p = Project::new();
        three(&p);
        let before = db.dump();
        let out = ok(&p.strata(&db, &["up", "--dry-run"]));
        assert!(out.contains("CREATE TABLE users"), "{out}");
        assert!(out.contains("INSERT INTO tags"), "{out}");
        assert_eq!(db.dump(), before);
        let j = json(&p.strata(&db, &["up", "--dry-run", "--json"]));
        assert_eq!(j["dry_run"], true);
        assert_eq!(j["applied"].as_array().unwrap().len(), 3);
        ok(&p.strata(&db, &["up"]));
        let before = db.dump();
        let out = ok(&p.strata(&db, &["rollback", "base", "--dry-run"]));
        assert!(out.contains("DROP TABLE tags"), "{out}");
        let out = ok(&p.strata(&db, &["down", "001", "--dry-run", "--cascade"]));
        assert!(
            out.contains("DROP TABLE tags") && out.contains("DROP TABLE users"),
            "{out}"
        );
        assert_eq!(db.dump(), before);
    }
}

#[test]
fn down_refuses_dependents_unless_cascade() {
    for db in engines("down_cascade") {
        let p = Project::new();
        three(&p);
        ok(&p.strata(&db, &["up"]));
        let o = p.strata(&db, &["down", "001"]);
        assert_eq!(code(&o), 3, "{}", stderr(&o));
        assert!(stderr(&o).contains("003"), "{}", stderr(&o));
        assert_eq!(db.tables().len(), 3);
        let j = json(&p.strata(&db, &["down", "001", "--cascade", "--json"]));
        let v: Vec<_> = j["rolled_back"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["version"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(v, ["003", "001"]);
        assert_eq!(db.tables(), ["posts"]);
        // 002 has no dependency edge to 001, so it stays.
        let o = p.strata(&db, &["down", "001"]);
        assert_eq!(code(&o), 2);
        assert!(stderr(&o).contains("not applied"));
    }
}

#[test]
fn stamp_and_baseline_record_without_running() {
    for db in engines("stamp") {
        let p = Project::new();
        three(&p);
        ok(&p.strata(&db, &["baseline", "002"]));
        assert!(db.tables().is_empty(), "baseline must not run SQL");
        assert_eq!(
            db.query("SELECT version FROM {history} ORDER BY id"),
            ["001", "002"]
        );
        ok(&p.strata(&db, &["stamp", "003"]));
        assert_eq!(
            db.query("SELECT operation FROM {audit} ORDER BY id"),
            ["baseline", "baseline", "stamp"]
        );
        let o = p.strata(&db, &["stamp", "003"]);
        assert_eq!(code(&o), 2);
        assert!(stderr(&o).contains("already applied"));
    }
}

#[test]
fn list_info_validate_create() {
    let db = TestDb::sqlite();
    let p = Project::new();
    three(&p);
    let l = json(&p.strata(&db, &["list", "--json"]));
    assert_eq!(l["migrations"][0]["has_rollback"], true);
    assert_eq!(l["migrations"][2]["depends_on"], serde_json::json!(["001"]));
    let i = json(&p.strata(&db, &["info", "--json"]));
    assert_eq!(i["database"]["kind"], "sqlite");
    assert_eq!(i["counts"]["pending"], 3);
    assert_eq!(i["settings"]["timeout_seconds"], 300);
    assert!(ok(&p.strata(&db, &["validate"])).contains("valid"));

    let c = json(&p.strata(&db, &["create", "Add user settings!", "--json"]));
    assert_eq!(c["version"], "004");
    let text = std::fs::read_to_string(p.migrations().join("004_add_user_settings.sql")).unwrap();
    assert!(
        text.contains("-- Description: Add user settings!") && text.contains("-- strata:down"),
        "{text}"
    );
    assert!(p.migrations().join("strata.sum").exists());
    // The new file parses, and the sum matches.
    assert!(ok(&p.strata(&db, &["validate"])).contains("4 migration(s)"));
    ok(&p.strata(&db, &["up"]));
}

#[test]
fn config_file_env_vars_and_embedded_default() {
    let p = Project::new();
    three(&p);
    // No URL anywhere: sqlite://strata.db in the current directory.
    let mut cmd = assert_cmd::Command::cargo_bin("strata").unwrap();
    let o = cmd
        .current_dir(p.root())
        .env_remove("DATABASE_URL")
        .env_remove("DB_HOST")
        .env_remove("DB_NAME")
        .args(["up"])
        .output()
        .unwrap();
    ok(&o);
    assert!(p.root().join("strata.db").exists());

    // strata.toml supplies URL and directory.
    std::fs::write(p.root().join("strata.toml"), "database_url = \"sqlite://other.db\"\nmigrations = \"migrations\"\n[settings]\ntimeout_seconds = 42\n").unwrap();
    let mut cmd = assert_cmd::Command::cargo_bin("strata").unwrap();
    let o = cmd
        .current_dir(p.root())
        .env_remove("DATABASE_URL")
        .args(["info", "--json"])
        .output()
        .unwrap();
    let i = json(&o);
    assert_eq!(i["database"]["url"], "sqlite://other.db");
    assert_eq!(i["database"]["url_source"], "config_file");
    assert_eq!(i["settings"]["timeout_seconds"], 42);

    // DATABASE_URL beats the file; the flag beats both.
    let mut cmd = assert_cmd::Command::cargo_bin("strata").unwrap();
    let o = cmd
        .current_dir(p.root())
        .env("DATABASE_URL", "sqlite://env.db")
        .args(["info", "--json"])
        .output()
        .unwrap();
    assert_eq!(json(&o)["database"]["url_source"], "environment");
    let mut cmd = assert_cmd::Command::cargo_bin("strata").unwrap();
    let o = cmd
        .current_dir(p.root())
        .env("DATABASE_URL", "sqlite://env.db")
        .args(["info", "--json", "--database-url", "sqlite://flag.db"])
        .output()
        .unwrap();
    assert_eq!(json(&o)["database"]["url"], "sqlite://flag.db");
}

#[test]
fn db_env_vars_compose_a_postgres_url_and_hide_the_password() {
    let Some(db) = TestDb::postgres("db_env_vars") else {
        return;
    };
    let TestDb::Postgres { name, .. } = &db else {
        unreachable!()
    };
    let p = Project::new();
    three(&p);
    let mut cmd = assert_cmd::Command::cargo_bin("strata").unwrap();
    let o = cmd
        .current_dir(p.root())
        .env_remove("DATABASE_URL")
        .envs([
            ("DB_HOST", "127.0.0.1"),
            ("DB_PORT", "5432"),
            ("DB_NAME", name.as_str()),
            ("DB_USER", "postgres"),
            ("DB_PASSWORD", "s3cret-pw"),
        ])
        .args(["--dir", "migrations", "up", "--json"])
        .output()
        .unwrap();
    ok(&o);
    assert_eq!(db.tables().len(), 3);
    let mut cmd = assert_cmd::Command::cargo_bin("strata").unwrap();
    let o = cmd
        .current_dir(p.root())
        .env_remove("DATABASE_URL")
        .envs([
            ("DB_HOST", "127.0.0.1"),
            ("DB_NAME", name.as_str()),
            ("DB_USER", "postgres"),
            ("DB_PASSWORD", "s3cret-pw"),
        ])
        .args(["--dir", "migrations", "info", "--json"])
        .output()
        .unwrap();
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(!all.contains("s3cret-pw"), "{all}");
    assert!(all.contains("***"), "{all}");
}

#[test]
fn every_layout_in_one_directory() {
    for db in engines("every_layout") {
        let p = Project::new();
        p.file("V1__flyway_init.sql", "CREATE TABLE a (id INTEGER);\n")
            .file("U1__flyway_init.sql", "DROP TABLE a;\n")
            .file("V0002.Authelia_Style.up.sql", "CREATE TABLE b (id INTEGER);\n")
            .file("V0002.Authelia_Style.down.sql", "DROP TABLE b;\n")
            .file("3_dbmate.sql", "-- migrate:up\nCREATE TABLE c (id INTEGER);\n-- migrate:down\nDROP TABLE c;\n")
            .file("4_goose.sql", "-- +goose Up\n-- +goose StatementBegin\nCREATE TABLE d (id INTEGER);\n-- +goose StatementEnd\n-- +goose Down\nDROP TABLE d;\n")
            .file("5_pair.json", "{\"name\": \"pair\", \"description\": \"json metadata\", \"transactional\": true, \"dependencies\": [\"3\"]}")
            .file("5_pair.sql", "CREATE TABLE e (id INTEGER);\n")
            .file("5_pair_rollback.sql", "DROP TABLE e;\n")
            .file("2024-01-01-000000_diesel/up.sql", "CREATE TABLE f (id INTEGER);\n")
            .file("2024-01-01-000000_diesel/down.sql", "DROP TABLE f;\n")
            .file("20240102000000_sqlx.sql", "-- no-transaction\nCREATE TABLE g (id INTEGER);\n")
            .file("R__views.sql", "CREATE VIEW IF NOT EXISTS_v AS SELECT 1 AS x;\n".replace("IF NOT EXISTS_v", "v_ones").as_str())
            .file("README.md", "not a migration")
            .file("migration_config.yaml", "migrations:\n  - filename: 3_dbmate.sql\n    description: from the manifest\nsettings:\n  timeout_seconds: 120\n");
        let l = json(&p.strata(&db, &["list", "--json"]));
        let ids: Vec<_> = l["migrations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["version"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            ids,
            [
                "1",
                "0002",
                "3",
                "4",
                "5",
                "2024-01-01-000000",
                "20240102000000",
                "R__views"
            ]
        );
        assert_eq!(l["migrations"][2]["description"], "from the manifest");
        assert_eq!(l["migrations"][6]["transactional"], false);
        assert_eq!(l["migrations"][4]["description"], "json metadata");
        ok(&p.strata(&db, &["up"]));
        assert_eq!(db.tables(), ["a", "b", "c", "d", "e", "f", "g"]);
        assert_eq!(db.query("SELECT x FROM v_ones"), ["1"]);
        // The repeatable migration runs again only when it changes.
        assert!(ok(&p.strata(&db, &["up"])).contains("Nothing to do"));
        p.file(
            "R__views.sql",
            "DROP VIEW v_ones;\nCREATE VIEW v_ones AS SELECT 2 AS x;\n",
        );
        ok(&p.strata(&db, &["up"]));
        assert_eq!(db.query("SELECT x FROM v_ones"), ["2"]);
        // 20240102000000 has no rollback: refused before anything runs.
        let o = p.strata(&db, &["rollback", "1"]);
        assert_eq!(code(&o), 2, "{}", stderr(&o));
        assert!(
            stderr(&o).contains("20240102000000 has no rollback script"),
            "{}",
            stderr(&o)
        );
        assert_eq!(db.tables().len(), 7);
        ok(&p.strata(&db, &["down", "2024-01-01-000000"]));
        ok(&p.strata(&db, &["down", "1"]));
        assert_eq!(db.tables(), ["b", "c", "d", "e", "g"]);
    }
}

#[test]
fn create_code_scaffolds_a_code_migration_the_reader_ignores() {
    let db = TestDb::sqlite();
    let p = Project::new();
    p.file("001_a.sql", "CREATE TABLE a (id INTEGER);\n");
    let out = ok(&p.strata(&db, &["create", "Backfill slugs", "--code"]));
    assert!(out.contains("register(BackfillSlugs)"), "{out}");
    let text = std::fs::read_to_string(p.migrations().join("002_backfill_slugs.rs")).unwrap();
    assert!(
        text.contains("impl CodeMigration for BackfillSlugs"),
        "{text}"
    );
    assert!(
        text.contains("\"002\"") && text.contains("async fn down"),
        "{text}"
    );
    // The .rs file is not a migration of the directory: status still lists one.
    let st = json(&p.strata(&db, &["--json", "status"]));
    assert_eq!(
        st["migrations"].as_array().map(|a| a.len()),
        Some(1),
        "{st}"
    );
}

#[test]
fn help_json_and_logs_say_what_a_user_expects() {
    let db = TestDb::sqlite();
    let p = Project::new();
    p.file("001_a.sql", "CREATE TABLE a (id INTEGER);\n").file(
        "002_b.sql",
        "-- Depends: 001\nCREATE TABLE b (id INTEGER);\n",
    );
    // `--json` answers with JSON on every command it covers, graph and sum included.
    let g = json(&p.strata(&db, &["--json", "graph"]));
    assert_eq!(
        g["migrations"][1]["depends_on"],
        serde_json::json!(["001"]),
        "{g}"
    );
    let s = json(&p.strata(&db, &["--json", "sum"]));
    assert_eq!(s["migrations"], 2, "{s}");
    // A usage error under --json is JSON on stdout, exit 2.
    let bad = p.strata(&db, &["--json", "up", "--no-such-flag"]);
    assert_eq!(code(&bad), 2);
    let e = json(&bad);
    assert_eq!(e["error"]["kind"], "usage", "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--no-such-flag"),
        "{e}"
    );
    // Help: the version flag on the program only; fleet help says run, not apply.
    let help = ok(&p.strata(&db, &["status", "--help"]));
    assert!(!help.contains("--version"), "{help}");
    assert!(help.contains("Run on every database in FILE"), "{help}");
    // info names where the URL came from in the user's words.
    let info = ok(&p.strata(&db, &["info"]));
    assert!(info.contains("from --database-url)"), "{info}");
    // stdout on a terminal, stderr to a file: the error on stderr has no colour codes
    // (`script` gives the command a terminal).
    let err_file = p.root().join("stderr.txt");
    let cmd = format!(
        "{} --database-url '{}' --dir '{}' up --target nope 2>'{}'",
        assert_cmd::cargo::cargo_bin("strata").display(),
        db.url(),
        p.migrations().display(),
        err_file.display()
    );
    let o = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env_remove("NO_COLOR")
        .output()
        .expect("script (util-linux) runs the command on a terminal");
    assert_ne!(o.status.code(), Some(0), "{o:?}");
    let err = std::fs::read_to_string(&err_file).unwrap();
    assert!(err.contains("error:") && !err.contains('\x1b'), "{err:?}");
}

/// A code migration the application applied, met by the CLI, which does not have it:
/// status lists it in version order as applied by the application, up applies the
/// files around it, validate is clean, and a rollback that would reach it stops
/// instead of dropping its row as if its stand-in script had undone it.
#[test]
fn code_migration_rows_written_by_the_application() {
    struct Backfill;
    #[async_trait::async_trait]
    impl strata_core::CodeMigration for Backfill {
        fn version(&self) -> &str {
            "002"
        }
        fn name(&self) -> &str {
            "backfill"
        }
        async fn up(
            &self,
            _db: &mut strata_core::CodeContext<'_>,
        ) -> Result<(), strata_core::CodeError> {
            Ok(())
        }
        async fn down(
            &self,
            _db: &mut strata_core::CodeContext<'_>,
        ) -> Result<(), strata_core::CodeError> {
            Ok(())
        }
    }
    for db in engines("code_rows") {
        let p = Project::new();
        p.file(
            "001_a.sql",
            "CREATE TABLE a (id INTEGER);\n-- strata:down\nDROP TABLE a;\n",
        )
        .file(
            "003_b.sql",
            "CREATE TABLE b (id INTEGER);\n-- strata:down\nDROP TABLE b;\n",
        );
        // The application: files 001 and 003 plus its code migration 002, up to 002.
        let app = strata_core::Migrator::from_dir(p.migrations())
            .unwrap()
            .register(Backfill)
            .unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let mut d = strata_drivers::connect(&db.url(), &Default::default())
                .await
                .unwrap();
            app.up(
                d.as_mut(),
                &strata_core::Target::Version("002".into()),
                &Default::default(),
                &mut strata_core::Silent,
            )
            .await
            .unwrap();
        });

        let status = json(&p.strata(&db, &["--json", "status"]));
        let rows: Vec<(String, String, bool)> = status["migrations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["version"].as_str().unwrap().to_string(),
                    r["state"].as_str().unwrap().to_string(),
                    r["code"].as_bool().unwrap_or(false),
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("001".into(), "applied".into(), false),
                ("002".into(), "applied".into(), true),
                ("003".into(), "pending".into(), false),
            ],
            "{}: {status}",
            db.url()
        );
        let text = ok(&p.strata(&db, &["status"]));
        assert!(
            text.contains("code migration, run by the application"),
            "{text}"
        );
        assert!(!text.contains("missing"), "{text}");

        let valid = p.strata(&db, &["validate"]);
        assert_eq!(code(&valid), 0, "{}{}", stdout(&valid), stderr(&valid));
        let up = p.strata(&db, &["up"]);
        assert_eq!(code(&up), 0, "{}", stderr(&up));
        assert_eq!(
            json(&p.strata(&db, &["--json", "status"]))["current"],
            "003"
        );

        // Rolling back 003 is fine; reaching 002 stops before anything runs.
        ok(&p.strata(&db, &["rollback", "-1"]));
        let refused = p.strata(&db, &["rollback", "-1"]);
        assert_eq!(code(&refused), 3, "{}", stderr(&refused));
        assert!(
            stderr(&refused).contains("applied by the application's code migration"),
            "{}",
            stderr(&refused)
        );
        let after = json(&p.strata(&db, &["--json", "status"]));
        assert_eq!(
            after["current"], "002",
            "the code row is still there: {after}"
        );
    }
}

/// The machine contract: every command answers `--json` with JSON on stdout whose
/// top-level keys are the documented ones (`docs/exit-codes.md`), errors included, or
/// refuses `--json` as a usage error in JSON. A key renamed or dropped fails here.
#[test]
fn every_command_answers_json_with_its_documented_keys() {
    let db = TestDb::sqlite();
    let p = Project::new();
    p.file(
        "001_a.sql",
        "CREATE TABLE a (id INTEGER);\n-- strata:down\nDROP TABLE a;\n",
    )
    .file(
        "002_b.sql",
        "CREATE TABLE b (id INTEGER);\n-- strata:down\nDROP TABLE b;\n",
    );
    let error_keys = ["error"];
    // (arguments, exit code, top-level keys), run in this order on one database.
    let cases: &[(&[&str], i32, &[&str])] = &[
        (&["list"], 0, &["migrations"]),
        (
            &["status"],
            0,
            &["database", "current", "head", "migrations"],
        ),
        (&["validate"], 0, &["valid", "migrations", "findings"]),
        (
            &["lint"],
            0,
            &[
                "dialect",
                "dialect_from",
                "findings",
                "errors",
                "warnings",
                "not_analysed",
            ],
        ),
        (&["graph"], 0, &["migrations"]),
        (
            &["health"],
            1,
            &[
                "status",
                "reachable",
                "latency_ms",
                "server_version",
                "history_tables",
                "current",
                "pending",
                "drift",
                "failed",
                "stopped",
                "lock_holder",
                "problems",
                "database",
            ],
        ),
        (&["up", "--dry-run"], 0, &["applied", "dry_run", "lint"]),
        (&["up", "--target", "001"], 0, &["applied", "dry_run"]),
        (
            &["info"],
            0,
            &[
                "strata_version",
                "database",
                "config",
                "settings",
                "counts",
                "current",
            ],
        ),
        (&["history"], 0, &["events"]),
        (&["repair"], 0, &["repaired", "missing", "dry_run"]),
        (&["rollback"], 0, &["rolled_back", "dry_run"]),
        (&["up"], 0, &["applied", "dry_run"]),
        (&["down", "002"], 0, &["rolled_back", "dry_run"]),
        (&["stamp", "002"], 0, &["applied", "dry_run"]),
        (&["backup", "list"], 0, &["backups"]),
        (&["create", "c"], 0, &["created", "version"]),
        (&["sum"], 0, &["file", "migrations"]),
        (&["up", "--target", "nope"], 2, &error_keys),
        (&["down", "999"], 2, &error_keys),
        (&["up", "--no-such-flag"], 2, &error_keys),
        (&["completions", "bash"], 2, &error_keys),
    ];
    for (args, want_code, keys) in cases {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let o = p.strata(&db, &all);
        assert_eq!(
            code(&o),
            *want_code,
            "{args:?}: {}{}",
            stdout(&o),
            stderr(&o)
        );
        let v = json(&o);
        let have: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        for k in *keys {
            assert!(have.contains(k), "{args:?}: no `{k}` in {v}");
        }
        if *keys == error_keys {
            let e = &v["error"];
            for k in ["kind", "message", "file", "line"] {
                assert!(e.get(k).is_some(), "{args:?}: error without `{k}`: {v}");
            }
        }
        // Rows of migrations use one vocabulary wherever they appear.
        for list in ["migrations", "applied", "rolled_back", "events"] {
            for row in v[list].as_array().into_iter().flatten() {
                assert!(
                    row.get("version").is_some(),
                    "{args:?}: {list} row without version: {row}"
                );
            }
        }
    }

    // A run that fails partway says what it applied and which step failed.
    for f in std::fs::read_dir(p.migrations()).unwrap() {
        let f = f.unwrap().path();
        if !f.ends_with("001_a.sql") && !f.ends_with("002_b.sql") {
            std::fs::remove_file(f).unwrap();
        }
    }
    p.file("003_bad.sql", "INSERT INTO nowhere VALUES (1);\n");
    let o = p.strata(&TestDb::sqlite(), &["--json", "up"]);
    assert_eq!(code(&o), 1);
    let v = json(&o);
    assert_eq!(v["error"]["kind"], "migration_failed", "{v}");
    let applied: Vec<&str> = v["applied"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["version"].as_str().unwrap())
        .collect();
    assert_eq!(applied, ["001", "002"], "{v}");
    assert_eq!(v["failed"]["version"], "003", "{v}");
    assert_eq!(v["failed"]["line"], 1, "{v}");

    // An unreachable database has an unknown number of pending migrations, not zero.
    let h = strata_in(
        p.root(),
        "postgres://nobody@127.0.0.1:1/none",
        &p.migrations(),
        &["--json", "health"],
    );
    let h = json(&h);
    assert_eq!(h["reachable"], false, "{h}");
    assert!(h["pending"].is_null(), "{h}");

    // `--log-format json`: one event per migration at info, with its fields.
    let fresh = TestDb::sqlite();
    let o = p.strata(&fresh, &["--log-format", "json", "up", "--target", "002"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let events: Vec<serde_json::Value> = stderr(&o)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|e: &serde_json::Value| e["fields"]["migration"].is_string())
        .collect();
    assert_eq!(events.len(), 2, "{}", stderr(&o));
    for (e, (id, version)) in events.iter().zip([("001_a", "001"), ("002_b", "002")]) {
        assert_eq!(e["level"], "INFO", "{e}");
        let f = &e["fields"];
        assert_eq!(f["migration"], id, "{e}");
        assert_eq!(f["version"], version, "{e}");
        assert_eq!(f["direction"], "up", "{e}");
        assert_eq!(f["outcome"], "ok", "{e}");
        assert!(f["duration_ms"].is_u64(), "{e}");
    }
    // In text, those events are the progress lines already on stdout: stderr stays quiet.
    let quiet = p.strata(&TestDb::sqlite(), &["up", "--target", "002"]);
    assert_eq!(stderr(&quiet), "", "text logs add nothing to a clean run");
}
