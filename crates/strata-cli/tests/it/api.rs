//! The REST API's router without a port (`oneshot`): every endpoint, every auth case,
//! bad input, and migrate / rollback through the API on every engine.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use strata_core::{Config, Overrides};
use strata_server::{ApiState, Role, Tokens};
use tower::ServiceExt;

use crate::support::*;

pub const OPERATOR: &str = "op-secret-token";
pub const VIEWER: &str = "viewer-secret-token";

pub fn config(url: &str, dir: &std::path::Path) -> Config {
    Config::load(
        &Overrides {
            database_url: Some(url.to_string()),
            dir: Some(dir.to_path_buf()),
            ..Default::default()
        },
        &|_| None,
    )
    .expect("config")
}

fn app(url: &str, dir: &std::path::Path, tokens: Tokens) -> Router {
    strata_server::router(ApiState::new(config(url, dir), tokens))
}

pub fn tokens() -> Tokens {
    Tokens::single("deployer", Role::Operator, OPERATOR).with("dash", Role::Viewer, VIEWER)
}

pub struct Reply {
    pub status: StatusCode,
    pub content_type: String,
    pub text: String,
}

impl Reply {
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
}

pub async fn send(
    app: &Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "127.0.0.1:8080")
        .header("user-agent", "strata-api-test/1");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let res = app.clone().oneshot(req).await.expect("the router answers");
    let status = res.status();
    let content_type = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        content_type,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// POST as the operator; `body` None sends no body.
async fn post(app: &Router, uri: &str, body: Option<Value>) -> Reply {
    send(app, "POST", uri, Some(OPERATOR), body).await
}

/// GET as the viewer.
async fn get(app: &Router, uri: &str) -> Reply {
    send(app, "GET", uri, Some(VIEWER), None).await
}

fn three(p: &Project) {
    p.file("001_users.sql", "-- Description: users table\nCREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL);\n-- strata:down\nDROP TABLE users;\n")
        .file("002_posts.sql", "-- Depends: 001\nCREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER);\n-- strata:down\nDROP TABLE posts;\n")
        .file("003_tags.sql", "CREATE TABLE tags (id INTEGER PRIMARY KEY);\n-- strata:down\nDROP TABLE tags;\n");
}

fn versions(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {v}"))
        .iter()
        .map(|s| s["version"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_endpoint_answers_with_its_shape() {
    let db = TestDb::sqlite();
    let p = Project::new();
    three(&p);
    let app = app(&db.url(), &p.migrations(), Tokens::default());

    let s = send(&app, "GET", "/api/v1/migrations/status", None, None).await;
    assert_eq!(s.status, StatusCode::OK, "{}", s.text);
    let s = s.json();
    assert_eq!(s["head"], "003");
    assert!(s["current"].is_null());
    assert_eq!(s["migrations"][1]["depends_on"], json!(["001"]));
    assert_eq!(s["migrations"][0]["state"], "pending");
    assert!(
        db.tables().is_empty(),
        "status must not create tables: {:?}",
        db.tables()
    );

    let l = send(&app, "GET", "/api/v1/migrations/", None, None)
        .await
        .json();
    assert_eq!(l["migrations"][0]["description"], "users table");
    assert_eq!(l["migrations"][2]["has_rollback"], true);
    let l2 = send(&app, "GET", "/api/v1/migrations", None, None)
        .await
        .json();
    assert_eq!(l, l2);

    let d = send(&app, "GET", "/api/v1/databases", None, None)
        .await
        .json();
    assert_eq!(d["project"], false);
    assert_eq!(d["databases"][0]["kind"], "sqlite");

    let h = send(&app, "GET", "/api/v1/migrations/health", None, None).await;
    assert_eq!(h.status, StatusCode::OK);
    let h = h.json();
    assert_eq!(h["pending"], 3);
    assert_eq!(h["reachable"], true);

    let i = send(&app, "GET", "/api/v1/migrations/info", None, None)
        .await
        .json();
    assert_eq!(i["database"]["kind"], "sqlite");
    assert_eq!(i["counts"]["pending"], 3);
    assert_eq!(i["strata_version"], env!("CARGO_PKG_VERSION"));

    let hist = send(&app, "GET", "/api/v1/migrations/history", None, None)
        .await
        .json();
    assert_eq!(hist["events"], json!([]));
    let audit = send(&app, "GET", "/api/v1/migrations/audit?limit=5", None, None)
        .await
        .json();
    assert_eq!(audit["entries"], json!([]));

    let probe = send(&app, "GET", "/health", None, None).await;
    // Pending migrations make a database degraded: still 200 for a load balancer.
    assert_eq!(
        (probe.status, probe.json()),
        (StatusCode::OK, json!({"status": "degraded"}))
    );

    let m = send(&app, "GET", "/metrics", None, None).await;
    assert!(
        m.content_type
            .starts_with("application/openmetrics-text; version=1.0.0"),
        "{}",
        m.content_type
    );
    assert!(
        m.text
            .contains("strata_migrations{database=\"default\",state=\"pending\"} 3"),
        "{}",
        m.text
    );
    assert!(
        m.text
            .contains("strata_database_up{database=\"default\"} 1"),
        "{}",
        m.text
    );

    let o = send(&app, "GET", "/openapi.json", None, None).await.json();
    assert_eq!(o["openapi"], "3.0.3");
    assert_eq!(o["info"]["version"], env!("CARGO_PKG_VERSION"));
    let param = &o["paths"]["/api/v1/migrations/status"]["get"]["parameters"][0];
    assert_eq!(
        (&param["name"], &param["schema"]["enum"]),
        (&json!("database"), &json!(["default"]))
    );

    let page = send(&app, "GET", "/", None, None).await;
    assert!(page.content_type.starts_with("text/html"));
    assert!(
        page.text.contains("<script src=\"/console.js\""),
        "{}",
        page.text
    );
    for asset in ["/console.js", "/console.css"] {
        let a = send(&app, "GET", asset, None, None).await;
        assert_eq!(a.status, StatusCode::OK);
        assert!(a.text.len() > 1000, "{asset} is served");
    }

    let missing = send(&app, "GET", "/api/v1/nope", None, None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.json()["error"]["kind"], "not_found");
}

/// Every route the router serves is described in the OpenAPI document, with the
/// methods it answers.
#[test]
fn openapi_describes_every_route() {
    let doc: Value =
        serde_json::from_str(include_str!("../../../strata-server/assets/openapi.json")).unwrap();
    let lib = include_str!("../../../strata-server/src/lib.rs");
    let mut routes = 0;
    for line in lib
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with(".route(\""))
    {
        let path = line.split('"').nth(1).unwrap();
        let method = if line.contains("post(") {
            "post"
        } else {
            "get"
        };
        if path == "/api/v1/migrations"
            || path.ends_with(".js")
            || path.ends_with(".css")
            || path.ends_with(".svg")
        {
            continue; // the same list as `/api/v1/migrations/`; the console's static files
        }
        routes += 1;
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} is missing from openapi.json"
        );
    }
    assert!(routes >= 13, "found {routes} routes");
    assert_eq!(doc["paths"].as_object().unwrap().len(), routes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_roles() {
    let db = TestDb::sqlite();
    let p = Project::new();
    three(&p);
    let app = app(&db.url(), &p.migrations(), tokens());
    let migrate = json!({"dry_run": true});

    // No token, a wrong token, a malformed header: 401 everywhere under /api and /metrics.
    for uri in [
        "/api/v1/migrations/status",
        "/api/v1/migrations/",
        "/api/v1/migrations/audit",
        "/metrics",
        "/api/v1/databases",
    ] {
        let r = send(&app, "GET", uri, None, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{uri}");
        assert_eq!(r.json()["error"]["kind"], "unauthorized");
        let r = send(&app, "GET", uri, Some("wrong"), None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{uri}");
    }
    let hashed = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(OPERATOR.as_bytes()));
    let r = send(
        &app,
        "GET",
        "/api/v1/migrations/status",
        Some(&hashed),
        None,
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "the configured hash is not a token"
    );
    let r = send(
        &app,
        "POST",
        "/api/v1/migrations/migrate",
        None,
        Some(migrate.clone()),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // A viewer reads and dry-runs, but may not change anything (403).
    let r = get(&app, "/api/v1/migrations/status").await;
    assert_eq!(r.status, StatusCode::OK);
    let r = get(&app, "/metrics").await;
    assert_eq!(r.status, StatusCode::OK);
    for uri in [
        "/api/v1/migrations/migrate",
        "/api/v1/migrations/rollback/001",
    ] {
        let r = send(&app, "POST", uri, Some(VIEWER), Some(json!({}))).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{uri}");
        assert_eq!(r.json()["error"]["kind"], "forbidden");
    }
    let r = send(
        &app,
        "POST",
        "/api/v1/migrations/migrate",
        Some(VIEWER),
        Some(json!({"dry_run": true})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "a viewer may dry-run: {}", r.text);
    assert!(db.tables().is_empty(), "refused requests changed nothing");

    // The operator does both.
    let r = post(&app, "/api/v1/migrations/migrate", Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(versions(&r.json(), "applied"), ["001", "002", "003"]);

    // The probe, the document and the console need no token.
    for uri in ["/health", "/openapi.json", "/", "/console.js"] {
        assert_eq!(
            send(&app, "GET", uri, None, None).await.status,
            StatusCode::OK,
            "{uri}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_migrate_rollback_and_audit() {
    let db = TestDb::sqlite();
    let p = Project::new();
    three(&p);
    let app = app(&db.url(), &p.migrations(), tokens());

    // Dry run: the plan with its SQL, nothing in the database.
    let r = post(
        &app,
        "/api/v1/migrations/migrate",
        Some(json!({"target_version": "002", "dry_run": true})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = r.json();
    assert_eq!(r["dry_run"], true);
    assert_eq!(versions(&r, "applied"), ["001", "002"]);
    assert!(r["applied"][1]["sql"]
        .as_str()
        .unwrap()
        .contains("CREATE TABLE posts"));
    assert!(
        db.tables().is_empty(),
        "a dry run changes nothing: {:?}",
        db.tables()
    );

    // Migrate to 002, then the rest.
    let r = post(
        &app,
        "/api/v1/migrations/migrate",
        Some(json!({"target_version": "002"})),
    )
    .await
    .json();
    assert_eq!(
        (versions(&r, "applied"), r["dry_run"].clone()),
        (vec!["001".to_string(), "002".into()], json!(false))
    );
    let r = post(&app, "/api/v1/migrations/migrate", None).await.json();
    assert_eq!(versions(&r, "applied"), ["003"]);
    let s = get(&app, "/api/v1/migrations/status").await.json();
    assert_eq!(s["current"], "003");

    // Rolling back 001 needs cascade (002 depends on it): 409, nothing changed.
    let r = post(&app, "/api/v1/migrations/rollback/001", Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.json()["error"]["kind"], "has_dependents");
    assert!(db.tables().contains(&"users".to_string()));
    // A dry run with cascade shows both rollbacks; the real one runs them.
    let r = post(
        &app,
        "/api/v1/migrations/rollback/001",
        Some(json!({"cascade": true, "dry_run": true})),
    )
    .await
    .json();
    assert_eq!(versions(&r, "rolled_back"), ["002", "001"]);
    assert!(r["rolled_back"][0]["sql"]
        .as_str()
        .unwrap()
        .contains("DROP TABLE posts"));
    let r = post(
        &app,
        "/api/v1/migrations/rollback/001",
        Some(json!({"cascade": true})),
    )
    .await
    .json();
    assert_eq!(versions(&r, "rolled_back"), ["002", "001"]);
    assert_eq!(
        db.tables()
            .iter()
            .filter(|t| !t.contains("migrations")
                && *t != "audit_log"
                && *t != "application_metadata")
            .collect::<Vec<_>>(),
        ["tags"]
    );

    // Audit: every change and every POST that could change something, by token name
    // and user agent; history leaves the request rows out.
    let rows =
        db.query("SELECT operation, record_id, changed_by, user_agent FROM {audit} ORDER BY id");
    assert_eq!(
        rows,
        [
            "apply|001|deployer|strata-api-test/1",
            "apply|002|deployer|strata-api-test/1",
            "api_migrate|002|deployer|strata-api-test/1",
            "apply|003|deployer|strata-api-test/1",
            "api_migrate|head|deployer|strata-api-test/1",
            "api_rollback|001|deployer|strata-api-test/1",
            "rollback|002|deployer|strata-api-test/1",
            "rollback|001|deployer|strata-api-test/1",
            "api_rollback|001|deployer|strata-api-test/1",
        ]
    );
    let applied_by = db.query("SELECT applied_by FROM {history}");
    assert_eq!(applied_by, ["deployer"]);
    let h = get(&app, "/api/v1/migrations/history?limit=3").await.json();
    let ops: Vec<&str> = h["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["operation"].as_str().unwrap())
        .collect();
    assert_eq!(ops, ["rollback", "rollback", "apply"]);
    let a = get(&app, "/api/v1/migrations/audit?limit=2").await.json();
    assert_eq!(a["entries"][0]["operation"], "api_rollback");
    assert_eq!(
        a["entries"][0]["old_values"],
        json!({"version": "001", "cascade": true, "dry_run": false})
    );
    assert_eq!(a["entries"][0]["new_values"]["count"], 2);

    // Metrics counted the runs and each migration's duration.
    let m = get(&app, "/metrics").await.text;
    assert!(
        m.contains(
            "strata_runs_total{database=\"default\",operation=\"migrate\",outcome=\"ok\"} 2"
        ),
        "{m}"
    );
    assert!(
        m.contains(
            "strata_runs_total{database=\"default\",operation=\"rollback\",outcome=\"refused\"} 1"
        ),
        "a refusal (has_dependents) is not a failure: {m}"
    );
    assert!(!m.contains("outcome=\"failed\""), "nothing failed: {m}");
    assert!(
        m.contains(
            "strata_migration_duration_seconds_count{database=\"default\",direction=\"down\"} 2"
        ),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_json_errors_and_change_nothing() {
    let db = TestDb::sqlite();
    let p = Project::new();
    three(&p);
    let app = app(&db.url(), &p.migrations(), Tokens::default());
    // (method, uri, body, status, error kind)
    #[rustfmt::skip]
    let cases: Vec<(&str, &str, Option<Value>, u16, &str)> = vec![
        ("POST", "/api/v1/migrations/migrate", Some(json!({"target_version": "999"})), 404, "unknown_target"),
        ("POST", "/api/v1/migrations/migrate", Some(json!({"target_version": ""})), 404, "unknown_target"),
        ("POST", "/api/v1/migrations/migrate", Some(json!({"target": "002"})), 400, "bad_request"),
        ("POST", "/api/v1/migrations/migrate", Some(json!({"dry_run": "yes"})), 400, "bad_request"),
        ("POST", "/api/v1/migrations/rollback/002", Some(json!({})), 409, "not_applied"),
        ("POST", "/api/v1/migrations/rollback/xyz", None, 404, "unknown_target"),
        ("GET", "/api/v1/migrations/history?limit=0", None, 400, "bad_request"),
        ("GET", "/api/v1/migrations/history?limit=10001", None, 400, "bad_request"),
        ("GET", "/api/v1/migrations/history?limit=-1", None, 400, "bad_request"),
        ("GET", "/api/v1/migrations/status?database=other", None, 404, "unknown_database"),
        ("GET", "/api/v1/migrations/status?colour=red", None, 400, "bad_request"),
    ];
    for (method, uri, body, status, kind) in cases {
        let r = send(&app, method, uri, None, body.clone()).await;
        assert_eq!(
            r.status.as_u16(),
            status,
            "{method} {uri} {body:?}: {}",
            r.text
        );
        assert!(
            r.content_type.starts_with("application/json"),
            "{uri}: {}",
            r.content_type
        );
        assert_eq!(r.json()["error"]["kind"], kind, "{method} {uri} {body:?}");
    }
    let raw = Request::builder()
        .method("POST")
        .uri("/api/v1/migrations/migrate")
        .header("host", "localhost:8080")
        .header("content-type", "application/json")
        .body(Body::from("{not json"))
        .unwrap();
    let r = app.clone().oneshot(raw).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(db.tables().is_empty(), "{:?}", db.tables());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_database_is_503_and_unhealthy() {
    let p = Project::new();
    three(&p);
    let url = "postgres://nobody:hunter2@127.0.0.1:1/none?connect_timeout=2";
    let app = app(url, &p.migrations(), Tokens::default());
    let h = send(&app, "GET", "/api/v1/migrations/health", None, None).await;
    assert_eq!(h.status, StatusCode::SERVICE_UNAVAILABLE, "{}", h.text);
    assert_eq!(h.json()["status"], "unhealthy");
    assert_eq!(h.json()["reachable"], false);
    let probe = send(&app, "GET", "/health", None, None).await;
    assert_eq!(probe.status, StatusCode::SERVICE_UNAVAILABLE);
    let s = send(&app, "GET", "/api/v1/migrations/status", None, None).await;
    assert_eq!(s.status, StatusCode::SERVICE_UNAVAILABLE, "{}", s.text);
    assert_eq!(s.json()["error"]["kind"], "connection_failed");
    assert!(
        !s.text.contains("hunter2"),
        "no password in errors: {}",
        s.text
    );
    let m = send(&app, "GET", "/metrics", None, None).await.text;
    assert!(
        m.contains("strata_database_up{database=\"default\"} 0"),
        "{m}"
    );
}

/// Migrate and roll back through the API on every engine the suite reaches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_and_rollback_on_every_engine() {
    for db in tokio::task::spawn_blocking(|| engines("api_every_engine"))
        .await
        .unwrap()
    {
        let p = Project::new();
        three(&p);
        let app = app(&db.url(), &p.migrations(), tokens());
        let r = post(&app, "/api/v1/migrations/migrate", None).await;
        assert_eq!(r.status, StatusCode::OK, "{}: {}", db.url(), r.text);
        assert_eq!(versions(&r.json(), "applied"), ["001", "002", "003"]);
        let s = get(&app, "/api/v1/migrations/status").await.json();
        assert_eq!(s["current"], "003", "{}", db.url());
        let r = post(&app, "/api/v1/migrations/rollback/003", None).await;
        assert_eq!(r.status, StatusCode::OK, "{}: {}", db.url(), r.text);
        let s = get(&app, "/api/v1/migrations/status").await.json();
        assert_eq!(s["migrations"][2]["state"], "pending", "{}", db.url());
        let who = tokio::task::spawn_blocking(move || {
            db.query("SELECT changed_by FROM {audit} WHERE operation = 'rollback'")
        })
        .await
        .unwrap();
        assert_eq!(who, ["deployer"]);
    }
}

/// A multi-database project: `?database=` is required and selects the member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_databases_by_name() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    for (db, table) in [("main", "users"), ("events", "clicks")] {
        let dir = r.join(db);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(format!("001_{table}.sql")),
            format!("CREATE TABLE {table} (id INTEGER);\n-- strata:down\nDROP TABLE {table};\n"),
        )
        .unwrap();
    }
    std::fs::write(
        r.join("events/002_more.sql"),
        "-- Depends: main:001\nCREATE TABLE more_clicks (id INTEGER);\n-- strata:down\nDROP TABLE more_clicks;\n",
    )
    .unwrap();
    let toml = format!(
        "[databases.main]\nurl = \"sqlite://{0}/main.db\"\ndir = \"{0}/main\"\n\n[databases.events]\nurl = \"sqlite://{0}/events.db\"\ndir = \"{0}/events\"\n",
        r.display()
    );
    std::fs::write(r.join("strata.toml"), toml).unwrap();
    let config = Config::load(
        &Overrides {
            config: Some(r.join("strata.toml")),
            ..Default::default()
        },
        &|_| None,
    )
    .unwrap();
    let app = strata_server::router(ApiState::new(config, Tokens::default()));

    let d = send(&app, "GET", "/api/v1/databases", None, None)
        .await
        .json();
    assert_eq!(d["project"], true);
    assert_eq!(d["databases"][1]["name"], "events");
    let s = send(&app, "GET", "/api/v1/migrations/status", None, None).await;
    assert_eq!(s.status, StatusCode::BAD_REQUEST);
    assert!(s.text.contains("main, events"), "{}", s.text);

    // events:002 waits for main:001: migrating events alone applies 001 and refuses
    // (409) to pass 002, as `strata up --databases events` does.
    let e = send(
        &app,
        "POST",
        "/api/v1/migrations/migrate?database=events",
        None,
        None,
    )
    .await;
    assert_eq!(e.status, StatusCode::CONFLICT, "{}", e.text);
    assert!(
        e.text.contains("events:002 waits for main:001"),
        "{}",
        e.text
    );
    let m = send(
        &app,
        "POST",
        "/api/v1/migrations/migrate?database=main",
        None,
        None,
    )
    .await
    .json();
    assert_eq!(
        m["applied"],
        json!([{"version": "001", "name": "users", "execution_time_ms": m["applied"][0]["execution_time_ms"], "database": "main"}])
    );
    let e = send(
        &app,
        "POST",
        "/api/v1/migrations/migrate?database=events",
        None,
        None,
    )
    .await
    .json();
    assert_eq!(versions(&e, "applied"), ["002"]);
    // main:001 cannot be rolled back while events:002 needs it.
    let r = send(
        &app,
        "POST",
        "/api/v1/migrations/rollback/001?database=main",
        None,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert!(r.text.contains("events:002"), "{}", r.text);
    let s = send(
        &app,
        "GET",
        "/api/v1/migrations/status?database=main",
        None,
        None,
    )
    .await
    .json();
    assert_eq!(s["current"], "001");
}

/// MongoDB and Elasticsearch through the API: JSON operations applied, read back from
/// the store, rolled back.
#[test]
fn document_stores_through_the_api() {
    use crate::docsupport::{Elastic, Mongo};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if let Some(m) = Mongo::new("api_mongo") {
        let p = Project::new();
        p.file("001_users.json", r#"{"operations": [{"type": "create_collection", "collection": "users"}, {"type": "create_index", "collection": "users", "index": [["email", 1]], "options": {"unique": true}}]}"#);
        let app = app(&m.url, &p.migrations(), tokens());
        let r = rt.block_on(post(&app, "/api/v1/migrations/migrate", None));
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert!(m.indexes("users").contains(&"email_1".to_string()));
        let a = rt.block_on(get(&app, "/api/v1/migrations/audit")).json();
        assert_eq!(a["entries"][0]["operation"], "api_migrate");
        assert_eq!(a["entries"][1]["changed_by"], "deployer");
        let r = rt.block_on(post(&app, "/api/v1/migrations/rollback/001", None));
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert!(
            !m.collections().contains(&"users".to_string()),
            "{:?}",
            m.collections()
        );
    }
    if let Some(es) = Elastic::new("api_es") {
        let p = Project::new();
        std::fs::write(p.root().join("strata.toml"), es.config()).unwrap();
        let ix = es.ix("docs");
        p.file("001_docs.json", &format!(r#"{{"operations": [{{"type": "create_index", "index": "{ix}", "mappings": {{"properties": {{"title": {{"type": "text"}}}}}}}}]}}"#));
        let config = Config::load(
            &Overrides {
                database_url: Some(es.url.clone()),
                dir: Some(p.migrations()),
                config: Some(p.root().join("strata.toml")),
                ..Default::default()
            },
            &|_| None,
        )
        .unwrap();
        let app = strata_server::router(ApiState::new(config, tokens()));
        let s = rt.block_on(get(&app, "/api/v1/migrations/status")).json();
        assert_eq!(s["migrations"][0]["state"], "pending");
        let r = rt.block_on(post(&app, "/api/v1/migrations/migrate", None));
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert!(es.exists(&ix));
        let h = rt.block_on(get(&app, "/api/v1/migrations/health"));
        assert_eq!(h.status, StatusCode::OK, "{}", h.text);
        assert_eq!(h.json()["pending"], 0);
        let r = rt.block_on(post(&app, "/api/v1/migrations/rollback/001", None));
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert!(!es.exists(&ix));
    }
}

/// A page on another site can make a browser POST to a server on the user's machine (a
/// form, or `fetch` with `text/plain`): with no tokens (loopback) that applied
/// migrations and dropped a table. State-changing requests take JSON bodies only and
/// refuse another origin; the console's own requests (same origin, JSON) and clients
/// that send no Origin (curl, CI) still work.
#[tokio::test(flavor = "multi_thread")]
async fn cross_site_requests_change_nothing() {
    let db = TestDb::sqlite();
    let p = Project::new();
    three(&p);
    let app = app(&db.url(), &p.migrations(), Tokens::default());
    let raw =
        |content_type: Option<&str>, origin: Option<&str>, fetch_site: Option<&str>, body: &str| {
            let mut req = Request::builder()
                .method("POST")
                .uri("/api/v1/migrations/migrate")
                .header("host", "127.0.0.1:8080");
            if let Some(t) = content_type {
                req = req.header("content-type", t);
            }
            if let Some(o) = origin {
                req = req.header("origin", o);
            }
            if let Some(s) = fetch_site {
                req = req.header("sec-fetch-site", s);
            }
            req.body(Body::from(body.to_string())).unwrap()
        };
    let cases = [
        (
            raw(Some("text/plain"), Some("http://evil.example"), None, "{}"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            raw(
                Some("application/x-www-form-urlencoded"),
                None,
                None,
                "dry_run=false",
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            raw(Some("text/plain"), None, None, "{}"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            raw(
                Some("application/json"),
                Some("http://evil.example"),
                None,
                "{}",
            ),
            StatusCode::FORBIDDEN,
            "cross_origin",
        ),
        (
            raw(Some("application/json"), Some("null"), None, "{}"),
            StatusCode::FORBIDDEN,
            "cross_origin",
        ),
        (
            raw(
                Some("application/json"),
                Some("http://127.0.0.1:8081"),
                None,
                "{}",
            ),
            StatusCode::FORBIDDEN,
            "cross_origin",
        ),
        (
            raw(Some("application/json"), None, Some("cross-site"), "{}"),
            StatusCode::FORBIDDEN,
            "cross_origin",
        ),
    ];
    for (req, status, kind) in cases {
        let res = app.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), status);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["kind"], kind, "{v}");
    }
    assert!(db.tables().is_empty(), "nothing applied: {:?}", db.tables());
    // The console's own request: same origin, JSON.
    let res = app
        .clone()
        .oneshot(raw(
            Some("application/json; charset=utf-8"),
            Some("http://127.0.0.1:8080"),
            Some("same-origin"),
            "{}",
        ))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(db.tables(), ["posts", "tags", "users"]);
}
