//! A newcomer's first hour: what sqlx-cli, diesel_cli and dbmate users expect to work.

use crate::support::strata_bare as bare;
use crate::support::*;

/// `.env` is read by default, with a comment after a quoted value (the hand-written
/// parser kept it in the value); `.env.NAME` wins over it for `--env NAME`, and the
/// real environment wins over both.
#[test]
fn dot_env_files_are_read_like_other_tools_read_them() {
    let p = Project::new();
    p.file("001_a.sql", "CREATE TABLE a (id INTEGER);\n");
    std::fs::write(
        p.root().join(".env"),
        "# local settings\nDATABASE_URL=\"sqlite://from-dotenv.db\" # the local one\n",
    )
    .unwrap();
    std::fs::write(
        p.root().join(".env.staging"),
        "export DATABASE_URL='sqlite://staging.db'\n",
    )
    .unwrap();
    ok(&bare(p.root(), &["up"]));
    assert!(p.root().join("from-dotenv.db").exists());
    ok(&bare(p.root(), &["--env", "staging", "up"]));
    assert!(p.root().join("staging.db").exists());
    let real = assert_cmd::Command::cargo_bin("strata")
        .unwrap()
        .current_dir(p.root())
        .env("DATABASE_URL", "sqlite://real.db")
        .args(["up"])
        .output()
        .unwrap();
    ok(&real);
    assert!(p.root().join("real.db").exists());
}

/// `strata completions SHELL` for every shell clap_complete knows; bash's parses
/// (zsh and fish are not installed where the suite runs).
#[test]
fn completions_are_written_for_every_shell() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = bare(dir.path(), &["completions", shell]);
        let text = ok(&out);
        assert!(
            text.contains("strata") && text.contains("rollback"),
            "{shell}"
        );
        if shell == "bash" {
            let file = dir.path().join("strata.bash");
            std::fs::write(&file, &text).unwrap();
            let check = std::process::Command::new("bash")
                .arg("-n")
                .arg(&file)
                .output()
                .unwrap();
            assert!(
                check.status.success(),
                "{}",
                String::from_utf8_lossy(&check.stderr)
            );
        }
    }
}

/// `--fleet` without FILE uses the `[fleet]` of strata.toml.
#[test]
fn fleet_without_a_file_uses_the_config() {
    let p = Project::new();
    p.file("001_a.sql", "CREATE TABLE a (id INTEGER);\n");
    std::fs::write(
        p.root().join("strata.toml"),
        "[fleet]\ntargets = [\"sqlite://one.db\", \"sqlite://two.db\"]\n",
    )
    .unwrap();
    ok(&bare(p.root(), &["up", "--fleet"]));
    let status = ok(&bare(p.root(), &["status", "--fleet"]));
    assert!(
        status.contains("sqlite://one.db") && status.contains("sqlite://two.db"),
        "{status}"
    );
    assert!(status.contains("0 not at head"), "{status}");
}

/// `create`, edit the new file, `up`: no extra command (the edit of a migration this
/// database has not applied is recorded in strata.sum). A merge that inserts a
/// migration before others, or an edit to an applied one, is still refused.
#[test]
fn create_edit_up_needs_no_extra_command() {
    let db = TestDb::sqlite();
    let p = Project::new();
    ok(&p.strata(&db, &["create", "users"]));
    let created: Vec<_> = std::fs::read_dir(p.migrations())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".sql"))
        .collect();
    assert_eq!(created.len(), 1, "{created:?}");
    let file = p.migrations().join(&created[0]);
    std::fs::write(
        &file,
        "CREATE TABLE users (id INTEGER);\n-- strata:down\nDROP TABLE users;\n",
    )
    .unwrap();
    ok(&p.strata(&db, &["up"]));
    assert_eq!(db.tables(), ["users"]);
    ok(&p.strata(&db, &["validate"]));

    // A merge puts a migration before the applied one.
    let stem = created[0].trim_end_matches(".sql").to_string();
    let (version, _) = stem.split_once('_').unwrap();
    let earlier = format!("{}_from_a_branch.sql", "0".repeat(version.len()));
    p.file(&earlier, "CREATE TABLE other (id INTEGER);\n");
    let merged = p.strata(&db, &["up"]);
    assert_eq!(code(&merged), 3, "{}", stderr(&merged));
    assert!(
        stderr(&merged).contains("inserted, removed or reordered"),
        "{}",
        stderr(&merged)
    );
    p.remove(&earlier);

    // An applied migration edited afterwards.
    std::fs::write(
        &file,
        "CREATE TABLE users (id INTEGER, name TEXT);\n-- strata:down\nDROP TABLE users;\n",
    )
    .unwrap();
    let edited = p.strata(&db, &["up"]);
    assert_eq!(code(&edited), 3, "{}", stderr(&edited));
    assert!(
        stderr(&edited).contains("changed since strata.sum was written"),
        "{}",
        stderr(&edited)
    );
}

/// In a terminal (a pseudo-terminal from `script`), `up` of several migrations shows a
/// progress bar under the steps' lines and clears it at the end; piped, only the lines;
/// with `--json`, only the JSON.
#[test]
fn up_shows_a_progress_bar_only_in_a_terminal() {
    let p = Project::new();
    for i in 1..=4 {
        p.file(
            &format!("00{i}_m.sql"),
            &format!("CREATE TABLE t{i} (id INTEGER);\n"),
        );
    }
    let bin = assert_cmd::cargo::cargo_bin("strata");
    let tty = std::process::Command::new("script")
        .current_dir(p.root())
        .env_remove("DATABASE_URL")
        .args(["-qec"])
        .arg(format!(
            "{} --database-url sqlite://tty.db up",
            bin.display()
        ))
        .arg("/dev/null")
        .output()
        .expect("script (util-linux) runs a command in a pseudo-terminal");
    let text = String::from_utf8_lossy(&tty.stdout);
    assert!(tty.status.success(), "{text}");
    assert!(text.contains("4/4"), "the bar counts the steps: {text}");
    assert!(text.contains("[4/4] Applying 004_m"), "{text}");
    assert!(text.contains('\u{2588}'), "a drawn bar: {text}");

    let db = TestDb::sqlite();
    let piped = ok(&p.strata(&db, &["up"]));
    assert!(piped.contains("[4/4] Applying 004_m"), "{piped}");
    assert!(
        !piped.contains('\u{2588}') && !piped.contains('\r'),
        "no bar when piped: {piped}"
    );
    let quiet = Project::new();
    quiet
        .file("001_m.sql", "CREATE TABLE a (id INTEGER);\n")
        .file("002_m.sql", "CREATE TABLE b (id INTEGER);\n");
    let json_out = ok(&quiet.strata(&TestDb::sqlite(), &["--json", "up"]));
    serde_json::from_str::<serde_json::Value>(&json_out).expect("only JSON on stdout");
}
