//! Crash safety: strata killed with SIGKILL at random moments of a 200-migration run
//! leaves every migration fully applied and recorded or not at all, and the next `up`
//! finishes the job; a server restarted mid-run is ridden out by retries.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cluster::Cluster;
use crate::support::*;

const MIGRATIONS: usize = 200;

/// Each migration creates a table and writes a ledger row: a history row without
/// both, or either without a history row, is a half-applied migration.
fn project() -> Project {
    let p = Project::new();
    p.file(
        "000_ledger.sql",
        "CREATE TABLE ledger (n INTEGER PRIMARY KEY);\n",
    );
    for i in 1..=MIGRATIONS {
        p.file(
            &format!("{i:03}_t{i}.sql"),
            &format!(
                "CREATE TABLE t{i} (id INTEGER, note TEXT);\nINSERT INTO t{i} VALUES ({i}, 'x');\nCREATE INDEX t{i}_id ON t{i} (id);\nINSERT INTO ledger VALUES ({i});\n"
            ),
        );
    }
    p
}

fn spawn_up(p: &Project, url: &str) -> Child {
    Command::new(assert_cmd::cargo::cargo_bin("strata"))
        .current_dir(p.root())
        .env("NO_COLOR", "1")
        .args(["--database-url", url, "--dir", "migrations", "up"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn strata")
}

/// Every applied migration has its table and ledger row, and nothing else exists.
fn assert_consistent(db: &TestDb, trial: usize) -> usize {
    let failed = db.query("SELECT count(*) FROM {history} WHERE NOT success");
    assert_eq!(failed, ["0"], "trial {trial}: a failed row after a crash");
    let mut applied: Vec<usize> = db
        .query("SELECT version FROM {history}")
        .iter()
        .filter_map(|v| v.parse().ok())
        .filter(|v| *v > 0)
        .collect();
    applied.sort();
    let mut tables: Vec<usize> = db
        .tables()
        .iter()
        .filter_map(|t| t.strip_prefix('t').and_then(|n| n.parse().ok()))
        .collect();
    tables.sort();
    let mut ledger: Vec<usize> = db
        .query("SELECT n FROM ledger")
        .iter()
        .map(|n| n.parse().unwrap())
        .collect();
    ledger.sort();
    assert_eq!(
        applied, tables,
        "trial {trial}: history and tables disagree"
    );
    assert_eq!(
        applied, ledger,
        "trial {trial}: history and ledger disagree"
    );
    let audited = db.query("SELECT count(*) FROM {audit} WHERE operation = 'apply'");
    assert_eq!(
        audited,
        [(applied.len() + 1).to_string()],
        "trial {trial}: audit rows disagree with history"
    );
    applied.len()
}

/// Each trial: a fresh database, `up` killed after a random delay within one full run,
/// the database checked, then `up` finishing the job and the database checked again.
fn kill_trials(fresh: &dyn Fn() -> Option<TestDb>, p: &Project, trials: usize, max_ms: u64) {
    let seed = seed("STRATA_CRASH_SEED");
    eprintln!("crash trials with STRATA_CRASH_SEED={seed}, killing within {max_ms} ms");
    let mut rng = Rng(seed);
    let mut killed_midway = 0;
    for trial in 0..trials {
        let Some(db) = fresh() else { return };
        // The history tables exist before the kill, so every trial can be checked.
        ok(&p.strata(&db, &["up", "--target", "000"]));
        let mut child = spawn_up(p, &db.url());
        let delay = Duration::from_millis(rng.below(max_ms));
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();
        let n = assert_consistent(&db, trial);
        eprintln!("trial {trial}: killed after {delay:?} ({status}), {n} of {MIGRATIONS} applied");
        if n > 0 && n < MIGRATIONS {
            killed_midway += 1;
        }
        ok(&p.strata(&db, &["up"]));
        assert_eq!(assert_consistent(&db, trial), MIGRATIONS);
    }
    eprintln!("{killed_midway} of {trials} trials were killed with part of the run committed");
}

#[test]
fn sigkill_during_up_never_half_applies_on_postgres() {
    let p = project();
    // Measure one full run's length, to kill within it.
    let started = Instant::now();
    {
        let Some(scratch) = TestDb::postgres("sigkill_scratch") else {
            return;
        };
        ok(&p.strata(&scratch, &["up"]));
    }
    let full = started.elapsed().as_millis() as u64;
    kill_trials(&|| TestDb::postgres("sigkill"), &p, 12, full.max(50));
}

#[test]
fn sigkill_during_up_never_half_applies_on_sqlite() {
    let p = project();
    let started = Instant::now();
    ok(&p.strata(&TestDb::sqlite(), &["up"]));
    let full = started.elapsed().as_millis() as u64;
    kill_trials(&|| Some(TestDb::sqlite()), &p, 12, full.max(50));
}

#[test]
fn server_restart_mid_run_is_ridden_out_by_retries() {
    let Some(cluster) = Cluster::start("server_restart") else {
        return;
    };
    let p = Project::new();
    for i in 1..=30 {
        p.file(
            &format!("{i:03}_t{i}.sql"),
            &format!("SELECT pg_sleep(0.1);\nCREATE TABLE t{i} (id INTEGER);\n"),
        );
    }
    std::fs::write(
        p.root().join("strata.toml"),
        "[settings]\nretry_attempts = 6\nretry_delay_seconds = 1\n",
    )
    .unwrap();
    let url = cluster.url("postgres");
    let child = spawn_up(&p, &url);
    std::thread::sleep(Duration::from_millis(1200));
    cluster.restart();
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "strata failed across a restart:\n{err}");
    assert!(err.contains("retrying"), "no retry was logged:\n{err}");
    let db = ExternalDb(url.clone());
    assert_eq!(db.query("SELECT count(*) FROM {history}"), ["30"]);
    assert_eq!(
        db.query("SELECT count(*) FROM pg_tables WHERE tablename ~ '^t[0-9]+$'"),
        ["30"]
    );
    let retries = db.query("SELECT count(*) FROM {audit} WHERE operation = 'retry'");
    assert_ne!(retries, ["0"], "the retry was not audited");
}

#[test]
fn up_waits_for_a_server_that_is_starting() {
    let Some(cluster) = Cluster::start("server_down") else {
        return;
    };
    let p = Project::new();
    p.file("001_a.sql", "CREATE TABLE a (id INTEGER);\n");
    std::fs::write(
        p.root().join("strata.toml"),
        "[settings]\nconnect_retries = 5\nretry_delay_seconds = 1\n",
    )
    .unwrap();
    cluster.stop();
    let child = spawn_up(&p, &cluster.url("postgres"));
    std::thread::sleep(Duration::from_millis(1500));
    cluster.start_again();
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");
    assert!(err.contains("cannot connect, retrying"), "{err}");
    let db = ExternalDb(cluster.url("postgres"));
    assert_eq!(db.query("SELECT count(*) FROM {history}"), ["1"]);
    let _ = cluster.dir();
}

/// A database that is down fails at once, with the same message in every command:
/// retries are for failures in the middle of a run (`connect_retries` opts in to
/// waiting, above).
#[test]
fn a_database_that_is_down_fails_at_once_in_every_command() {
    let p = Project::new();
    p.file("001_a.sql", "CREATE TABLE a (id INTEGER);\n");
    let port = crate::cluster::free_port();
    let url = format!("postgres://postgres@127.0.0.1:{port}/app");
    let mut first_lines = Vec::new();
    for args in [&["up"][..], &["status"], &["rollback"], &["info"]] {
        let out = strata_in(p.root(), &url, &p.migrations(), args);
        assert_ne!(code(&out), 0, "{args:?}");
        let err = stderr(&out);
        assert!(!err.contains("retrying"), "{args:?}: {err}");
        first_lines.push(
            err.lines()
                .find(|l| l.starts_with("error:"))
                .unwrap_or_default()
                .to_string(),
        );
    }
    assert!(
        first_lines[0].contains("cannot connect to"),
        "{first_lines:?}"
    );
    assert!(
        first_lines.iter().all(|l| l == &first_lines[0]),
        "{first_lines:?}"
    );
}
