//! The example application migrates a fresh database on start-up, from migrations
//! compiled into its binary, only when AUTO_MIGRATE=true.

use std::process::Command;

fn app(db: &std::path::Path, auto: Option<&str>, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_embedded-app"));
    // Run away from the sources: the binary must not need the migrations directory.
    cmd.current_dir(db.parent().unwrap())
        .env("DATABASE_URL", format!("sqlite://{}", db.display()))
        .env_remove("AUTO_MIGRATE")
        .args(args);
    if let Some(v) = auto {
        cmd.env("AUTO_MIGRATE", v);
    }
    let o = cmd.output().expect("run the example");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o
}

fn query(db: &std::path::Path, sql: &str) -> Vec<String> {
    let c = rusqlite::Connection::open(db).unwrap();
    let mut st = c.prepare(sql).unwrap();
    let n = st.column_count();
    st.query_map([], |r| {
        Ok((0..n)
            .map(|i| {
                r.get::<_, rusqlite::types::Value>(i)
                    .map(|v| format!("{v:?}"))
            })
            .collect::<Result<Vec<_>, _>>()?
            .join("|"))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

#[test]
fn migrates_a_fresh_database_on_start_up_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");

    app(&db, None, &[]);
    assert!(
        !db.exists()
            || query(&db, "SELECT name FROM sqlite_master WHERE name = 'notes'").is_empty()
    );

    let o = app(&db, Some("true"), &[]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("migrated: 3 applied"));
    assert_eq!(
        query(&db, "SELECT slug FROM notes"),
        ["Text(\"welcome\")"],
        "code migration 003 ran"
    );
    // The checksums recorded are the files' own, computed when the binary was built.
    let recorded = query(
        &db,
        "SELECT version, checksum FROM schema_migrations WHERE version < '003' ORDER BY version",
    );
    let dir_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let expected: Vec<String> = ["001_create_notes.sql", "002_add_slug.sql"]
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(dir_path.join(f)).unwrap();
            let up = text.split("-- strata:down").next().unwrap();
            format!(
                "Text(\"{}\")|Text(\"{}\")",
                &f[..3],
                strata::Checksum::of(up)
            )
        })
        .collect();
    assert_eq!(recorded, expected);

    let o = app(&db, Some("true"), &[]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("migrated: 0 applied"),
        "a second start applies nothing"
    );

    let health: serde_json::Value =
        serde_json::from_slice(&app(&db, None, &["health"]).stdout).unwrap();
    assert_eq!(health["status"], "healthy", "{health}");
    assert_eq!(health["current"], "003");
    assert_eq!(health["pending"], 0);
}
