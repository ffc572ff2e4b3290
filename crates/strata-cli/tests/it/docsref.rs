//! `docs/commands.md` is the `--help` of every command, so the reference in the
//! repository can never drift from the binary. After changing a command, regenerate it:
//! `STRATA_UPDATE_DOCS=1 cargo test -p strata-migrate-cli --test it docsref`.

use std::path::PathBuf;

fn help(args: &[&str]) -> String {
    let out = assert_cmd::Command::cargo_bin("strata")
        .unwrap()
        // Help shows the values of the variables options read: none here.
        .env_remove("DATABASE_URL")
        .env_remove("MIGRATION_LOG_LEVEL")
        .env_remove("RUST_LOG")
        .env_remove("STRATA_ENV")
        .env_remove("ENV")
        .env("NO_COLOR", "1")
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?} --help");
    String::from_utf8(out.stdout).unwrap()
}

/// The names under "Commands:" in a help text, `help` left out.
fn commands(text: &str) -> Vec<String> {
    text.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

fn render() -> String {
    let mut out = String::from(
        "# Command reference\n\n\
         Every command's `--help`, generated from the binary by `tests/it/docsref.rs` (a test fails when this\n\
         file and the binary disagree; `STRATA_UPDATE_DOCS=1 cargo test -p strata-migrate-cli --test it docsref`\n\
         rewrites it). Global options (`--database-url`, `--dir`, `--config`, `--env`, `--json`, `--log-level`,\n\
         `--log-format`, `--yes`, `--databases`) are accepted before or after any command.\n",
    );
    let top = help(&[]);
    out.push_str(&format!("\n## strata\n\n```text\n{top}```\n"));
    for c in commands(&top) {
        let text = help(&[&c]);
        out.push_str(&format!("\n## strata {c}\n\n```text\n{text}```\n"));
        for sub in commands(&text) {
            let text = help(&[&c, &sub]);
            out.push_str(&format!("\n### strata {c} {sub}\n\n```text\n{text}```\n"));
        }
    }
    out
}

#[test]
fn docs_commands_is_every_commands_help() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/commands.md");
    let want = render();
    if std::env::var_os("STRATA_UPDATE_DOCS").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "docs/commands.md is out of date: run STRATA_UPDATE_DOCS=1 cargo test -p strata-migrate-cli --test it docsref"
    );
}
