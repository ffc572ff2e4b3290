//! Multi-database projects: `[databases.NAME]` with their own directories and histories,
//! cross-database dependencies planned in one order, `--databases` selecting.

use std::path::Path;

use crate::support::*;
// `strata` in a directory with only the project's strata.toml to go on.
use crate::support::strata_bare as strata;

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

#[test]
fn postgres_sqlite_and_mariadb_with_cross_database_dependencies() {
    let (Some(pg), Some(my)) = (TestDb::postgres("project"), TestDb::mysql("project")) else {
        return;
    };
    let lite = TestDb::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "strata.toml",
        &format!(
            "[databases.main]\nurl = \"{}\"\ndir = \"db/main\"\n\n[databases.docs]\nurl = \"{}\"\ndir = \"db/docs\"\n\n[databases.search]\nurl = \"{}\"\ndir = \"db/search\"\n",
            pg.url(),
            lite.url(),
            my.url()
        ),
    );
    write(
        root,
        "db/main/001_users.sql",
        "CREATE TABLE users (id INT PRIMARY KEY);\n-- strata:down\nDROP TABLE users;\n",
    );
    write(root, "db/main/002_user_docs.sql", "-- Depends: docs:1.1.0\nCREATE TABLE user_docs (user_id INT, doc_id INT);\n-- strata:down\nDROP TABLE user_docs;\n");
    write(
        root,
        "db/docs/1.0.0_docs.sql",
        "CREATE TABLE docs (id INTEGER PRIMARY KEY);\n-- strata:down\nDROP TABLE docs;\n",
    );
    write(root, "db/docs/1.1.0_doc_owner.sql", "-- Depends: search:001\nALTER TABLE docs ADD COLUMN owner INTEGER;\n-- strata:down\nALTER TABLE docs DROP COLUMN owner;\n");
    write(
        root,
        "db/search/001_index.sql",
        "CREATE TABLE doc_index (doc_id INT);\n-- strata:down\nDROP TABLE doc_index;\n",
    );

    // main:002 needs docs:1.1.0, which needs search:001: one order across databases.
    let o = strata(root, &["up"]);
    let out = ok(&o);
    let order: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split("Applying ").nth(1))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(
        order,
        [
            "001_users",
            "1.0.0_docs",
            "001_index",
            "1.1.0_doc_owner",
            "002_user_docs"
        ],
        "{out}"
    );
    assert_eq!(pg.tables(), ["user_docs", "users"]);
    assert_eq!(lite.tables(), ["docs"]);
    assert_eq!(my.tables(), ["doc_index"]);
    // Each database keeps its own history.
    assert_eq!(
        pg.query("SELECT version FROM {history} ORDER BY id"),
        ["001", "002"]
    );
    assert_eq!(
        lite.query("SELECT version FROM {history} ORDER BY id"),
        ["1.0.0", "1.1.0"]
    );
    assert_eq!(
        my.query("SELECT version FROM {history} ORDER BY id"),
        ["001"]
    );

    // Status per database.
    let s = json(&strata(root, &["status", "--json"]));
    let dbs = s["databases"].as_array().unwrap();
    let names: Vec<&str> = dbs.iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["main", "docs", "search"]);
    assert_eq!(dbs[1]["current"], "1.1.0");
    assert_eq!(
        dbs[0]["migrations"][1]["depends_on"],
        serde_json::json!(["docs:1.1.0"])
    );
    let one = json(&strata(
        root,
        &["status", "--json", "--databases", "search"],
    ));
    assert_eq!(one["databases"].as_array().unwrap().len(), 1);

    // docs cannot go back alone while main:002 needs it; nothing changes.
    let o = strata(root, &["--databases", "docs", "rollback", "--to", "base"]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("docs:1.1.0 is needed by main:002"),
        "{}",
        stderr(&o)
    );
    assert_eq!(lite.query("SELECT count(*) FROM {history}"), ["2"]);

    // All together: dependents first.
    let o = strata(root, &["rollback", "--to", "base", "--json"]);
    let j = json(&o);
    let rolled: Vec<String> = j["rolled_back"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}:{}",
                r["database"].as_str().unwrap(),
                r["version"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        rolled,
        [
            "main:002",
            "main:001",
            "docs:1.1.0",
            "docs:1.0.0",
            "search:001"
        ]
    );
    assert!(pg.tables().is_empty() && lite.tables().is_empty() && my.tables().is_empty());

    // `--databases main` alone cannot apply 002: its dependency is not there.
    let o = strata(root, &["--databases", "main", "up"]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("main:002 waits for docs:1.1.0"),
        "{}",
        stderr(&o)
    );
    assert_eq!(pg.tables(), ["users"]);

    // A dependency on a database the project lacks is bad input naming file and line.
    write(
        root,
        "db/search/002_bad.sql",
        "-- Depends: nowhere:1\nSELECT 1;\n",
    );
    let o = strata(root, &["up"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("002_bad.sql:1") && stderr(&o).contains("no database `nowhere`"),
        "{}",
        stderr(&o)
    );
    // Other commands run once per database, each under its name.
    let o = strata(root, &["list"]);
    let out = ok(&o);
    assert!(
        out.contains("== main ==") && out.contains("== search =="),
        "{out}"
    );
}
