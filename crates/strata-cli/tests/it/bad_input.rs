//! Bad input: each case exits 2 (or 3), names the file and line, and leaves the
//! database exactly as it was. The snapshots are what a user sees.

use crate::support::*;

type Files = &'static [(&'static str, &'static [u8])];

struct Case {
    name: &'static str,
    files: Files,
    args: &'static [&'static str],
    code: i32,
}

/// A case that starts from a database in some state: `setup` files are written and the
/// `setup_args` commands run (their exit codes are not checked: some leave a failure
/// behind on purpose), then `files` are written, `remove` deleted, and `args` run.
struct Stateful {
    name: &'static str,
    setup: Files,
    setup_args: &'static [&'static [&'static str]],
    files: Files,
    remove: &'static [&'static str],
    /// Written to the project root (strata.toml, .env.NAME, strata.sum...).
    root: Files,
    env: &'static [(&'static str, &'static str)],
    args: &'static [&'static str],
    code: i32,
}

const NONE: Stateful = Stateful {
    name: "",
    setup: &[],
    setup_args: &[],
    files: &[],
    remove: &[],
    root: &[],
    env: &[],
    args: &["up"],
    code: 2,
};

const A: (&str, &[u8]) = (
    "001_a.sql",
    b"CREATE TABLE a (id INTEGER);\n-- strata:down\nDROP TABLE a;\n",
);
const B: (&str, &[u8]) = (
    "002_b.sql",
    b"CREATE TABLE b (id INTEGER);\n-- strata:down\nDROP TABLE b;\n",
);
const UP: &[&[&str]] = &[&["up"]];

const STATEFUL: &[Stateful] = &[
    Stateful {
        name: "drift_edited_after_apply",
        setup: &[A],
        setup_args: UP,
        files: &[("001_a.sql", b"CREATE TABLE a (id BIGINT);\n-- strata:down\nDROP TABLE a;\n")],
        code: 3,
        ..NONE
    },
    Stateful {
        name: "drift_applied_file_deleted",
        setup: &[A, B],
        setup_args: UP,
        remove: &["002_b.sql"],
        code: 3,
        ..NONE
    },
    Stateful {
        name: "out_of_order_after_merge",
        setup: &[B],
        setup_args: UP,
        files: &[A],
        code: 3,
        ..NONE
    },
    Stateful {
        name: "stale_sum_file",
        setup: &[A],
        setup_args: &[&["sum"]],
        files: &[B],
        code: 3,
        ..NONE
    },
    Stateful {
        name: "garbled_sum_file",
        setup: &[A],
        root: &[],
        files: &[("strata.sum", b"h1:not-a-hash\n001_a.sql zzz\n")],
        code: 3,
        ..NONE
    },
    Stateful {
        name: "failed_row_blocks_up",
        setup: &[(
            "001_a.sql",
            b"-- strata:no-transaction\nCREATE TABLE a (id INTEGER);\nINSERT INTO nowhere VALUES (1);\n",
        )],
        setup_args: UP,
        code: 3,
        ..NONE
    },
    Stateful {
        name: "down_unknown_version",
        setup: &[A],
        setup_args: UP,
        args: &["down", "999"],
        ..NONE
    },
    Stateful {
        name: "down_not_applied",
        setup: &[A, B],
        setup_args: &[&["up", "--target", "001"]],
        args: &["down", "002"],
        ..NONE
    },
    Stateful {
        name: "rollback_unknown_target",
        setup: &[A],
        setup_args: UP,
        args: &["rollback", "nope"],
        ..NONE
    },
    Stateful {
        name: "rollback_forward_target",
        setup: &[A],
        setup_args: UP,
        args: &["rollback", "+1"],
        ..NONE
    },
    Stateful {
        name: "up_backward_target",
        setup: &[A],
        args: &["up", "--target", "-1"],
        ..NONE
    },
    Stateful {
        name: "stamp_unknown_version",
        setup: &[A],
        args: &["stamp", "042"],
        ..NONE
    },
    Stateful {
        name: "stamp_already_applied",
        setup: &[A],
        setup_args: UP,
        args: &["stamp", "001"],
        ..NONE
    },
    Stateful {
        name: "down_with_dependents",
        setup: &[A, ("002_b.sql", b"-- Depends: 001\nCREATE TABLE b (id INTEGER);\n-- strata:down\nDROP TABLE b;\n")],
        setup_args: UP,
        args: &["down", "001"],
        code: 3,
        ..NONE
    },
    Stateful {
        name: "config_unknown_lock_mode",
        setup: &[A],
        root: &[("strata.toml", b"[settings]\nlock = \"mutex\"\n")],
        ..NONE
    },
    Stateful {
        name: "config_misspelled_setting",
        setup: &[A],
        root: &[("strata.toml", b"[settings]\nretry_atempts = 3\n")],
        ..NONE
    },
    Stateful {
        name: "config_unknown_backup_key",
        setup: &[A],
        root: &[("strata.toml", b"[backup]\nretention = 3\n")],
        ..NONE
    },
    Stateful {
        name: "config_negative_retries",
        setup: &[A],
        root: &[("strata.toml", b"[settings]\nretry_attempts = -1\n")],
        ..NONE
    },
    Stateful {
        name: "config_not_toml",
        setup: &[A],
        root: &[("strata.toml", b"database_url = postgres://x\n")],
        ..NONE
    },
    Stateful {
        name: "config_undefined_environment",
        setup: &[A],
        root: &[("strata.toml", b"[environments.prod]\nprotected = true\n")],
        args: &["--env", "prdo", "up"],
        ..NONE
    },
    Stateful {
        name: "dotenv_line_without_equals",
        setup: &[A],
        root: &[(".env.dev", b"# dev settings\nDATABASE_URL\n")],
        args: &["--env", "dev", "up"],
        ..NONE
    },
    Stateful {
        name: "env_backup_flag_not_boolean",
        setup: &[A],
        env: &[("BACKUP_BEFORE_MIGRATION", "maybe")],
        ..NONE
    },
    Stateful {
        name: "utf16_file",
        setup: &[("001_a.sql", b"\xff\xfeC\x00R\x00E\x00A\x00T\x00E\x00")],
        ..NONE
    },
    Stateful {
        name: "flyway_duplicate_versions",
        setup: &[("V1__a.sql", b"SELECT 1;\n"), ("V1__b.sql", b"SELECT 2;\n")],
        ..NONE
    },
    Stateful {
        name: "depends_on_itself",
        setup: &[("001_a.sql", b"-- Depends: 001\nSELECT 1;\n")],
        ..NONE
    },
    Stateful {
        name: "manifest_unknown_key",
        setup: &[A, ("migration_config.yaml", b"migratons:\n  - filename: 001_a.sql\n")],
        ..NONE
    },
    Stateful {
        name: "manifest_bad_setting",
        setup: &[A, ("migration_config.yaml", b"settings:\n  timeout_seconds: soon\nmigrations:\n  - filename: 001_a.sql\n")],
        ..NONE
    },
    Stateful {
        name: "json_metadata_wrong_type",
        setup: &[A, ("001_a.json", b"{\"dependencies\": 7}\n")],
        ..NONE
    },
    Stateful {
        name: "repair_unknown_flag",
        setup: &[A],
        args: &["repair", "--force"],
        ..NONE
    },
    Stateful {
        name: "backup_restore_unknown_id",
        setup: &[A],
        setup_args: UP,
        args: &["backup", "restore", "20990101T000000000Z"],
        ..NONE
    },
];

const CASES: &[Case] = &[
    Case {
        name: "malformed_depends_header",
        files: &[("001_a.sql", b"-- Depends: 001,,\nSELECT 1;\n")],
        args: &["up"],
        code: 2,
    },
    Case {
        name: "unknown_directive",
        files: &[("001_a.sql", b"SELECT 1;\n-- strata:no-transactoin\n")],
        args: &["up"],
        code: 2,
    },
    Case {
        name: "bad_timeout",
        files: &[("001_a.sql", b"-- strata:timeout soon\nSELECT 1;\n")],
        args: &["up"],
        code: 2,
    },
    Case {
        name: "bad_created_header",
        files: &[("001_a.sql", b"-- Created: yesterday\nSELECT 1;\n")],
        args: &["up"],
        code: 2,
    },
    Case {
        name: "header_names_another_file",
        files: &[("002_b.sql", b"-- Migration: 001_a.sql\nSELECT 1;\n")],
        args: &["up"],
        code: 2,
    },
    Case {
        name: "dependency_cycle",
        files: &[
            ("001_a.sql", b"-- Depends: 002\nSELECT 1;\n"),
            ("002_b.sql", b"-- Depends: 001\nSELECT 1;\n"),
        ],
        args: &["up"],
        code: 2,
    },
    Case {
        name: "unknown_dependency",
        files: &[("001_a.sql", b"-- Depends: 042\nSELECT 1;\n")],
        args: &["up"],
        code: 2,
    },
    Case {
        name: "duplicate_version",
        files: &[("001_a.sql", b"SELECT 1;\n"), ("1_b.sql", b"SELECT 2;\n")],
        args: &["up"],
        code: 2,
    },
    Case {
        name: "not_utf8",
        files: &[("001_a.sql", b"SELECT 1;\nSELECT '\xff\xfe';\n")],
        args: &["up"],
        code: 2,
    },
    Case {
        name: "malformed_json_metadata",
        files: &[
            (
                "001_a.json",
                b"{\n  \"name\": \"a\",\n  \"transactional\": maybe\n}\n",
            ),
            ("001_a.sql", b"SELECT 1;\n"),
        ],
        args: &["up"],
        code: 2,
    },
    Case {
        name: "unknown_json_key",
        files: &[
            ("001_a.json", b"{\"nmae\": \"a\"}\n"),
            ("001_a.sql", b"SELECT 1;\n"),
        ],
        args: &["up"],
        code: 2,
    },
    Case {
        name: "malformed_manifest",
        files: &[
            ("001_a.sql", b"SELECT 1;\n"),
            (
                "migration_config.yaml",
                b"migrations:\n  - filename: 001_a.sql\n    dependencies: [\n",
            ),
        ],
        args: &["up"],
        code: 2,
    },
    Case {
        name: "manifest_names_missing_file",
        files: &[
            ("001_a.sql", b"SELECT 1;\n"),
            (
                "migration_config.yaml",
                b"migrations:\n  - filename: 001_a.sql\n  - filename: 002_gone.sql\n",
            ),
        ],
        args: &["up"],
        code: 2,
    },
    Case {
        name: "orphan_down_file",
        files: &[
            ("001_a.sql", b"SELECT 1;\n"),
            ("002_b.down.sql", b"SELECT 2;\n"),
        ],
        args: &["up"],
        code: 2,
    },
    Case {
        name: "two_rollbacks",
        files: &[
            ("001_a.sql", b"SELECT 1;\n-- strata:down\nSELECT 2;\n"),
            ("001_a.down.sql", b"SELECT 3;\n"),
        ],
        args: &["up"],
        code: 2,
    },
    Case {
        name: "second_down_marker",
        files: &[(
            "001_a.sql",
            b"SELECT 1;\n-- strata:down\nSELECT 2;\n-- migrate:down\n",
        )],
        args: &["up"],
        code: 2,
    },
    Case {
        name: "diesel_bad_metadata_toml",
        files: &[
            ("2024-01-01-000000_a/up.sql", b"SELECT 1;\n"),
            (
                "2024-01-01-000000_a/metadata.toml",
                b"run_in_transaction = \"no\"\n",
            ),
        ],
        args: &["up"],
        code: 2,
    },
    Case {
        name: "unknown_target",
        files: &[("001_a.sql", b"SELECT 1;\n")],
        args: &["up", "--target", "nope"],
        code: 2,
    },
    Case {
        name: "bad_relative_target",
        files: &[("001_a.sql", b"SELECT 1;\n")],
        args: &["up", "--target", "+x"],
        code: 2,
    },
    Case {
        name: "rollback_without_script",
        files: &[("001_a.sql", b"SELECT 1;\n")],
        args: &["down", "001"],
        code: 2,
    },
];

fn normalise(text: &str, p: &Project) -> String {
    let root = p.root().display().to_string();
    text.replace(&root, "[ROOT]")
}

#[test]
fn bad_input_snapshots() {
    for case in CASES {
        let db = TestDb::sqlite();
        let p = Project::new();
        for (name, bytes) in case.files {
            let path = p.migrations().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
        let before = db.dump();
        let o = p.strata(&db, case.args);
        assert_eq!(code(&o), case.code, "{}: {}", case.name, stderr(&o));
        assert_eq!(db.dump(), before, "{}: the database changed", case.name);
        insta::assert_snapshot!(case.name, normalise(&stderr(&o), &p));
        // The JSON error names the same file and line.
        let j = json(&p.strata(&db, &[&["--json"], case.args].concat()));
        assert!(j["error"]["message"].is_string(), "{}", case.name);
    }
}

/// Runs a stateful case against `db`; returns stderr (paths normalised).
fn run_stateful(case: &Stateful, db: &TestDb) -> String {
    let p = Project::new();
    let write = |dir: &std::path::Path, files: Files| {
        for (name, bytes) in files {
            let path = dir.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
    };
    write(&p.migrations(), case.setup);
    for args in case.setup_args {
        p.strata(db, args);
    }
    write(&p.migrations(), case.files);
    // strata.sum lives beside the migrations; other root files in the project root.
    for r in case.remove {
        p.remove(r);
    }
    write(p.root(), case.root);
    let before = db.dump();
    let mut cmd = assert_cmd::Command::cargo_bin("strata").unwrap();
    cmd.current_dir(p.root())
        .env_remove("DATABASE_URL")
        .env_remove("STRATA_ENV")
        .env("NO_COLOR", "1")
        .args(["--database-url", &db.url(), "--dir", "migrations"])
        .args(case.args);
    for (k, v) in case.env {
        cmd.env(k, v);
    }
    let o = cmd.output().unwrap();
    assert_eq!(code(&o), case.code, "{}: {}", case.name, stderr(&o));
    assert_eq!(db.dump(), before, "{}: the database changed", case.name);
    let err = stderr(&o);
    assert!(
        err.starts_with("error") || err.contains("\nerror"),
        "{}: {err}",
        case.name
    );
    normalise(&err, &p).replace(&db.url(), "[URL]")
}

#[test]
fn bad_input_from_a_database_in_every_state() {
    for case in STATEFUL {
        let err = run_stateful(case, &TestDb::sqlite());
        insta::assert_snapshot!(case.name, err);
        // The same refusal, and the same untouched database, on PostgreSQL.
        if let Some(pg) = TestDb::postgres(case.name) {
            let pg_err = run_stateful(case, &pg);
            assert_eq!(
                pg_err.lines().next(),
                err.lines().next(),
                "{}: PostgreSQL says something else",
                case.name
            );
        }
    }
}

#[test]
fn there_are_at_least_forty_bad_input_cases() {
    // CASES and STATEFUL, plus the config and URL cases below.
    assert!(CASES.len() + STATEFUL.len() + 2 + 5 >= 40);
}

#[test]
fn bad_config_file_names_the_line() {
    let db = TestDb::sqlite();
    let p = Project::new();
    p.file("001_a.sql", "SELECT 1;\n");
    std::fs::write(
        p.root().join("strata.toml"),
        "[settings]\ntimeout_seconds = \"soon\"\n",
    )
    .unwrap();
    let o = p.strata(&db, &["up"]);
    assert_eq!(code(&o), 2);
    insta::assert_snapshot!("bad_config_file", normalise(&stderr(&o), &p));
    std::fs::write(p.root().join("strata.toml"), "[settngs]\n").unwrap();
    let o = p.strata(&db, &["up"]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("unknown field `settngs`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bad_urls_are_clear_and_never_show_the_password() {
    let p = Project::new();
    p.file("001_a.sql", "SELECT 1;\n");
    // A refused connection is transient and `up` retries it; not here.
    std::fs::write(
        p.root().join("strata.toml"),
        "[settings]\nretry_attempts = 0\n",
    )
    .unwrap();
    for (url, expected) in [
        ("mongo://u:hunter2@h/db", 2),
        ("postgres://u:hunter2@127.0.0.1:notaport/db", 2),
        ("nonsense", 2),
        ("postgres://u:hunter2@127.0.0.1:1/db", 1),
        ("sqlite:///no/such/dir/x.db", 1),
    ] {
        let o = strata_in(p.root(), url, &p.migrations(), &["up"]);
        assert_eq!(code(&o), expected, "{url}: {}", stderr(&o));
        let all = format!("{}{}", stdout(&o), stderr(&o));
        assert!(!all.contains("hunter2"), "{all}");
        assert!(all.contains("error:"), "{all}");
    }
}
