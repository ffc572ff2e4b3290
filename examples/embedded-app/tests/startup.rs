//! The example application migrates a fresh database on start-up, from migrations
//! compiled into its binary, only when AUTO_MIGRATE=true.

use std::process::Command;

fn app(db: &std::path::Path, auto: Option<&str>, args: &[&str]) -> std::process::Output {
    app_on(
        db.parent().unwrap(),
        &format!("sqlite://{}", db.display()),
        auto,
        args,
    )
}

fn app_on(
    cwd: &std::path::Path,
    url: &str,
    auto: Option<&str>,
    args: &[&str],
) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_embedded-app"));
    // Run away from the sources: the binary must not need the migrations directory.
    cmd.current_dir(cwd)
        .env("DATABASE_URL", url)
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
    let c = strata::rusqlite::Connection::open(db).unwrap();
    let mut st = c.prepare(sql).unwrap();
    let n = st.column_count();
    st.query_map([], |r| {
        Ok((0..n)
            .map(|i| {
                r.get::<_, strata::rusqlite::types::Value>(i)
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
        String::from_utf8_lossy(&o.stdout).trim(),
        "ready: 1 notes",
        "the application goes on using the connection it migrated on"
    );
    assert_eq!(
        query(&db, "SELECT slug FROM notes"),
        ["Text(\"welcome\")"],
        "code migration 003 ran"
    );
    // The checksums recorded are the files' own, computed when the binary was built.
    let recorded = query(
        &db,
        "SELECT version, checksum FROM strata_schema_migrations WHERE version < '003' ORDER BY version",
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
                strata::core::Checksum::of(up)
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

/// One HTTP/1.1 request over a plain socket: (status, body).
fn http(addr: &str, method: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let status = reply[9..12].parse().unwrap();
    let body = reply.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

/// The application mounts strata's API in its own server: its /healthz fails while
/// migrations are pending, and a POST to the API applies the embedded files and the
/// code migration.
#[test]
fn serves_the_api_inside_the_application() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let mut child = Command::new(env!("CARGO_BIN_EXE_embedded-app"))
        .current_dir(dir.path())
        .env("DATABASE_URL", format!("sqlite://{}", db.display()))
        .env_remove("AUTO_MIGRATE")
        .env_remove("STRATA_API_TOKENS")
        .args(["serve", "127.0.0.1:0"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .trim_start_matches("listening on http://")
        .to_string();

    let (code, body) = http(&addr, "GET", "/healthz");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("\"pending\":3"), "{body}");
    let (code, body) = http(&addr, "POST", "/api/v1/migrations/migrate");
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("\"version\":\"003\",\"name\":\"fill_slugs\""),
        "{body}"
    );
    assert_eq!(query(&db, "SELECT slug FROM notes"), ["Text(\"welcome\")"]);
    let (code, body) = http(&addr, "GET", "/healthz");
    assert_eq!(code, 200, "{body}");
    let (code, page) = http(&addr, "GET", "/");
    assert_eq!(code, 200);
    assert!(page.contains("strata console"));
    child.kill().unwrap();
    let _ = child.wait();
}

/// The same start-up on PostgreSQL: the application's own `tokio_postgres::Client`
/// carries the migrations (the code migration uses it through `CodeContext`), and the
/// application then reads through it.
#[tokio::test]
async fn migrates_on_the_applications_own_postgres_client() {
    use strata::tokio_postgres::{connect, NoTls};
    let Ok(base) = std::env::var("STRATA_TEST_POSTGRES_URL") else {
        let required = std::env::var("STRATA_TEST_REQUIRE").unwrap_or_default();
        assert!(
            !required.split(',').any(|e| e == "postgres"),
            "STRATA_TEST_REQUIRE names postgres but STRATA_TEST_POSTGRES_URL is not set"
        );
        eprintln!("skipped: set STRATA_TEST_POSTGRES_URL to run the PostgreSQL start-up");
        return;
    };
    let (admin, conn) = connect(&base, NoTls)
        .await
        .expect("connect to the test server");
    tokio::spawn(conn);
    let name = format!("embedded_app_{}", std::process::id());
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
        .await
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let url = match base.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{name}"),
        None => panic!("STRATA_TEST_POSTGRES_URL names no database: {base}"),
    };
    let cwd = tempfile::tempdir().unwrap();

    let o = app_on(cwd.path(), &url, Some("true"), &[]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("migrated: 3 applied"), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "ready: 1 notes");
    let (db, conn) = connect(&url, NoTls).await.unwrap();
    tokio::spawn(conn);
    let slugs: Vec<String> = db
        .query("SELECT slug FROM notes", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(slugs, ["welcome"], "code migration 003 ran on the client");
    let history: Vec<(String, bool)> = db
        .query(
            "SELECT version, success FROM strata.schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        history,
        [
            ("001".into(), true),
            ("002".into(), true),
            ("003".into(), true)
        ]
    );

    let again = app_on(cwd.path(), &url, Some("true"), &[]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("migrated: 0 applied"));
    drop(db);
    admin
        .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .unwrap();
}
