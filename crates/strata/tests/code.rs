//! Code migrations planned with file migrations: order, failure recorded as `failed`,
//! `--resume` semantics, rollback through `down`, and a clash of versions refused.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use strata::{CodeContext, CodeError, CodeMigration, Migrator, RunOptions, Target};

/// Inserts into `log` through the native SQLite client; fails its first `fail_first` runs.
struct Logged {
    runs: Arc<AtomicUsize>,
    fail_first: usize,
}

#[strata::async_trait]
impl CodeMigration for Logged {
    fn version(&self) -> &str {
        "002"
    }
    fn name(&self) -> &str {
        "logged"
    }
    async fn up(&self, db: &mut CodeContext<'_>) -> Result<(), CodeError> {
        let n = self.runs.fetch_add(1, Ordering::SeqCst);
        let conn = db
            .client::<strata::rusqlite::Connection>()
            .ok_or("not SQLite")?;
        conn.execute("INSERT INTO log (what) VALUES ('up')", [])?;
        if n < self.fail_first {
            return Err("backfill source unavailable".into());
        }
        Ok(())
    }
    async fn down(&self, db: &mut CodeContext<'_>) -> Result<(), CodeError> {
        let conn = db
            .client::<strata::rusqlite::Connection>()
            .ok_or("not SQLite")?;
        conn.execute("INSERT INTO log (what) VALUES ('down')", [])?;
        Ok(())
    }
}

fn setup(fail_first: usize) -> (tempfile::TempDir, Migrator, Arc<AtomicUsize>) {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("migrations");
    std::fs::create_dir(&m).unwrap();
    std::fs::write(
        m.join("001_log.sql"),
        "CREATE TABLE log (what TEXT);\n-- strata:down\nDROP TABLE log;\n",
    )
    .unwrap();
    std::fs::write(m.join("003_after.sql"), "INSERT INTO log (what) VALUES ('003');\n-- strata:down\nDELETE FROM log WHERE what = '003';\n").unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let migrator = Migrator::from_dir(&m)
        .unwrap()
        .register(Logged {
            runs: runs.clone(),
            fail_first,
        })
        .unwrap();
    (dir, migrator, runs)
}

fn log(dir: &std::path::Path) -> Vec<String> {
    let c = strata::rusqlite::Connection::open(dir.join("app.db")).unwrap();
    let mut st = c.prepare("SELECT what FROM log ORDER BY rowid").unwrap();
    st.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test]
async fn code_runs_in_plan_order_and_rolls_back() {
    let (dir, migrator, _) = setup(0);
    let ids: Vec<&str> = migrator
        .migrations()
        .iter()
        .map(|m| m.id.as_str())
        .collect();
    assert_eq!(ids, ["001_log", "002_logged", "003_after"]);
    let url = format!("sqlite://{}", dir.path().join("app.db").display());
    let mut db = strata::connect(&url, &Default::default()).await.unwrap();
    migrator.up(&mut db, Target::Head).await.unwrap();
    assert_eq!(log(dir.path()), ["up", "003"]);
    let status = migrator.status(&mut db).await.unwrap();
    assert_eq!(status.current.as_deref(), Some("003"));
    migrator
        .rollback(&mut db, Target::Version("001".into()))
        .await
        .unwrap();
    assert_eq!(log(dir.path()), ["up", "down"]);
    let applied = db.applied().await.unwrap();
    assert_eq!(
        applied
            .iter()
            .map(|a| a.version.as_str())
            .collect::<Vec<_>>(),
        ["001"]
    );
}

#[tokio::test]
async fn failed_code_is_recorded_and_resumed() {
    let (dir, migrator, runs) = setup(1);
    let url = format!("sqlite://{}", dir.path().join("app.db").display());
    let mut db = strata::connect(&url, &Default::default()).await.unwrap();
    let err = migrator.up(&mut db, Target::Head).await.unwrap_err();
    assert!(
        err.to_string().contains("backfill source unavailable"),
        "{err}"
    );
    assert_eq!(err.exit_code(), 1);
    let applied = db.applied().await.unwrap();
    let row = applied
        .iter()
        .find(|a| a.version == "002")
        .expect("a row for the failed code");
    assert!(!row.success, "the failed run is visible");
    assert!(
        applied.iter().all(|a| a.version != "003"),
        "nothing after the failure ran"
    );

    // A plain run refuses to go past the failed row (exit 3); --resume runs the code again.
    let refused = migrator.up(&mut db, Target::Head).await.unwrap_err();
    assert_eq!(refused.exit_code(), 3, "{refused}");
    let mut resume = RunOptions::default();
    resume.up.resume = true;
    migrator
        .clone()
        .options(resume)
        .up(&mut db, Target::Head)
        .await
        .unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert!(db.applied().await.unwrap().iter().all(|a| a.success));
    assert_eq!(
        log(dir.path()),
        ["up", "up", "003"],
        "SQLite's first insert was not rolled back: code is not transactional"
    );
}

#[test]
fn a_version_taken_by_a_file_is_refused() {
    let (_dir, migrator, runs) = setup(0);
    struct Clash(Arc<AtomicUsize>);
    #[strata::async_trait]
    impl CodeMigration for Clash {
        fn version(&self) -> &str {
            "003"
        }
        fn name(&self) -> &str {
            "clash"
        }
        async fn up(&self, _db: &mut CodeContext<'_>) -> Result<(), CodeError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }
    let err = migrator.register(Clash(runs)).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("used twice"), "{err}");
}

/// Asking for the wrong client type is an error that names the right one, not a
/// silent `None` (a client crate of another version is another type).
#[tokio::test]
async fn the_wrong_client_type_is_named() {
    struct WrongClient;
    #[strata::async_trait]
    impl CodeMigration for WrongClient {
        fn version(&self) -> &str {
            "002"
        }
        fn name(&self) -> &str {
            "wrong_client"
        }
        async fn up(&self, db: &mut CodeContext<'_>) -> Result<(), CodeError> {
            db.require::<String>()?;
            Ok(())
        }
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("m")).unwrap();
    let migrator = Migrator::from_dir(dir.path().join("m"))
        .unwrap()
        .register(WrongClient)
        .unwrap();
    let mut conn = strata::rusqlite::Connection::open(dir.path().join("app.db")).unwrap();
    let err = migrator.up(&mut conn, Target::Head).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("`alloc::string::String`") && text.contains("strata::rusqlite::Connection"),
        "{text}"
    );
}
