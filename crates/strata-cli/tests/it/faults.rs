//! The fault-injection suite: `up` and `rollback` killed with SIGKILL at a random
//! instant (seeded; the seed is printed, `STRATA_FAULT_SEED` replays it,
//! `STRATA_FAULT_TRIALS` runs longer) on PostgreSQL (transactional and
//! no-transaction migrations), MariaDB and SQLite. After every kill the history must
//! agree, statement by statement, with the schema and with a ledger the migrations
//! write to; then the run is resumed the way a user would (deciding a statement left in
//! doubt by looking at the database) and every statement must have taken effect
//! exactly once.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::*;

const MIGRATIONS: usize = 5;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Combo {
    PgTransactional,
    PgNoTransaction,
    MariaDb,
    Sqlite,
}

impl Combo {
    fn fresh(self) -> Option<TestDb> {
        match self {
            Combo::PgTransactional | Combo::PgNoTransaction => TestDb::postgres("faults"),
            Combo::MariaDb => TestDb::mysql("faults"),
            Combo::Sqlite => Some(TestDb::sqlite()),
        }
    }

    /// A statement that takes a while and changes nothing (on MariaDB and in a
    /// PostgreSQL `DO` block it is not a query, so it can be left in doubt).
    fn sleep(self) -> &'static str {
        match self {
            Combo::PgTransactional => "SELECT pg_sleep(0.04)",
            Combo::PgNoTransaction => "DO $$ BEGIN PERFORM pg_sleep(0.04); END $$",
            Combo::MariaDb => "DO SLEEP(0.04)",
            Combo::Sqlite => "SELECT count(*) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 150000) SELECT x FROM c)",
        }
    }

    /// Statements are tracked one by one (a crash can leave a migration part-done).
    fn tracked(self) -> bool {
        matches!(self, Combo::PgNoTransaction | Combo::MariaDb)
    }
}

/// Up: create tK, ledger K-a, sleep, ledger K-b. Down: delete the ledger rows, sleep,
/// drop tK.
fn project(c: Combo) -> Project {
    let p = Project::new();
    let header = if c == Combo::PgNoTransaction {
        "-- strata:no-transaction\n"
    } else {
        ""
    };
    let sleep = c.sleep();
    for k in 1..=MIGRATIONS {
        p.file(
            &format!("{k:03}_t{k}.sql"),
            &format!(
                "{header}CREATE TABLE t{k} (id INTEGER);\nINSERT INTO ledger (k) VALUES ('{k}-a');\n{sleep};\nINSERT INTO ledger (k) VALUES ('{k}-b');\n\
                 -- strata:down\nDELETE FROM ledger WHERE k IN ('{k}-a', '{k}-b');\n{sleep};\nDROP TABLE t{k};\n"
            ),
        );
    }
    p
}

/// One history row as the suite reads it.
#[derive(Debug)]
struct Row {
    success: bool,
    done: usize,
    in_flight: Option<usize>,
    down: bool,
}

fn rows(db: &TestDb) -> Vec<Option<Row>> {
    // Killed before strata's tables existed: nothing recorded.
    if !db.succeeds("SELECT count(*) FROM {history}") {
        return (1..=MIGRATIONS).map(|_| None).collect();
    }
    let read = db.query("SELECT version, success, statements_done, coalesce(in_flight, 0), coalesce(direction, 'up') FROM {history}");
    (1..=MIGRATIONS)
        .map(|k| {
            read.iter()
                .map(|r| r.split('|').collect::<Vec<_>>())
                .find(|c| c[0] == format!("{k:03}"))
                .map(|c| Row {
                    success: c[1] == db.bool_text(true),
                    done: c[2].parse().unwrap(),
                    in_flight: Some(c[3].parse().unwrap()).filter(|n: &usize| *n > 0),
                    down: c[4] == "down",
                })
        })
        .collect()
}

fn has_table(db: &TestDb, k: usize) -> bool {
    db.tables().contains(&format!("t{k}"))
}

fn ledger(db: &TestDb, key: &str) -> usize {
    db.query(&format!("SELECT count(*) FROM ledger WHERE k = '{key}'"))[0]
        .parse()
        .unwrap()
}

/// What the history says of each statement's effect, checked against the database.
/// Returns how many statements were in doubt.
fn check(db: &TestDb, c: Combo, what: &str) -> usize {
    let mut in_doubt = 0;
    for (i, row) in rows(db).into_iter().enumerate() {
        let k = i + 1;
        let (table, a, b) = (
            has_table(db, k),
            ledger(db, &format!("{k}-a")),
            ledger(db, &format!("{k}-b")),
        );
        let ctx = format!("{what}: migration {k}: {row:?}, table {table}, ledger {a}/{b}");
        assert!(a <= 1 && b <= 1, "{ctx}: a ledger row twice");
        match row {
            None => assert!(
                !table && a == 0 && b == 0,
                "{ctx}: effects without a history row"
            ),
            Some(r) if r.success => {
                assert!(table && a == 1 && b == 1, "{ctx}: applied but incomplete")
            }
            Some(r) => {
                assert!(
                    c.tracked(),
                    "{ctx}: a transactional migration left a failed row"
                );
                if r.in_flight.is_some() {
                    in_doubt += 1;
                }
                let done = |n: usize| r.done >= n;
                let maybe = |n: usize| r.in_flight == Some(n);
                if r.down {
                    // delete (1, with its record), sleep (2), drop (3).
                    let ledger_rows = if done(1) { 0 } else { 1 };
                    assert_eq!((a, b), (ledger_rows, ledger_rows), "{ctx}");
                    assert!(maybe(3) || table != done(3), "{ctx}: drop");
                    assert!(!maybe(1), "{ctx}: a data change was left in doubt");
                } else {
                    // create (1), insert a (2, with its record), sleep (3), insert b (4).
                    assert!(maybe(1) || table == done(1), "{ctx}: create");
                    assert_eq!(a, usize::from(done(2)), "{ctx}: insert a");
                    assert_eq!(b, usize::from(done(4)), "{ctx}: insert b");
                    assert!(
                        !maybe(2) && !maybe(4),
                        "{ctx}: a data change was left in doubt"
                    );
                }
            }
        }
    }
    in_doubt
}

/// The user's decision on the statement a crash left in doubt, from the database.
fn decide(db: &TestDb) -> Option<&'static str> {
    rows(db).into_iter().enumerate().find_map(|(i, r)| {
        let r = r?;
        let f = r.in_flight?;
        let k = i + 1;
        let took_effect = match (r.down, f) {
            (false, 1) => has_table(db, k),
            (true, 3) => !has_table(db, k),
            // A sleep changes nothing: running it again is harmless.
            _ => false,
        };
        Some(if took_effect { "done" } else { "rerun" })
    })
}

fn run(p: &Project, db: &TestDb, args: &[&str]) {
    let mut all: Vec<&str> = args.to_vec();
    let decision = decide(db);
    if let Some(d) = decision {
        all.push("--in-doubt");
        all.push(d);
    }
    let o = p.strata(db, &all);
    assert_eq!(code(&o), 0, "{all:?}: {}", stderr(&o));
}

fn killed(p: &Project, db: &TestDb, args: &[&str], after: Duration) {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("strata"))
        .current_dir(p.root())
        .env("NO_COLOR", "1")
        .args(["--database-url", &db.url(), "--dir", "migrations"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn strata");
    std::thread::sleep(after);
    let _ = child.kill(); // SIGKILL
    let _ = child.wait();
    settle(db);
}

/// Waits until the server has ended the killed client's session: a statement it was
/// running may still finish (that is what "in doubt" means), and the database is judged
/// once it cannot change any more.
fn settle(db: &TestDb) {
    let others = if db.is_postgres() {
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    } else if db.is_mysql() {
        "SELECT count(*) FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND ID <> CONNECTION_ID()"
    } else {
        return;
    };
    for _ in 0..100 {
        if db.query(others) == ["0"] {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the killed run's session never ended");
}

fn trials(c: Combo) {
    let seed = seed("STRATA_FAULT_SEED");
    let n: usize = std::env::var("STRATA_FAULT_TRIALS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    eprintln!("{c:?}: {n} trials, STRATA_FAULT_SEED={seed}");
    let mut rng = Rng(seed);
    let p = project(c);
    let (mut partial_up, mut partial_down, mut doubts) = (0, 0, 0);
    for trial in 0..n {
        let Some(db) = c.fresh() else { return };
        db.exec("CREATE TABLE ledger (k VARCHAR(20))");
        // Apply: killed within about one run's length.
        killed(
            &p,
            &db,
            &["up"],
            Duration::from_millis(100 + rng.below(700)),
        );
        let d = check(
            &db,
            c,
            &format!("{c:?} trial {trial} (seed {seed}) after a killed up"),
        );
        doubts += d;
        let applied = rows(&db).iter().flatten().filter(|r| r.success).count();
        if applied < MIGRATIONS && rows(&db).iter().any(Option::is_some) {
            partial_up += 1;
        }
        run(&p, &db, &["up", "--resume"]);
        check(&db, c, &format!("{c:?} trial {trial} after resuming up"));
        assert!(rows(&db)
            .iter()
            .all(|r| r.as_ref().is_some_and(|r| r.success)));
        // Roll back: killed the same way.
        killed(
            &p,
            &db,
            &["rollback", "base"],
            Duration::from_millis(100 + rng.below(700)),
        );
        let d = check(
            &db,
            c,
            &format!("{c:?} trial {trial} (seed {seed}) after a killed rollback"),
        );
        doubts += d;
        if rows(&db).iter().any(Option::is_some) {
            partial_down += 1;
        }
        run(&p, &db, &["rollback", "base", "--resume"]);
        check(
            &db,
            c,
            &format!("{c:?} trial {trial} after resuming the rollback"),
        );
        assert!(rows(&db).iter().all(Option::is_none));
        assert_eq!(db.query("SELECT count(*) FROM ledger"), ["0"]);
    }
    eprintln!(
        "{c:?}: {n} trials consistent; {partial_up} kills left up part-done, {partial_down} left the rollback part-done, {doubts} statements were in doubt and decided"
    );
}

#[test]
fn sigkill_anywhere_in_up_or_rollback_keeps_history_exact_on_postgres() {
    trials(Combo::PgTransactional);
}

#[test]
fn sigkill_anywhere_in_up_or_rollback_keeps_history_exact_on_postgres_without_transactions() {
    trials(Combo::PgNoTransaction);
}

#[test]
fn sigkill_anywhere_in_up_or_rollback_keeps_history_exact_on_mariadb() {
    trials(Combo::MariaDb);
}

#[test]
fn sigkill_anywhere_in_up_or_rollback_keeps_history_exact_on_sqlite() {
    trials(Combo::Sqlite);
}
