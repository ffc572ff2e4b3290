//! MongoDB and Elasticsearch for tests: `STRATA_TEST_MONGODB_URL` (a server URL; each
//! test gets its own database) and `STRATA_TEST_ELASTICSEARCH_URL` (each test gets its
//! own index prefix and history indices). Unset or unreachable: the test prints why and
//! returns, unless `STRATA_TEST_REQUIRE` names `mongodb` / `elasticsearch`.

use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::TryStreamExt;
use mongodb::bson::{doc, Document};
use serde_json::Value;

use crate::support::*;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn unique(test: &str) -> String {
    format!(
        "t{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst),
        test.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
    )
    .to_lowercase()
}

fn server(engine: &str, var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            assert!(
                !required(engine),
                "STRATA_TEST_REQUIRE includes {engine} but {var} is unset"
            );
            eprintln!(
                "skipped {test}: {var} is not set (scripts/test starts a server and sets it)"
            );
            None
        }
    }
}

/// One MongoDB database, dropped afterwards.
pub struct Mongo {
    pub url: String,
    db: mongodb::Database,
    rt: tokio::runtime::Runtime,
}

impl Mongo {
    pub fn new(test: &str) -> Option<Mongo> {
        let base = server("mongodb", "STRATA_TEST_MONGODB_URL", test)?;
        let name = unique(test);
        let base = base.trim_end_matches('/');
        let url = format!("{base}/{name}");
        let rt = runtime();
        let reached = rt.block_on(async {
            let mut opts = mongodb::options::ClientOptions::parse(&url).await?;
            opts.server_selection_timeout = Some(std::time::Duration::from_secs(3));
            let db = mongodb::Client::with_options(opts)?.database(&name);
            db.run_command(doc! {"ping": 1}).await.map(|_| db)
        });
        match reached {
            Ok(db) => Some(Mongo { url, db, rt }),
            Err(e) => {
                assert!(
                    !required("mongodb"),
                    "MongoDB at {base} is unreachable: {e}"
                );
                eprintln!("skipped {test}: MongoDB at {base} is unreachable: {e}");
                None
            }
        }
    }

    pub fn find(&self, coll: &str, filter: Document) -> Vec<Document> {
        self.rt.block_on(async {
            let c = self.db.collection::<Document>(coll);
            c.find(filter)
                .sort(doc! {"_id": 1})
                .await
                .unwrap()
                .try_collect()
                .await
                .unwrap()
        })
    }

    pub fn insert(&self, coll: &str, docs: Vec<Document>) -> Result<(), mongodb::error::Error> {
        self.rt
            .block_on(async { self.db.collection::<Document>(coll).insert_many(docs).await })
            .map(|_| ())
    }

    pub fn collections(&self) -> Vec<String> {
        let mut v = self
            .rt
            .block_on(async { self.db.list_collection_names().await })
            .unwrap();
        v.sort();
        v
    }

    /// Index names of a collection (empty when it does not exist).
    pub fn indexes(&self, coll: &str) -> Vec<String> {
        self.rt
            .block_on(async {
                self.db
                    .collection::<Document>(coll)
                    .list_index_names()
                    .await
            })
            .unwrap_or_default()
    }

    pub fn command(&self, cmd: Document) -> Document {
        self.rt
            .block_on(async { self.db.run_command(cmd).await })
            .unwrap()
    }
}

impl Drop for Mongo {
    fn drop(&mut self) {
        let _ = self.rt.block_on(async { self.db.drop().await });
    }
}

/// One test's corner of an Elasticsearch cluster: index names start with `prefix`, and
/// its history indices are `<prefix>history*` (strata.toml `history_table`).
pub struct Elastic {
    pub url: String,
    pub prefix: String,
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

impl Elastic {
    pub fn new(test: &str) -> Option<Elastic> {
        let url = server("elasticsearch", "STRATA_TEST_ELASTICSEARCH_URL", test)?;
        let url = url.trim_end_matches('/').to_string();
        let es = Elastic {
            prefix: format!("{}_", unique(test)),
            http: reqwest::Client::new(),
            rt: runtime(),
            url,
        };
        match es.rt.block_on(es.http.get(&es.url).send()) {
            Ok(_) => Some(es),
            Err(e) => {
                assert!(
                    !required("elasticsearch"),
                    "Elasticsearch at {} is unreachable: {e}",
                    es.url
                );
                eprintln!(
                    "skipped {test}: Elasticsearch at {} is unreachable: {e}",
                    es.url
                );
                None
            }
        }
    }

    /// `strata.toml` keeping this test's history apart from other tests'.
    pub fn config(&self) -> String {
        format!("history_table = \"{}history\"\n", self.prefix)
    }

    /// An index name of this test.
    pub fn ix(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// (status, body) of a request.
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        send(&self.rt, &self.http, &self.url, method, path, body)
    }

    pub fn get(&self, path: &str) -> Value {
        let (status, v) = self.call("GET", path, None);
        assert!(status < 300, "GET {path}: {status} {v}");
        v
    }

    pub fn exists(&self, index: &str) -> bool {
        self.call("HEAD", index, None).0 == 200
    }
}

pub fn send(
    rt: &tokio::runtime::Runtime,
    http: &reqwest::Client,
    base: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    rt.block_on(async {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = http.request(m, format!("{base}/{}", path.trim_start_matches('/')));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    })
}

impl Drop for Elastic {
    fn drop(&mut self) {
        // Real clusters refuse wildcard deletes (action.destructive_requires_name).
        let (_, all) = self.call("GET", &format!("{}*", self.prefix), None);
        let names: Vec<&str> = all
            .as_object()
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        if !names.is_empty() {
            let _ = self.call("DELETE", &names.join(","), None);
        }
    }
}
