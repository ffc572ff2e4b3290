//! MongoDB and Elasticsearch migrations (SPEC section 6): each operation applied, read
//! back from the store, rolled back and read back again; bad input; a failure midway
//! and its resume; lease locks under 8 racing processes and after a killed holder; and
//! a reindex-and-swap that concurrent readers never see without its alias.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use mongodb::bson::doc;
use serde_json::{json, Value};

use crate::docsupport::*;
use crate::support::*;

fn strata(p: &Project, url: &str, args: &[&str]) -> std::process::Output {
    strata_in(p.root(), url, &p.migrations(), args)
}

#[test]
fn mongo_operations_apply_and_roll_back() {
    let Some(m) = Mongo::new("mongo_ops") else {
        return;
    };
    let p = Project::new();
    p.file(
        "001_users.json",
        r#"{
  "version": "1.0.0",
  "description": "users with a validator and a unique email",
  "operations": [
    {"type": "create_collection", "collection": "users",
     "options": {"validator": {"$jsonSchema": {"bsonType": "object", "required": ["email"]}}}},
    {"type": "create_index", "collection": "users", "index": [["email", 1]], "options": {"unique": true}}
  ]
}"#,
    );
    ok(&strata(&p, &m.url, &["up"]));
    assert!(m.collections().contains(&"users".to_string()));
    assert!(
        m.indexes("users").contains(&"email_1".to_string()),
        "{:?}",
        m.indexes("users")
    );
    // The validator and the unique index are really there.
    assert!(
        m.insert("users", vec![doc! {"name": "no email"}]).is_err(),
        "validator let a document without email in"
    );
    m.insert(
        "users",
        vec![
            doc! {"email": "a@x", "nick": "a"},
            doc! {"email": "b@x", "nick": "b"},
        ],
    )
    .unwrap();
    assert!(
        m.insert("users", vec![doc! {"email": "a@x"}]).is_err(),
        "unique index missing"
    );

    p.file(
        "002_fields.json",
        r#"{"version": "1.1.0", "operations": [
  {"type": "add_field", "collection": "users", "field": "status", "default": "active"},
  {"type": "rename_field", "collection": "users", "from": "nick", "to": "handle"}
]}"#,
    );
    p.file(
        "003_data.json",
        r#"{"version": "1.2.0", "operations": [
  {"type": "update_documents", "collection": "users", "filter": {"email": "b@x"}, "update": {"$set": {"status": "banned"}}},
  {"type": "run_command", "command": {"collMod": "users", "validationLevel": "moderate"}}
]}"#,
    );
    p.file(
        "003_data_rollback.json",
        r#"{"operations": [
  {"type": "update_documents", "collection": "users", "filter": {"status": "banned"}, "update": {"$set": {"status": "active"}}}
]}"#,
    );
    ok(&strata(&p, &m.url, &["up"]));
    let users = m.find("users", doc! {});
    assert_eq!(users.len(), 2);
    assert_eq!(
        users.iter().filter(|u| u.get_str("handle").is_ok()).count(),
        2,
        "{users:?}"
    );
    assert!(users.iter().all(|u| u.get_str("nick").is_err()));
    let status: Vec<&str> = users.iter().map(|u| u.get_str("status").unwrap()).collect();
    assert_eq!(status, ["active", "banned"]);
    let history = m.find("_migrations", doc! {});
    assert_eq!(history.len(), 3);
    assert!(history
        .iter()
        .all(|h| h.get_bool("success").unwrap() && h.get_str("checksum").unwrap().len() == 64));
    let st = json(&strata(&p, &m.url, &["--json", "status"]));
    assert_eq!(st["current"], "1.2.0", "{st}");

    // Roll back: the rollback file, then the default inverses (rename back, remove the
    // field, drop the index, drop the collection).
    ok(&strata(&p, &m.url, &["rollback", "1.0.0"]));
    let users = m.find("users", doc! {});
    assert!(
        users
            .iter()
            .all(|u| u.get_str("status").is_err() && u.get_str("nick").is_ok()),
        "{users:?}"
    );
    ok(&strata(&p, &m.url, &["rollback", "base"]));
    assert!(!m.collections().contains(&"users".to_string()));
    assert!(m.find("_migrations", doc! {}).is_empty());
    let ops: Vec<String> = m
        .find("_migrations_audit", doc! {})
        .iter()
        .map(|a| a.get_str("operation").unwrap().to_string())
        .collect();
    assert_eq!(ops.iter().filter(|o| *o == "apply").count(), 3, "{ops:?}");
    assert_eq!(
        ops.iter().filter(|o| *o == "rollback").count(),
        3,
        "{ops:?}"
    );
}

#[test]
fn mongo_migration_without_inverse_refuses_rollback_before_running() {
    let Some(m) = Mongo::new("mongo_noinv") else {
        return;
    };
    let p = Project::new();
    p.file(
        "001_c.json",
        r#"{"operations": [{"type": "create_collection", "collection": "c"}]}"#,
    );
    p.file(
        "002_d.json",
        r#"{"operations": [{"type": "update_documents", "collection": "c", "filter": {}, "update": {"$set": {"x": 1}}}]}"#,
    );
    ok(&strata(&p, &m.url, &["up"]));
    let o = strata(&p, &m.url, &["rollback", "base"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("no rollback"), "{}", stderr(&o));
    assert_eq!(
        m.find("_migrations", doc! {}).len(),
        2,
        "nothing may be rolled back"
    );
}

#[test]
fn mongo_bad_operations_name_file_and_line_and_change_nothing() {
    let Some(m) = Mongo::new("mongo_bad") else {
        return;
    };
    let p = Project::new();
    p.file(
        "001_ok.json",
        r#"{"operations": [{"type": "create_collection", "collection": "a"}]}"#,
    );
    p.file(
        "002_bad.json",
        "{\"operations\": [\n  {\"type\": \"create_collection\", \"collection\": \"b\"},\n  {\"type\": \"create_indx\", \"collection\": \"b\"}\n]}",
    );
    let o = strata(&p, &m.url, &["up"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("002_bad.json:3"), "{}", stderr(&o));
    assert!(stderr(&o).contains("create_indx"), "{}", stderr(&o));
    assert!(m.collections().is_empty(), "{:?}", m.collections());

    // SQL in a MongoDB directory is refused the same way.
    p.remove("002_bad.json");
    p.file("002_sql.sql", "CREATE TABLE t (id int);");
    let o = strata(&p, &m.url, &["up"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("002_sql.sql") && stderr(&o).contains("SQL"),
        "{}",
        stderr(&o)
    );
    assert!(m.collections().is_empty());
}

#[test]
fn mongo_failure_midway_is_recorded_and_resumes() {
    let Some(m) = Mongo::new("mongo_resume") else {
        return;
    };
    let p = Project::new();
    p.file(
        "001_c.json",
        r#"{"operations": [{"type": "create_collection", "collection": "c"}]}"#,
    );
    ok(&strata(&p, &m.url, &["up"]));
    m.insert("c", vec![doc! {"k": 1}, doc! {"k": 1}]).unwrap();
    // Operation 2 fails on the duplicates; operation 1 (not re-runnable) already ran.
    p.file(
        "002_idx.json",
        r#"{"operations": [
  {"type": "create_collection", "collection": "d"},
  {"type": "create_index", "collection": "c", "index": [["k", 1]], "options": {"unique": true}},
  {"type": "add_field", "collection": "c", "field": "z", "default": 0}
]}"#,
    );
    let o = strata(&p, &m.url, &["up"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("002_idx.json:3"), "{}", stderr(&o));
    let row = &m.find("_migrations", doc! {"_id": "002"})[0];
    assert!(!row.get_bool("success").unwrap());
    assert_eq!(row.get_i64("statements_done").unwrap(), 1);
    let st = json(&strata(&p, &m.url, &["--json", "status"]));
    assert!(st.to_string().contains("failed"), "{st}");
    // A plain `up` refuses to go on past a failed row.
    assert_eq!(code(&strata(&p, &m.url, &["up"])), 3);

    m.command(doc! {"delete": "c", "deletes": [{"q": {}, "limit": 1}]});
    ok(&strata(&p, &m.url, &["up", "--resume"]));
    let row = &m.find("_migrations", doc! {"_id": "002"})[0];
    assert!(row.get_bool("success").unwrap());
    assert_eq!(row.get_i64("statements_done").unwrap(), 3);
    assert!(m.indexes("c").contains(&"k_1".to_string()));
    assert_eq!(m.find("c", doc! {"z": 0}).len(), 1);
}

/// Eight processes race; the lease document lets one at a time in, and each migration
/// (a `create_collection`, which fails if run twice) is applied once.
#[test]
fn mongo_lease_lock_serialises_eight_processes() {
    let Some(m) = Mongo::new("mongo_race") else {
        return;
    };
    let p = Project::new();
    for i in 1..=6 {
        p.file(
            &format!("{i:03}_c{i}.json"),
            &format!(
                r#"{{"operations": [{{"type": "create_collection", "collection": "c{i}"}}]}}"#
            ),
        );
    }
    up_in_parallel(p.root(), &m.url, 8);
    assert_eq!(m.find("_migrations", doc! {}).len(), 6);
    assert_eq!(
        m.find("_migrations_audit", doc! {"operation": "apply"})
            .len(),
        6
    );
    assert!(
        m.find("_migrations_lock", doc! {}).is_empty(),
        "lock released"
    );
}

/// A killed holder stops renewing its lease: the next run waits for it to run out and
/// takes over; with a short lock timeout it gives up naming the holder.
#[test]
fn mongo_killed_holders_lease_expires() {
    let Some(m) = Mongo::new("mongo_lease") else {
        return;
    };
    let p = Project::new();
    p.file(
        "001_c.json",
        r#"{"operations": [{"type": "create_collection", "collection": "c"}]}"#,
    );
    let now = chrono_ms();
    m.insert(
        "_migrations_lock",
        vec![doc! {"_id": "strata", "holder": "ghost pid 4242", "expires_at": now + 60_000}],
    )
    .unwrap();
    std::fs::write(
        p.root().join("strata.toml"),
        "[settings]\nlock_timeout_seconds = 1\n",
    )
    .unwrap();
    let o = strata(&p, &m.url, &["up"]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(stderr(&o).contains("ghost pid 4242"), "{}", stderr(&o));
    assert!(m.find("_migrations", doc! {}).is_empty());

    m.command(doc! {"update": "_migrations_lock", "updates": [{"q": {"_id": "strata"}, "u": {"$set": {"expires_at": chrono_ms() + 1500}}}]});
    std::fs::write(
        p.root().join("strata.toml"),
        "[settings]\nlock_timeout_seconds = 20\n",
    )
    .unwrap();
    let o = strata(&p, &m.url, &["up"]);
    ok(&o);
    assert!(
        stderr(&o).contains("expired migration lease"),
        "{}",
        stderr(&o)
    );
    assert_eq!(m.find("_migrations", doc! {}).len(), 1);
}

fn chrono_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn elasticsearch_operations_apply_and_roll_back() {
    let Some(es) = Elastic::new("es_ops") else {
        return;
    };
    let p = Project::new();
    std::fs::write(p.root().join("strata.toml"), es.config()).unwrap();
    let (v1, logs) = (es.ix("books_v1"), es.ix("logs"));
    p.file(
        "001_books.json",
        &json!({"version": "1.0.0", "operations": [
            {"type": "create_index", "index": v1, "mapping": {"title": {"type": "text"}, "isbn": {"type": "keyword"}},
             "settings": {"number_of_shards": 1}},
            {"type": "create_alias", "index": v1, "alias": es.ix("books")},
            {"type": "create_index", "index": logs}
        ]})
        .to_string(),
    );
    p.file(
        "002_more.json",
        &json!({"version": "1.1.0", "operations": [
            {"type": "update_mapping", "index": v1, "mapping": {"year": {"type": "integer"}}},
            {"type": "update_settings", "index": v1, "settings": {"index": {"refresh_interval": "2s"}}},
            {"type": "reindex", "source": v1, "dest": logs, "script": "ctx._source.copied = true"}
        ]})
        .to_string(),
    );
    p.file("002_more_rollback.json", &json!({"operations": [
        {"type": "update_settings", "index": v1, "settings": {"index": {"refresh_interval": "1s"}}}
    ]}).to_string());
    ok(&strata(&p, &es.url, &["up", "--target", "1.0.0"]));
    let mapping = es.get(&format!("{v1}/_mapping"));
    assert_eq!(
        mapping[&v1]["mappings"]["properties"]["isbn"]["type"], "keyword",
        "{mapping}"
    );
    let alias = es.get(&format!("_alias/{}", es.ix("books")));
    assert!(alias.get(&v1).is_some(), "{alias}");
    es.call(
        "PUT",
        &format!("{v1}/_doc/1?refresh=true"),
        Some(json!({"title": "Dune", "isbn": "1"})),
    );

    ok(&strata(&p, &es.url, &["up"]));
    let mapping = es.get(&format!("{v1}/_mapping"));
    assert_eq!(
        mapping[&v1]["mappings"]["properties"]["year"]["type"], "integer",
        "{mapping}"
    );
    let settings = es.get(&format!("{v1}/_settings"));
    assert_eq!(
        settings[&v1]["settings"]["index"]["refresh_interval"], "2s",
        "{settings}"
    );
    let copied = es.get(&format!("{logs}/_search"));
    assert_eq!(
        copied["hits"]["hits"][0]["_source"]["copied"], true,
        "{copied}"
    );
    let history = es.get(&format!("{}history/_search", es.prefix));
    assert_eq!(
        history["hits"]["hits"].as_array().unwrap().len(),
        2,
        "{history}"
    );

    ok(&strata(&p, &es.url, &["rollback", "base"]));
    assert!(
        !es.exists(&v1) && !es.exists(&logs),
        "indices dropped by the default inverse"
    );
    let (status, _) = es.call("GET", &format!("_alias/{}", es.ix("books")), None);
    assert_eq!(status, 404);
    let audit = es.get(&format!("{}history-audit/_search?size=100", es.prefix));
    let ops: Vec<&str> = audit["hits"]["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["_source"]["operation"].as_str().unwrap())
        .collect();
    assert_eq!(
        ops.iter().filter(|o| **o == "rollback").count(),
        2,
        "{ops:?}"
    );
}

#[test]
fn elasticsearch_bad_operation_names_file_and_line() {
    let Some(es) = Elastic::new("es_bad") else {
        return;
    };
    let p = Project::new();
    std::fs::write(p.root().join("strata.toml"), es.config()).unwrap();
    p.file("001_a.json", &format!("{{\"operations\": [\n {{\"type\": \"create_index\", \"index\": \"{}\"}},\n {{\"type\": \"update_mapping\", \"index\": \"{}\"}}\n]}}", es.ix("a"), es.ix("a")));
    let o = strata(&p, &es.url, &["up"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("001_a.json:3") && stderr(&o).contains("needs `mapping`"),
        "{}",
        stderr(&o)
    );
    assert!(!es.exists(&es.ix("a")));
}

#[test]
fn elasticsearch_lease_lock_serialises_eight_processes() {
    let Some(es) = Elastic::new("es_race") else {
        return;
    };
    let p = Project::new();
    std::fs::write(p.root().join("strata.toml"), es.config()).unwrap();
    for i in 1..=5 {
        // Creating an index twice fails, so a double apply cannot hide.
        p.file(
            &format!("{i:03}_i{i}.json"),
            &json!({"operations": [{"type": "create_index", "index": es.ix(&format!("i{i}"))}]})
                .to_string(),
        );
    }
    up_in_parallel(p.root(), &es.url, 8);
    let history = es.get(&format!("{}history/_search?size=100", es.prefix));
    assert_eq!(
        history["hits"]["hits"].as_array().unwrap().len(),
        5,
        "{history}"
    );
    let audit = es.get(&format!("{}history-audit/_search?size=100", es.prefix));
    let applies = audit["hits"]["hits"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["_source"]["operation"] == "apply")
        .count();
    assert_eq!(applies, 5);
    let (status, lock) = es.call(
        "GET",
        &format!("{}history-lock/_doc/strata", es.prefix),
        None,
    );
    assert!(
        status == 404 || lock["found"] == false,
        "lock released: {lock}"
    );
}

#[test]
fn elasticsearch_killed_holders_lease_expires() {
    let Some(es) = Elastic::new("es_lease") else {
        return;
    };
    let p = Project::new();
    p.file(
        "001_a.json",
        &json!({"operations": [{"type": "create_index", "index": es.ix("a")}]}).to_string(),
    );
    let lock = format!("{}history-lock/_create/strata?refresh=true", es.prefix);
    es.call(
        "PUT",
        &lock,
        Some(json!({"holder": "ghost pid 77", "expires_at": chrono_ms() + 1500})),
    );
    std::fs::write(
        p.root().join("strata.toml"),
        format!("{}[settings]\nlock_timeout_seconds = 20\n", es.config()),
    )
    .unwrap();
    let o = strata(&p, &es.url, &["up"]);
    ok(&o);
    assert!(
        stderr(&o).contains("expired migration lease"),
        "{}",
        stderr(&o)
    );
    assert!(es.exists(&es.ix("a")));
}

/// The zero-downtime mapping change: readers hammer the alias while strata builds the
/// new index, copies the documents and moves the alias. Every read must find the alias
/// and every document; then the rollback moves it back, under reads too.
#[test]
fn reindex_and_swap_alias_never_drops_the_alias_under_reads() {
    let Some(es) = Elastic::new("es_swap") else {
        return;
    };
    let p = Project::new();
    std::fs::write(p.root().join("strata.toml"), es.config()).unwrap();
    let (alias, v1, v2) = (
        es.ix("products"),
        es.ix("products_v1"),
        es.ix("products_v2"),
    );
    p.file(
        "001_v1.json",
        &json!({"version": "1.0.0", "operations": [
            {"type": "create_index", "index": v1, "mapping": {"sku": {"type": "text"}}},
            {"type": "create_alias", "index": v1, "alias": alias}
        ]})
        .to_string(),
    );
    ok(&strata(&p, &es.url, &["up"]));
    let docs = 300;
    let bulk: String = (0..docs)
        .map(|i| format!("{{\"index\":{{\"_id\":\"{i}\"}}}}\n{{\"sku\":\"SKU-{i}\"}}\n"))
        .collect();
    es.rt_bulk(&v1, bulk);

    p.file(
        "002_keyword.json",
        &json!({"version": "1.1.0", "operations": [
            {"type": "reindex_and_swap_alias", "alias": alias, "source": v1, "dest": v2,
             "mapping": {"sku": {"type": "keyword"}}}
        ]})
        .to_string(),
    );
    let (reads, misses) = with_readers(&es, &alias, docs, || ok(&strata(&p, &es.url, &["up"])));
    assert!(reads > 20, "readers ran only {reads} times");
    assert!(
        misses.is_empty(),
        "reads that missed the alias or documents: {misses:?}"
    );
    let now = es.get(&format!("_alias/{alias}"));
    assert_eq!(
        now.as_object().unwrap().keys().collect::<Vec<_>>(),
        [&v2],
        "{now}"
    );
    let mapping = es.get(&format!("{v2}/_mapping"));
    assert_eq!(
        mapping[&v2]["mappings"]["properties"]["sku"]["type"],
        "keyword"
    );
    assert!(es.exists(&v1), "the old index is kept unless delete_old");

    let (reads, misses) = with_readers(&es, &alias, docs, || {
        ok(&strata(&p, &es.url, &["rollback"]))
    });
    assert!(
        reads > 0 && misses.is_empty(),
        "{reads} reads, misses {misses:?}"
    );
    let now = es.get(&format!("_alias/{alias}"));
    assert_eq!(
        now.as_object().unwrap().keys().collect::<Vec<_>>(),
        [&v1],
        "{now}"
    );
    assert!(!es.exists(&v2));
}

impl Elastic {
    fn rt_bulk(&self, index: &str, ndjson: String) {
        let url = format!("{}/{index}/_bulk?refresh=true", self.url);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let status = rt.block_on(async {
            reqwest::Client::new()
                .post(url)
                .header("content-type", "application/x-ndjson")
                .body(ndjson)
                .send()
                .await
                .unwrap()
                .status()
        });
        assert!(status.is_success(), "bulk load: {status}");
    }
}

/// Runs `work` while two threads count the alias's documents in a loop; returns how
/// many reads ran and every read that failed or saw the wrong count.
fn with_readers(
    es: &Elastic,
    alias: &str,
    expect: usize,
    work: impl FnOnce() -> String,
) -> (usize, Vec<String>) {
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (stop, reads) = (stop.clone(), reads.clone());
            let (base, path) = (es.url.clone(), format!("{alias}/_count"));
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let http = reqwest::Client::new();
                let mut misses = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let (status, body): (u16, Value) = send(&rt, &http, &base, "GET", &path, None);
                    reads.fetch_add(1, Ordering::SeqCst);
                    if status != 200 || body["count"] != expect {
                        misses.push(format!("{status} {body}"));
                    }
                }
                misses
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(100));
    work();
    std::thread::sleep(std::time::Duration::from_millis(100));
    stop.store(true, Ordering::SeqCst);
    let misses = readers
        .into_iter()
        .flat_map(|r| r.join().unwrap())
        .collect();
    (reads.load(Ordering::SeqCst), misses)
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// examples/multi-db as is: PostgreSQL (JSON metadata + SQL pairs), MongoDB and
/// Elasticsearch, semver versions, a MongoDB migration depending on `postgresql:1.1.0`.
#[test]
fn multi_database_example_runs_by_target_and_database() {
    let Some(pg) = TestDb::postgres("multi_db_example") else {
        return;
    };
    let Some(m) = Mongo::new("multi_db_example") else {
        return;
    };
    let Some(es) = Elastic::new("multi_db_example") else {
        return;
    };
    // The example uses fixed index names and the default history indices.
    for ix in [
        "products_v1",
        "products_v2",
        "reviews",
        ".strata-migrations",
        ".strata-audit",
        ".strata-metadata",
        ".strata-lock",
    ] {
        es.call("DELETE", ix, None);
    }
    let root = tempfile::tempdir().unwrap();
    copy_dir(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/multi-db"),
        root.path(),
    );
    let run = |args: &[&str]| {
        let mut cmd = assert_cmd::Command::cargo_bin("strata").unwrap();
        cmd.current_dir(root.path())
            .env_remove("DATABASE_URL")
            .env("NO_COLOR", "1")
            .env("DATABASE_URL_POSTGRESQL", pg.url())
            .env("DATABASE_URL_MONGODB", &m.url)
            .env("DATABASE_URL_ELASTICSEARCH", &es.url)
            .args(args);
        cmd.output().unwrap()
    };
    // MongoDB's 1.1.0 waits for PostgreSQL's 1.1.0: alone, it goes as far as it may and says why.
    let o = run(&["up", "--databases", "mongodb"]);
    assert_eq!(code(&o), 3, "{}{}", stdout(&o), stderr(&o));
    assert!(
        format!("{}{}", stdout(&o), stderr(&o)).contains("postgresql:1.1.0"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );

    ok(&run(&[
        "up",
        "--target",
        "1.2.0",
        "--databases",
        "mongodb,postgresql",
    ]));
    assert_eq!(
        pg.query("SELECT version FROM {history} ORDER BY version"),
        ["1.0.0", "1.1.0", "1.2.0"]
    );
    assert_eq!(pg.query("SELECT email FROM users"), ["admin@example.com"]);
    let versions = |m: &Mongo| {
        m.find("_migrations", doc! {})
            .iter()
            .map(|d| d.get_str("version").unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(versions(&m), ["1.0.0", "1.1.0", "1.2.0"]);
    assert!(
        !m.collections().contains(&"activity".to_string()),
        "2.0.0 is past the target"
    );
    assert!(!es.exists("products_v1"), "elasticsearch was not selected");
    m.insert("profiles", vec![doc! {"user_id": 1, "name": "Admin"}])
        .unwrap();

    ok(&run(&["rollback", "1.0.0", "--databases", "mongodb"]));
    assert_eq!(versions(&m), ["1.0.0"]);
    assert_eq!(
        pg.query("SELECT count(*) FROM {history}"),
        ["3"],
        "postgresql untouched"
    );

    ok(&run(&["up"]));
    assert_eq!(versions(&m), ["1.0.0", "1.1.0", "1.2.0", "2.0.0"]);
    let profile = &m.find("profiles", doc! {})[0];
    assert_eq!(profile.get_str("display_name").unwrap(), "Admin");
    assert!(profile.get_document("preferences").is_ok(), "{profile:?}");
    let alias = es.get("_alias/products");
    assert!(alias.get("products_v2").is_some(), "{alias}");
    assert!(es.exists("reviews"));
    let o = run(&["status"]);
    let out = stdout(&o);
    for db in ["postgresql", "mongodb", "elasticsearch"] {
        assert!(out.contains(db), "{out}");
    }
    for ix in [
        "products_v1",
        "products_v2",
        "reviews",
        ".strata-migrations",
        ".strata-audit",
        ".strata-metadata",
        ".strata-lock",
    ] {
        es.call("DELETE", ix, None);
    }
}
