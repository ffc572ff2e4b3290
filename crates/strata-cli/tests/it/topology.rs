//! strata on the topologies real teams run: replicas migrating at once, poolers,
//! standbys, clusters, TLS.

use crate::support::*;

/// Three replicas of an application auto-migrating at start-up, the last migration a
/// `CREATE INDEX CONCURRENTLY` after a slow backfill. A run waiting for the lock must
/// not hold a transaction open: the index build waits for every open transaction, so a
/// waiter blocked inside the server would deadlock it (the index left INVALID).
#[test]
fn concurrent_runs_do_not_deadlock_create_index_concurrently() {
    for round in 0..3 {
        let Some(db) = TestDb::postgres(&format!("cic_{round}")) else {
            return;
        };
        let p = Project::new();
        p.file(
            "001_items.sql",
            "CREATE TABLE items (id serial PRIMARY KEY, a int);\n\
             INSERT INTO items (a) SELECT g FROM generate_series(1, 1000) g;\n",
        )
        .file(
            "002_backfill.sql",
            "UPDATE items SET a = a + 1;\nSELECT pg_sleep(1.5);\n",
        )
        .file(
            "003_index.sql",
            "-- strata:no-transaction\nCREATE INDEX CONCURRENTLY items_a ON items (a);\n",
        );
        up_in_parallel(p.root(), &db.url(), 4);
        assert_eq!(
            db.query("SELECT indisvalid FROM pg_index WHERE indexrelid = 'items_a'::regclass"),
            ["t"],
            "round {round}"
        );
        assert_eq!(
            db.query("SELECT count(*) FROM {history} WHERE success"),
            ["3"]
        );
        assert_eq!(
            db.query("SELECT sum(a) FROM items"),
            ["501500"],
            "the backfill ran once"
        );
    }
}

/// A hot standby (`pg_basebackup -R`): `up` is refused at once (exit 3) naming it, and
/// `info`/`health` say what the server is, instead of blaming a migration for
/// "read-only transaction". After the primary stops mid-run and the standby is
/// promoted, a multi-host URL reaches the new primary and the run finishes once.
#[test]
fn a_standby_is_named_and_refused_and_failover_finishes_once() {
    let Some(primary) = crate::cluster::Cluster::start("standby") else {
        return;
    };
    let p = Project::new();
    std::fs::write(
        p.root().join("strata.toml"),
        "[settings]\nretry_attempts = 10\nretry_delay_seconds = 1\n",
    )
    .unwrap();
    p.file(
        "001_a.sql",
        "CREATE TABLE a (id int);\nINSERT INTO a VALUES (1);\n",
    );
    ok(&strata_in(
        p.root(),
        &primary.url("postgres"),
        &p.migrations(),
        &["up"],
    ));
    let standby = primary.standby();
    p.file(
        "002_b.sql",
        "SELECT pg_sleep(2);\nCREATE TABLE b (id int);\nINSERT INTO b VALUES (2);\n",
    );
    let on_standby =
        |args: &[&str]| strata_in(p.root(), &standby.url("postgres"), &p.migrations(), args);
    let refused = on_standby(&["up"]);
    assert_eq!(code(&refused), 3, "{}", stderr(&refused));
    assert!(stderr(&refused).contains("standby"), "{}", stderr(&refused));
    assert!(
        !stderr(&refused).contains("002_b"),
        "not blamed on the migration: {}",
        stderr(&refused)
    );
    let info = json(&on_standby(&["info", "--json"]));
    assert_eq!(info["database"]["role"], "standby", "{info}");
    let health = on_standby(&["health", "--json"]);
    let health: serde_json::Value = serde_json::from_slice(&health.stdout).expect("health json");
    assert_eq!(health["role"], "standby", "{health}");
    // Failover mid-run: the primary stops while 002 runs, the standby is promoted.
    let both = format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs=read-write",
        primary.port, standby.port
    );
    let run = spawn_up(p.root(), &both);
    std::thread::sleep(std::time::Duration::from_millis(800));
    primary.stop();
    standby.promote();
    let first = run.wait_with_output().unwrap();
    if code(&first) != 0 {
        // The run may give up before the promotion; a second one finishes it.
        eprintln!("first run after failover: {}", stderr(&first));
        ok(&strata_in(p.root(), &both, &p.migrations(), &["up"]));
    }
    let db = standby.url("postgres");
    assert_eq!(pg_query(&db, "SELECT count(*) FROM b"), ["1"]);
    assert_eq!(
        pg_query(
            &db,
            "SELECT count(*) FROM strata.schema_migrations WHERE success"
        ),
        ["2"]
    );
    let info = json(&strata_in(
        p.root(),
        &both,
        &p.migrations(),
        &["info", "--json"],
    ));
    assert_eq!(info["database"]["role"], "primary", "{info}");
}

/// TLS the way libpq does it: `sslmode=require` encrypts (and `info` says so),
/// `verify-full` refuses a certificate it cannot verify with an error naming the
/// setting to change, and verifies with `sslrootcert` pointing at the CA; a key/value
/// conninfo string works like a URL.
#[test]
fn postgres_tls_follows_libpq_sslmode() {
    let Some(c) = crate::cluster::Cluster::start("tls") else {
        return;
    };
    let ca = c.with_tls();
    let p = Project::new();
    p.file("001_a.sql", "CREATE TABLE a (id int);\n");
    let url = |q: &str| format!("{}?{q}", c.url("postgres"));
    let run = |u: &str, args: &[&str]| strata_in(p.root(), u, &p.migrations(), args);
    let info = json(&run(&url("sslmode=require"), &["info", "--json"]));
    assert_eq!(info["database"]["encrypted"], true, "{info}");
    let plain = json(&run(&url("sslmode=disable"), &["info", "--json"]));
    assert_eq!(plain["database"]["encrypted"], false, "{plain}");
    // The public roots do not know the test CA.
    let refused = run(&url("sslmode=verify-full"), &["up"]);
    assert_ne!(code(&refused), 0);
    assert!(
        stderr(&refused).contains("sslrootcert"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(
        pg_query(
            &c.url("postgres"),
            "SELECT count(*) FROM pg_tables WHERE tablename = 'a'"
        ),
        ["0"]
    );
    // A CA that did not sign it is no better.
    let other = p.root().join("other.pem");
    std::fs::write(
        &other,
        std::fs::read_to_string("/etc/ssl/certs/ssl-cert-snakeoil.pem").unwrap_or_default(),
    )
    .unwrap();
    if std::fs::metadata(&other)
        .map(|m| m.len() > 0)
        .unwrap_or(false)
    {
        let wrong = run(
            &url(&format!(
                "sslmode=verify-ca&sslrootcert={}",
                other.display()
            )),
            &["status"],
        );
        assert_ne!(code(&wrong), 0, "{}", stdout(&wrong));
    }
    let verified = url(&format!("sslmode=verify-full&sslrootcert={}", ca.display()));
    ok(&run(&verified, &["up"]));
    let info = json(&run(&verified, &["info", "--json"]));
    assert_eq!(info["database"]["encrypted"], true, "{info}");
    let conninfo = format!(
        "host=127.0.0.1 port={} user=postgres dbname=postgres sslmode=verify-ca sslrootcert='{}'",
        c.port,
        ca.display()
    );
    let status = ok(&run(&conninfo, &["status"]));
    assert!(status.contains("applied"), "{status}");
}

/// MySQL's `ssl-mode` against a MariaDB that refuses plaintext: DISABLED is turned
/// away by the server, REQUIRED encrypts (and `info` says so), VERIFY_IDENTITY fails
/// clearly without the CA and verifies with `ssl-ca`; PREFERRED (the default) encrypts
/// here and stays plaintext on a server without TLS.
#[test]
fn mysql_tls_follows_ssl_mode() {
    let Some(m) = crate::cluster::TlsMariaDb::start("mysql_tls") else {
        return;
    };
    let p = Project::new();
    p.file("001_a.sql", "CREATE TABLE a (id int);\n");
    let run = |u: &str, args: &[&str]| strata_in(p.root(), u, &p.migrations(), args);
    let plain = run(&m.url("?ssl-mode=DISABLED"), &["status"]);
    assert_ne!(code(&plain), 0, "{}", stdout(&plain));
    let info = json(&run(&m.url("?ssl-mode=REQUIRED"), &["info", "--json"]));
    assert_eq!(info["database"]["encrypted"], true, "{info}");
    let default = json(&run(&m.url(""), &["info", "--json"]));
    assert_eq!(
        default["database"]["encrypted"], true,
        "PREFERRED by default: {default}"
    );
    let refused = run(&m.url("?ssl-mode=VERIFY_IDENTITY"), &["up"]);
    assert_ne!(code(&refused), 0);
    assert!(stderr(&refused).contains("ssl-ca"), "{}", stderr(&refused));
    let verified = m.url(&format!(
        "?ssl-mode=VERIFY_IDENTITY&ssl-ca={}",
        m.ca().display()
    ));
    ok(&run(&verified, &["up"]));
    let status = ok(&run(&verified, &["status"]));
    assert!(status.contains("applied"), "{status}");
    // The machine's own MariaDB offers no TLS: PREFERRED falls back, REQUIRED refuses.
    if let Some(db) = TestDb::mysql("mysql_tls_fallback") {
        let url = db.url();
        let sep = if url.contains('?') { "&" } else { "?" };
        let info = json(&run(&url, &["info", "--json"]));
        assert!(
            info["database"]["cluster"].is_null(),
            "not a Galera node: {info}"
        );
        let required = run(&format!("{url}{sep}ssl-mode=REQUIRED"), &["status"]);
        let encrypted = info["database"]["encrypted"] == true;
        assert!(
            encrypted || code(&required) != 0,
            "REQUIRED must not fall back to plaintext"
        );
    }
}

/// PgBouncer in transaction mode (pool size 5) in front of the local server, the
/// default configuration: strata sees the pooler (the cancel key is not the backend's),
/// takes the lease instead of a session lock, prepares no named statement and sets
/// nothing for the session. 8 concurrent `up` runs all succeed with each migration
/// applied once and no lock left on any server session; `status` and `health` work
/// while other clients share the pool; a tenant `search_path` the pooler cannot pass on
/// is refused, never ignored.
#[test]
fn pgbouncer_in_transaction_mode_applies_each_migration_once() {
    let Some(db) = TestDb::postgres("pgbouncer") else {
        return;
    };
    let Some(bouncer) = crate::pgbouncer::PgBouncer::start("pgbouncer", &db.url(), false) else {
        return;
    };
    let url = bouncer.url(&db.url());
    let p = Project::new();
    p.file(
        "001_items.sql",
        "CREATE TABLE items (id serial PRIMARY KEY, step int NOT NULL);\n\
         INSERT INTO items (step) VALUES (1), (1), (1);\n",
    );
    for step in 2..=5 {
        p.file(
            &format!("00{step}_step.sql"),
            &format!("SELECT pg_sleep(0.1);\nINSERT INTO items (step) VALUES ({step}), ({step}), ({step});\n"),
        );
    }
    p.file(
        "006_index.sql",
        "-- strata:no-transaction\nCREATE INDEX CONCURRENTLY items_step ON items (step);\n\
         UPDATE items SET step = step * 10 WHERE step = 5;\n",
    );
    let info = json(&strata_in(
        p.root(),
        &url,
        &p.migrations(),
        &["--json", "info"],
    ));
    assert_eq!(info["database"]["cluster"], "pooler", "{info}");
    assert!(
        info["database"]["lock"]
            .as_str()
            .unwrap_or("")
            .starts_with("lease"),
        "{info}"
    );
    let direct = json(&strata_in(
        p.root(),
        &db.url(),
        &p.migrations(),
        &["--json", "info"],
    ));
    assert!(direct["database"]["cluster"].is_null(), "{direct}");

    // Other clients on the pool the whole time (simple protocol, short transactions).
    let traffic = Traffic::start(&bouncer, &db);
    up_in_parallel(p.root(), &url, 8);
    assert_eq!(
        db.query("SELECT step, count(*) FROM items GROUP BY step ORDER BY step"),
        ["1|3", "2|3", "3|3", "4|3", "50|3"],
        "each migration once"
    );
    assert_eq!(
        db.query("SELECT count(*) FROM {history} WHERE success"),
        ["6"]
    );
    assert_eq!(
        db.query("SELECT indisvalid FROM pg_index WHERE indexrelid = 'items_step'::regclass"),
        ["t"]
    );
    let apply_audits = db.query("SELECT count(*) FROM {audit} WHERE operation = 'apply'");
    assert_eq!(apply_audits, ["6"], "one apply audit row per migration");
    for _ in 0..3 {
        let status = json(&strata_in(
            p.root(),
            &url,
            &p.migrations(),
            &["--json", "status"],
        ));
        assert_eq!(status["current"], "006", "{status}");
        let states: Vec<_> = status["migrations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["state"].as_str().unwrap_or_default().to_string())
            .collect();
        assert_eq!(states, ["applied"; 6], "{status}");
        let health = ok(&strata_in(p.root(), &url, &p.migrations(), &["health"]));
        assert!(health.contains("cluster        pooler"), "{health}");
        assert!(health.contains("pending        0"), "{health}");
    }
    traffic.finish();
    assert_eq!(
        db.query(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ),
        ["0"],
        "no lock left on any server session"
    );
    assert_eq!(
        db.query("SELECT count(*) FROM {lease} WHERE expires_at > now()"),
        ["0"],
        "the lease was released"
    );

    // A tenant's search_path travels as `options`: refused by PgBouncer by default, and
    // dropped silently with `ignore_startup_parameters = options`; strata refuses both.
    let before = db.dump();
    p.file("007_more.sql", "CREATE TABLE more (id int);\n");
    let tenant = |b: &crate::pgbouncer::PgBouncer| {
        let u = b.url(&db.url());
        let sep = if u.contains('?') { '&' } else { '?' };
        strata_in(
            p.root(),
            &format!("{u}{sep}search_path=tenant_1"),
            &p.migrations(),
            &["up"],
        )
    };
    let refused = tenant(&bouncer);
    assert_ne!(code(&refused), 0);
    assert!(
        stderr(&refused).contains("search_path"),
        "{}",
        stderr(&refused)
    );
    let ignoring = crate::pgbouncer::PgBouncer::start("pgbouncer", &db.url(), true).unwrap();
    let refused = tenant(&ignoring);
    assert_eq!(code(&refused), 3, "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("did not apply search_path=tenant_1"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(db.dump(), before, "nothing written anywhere");
}

/// Clients sharing a pooler with strata: `pgbench` with the simple protocol, 3 clients
/// running short read transactions, one second at a time until stopped.
struct Traffic {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    runs: std::thread::JoinHandle<usize>,
}

impl Traffic {
    fn start(bouncer: &crate::pgbouncer::PgBouncer, db: &TestDb) -> Traffic {
        let script = bouncer.dir().join("traffic.sql");
        std::fs::write(&script, "SELECT count(*) FROM pg_class;\n").unwrap();
        let name = db_name_of(&db.url());
        let port = bouncer.port.to_string();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let runs = std::thread::spawn(move || {
            let mut runs = 0;
            while !stopped.load(std::sync::atomic::Ordering::SeqCst) {
                let out = std::process::Command::new("pgbench")
                    .args(["-n", "-M", "simple", "-c", "3", "-j", "1", "-T", "1"])
                    .args(["-h", "127.0.0.1", "-p", &port, "-U", "postgres", "-f"])
                    .arg(&script)
                    .arg(&name)
                    .output()
                    .expect("pgbench");
                assert!(
                    out.status.success(),
                    "pgbench through the pooler: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                runs += 1;
            }
            runs
        });
        Traffic { stop, runs }
    }

    /// Stops it; every run must have succeeded, and at least one must have run.
    fn finish(self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let runs = self.runs.join().expect("pgbench traffic failed");
        assert!(runs > 0, "no traffic ran");
    }
}

/// The database name of a `postgres://…/name?…` URL.
fn db_name_of(url: &str) -> String {
    let tail = url.rsplit('/').next().unwrap_or_default();
    tail.split('?').next().unwrap_or_default().to_string()
}

/// A 3-node Galera cluster, the default configuration: `GET_LOCK` holds on one node
/// only, so strata sees `wsrep_on` and takes the lease row, whose writes the cluster
/// certifies. Three `up` runs, one per node, started 0.7 s apart (as three application
/// servers would), apply every migration once, five times over; then the node a run is
/// connected to is killed mid-migration: the error names that migration, and `up`
/// through another node finishes it, once.
#[test]
fn galera_runs_on_every_node_apply_each_migration_once() {
    let Some(mut cluster) = crate::galera::Galera::start("galera") else {
        return;
    };
    let p = Project::new();
    let steps = 8;
    p.file(
        "001_items.sql",
        "CREATE TABLE items (id int AUTO_INCREMENT PRIMARY KEY, step int NOT NULL);\n\
         INSERT INTO items (step) VALUES (1), (1), (1);\n",
    );
    for step in 2..=steps {
        p.file(
            &format!("{step:03}_step.sql"),
            &format!(
                "DO SLEEP(0.2);\nINSERT INTO items (step) VALUES ({step}), ({step}), ({step});\n"
            ),
        );
    }
    let expected: Vec<String> = (1..=steps).map(|s| format!("{s}\t3")).collect();
    for round in 0..5 {
        let db = format!("app{round}");
        cluster.sql(0, &format!("CREATE DATABASE {db}"));
        let runs: Vec<_> = (0..3)
            .map(|n| {
                if n > 0 {
                    std::thread::sleep(std::time::Duration::from_millis(700));
                }
                spawn_up(p.root(), &cluster.url(n, &db))
            })
            .collect();
        for run in runs {
            ok(&run.wait_with_output().unwrap());
        }
        // Read on a node that did not bookkeep the first run, to see what the cluster has.
        assert_eq!(
            cluster.sql(
                2,
                &format!("SELECT step, count(*) FROM {db}.items GROUP BY step ORDER BY step")
            ),
            expected,
            "round {round}: each migration once"
        );
        assert_eq!(
            cluster.sql(
                1,
                &format!("SELECT count(*) FROM {db}.strata_schema_migrations WHERE success")
            ),
            [steps.to_string()],
            "round {round}"
        );
        assert_eq!(
            cluster.sql(
                1,
                &format!("SELECT count(*) FROM {db}.strata_audit_log WHERE operation = 'apply'")
            ),
            [steps.to_string()],
            "round {round}: one apply audit row per migration"
        );
    }

    // The node a run is connected to dies in the middle of a migration.
    cluster.sql(0, "CREATE DATABASE crash");
    std::fs::write(
        p.root().join("strata.toml"),
        "[settings]\nlease_seconds = 4\nretry_attempts = 1\nretry_delay_seconds = 1\n",
    )
    .unwrap();
    p.file(
        &format!("{:03}_slow.sql", steps + 1),
        "INSERT INTO items (step) VALUES (100);\nDO SLEEP(5);\nINSERT INTO items (step) VALUES (100);\n",
    );
    ok(&strata_in(
        p.root(),
        &cluster.url(0, "crash"),
        &p.migrations(),
        &["sum"],
    ));
    let run = spawn_up(p.root(), &cluster.url(2, "crash"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let sleeping =
        "SELECT count(*) FROM information_schema.processlist WHERE info LIKE 'DO SLEEP(5)%'";
    while cluster.sql(2, sleeping) != ["1"] {
        assert!(
            std::time::Instant::now() < deadline,
            "the run never reached the slow migration"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    cluster.kill(2);
    let out = run.wait_with_output().unwrap();
    assert_ne!(code(&out), 0, "{}", stdout(&out));
    let slow = format!("{:03}_slow", steps + 1);
    let error = stderr(&out)
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_default()
        .to_string();
    assert!(
        error.contains(&slow),
        "the error names the migration left unfinished: {}",
        stderr(&out)
    );
    let finished = strata_in(p.root(), &cluster.url(1, "crash"), &p.migrations(), &["up"]);
    let text = ok(&finished);
    assert!(text.contains(&slow), "{text}");
    assert_eq!(
        cluster.sql(0, "SELECT count(*) FROM crash.items WHERE step = 100"),
        ["2"],
        "the interrupted migration took effect once"
    );
    assert_eq!(
        cluster.sql(0, &format!("SELECT count(*) FROM crash.strata_schema_migrations WHERE version = '{:03}' AND success", steps + 1)),
        ["1"]
    );
}
