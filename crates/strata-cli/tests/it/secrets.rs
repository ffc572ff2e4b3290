//! A password in the URL or in `DB_PASSWORD` never appears in any output: text, JSON,
//! logs at every level, errors, or the tools strata runs.

use std::process::Command;

use crate::support::*;

const PASSWORD: &str = "Tr0ub4dor-s3cret";

/// `postgres://user@host/db` with the password added (trust auth ignores it).
fn with_password(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (auth, host) = rest.split_once('@').unwrap();
    let user = auth.split(':').next().unwrap();
    format!("{scheme}://{user}:{PASSWORD}@{host}")
}

fn run(p: &Project, envs: &[(&str, &str)], args: &[&str]) -> String {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("strata"));
    cmd.current_dir(p.root())
        .env_remove("DATABASE_URL")
        .env("NO_COLOR", "1")
        .args(["--dir", "migrations"])
        .args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let o = cmd.output().unwrap();
    format!("{}{}", stdout(&o), stderr(&o))
}

#[test]
fn passwords_never_appear_in_any_output() {
    let Some(db) = TestDb::postgres("secrets") else {
        return;
    };
    let url = with_password(&db.url());
    let p = Project::new();
    p.file(
        "001_a.sql",
        "CREATE TABLE a (id INTEGER);\n-- strata:down\nDROP TABLE a;\n",
    );
    p.file("002_bad.sql", "INSERT INTO nowhere VALUES (1);\n");
    std::fs::write(
        p.root().join("strata.toml"),
        "[settings]\nretry_attempts = 0\nlock_timeout_seconds = 1\n",
    )
    .unwrap();
    let u = url.as_str();
    let host = db.url();
    let host = host
        .split('@')
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let (h, port) = host.split_once(':').unwrap_or((&host, "5432"));
    let name = db
        .url()
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_string();
    let db_vars: Vec<(&str, &str)> = vec![
        ("DB_HOST", h),
        ("DB_PORT", port),
        ("DB_NAME", &name),
        ("DB_USER", "postgres"),
        ("DB_PASSWORD", PASSWORD),
    ];
    let url_var = [("DATABASE_URL", u)];
    let trace = [("RUST_LOG", "trace")];
    let mut outputs = Vec::new();
    let commands: &[&[&str]] = &[
        &["status"],
        &["--json", "status"],
        &["info"],
        &["--json", "info"],
        &["up"],
        &["--json", "up"],
        &["--log-level", "trace", "up"],
        &["--log-format", "json", "--log-level", "trace", "up"],
        &["history"],
        &["--json", "history"],
        &["health"],
        &["--json", "health"],
        &["validate"],
        &["--json", "validate"],
        &["rollback", "--dry-run"],
        &["backup", "create"],
        &["--json", "backup", "list"],
        &["backup", "restore", "nope"],
        &["repair"],
    ];
    for args in commands {
        // The URL as a flag, as DATABASE_URL, and composed from DB_* variables.
        let flagged = [&["--database-url", u][..], args].concat();
        outputs.push((format!("flag {args:?}"), run(&p, &[], &flagged)));
        outputs.push((format!("env {args:?}"), run(&p, &url_var, args)));
        outputs.push((format!("DB_* {args:?}"), run(&p, &db_vars, args)));
    }
    // DB_ECHO logs every statement; trace logs every protocol step.
    outputs.push((
        "echo".into(),
        run(&p, &[("DB_ECHO", "true")], &["--database-url", u, "up"]),
    ));
    outputs.push((
        "trace".into(),
        run(&p, &trace, &["--database-url", u, "up"]),
    ));
    // Unreachable, malformed and unsupported URLs carrying the password.
    for bad in [
        format!("postgres://postgres:{PASSWORD}@127.0.0.1:1/x"),
        format!("postgres://postgres:{PASSWORD}@127.0.0.1:badport/x"),
        format!("mysqlx://root:{PASSWORD}@h/x"),
        format!("postgres://postgres:{PASSWORD}@no-such-host.invalid/x"),
    ] {
        for args in [
            &["status"][..],
            &["--json", "up"],
            &["--json", "health"],
            &["info"],
        ] {
            let flagged = [&["--database-url", bad.as_str()][..], args].concat();
            outputs.push((format!("{bad} {args:?}"), run(&p, &trace, &flagged)));
        }
    }
    // The failing migration really ran (so its error path was exercised).
    assert!(
        outputs.iter().any(|(_, o)| o.contains("nowhere")),
        "the failing migration never failed"
    );
    let leaks: Vec<_> = outputs
        .iter()
        .filter(|(_, o)| o.contains(PASSWORD))
        .map(|(what, o)| format!("{what}:\n{o}"))
        .collect();
    assert!(
        leaks.is_empty(),
        "the password leaked:\n{}",
        leaks.join("\n---\n")
    );
    // Nor is it stored: strata keeps no URL in the database or the backups' sidecars.
    let dumped = db.query("SELECT string_agg(t::text, ' ') FROM (SELECT * FROM {audit}) t");
    assert!(!dumped.concat().contains(PASSWORD));
    for entry in std::fs::read_dir(p.root().join("backups")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(!text.contains(PASSWORD), "{text}");
            assert!(
                text.contains("***"),
                "the sidecar names the database redacted: {text}"
            );
        }
    }
    eprintln!("checked {} outputs for the password", outputs.len());
}
