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
        assert_eq!(db.query("SELECT count(*) FROM {history} WHERE success"), ["3"]);
        assert_eq!(db.query("SELECT sum(a) FROM items"), ["501500"], "the backfill ran once");
    }
}
