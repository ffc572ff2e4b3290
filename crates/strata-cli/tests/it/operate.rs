//! The API as an operations tool: who may send what (Host, Origin, content type,
//! tokens), every error as JSON, refused attempts audited, partial failures reported
//! as what ran and what failed, recovery (out-of-order apply, repair, stamp) without
//! the CLI, a lock held elsewhere answered at once, protected-environment rules, live
//! run events, and metrics read by a real OpenMetrics parser.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use strata_core::Config;
use strata_server::{ApiState, Tokens};
use tower::ServiceExt;

use crate::api::{config, send, tokens, Reply, OPERATOR, VIEWER};
use crate::support::*;

fn router(config: Config, tokens: Tokens) -> Router {
    strata_server::router(ApiState::new(config, tokens))
}

/// A request with every header spelled out (`send` adds a loopback Host and JSON).
async fn raw(app: &Router, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
    let res = app.clone().oneshot(req).await.unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let v = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "{status} is not JSON ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    (status, headers, v)
}

/// A SQLite database and a project of five reversible migrations.
fn five_on_sqlite() -> (TestDb, Project) {
    let p = Project::new();
    five(&p);
    (TestDb::sqlite(), p)
}

fn five(p: &Project) {
    for (v, name) in [
        ("001", "a"),
        ("002", "b"),
        ("003", "c"),
        ("004", "d"),
        ("005", "e"),
    ] {
        p.file(
            &format!("{v}_{name}.sql"),
            &format!("CREATE TABLE t{v} (id INTEGER);\n-- strata:down\nDROP TABLE t{v};\n"),
        );
    }
}

async fn post_as(app: &Router, token: Option<&str>, uri: &str, body: Value) -> Reply {
    send(app, "POST", uri, token, Some(body)).await
}

fn audit_rows(db: &TestDb, operation: &str) -> Vec<String> {
    db.query(&format!(
        "SELECT changed_by || '|' || record_id FROM {{audit}} WHERE operation = '{operation}' ORDER BY id"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_tokens_and_errors_follow_the_rules_and_refusals_are_audited() {
    let (db, p) = five_on_sqlite();
    // Token-less loopback: the mode a DNS-rebinding page aims at.
    let open = router(config(&db.url(), &p.migrations()), Tokens::default());
    let get_host = |host: &str| {
        Request::builder()
            .uri("/api/v1/migrations/status")
            .header("host", host)
            .body(Body::empty())
            .unwrap()
    };
    for forged in [
        "evil.example:8080",
        "127.0.0.1.nip.io:8080",
        "localhost.evil.example",
    ] {
        let (status, _, v) = raw(&open, get_host(forged)).await;
        assert_eq!(status, StatusCode::MISDIRECTED_REQUEST, "{forged}: {v}");
        assert_eq!(v["error"]["kind"], "host_not_allowed");
    }
    for fine in ["127.0.0.1:8080", "localhost:8080", "[::1]:8080"] {
        assert_eq!(raw(&open, get_host(fine)).await.0, StatusCode::OK, "{fine}");
    }
    // A name the operator configured, and an origin they allowed.
    let mut named = config(&db.url(), &p.migrations());
    named.server.hosts = vec!["strata.example.com".into()];
    named.server.origins = vec!["https://ops.example.com".into()];
    let named = router(named, Tokens::default());
    assert_eq!(
        raw(&named, get_host("strata.example.com")).await.0,
        StatusCode::OK
    );
    let from = |origin: &str| {
        Request::builder()
            .method("POST")
            .uri("/api/v1/migrations/migrate")
            .header("host", "strata.example.com")
            .header("origin", origin)
            .header("content-type", "application/json")
            .body(Body::from(r#"{"dry_run":true}"#))
            .unwrap()
    };
    assert_eq!(
        raw(&named, from("https://ops.example.com")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        raw(&named, from("https://strata.example.com")).await.0,
        StatusCode::OK
    );
    let (status, _, v) = raw(&named, from("https://evil.example")).await;
    assert_eq!(
        (status, v["error"]["kind"].clone()),
        (StatusCode::FORBIDDEN, json!("cross_origin"))
    );

    // 405 and 413 are JSON like everything else.
    let (status, headers, v) = raw(
        &open,
        Request::builder()
            .method("GET")
            .uri("/api/v1/migrations/migrate")
            .header("host", "127.0.0.1:8080")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{v}");
    assert_eq!(v["error"]["kind"], "method_not_allowed");
    assert!(
        headers["allow"].to_str().unwrap().contains("POST"),
        "{headers:?}"
    );
    let huge = format!(r#"{{"target_version":"{}"}}"#, "9".repeat(3 << 20));
    let (status, _, v) = raw(
        &open,
        Request::builder()
            .method("POST")
            .uri("/api/v1/migrations/migrate")
            .header("host", "127.0.0.1:8080")
            .header("content-type", "application/json")
            .body(Body::from(huge))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!(v["error"]["kind"], "payload_too_large");
    assert!(db.tables().is_empty(), "nothing ran: {:?}", db.tables());

    // Tokens: a standard 401 challenge; the scheme in any case.
    let app = router(config(&db.url(), &p.migrations()), tokens());
    let status_with = |auth: Option<&str>| {
        let mut r = Request::builder()
            .uri("/api/v1/migrations/status")
            .header("host", "127.0.0.1:8080");
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        r.body(Body::empty()).unwrap()
    };
    let (status, headers, v) = raw(&app, status_with(None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["www-authenticate"], "Bearer realm=\"strata\"");
    assert_eq!(v["error"]["kind"], "unauthorized");
    let (status, headers, v) = raw(&app, status_with(Some("Bearer not-a-token"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        headers["www-authenticate"],
        "Bearer realm=\"strata\", error=\"invalid_token\""
    );
    assert_eq!(v["error"]["kind"], "invalid_token");
    for scheme in ["BEARER", "bearer", "Bearer", "bEaReR"] {
        let (status, _, _) = raw(&app, status_with(Some(&format!("{scheme} {VIEWER}")))).await;
        assert_eq!(status, StatusCode::OK, "{scheme}");
    }
    let who = send(&app, "GET", "/api/v1/whoami", Some(VIEWER), None)
        .await
        .json();
    assert_eq!(
        who,
        json!({"name": "dash", "role": "viewer", "tokens": true})
    );

    // Once the history tables exist, refused attempts leave rows naming who tried.
    let r = post_as(
        &app,
        Some(OPERATOR),
        "/api/v1/migrations/migrate",
        json!({"target_version": "001"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = post_as(&app, Some(VIEWER), "/api/v1/migrations/migrate", json!({})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = post_as(
        &app,
        Some("wrong"),
        "/api/v1/migrations/rollback/001",
        json!({}),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = raw(
        &app,
        Request::builder()
            .method("POST")
            .uri("/api/v1/migrations/migrate")
            .header("host", "127.0.0.1:8080")
            .header("authorization", format!("Bearer {OPERATOR}"))
            .header("content-type", "text/plain")
            .body(Body::from("{}"))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        audit_rows(&db, "api_refused"),
        [
            "dash|/api/v1/migrations/migrate",
            "anonymous|/api/v1/migrations/rollback/001",
            "deployer|/api/v1/migrations/migrate",
        ]
    );
    assert_eq!(db.tables().iter().filter(|t| t.starts_with('t')).count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_failure_answers_what_ran_what_failed_and_where() {
    let db = TestDb::sqlite();
    let p = Project::new();
    p.file("001_a.sql", "CREATE TABLE a (id INTEGER);\n")
        .file("002_b.sql", "CREATE TABLE b (id INTEGER);\n")
        .file(
            "003_c.sql",
            "CREATE TABLE c (id INTEGER);\n\nINSERT INTO nowhere VALUES (1);\n",
        );
    let app = router(config(&db.url(), &p.migrations()), tokens());
    // Listen to the live stream before the run starts.
    let events = app
        .clone()
        .oneshot(
            Request::builder()
                .uri("/api/v1/events")
                .header("host", "127.0.0.1:8080")
                .header("authorization", format!("Bearer {VIEWER}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    let mut stream = events.into_body();

    let r = post_as(
        &app,
        Some(OPERATOR),
        "/api/v1/migrations/migrate",
        json!({}),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    let v = r.json();
    assert_eq!(v["error"]["kind"], "migration_failed");
    assert!(
        v["error"]["file"].as_str().unwrap().ends_with("003_c.sql"),
        "{v}"
    );
    assert_eq!(v["error"]["line"], 3, "the failing statement's line: {v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("nowhere"),
        "{v}"
    );
    assert_eq!(
        v["applied"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["version"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["001", "002"]
    );
    assert_eq!(v["failed"]["version"], "003");
    let id = v["run_id"].as_u64().expect("a run id");

    // The run's log page and the live stream tell the same story.
    let run = send(
        &app,
        "GET",
        &format!("/api/v1/runs/{id}"),
        Some(VIEWER),
        None,
    )
    .await
    .json();
    assert_eq!(run["outcome"], "failed");
    let kinds: Vec<&str> = run["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    for want in [
        "run_started",
        "plan",
        "step_started",
        "step_finished",
        "step_failed",
        "run_finished",
    ] {
        assert!(kinds.contains(&want), "{want} in {kinds:?}");
    }
    assert_eq!(kinds.iter().filter(|k| **k == "step_finished").count(), 2);
    let mut live = String::new();
    while !live.contains("run_finished") {
        let frame = tokio::time::timeout(Duration::from_secs(10), stream.frame())
            .await
            .expect("the stream sends the run's events")
            .unwrap()
            .unwrap();
        if let Ok(data) = frame.into_data() {
            live.push_str(&String::from_utf8_lossy(&data));
        }
    }
    for want in [
        "\"step_finished\"",
        "\"step_failed\"",
        "\"version\":\"003\"",
    ] {
        assert!(live.contains(want), "{want} in the live stream: {live}");
    }
    let runs = send(&app, "GET", "/api/v1/runs", Some(VIEWER), None)
        .await
        .json();
    assert_eq!(runs["runs"][0]["id"], id);

    // The audit row counts what ran and names what failed.
    let a = send(
        &app,
        "GET",
        "/api/v1/migrations/audit?limit=1",
        Some(VIEWER),
        None,
    )
    .await
    .json();
    let row = &a["entries"][0];
    assert_eq!(row["operation"], "api_migrate");
    assert_eq!(row["new_values"]["count"], 2, "{row}");
    assert_eq!(row["new_values"]["failed"]["version"], "003", "{row}");
    assert_eq!(
        db.query("SELECT version FROM {history} ORDER BY version"),
        ["001", "002"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_out_of_order_repair_and_stamp_recover_without_the_cli() {
    let (db, p) = five_on_sqlite();
    let app = router(config(&db.url(), &p.migrations()), tokens());
    let post = |uri: &'static str, body: Value| {
        let app = app.clone();
        async move { post_as(&app, Some(OPERATOR), uri, body).await }
    };
    assert_eq!(
        post("/api/v1/migrations/migrate", json!({})).await.status,
        StatusCode::OK
    );

    // The dry run says the rollback leaves 002 pending below applied migrations.
    let plan = post("/api/v1/migrations/rollback/002", json!({"dry_run": true}))
        .await
        .json();
    assert_eq!(plan["leaves_out_of_order"], json!(["002"]), "{plan}");
    let r = post("/api/v1/migrations/rollback/002", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = post("/api/v1/migrations/migrate", json!({"dry_run": true})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.json()["error"]["kind"], "out_of_order");
    // The way back, over the API.
    let r = post(
        "/api/v1/migrations/migrate",
        json!({"allow_out_of_order": true}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["applied"][0]["version"], "002");
    assert_eq!(db.query("SELECT count(*) FROM {history}"), ["5"]);

    // An edited applied file: drift refuses, repair re-records it.
    p.file(
        "003_c.sql",
        "CREATE TABLE t003 (id INTEGER);  -- reviewed\n-- strata:down\nDROP TABLE t003;\n",
    );
    p.file("006_f.sql", "CREATE TABLE t006 (id INTEGER);\n");
    let r = post("/api/v1/migrations/migrate", json!({})).await;
    assert_eq!(
        (r.status, r.json()["error"]["kind"].clone()),
        (StatusCode::CONFLICT, json!("drift")),
        "{}",
        r.text
    );
    // The detail view shows what changed since it ran.
    let d = send(&app, "GET", "/api/v1/migrations/003", Some(VIEWER), None)
        .await
        .json();
    let diff = d["drift"]["diff"]
        .as_str()
        .unwrap_or_else(|| panic!("no drift in {d}"));
    assert!(
        diff.contains("-CREATE TABLE t003 (id INTEGER);\n")
            && diff.contains("+CREATE TABLE t003 (id INTEGER);  -- reviewed\n"),
        "{diff}"
    );
    let dry = post("/api/v1/migrations/repair", json!({"dry_run": true}))
        .await
        .json();
    assert_eq!(dry["repaired"][0]["version"], "003", "{dry}");
    let r = post("/api/v1/migrations/repair", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // 006 was created by hand: stamp records it without running it.
    db.exec("CREATE TABLE t006 (id INTEGER)");
    let r = post("/api/v1/migrations/stamp/006", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let d = send(&app, "GET", "/api/v1/migrations/003", Some(VIEWER), None)
        .await
        .json();
    assert!(d["drift"].is_null(), "repaired: no drift shown: {d}");
    let st = send(&app, "GET", "/api/v1/migrations/status", Some(VIEWER), None)
        .await
        .json();
    assert!(
        st["migrations"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["state"] == "applied"),
        "{st}"
    );
    let ops: Vec<String> = audit_rows(&db, "api_repair")
        .into_iter()
        .chain(audit_rows(&db, "api_stamp"))
        .collect();
    assert_eq!(ops, ["deployer|", "deployer|006"]);

    // The detail view: SQL both ways, checksum, who applied it.
    let d = send(&app, "GET", "/api/v1/migrations/002", Some(VIEWER), None)
        .await
        .json();
    assert_eq!(d["state"], "applied");
    assert_eq!(d["applied_by"], "deployer");
    assert!(
        d["up_sql"].as_str().unwrap().contains("CREATE TABLE t002"),
        "{d}"
    );
    assert!(
        d["down_sql"].as_str().unwrap().contains("DROP TABLE t002"),
        "{d}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_held_elsewhere_is_409_at_once_or_waited_for_when_asked() {
    let (db, p) = five_on_sqlite();
    let app = router(config(&db.url(), &p.migrations()), tokens());
    assert_eq!(
        post_as(
            &app,
            Some(OPERATOR),
            "/api/v1/migrations/migrate",
            json!({"target_version": "001"})
        )
        .await
        .status,
        StatusCode::OK
    );
    let TestDb::Sqlite { path, .. } = &db else {
        unreachable!()
    };
    // Another process's write transaction holds SQLite's lock (the migration lock).
    let holder = rusqlite::Connection::open(path).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let started = Instant::now();
    let r = post_as(
        &app,
        Some(OPERATOR),
        "/api/v1/migrations/migrate",
        json!({}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.json()["error"]["kind"], "lock_timeout");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "answered without waiting out the 60 s lock_timeout ({:?})",
        started.elapsed()
    );
    // Asked to wait, it waits for the holder to finish.
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(800));
        holder.execute_batch("COMMIT").unwrap();
    });
    let r = post_as(
        &app,
        Some(OPERATOR),
        "/api/v1/migrations/migrate",
        json!({"wait_for_lock_seconds": 30}),
    )
    .await;
    release.join().unwrap();
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["applied"].as_array().unwrap().len(), 4);
    let m = send(&app, "GET", "/metrics", Some(VIEWER), None).await.text;
    assert!(
        m.contains("strata_lock_waits_total{database=\"default\"} 1\n"),
        "one wait, not one per run: {m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protected_environment_needs_confirmation_and_clean_lint_over_the_api() {
    let Some(db) = crate::server::sync(|| TestDb::postgres("api_protected")) else {
        return;
    };
    let p = Project::new();
    p.file(
        "001_users.sql",
        "CREATE TABLE users (id int PRIMARY KEY, email text);\n",
    )
    .file(
        "002_users_email.sql",
        "CREATE INDEX users_email ON users (email);\n-- strata:down\nDROP INDEX users_email;\n",
    );
    // PostgreSQL helpers block: off the runtime's worker.
    let q = |sql: &str| crate::server::sync(|| db.query(sql));
    let mut c = config(&db.url(), &p.migrations());
    c.protected = true;
    c.env = Some("prod".into());
    let app = router(c, tokens());
    let post = |body: Value| {
        let app = app.clone();
        async move { post_as(&app, Some(OPERATOR), "/api/v1/migrations/migrate", body).await }
    };
    assert_eq!(
        post(json!({"target_version": "001", "confirm": true}))
            .await
            .status,
        StatusCode::OK
    );
    // The dry run carries lint's findings, so a confirmation can show the risk.
    let dry = post(json!({"dry_run": true})).await.json();
    let lint = dry["lint"]
        .as_array()
        .expect("lint findings in the dry run");
    assert!(
        lint.iter()
            .any(|f| f["rule"] == "index-not-concurrent" && f["severity"] == "error"),
        "{dry}"
    );
    let r = post(json!({})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("needs confirmation"),
        "{}",
        r.text
    );
    let r = post(json!({"confirm": true})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("lint finding"),
        "{}",
        r.text
    );
    assert_eq!(
        q("SELECT count(*) FROM {history}"),
        ["1"],
        "refusals ran nothing"
    );
    let r = post(json!({"confirm": true, "allow_unsafe": true})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // A rollback needs the confirmation too (and, protected, a recent backup).
    let r = post_as(
        &app,
        Some(OPERATOR),
        "/api/v1/migrations/rollback/002",
        json!({}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(q("SELECT count(*) FROM {history}"), ["2"]);
    let refused: Vec<String> = q(
        "SELECT new_values FROM {audit} WHERE operation IN ('api_migrate', 'api_rollback') ORDER BY id",
    );
    assert_eq!(
        refused.len(),
        5,
        "every POST is audited, refusals included: {refused:?}"
    );
    crate::server::sync(move || drop(db));
}

/// The metrics text through a real OpenMetrics parser (Python's prometheus_client):
/// one JSON object per sample.
fn parse_openmetrics(text: &str) -> Option<Vec<Value>> {
    let python = std::env::var("STRATA_PROMETHEUS_PYTHON").ok();
    let Some(python) = python.filter(|p| std::path::Path::new(p).exists()) else {
        assert!(
            !required("prometheus"),
            "STRATA_TEST_REQUIRE includes prometheus but STRATA_PROMETHEUS_PYTHON is not set (scripts/webtools)"
        );
        eprintln!(
            "skipped the OpenMetrics parse: STRATA_PROMETHEUS_PYTHON is not set (scripts/webtools)"
        );
        return None;
    };
    let script = "import sys, json\nfrom prometheus_client.openmetrics.parser import text_string_to_metric_families as parse\nfor fam in parse(sys.stdin.read()):\n    for s in fam.samples:\n        print(json.dumps({'family': fam.name, 'type': fam.type, 'name': s.name, 'labels': s.labels, 'value': s.value}))\n";
    let mut child = std::process::Command::new(python)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "the parser refused the metrics: {}\n{text}",
        String::from_utf8_lossy(&o.stderr)
    );
    Some(
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
    )
}

fn sample(samples: &[Value], name: &str, labels: Value) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s["name"] == name
                && labels
                    .as_object()
                    .unwrap()
                    .iter()
                    .all(|(k, v)| &s["labels"][k] == v)
        })
        .and_then(|s| s["value"].as_f64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_openmetrics_and_count_what_they_say() {
    let (db, p) = five_on_sqlite();
    p.file("006_bad.sql", "INSERT INTO nowhere VALUES (1);\n");
    let app = router(config(&db.url(), &p.migrations()), tokens());
    let post = |uri: &'static str, body: Value| {
        let app = app.clone();
        async move { post_as(&app, Some(OPERATOR), uri, body).await.status }
    };
    // Known runs: two ok, one dry run, one refused (unknown target), one failed.
    assert_eq!(
        post(
            "/api/v1/migrations/migrate",
            json!({"target_version": "002"})
        )
        .await,
        StatusCode::OK
    );
    assert_eq!(
        post("/api/v1/migrations/migrate", json!({"dry_run": true})).await,
        StatusCode::OK
    );
    assert_eq!(
        post(
            "/api/v1/migrations/migrate",
            json!({"target_version": "999"})
        )
        .await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        post(
            "/api/v1/migrations/migrate",
            json!({"target_version": "004"})
        )
        .await,
        StatusCode::OK
    );
    assert_eq!(
        post("/api/v1/migrations/migrate", json!({})).await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    // A run by the CLI, not through this server, shows in the gauges.
    p.remove("006_bad.sql");
    ok(&p.strata(&db, &["up"]));
    let r = send(&app, "GET", "/metrics", Some(VIEWER), None).await;
    assert!(
        r.content_type.starts_with("application/openmetrics-text"),
        "{}",
        r.content_type
    );
    assert!(r.text.ends_with("# EOF\n"), "{}", r.text);
    let Some(samples) = parse_openmetrics(&r.text) else {
        return;
    };
    let runs = |outcome: &str| {
        sample(
            &samples,
            "strata_runs_total",
            json!({"operation": "migrate", "outcome": outcome}),
        )
        .unwrap_or(0.0)
    };
    assert_eq!(
        (runs("ok"), runs("dry_run"), runs("refused"), runs("failed")),
        (2.0, 1.0, 1.0, 1.0),
        "{}",
        r.text
    );
    let state = |s: &str| {
        sample(
            &samples,
            "strata_migrations",
            json!({"database": "default", "state": s}),
        )
    };
    assert_eq!(
        state("applied"),
        Some(5.0),
        "the CLI's run is counted: {}",
        r.text
    );
    assert_eq!(state("pending"), Some(0.0));
    assert_eq!(
        sample(
            &samples,
            "strata_database_up",
            json!({"database": "default"})
        ),
        Some(1.0)
    );
    let last = sample(
        &samples,
        "strata_last_successful_apply_timestamp_seconds",
        json!({}),
    )
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (now - last).abs() < 600.0,
        "last apply {last} is recent ({now})"
    );
    assert_eq!(
        sample(
            &samples,
            "strata_migration_failures_total",
            json!({"direction": "up"})
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &samples,
            "strata_migration_duration_seconds_count",
            json!({"direction": "up"})
        ),
        Some(5.0),
        "001-002, 003-004, then 005 before 006 failed"
    );
    assert_eq!(
        sample(
            &samples,
            "strata_build_info",
            json!({"version": env!("CARGO_PKG_VERSION")})
        ),
        Some(1.0)
    );
    // Bounded: no label carries a migration version.
    assert!(
        samples
            .iter()
            .all(|s| s["labels"].get("version").is_none() || s["name"] == "strata_build_info"),
        "{}",
        r.text
    );
}
