//! Introspecting a SQLite database into a [`Schema`]: `sqlite_master` for the stored
//! statements, `PRAGMA table_xinfo` / `foreign_key_list` / `index_list` for the parts.
//! SQLite keeps constraints only inside `CREATE TABLE`, so a table carries its
//! statement and changes to it are made by rebuilding the table.

use rusqlite::Connection;
use strata_core::schema::{Column, Constraint, ConstraintKind, Index, Schema, Table, View};
use strata_core::DriverError;

use super::sqlite_error;

pub(super) fn introspect(conn: &Connection, own: &[String]) -> Result<Schema, DriverError> {
    let mut s = Schema::default();
    let master: Vec<(String, String, String, Option<String>)> = {
        let mut st = conn
            .prepare("SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name")
            .map_err(|e| sqlite_error(&e))?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .map_err(|e| sqlite_error(&e))?;
        rows.collect::<Result<_, _>>()
            .map_err(|e| sqlite_error(&e))?
    };
    let mine = |name: &str| own.iter().any(|o| o == name);
    for (kind, name, table, sql) in &master {
        if mine(table) {
            continue;
        }
        let sql = sql.clone().unwrap_or_default();
        match kind.as_str() {
            "table" => {
                s.tables.insert(name.clone(), table_of(conn, name, sql)?);
            }
            "view" => {
                s.views.insert(
                    name.clone(),
                    View {
                        materialized: false,
                        definition: sql,
                    },
                );
            }
            "trigger" => {
                s.other.insert(format!("trigger {name} on {table}"));
            }
            _ => {}
        }
    }
    // Indexes after tables; automatic ones (UNIQUE/PRIMARY KEY) have no SQL and live in
    // the table's statement.
    for (kind, name, table, sql) in &master {
        if kind != "index" || mine(table) {
            continue;
        }
        if let (Some(t), Some(sql)) = (s.tables.get_mut(table), sql) {
            t.indexes.insert(
                name.clone(),
                Index {
                    unique: sql.to_ascii_uppercase().starts_with("CREATE UNIQUE"),
                    definition: sql.clone(),
                },
            );
        }
    }
    Ok(s)
}

fn table_of(conn: &Connection, name: &str, sql: String) -> Result<Table, DriverError> {
    let q = name.replace('"', "\"\"");
    // The statement from its column list on: a rebuilt-and-renamed table (whose stored
    // statement SQLite rewrites with the quoted name) compares equal to the declared one.
    let body = sql
        .find('(')
        .map(|i| sql[i..].trim().to_string())
        .unwrap_or(sql);
    let mut t = Table {
        create_sql: Some(body),
        ..Default::default()
    };
    let mut st = conn
        .prepare(&format!("PRAGMA table_xinfo(\"{q}\")"))
        .map_err(|e| sqlite_error(&e))?;
    let cols = st
        .query_map([], |r| {
            Ok(Column {
                name: r.get(1)?,
                data_type: r.get::<_, String>(2)?,
                nullable: r.get::<_, i64>(3)? == 0,
                default: r.get(4)?,
            })
        })
        .map_err(|e| sqlite_error(&e))?;
    t.columns = cols
        .collect::<Result<_, _>>()
        .map_err(|e| sqlite_error(&e))?;
    let mut st = conn
        .prepare(&format!("PRAGMA foreign_key_list(\"{q}\")"))
        .map_err(|e| sqlite_error(&e))?;
    let fks: Vec<(i64, String, String, Option<String>, String)> = st
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(6)?))
        })
        .map_err(|e| sqlite_error(&e))?
        .collect::<Result<_, _>>()
        .map_err(|e| sqlite_error(&e))?;
    for (id, parent, from, to, on_delete) in fks {
        t.constraints.insert(
            format!("fk_{id}"),
            Constraint {
                kind: ConstraintKind::ForeignKey,
                definition: format!(
                    "FOREIGN KEY ({from}) REFERENCES {parent}({}) ON DELETE {on_delete}",
                    to.unwrap_or_default()
                ),
            },
        );
    }
    Ok(t)
}
