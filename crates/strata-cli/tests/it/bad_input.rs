//! Bad input: each case exits 2 (or 3), names the file and line, and leaves the
//! database exactly as it was. The snapshots are what a user sees.

use crate::support::*;

struct Case {
    name: &'static str,
    files: &'static [(&'static str, &'static [u8])],
    args: &'static [&'static str],
    code: i32,
}

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
    std::fs::write(p.root().join("strata.toml"), "[settings]\nretry_attempts = 0\n").unwrap();
    for url in [
        "mongo://u:hunter2@h/db",
        "postgres://u:hunter2@127.0.0.1:1/db",
        "nonsense",
    ] {
        let o = strata_in(p.root(), url, &p.migrations(), &["up"]);
        assert_ne!(code(&o), 0, "{url}");
        let all = format!("{}{}", stdout(&o), stderr(&o));
        assert!(!all.contains("hunter2"), "{all}");
        assert!(all.contains("error:"), "{all}");
    }
}
