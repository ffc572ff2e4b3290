//! Scripts are read from their files when they run, not held from when the directory
//! was read: status needs no script at all, and a file edited in between is refused
//! rather than run under the checksum of its old text.

use strata::core::Driver;
use strata::{Migrator, Target};

async fn up(migrator: &Migrator, db: &mut dyn Driver) -> Result<(), strata::Error> {
    migrator.up(db, Target::Head).await.map(drop)
}

fn write(dir: &std::path::Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

fn tables(db: &std::path::Path) -> Vec<String> {
    let c = strata::rusqlite::Connection::open(db).unwrap();
    let mut st = c
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 't%' ORDER BY name",
        )
        .unwrap();
    st.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test]
async fn a_file_edited_after_the_directory_was_read_is_refused_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("migrations");
    std::fs::create_dir(&m).unwrap();
    for v in 1..=3 {
        write(
            &m,
            &format!("00{v}_t{v}.sql"),
            &format!("CREATE TABLE t{v} (id INTEGER);\n-- strata:down\nDROP TABLE t{v};\n"),
        );
    }
    let migrator = Migrator::from_dir(&m).unwrap();
    let db_path = dir.path().join("app.db");
    let url = format!("sqlite://{}", db_path.display());
    let mut db = strata::connect(&url, &Default::default()).await.unwrap();

    // Status is answered from the file list: no script is read.
    for v in 1..=3 {
        std::fs::rename(
            m.join(format!("00{v}_t{v}.sql")),
            m.join(format!("00{v}.moved")),
        )
        .unwrap();
    }
    let status = migrator.status(&mut db).await.unwrap();
    assert_eq!(status.migrations.len(), 3);
    for v in 1..=3 {
        std::fs::rename(
            m.join(format!("00{v}.moved")),
            m.join(format!("00{v}_t{v}.sql")),
        )
        .unwrap();
    }

    // 002 changes after the directory was read: the run is refused before anything
    // runs (every script of the plan is read and checked first).
    write(
        &m,
        "002_t2.sql",
        "CREATE TABLE t2_other (id INTEGER);\n-- strata:down\nDROP TABLE t2_other;\n",
    );
    let err = up(&migrator, db.as_mut()).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("changed while strata was running"), "{text}");
    assert!(text.contains("002_t2.sql"), "names the file: {text}");
    assert_ne!(err.exit_code(), 0);
    assert!(
        tables(&db_path).is_empty(),
        "neither the old nor the new 002 ran, nor anything before it"
    );
    assert!(db.applied().await.unwrap().is_empty());

    // Read afresh, the directory runs as it now is.
    let migrator = Migrator::from_dir(&m).unwrap();
    up(&migrator, db.as_mut()).await.unwrap();
    assert_eq!(tables(&db_path), ["t1", "t2_other", "t3"]);
}
