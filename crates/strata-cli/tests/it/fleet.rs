//! Fleets: one migrations directory applied to 50 PostgreSQL schemas at once, failures
//! isolated per target, `--resume` after the fix, canaries, `status --fleet`.

use std::time::Instant;

use crate::support::*;

fn migrations(p: &Project) {
    p.file("001_customers.sql", "CREATE TABLE customers (id INT PRIMARY KEY, name TEXT);\n")
        .file("002_orders.sql", "CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT REFERENCES customers (id));\nCREATE INDEX orders_customer ON orders (customer_id);\n")
        .file("003_seed.sql", "INSERT INTO customers VALUES (1, 'first');\n");
}

fn targets(db: &TestDb, n: usize) -> Vec<String> {
    let url = db.url();
    let sep = if url.contains('?') { '&' } else { '?' };
    (1..=n)
        .map(|i| format!("{url}{sep}search_path=tenant_{i:02}"))
        .collect()
}

#[test]
fn fifty_schemas_one_broken_concurrency_eight_then_resume() {
    let Some(db) = TestDb::postgres("fleet") else {
        return;
    };
    let p = Project::new();
    migrations(&p);
    let fleet = targets(&db, 50);
    std::fs::write(
        p.root().join("fleet.txt"),
        format!("# tenants\n{}\n", fleet.join("\n")),
    )
    .unwrap();
    // tenant_13 is broken on purpose: a table in the way of 002.
    db.query("CREATE SCHEMA tenant_13; CREATE TABLE tenant_13.orders (x INT)");

    // One database on its own, for the comparison in the closing note.
    let single = TestDb::postgres("fleet_single").unwrap();
    let started = Instant::now();
    ok(&p.strata(&single, &["up"]));
    let one = started.elapsed();

    let started = Instant::now();
    let o = p.strata(
        &db,
        &["up", "--fleet", "fleet.txt", "--concurrency", "8", "--json"],
    );
    let all = started.elapsed();
    assert_eq!(code(&o), 1, "one target failed: {}", stderr(&o));
    let j = json(&o);
    assert_eq!(j["summary"]["done"], 49, "{j}");
    assert_eq!(j["summary"]["failed"], 1);
    let rows = j["targets"].as_array().unwrap();
    assert_eq!(rows.len(), 50);
    for (i, r) in rows.iter().enumerate() {
        assert!(!r["target"].as_str().unwrap().is_empty());
        if i == 12 {
            assert_eq!(r["state"], "failed");
            assert_eq!(r["current"], "001");
            let err = r["error"].as_str().unwrap();
            assert!(
                err.contains("002_orders") && err.contains("already exists"),
                "{err}"
            );
        } else {
            assert_eq!(r["state"], "done", "{r}");
            assert_eq!(r["current"], "003");
            assert_eq!(r["applied"].as_array().unwrap().len(), 3);
        }
    }
    // Each schema holds its own tables and history; the failure touched nobody else.
    assert_eq!(
        db.query(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'strata_schema_migrations'"
        ),
        ["50"]
    );
    assert_eq!(db.query("SELECT count(*) FROM tenant_07.customers"), ["1"]);
    assert_eq!(
        db.query("SELECT count(*) FROM tenant_13.strata_schema_migrations"),
        ["1"]
    );
    eprintln!(
        "fleet of 50 schemas at concurrency 8: {:.2}s; one database alone: {:.2}s",
        all.as_secs_f64(),
        one.as_secs_f64()
    );

    // status --fleet shows which targets are behind.
    let s = json(&p.strata(&db, &["status", "--fleet", "fleet.txt", "--json"]));
    let behind: Vec<&serde_json::Value> = s["targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["state"] != "up_to_date")
        .collect();
    assert_eq!(behind.len(), 1);
    assert_eq!(behind[0]["state"], "behind");
    assert_eq!(behind[0]["pending"], 2);
    assert!(behind[0]["target"].as_str().unwrap().contains("tenant_13"));

    // Fix it; --resume runs only what is not done.
    db.query("DROP TABLE tenant_13.orders");
    let o = p.strata(&db, &["up", "--fleet", "fleet.txt", "--resume", "--json"]);
    let j = json(&o);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(j["summary"]["done"], 50);
    let ran: Vec<&serde_json::Value> = j["targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["earlier"] == false)
        .collect();
    assert_eq!(ran.len(), 1, "only the broken target ran again");
    assert_eq!(ran[0]["applied"].as_array().unwrap().len(), 2);
    assert_eq!(db.query("SELECT count(*) FROM tenant_13.customers"), ["1"]);
    // The text summary table.
    let out = ok(&p.strata(&db, &["status", "--fleet", "fleet.txt"]));
    assert!(out.contains("50 targets, 0 not at head"), "{out}");
}

#[test]
fn a_failing_canary_stops_the_fleet() {
    let Some(db) = TestDb::postgres("fleet_canary") else {
        return;
    };
    let p = Project::new();
    migrations(&p);
    let fleet = targets(&db, 10);
    std::fs::write(
        p.root().join("fleet.toml"),
        format!("targets = {fleet:?}\n"),
    )
    .unwrap();
    db.query("CREATE SCHEMA tenant_02; CREATE TABLE tenant_02.customers (x INT)");
    let o = p.strata(
        &db,
        &["up", "--fleet", "fleet.toml", "--canary", "3", "--json"],
    );
    assert_eq!(code(&o), 1);
    let j = json(&o);
    assert_eq!(j["summary"]["failed"], 1, "{j}");
    assert_eq!(j["summary"]["done"], 2);
    assert_eq!(j["summary"]["skipped"], 7);
    // The skipped ones were never touched.
    assert_eq!(
        db.query(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name LIKE 'tenant_%'"
        ),
        ["3"]
    );
    // A fleet file that is not a list of URLs is bad input naming the line.
    std::fs::write(
        p.root().join("bad.txt"),
        format!("{}\nnot a url\n", fleet[0]),
    )
    .unwrap();
    let o = p.strata(&db, &["up", "--fleet", "bad.txt"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("bad.txt:2"), "{}", stderr(&o));
}
