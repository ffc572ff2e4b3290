//! SQL that turns one [`Schema`] into another, for `diff` (and, from an empty schema,
//! `squash`). PostgreSQL changes objects in place (columns, constraints, indexes,
//! views, enums); SQLite, which cannot alter most of a table, rebuilds a changed table
//! from its declared statement and copies the rows across.
//!
//! Statements are ordered so each one's dependencies exist: views and foreign keys are
//! dropped first and created last, enums before the tables using them.

use crate::lint::Engine;
use crate::schema::{ConstraintKind, Schema, Table};

/// The statements that turn `from` into `to` (empty when they are equal).
pub fn diff(from: &Schema, to: &Schema, engine: Engine) -> Vec<String> {
    match engine {
        Engine::Sqlite => sqlite(from, to),
        _ => postgres(from, to),
    }
}

/// Quotes an identifier (each part of `schema.name`) unless it is plain lower case.
pub fn quote(name: &str) -> String {
    name.split('.')
        .map(|p| {
            let plain = p
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if plain {
                p.to_string()
            } else {
                format!("\"{}\"", p.replace('"', "\"\""))
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// Extensions and schemas are created before anything that may use them.
fn other_creates(from: &Schema, to: &Schema, out: &mut Vec<String>) {
    for o in to.other.difference(&from.other) {
        if let Some(ext) = o.strip_prefix("extension ") {
            out.push(format!("CREATE EXTENSION IF NOT EXISTS {}", quote(ext)));
        } else if let Some(ns) = o.strip_prefix("schema ") {
            out.push(format!("CREATE SCHEMA IF NOT EXISTS {}", quote(ns)));
        }
    }
}

fn other_drops(from: &Schema, to: &Schema, out: &mut Vec<String>) {
    for o in from.other.difference(&to.other) {
        if let Some(ext) = o.strip_prefix("extension ") {
            out.push(format!("DROP EXTENSION IF EXISTS {}", quote(ext)));
        } else if let Some(ns) = o.strip_prefix("schema ") {
            out.push(format!("DROP SCHEMA IF EXISTS {}", quote(ns)));
        }
    }
}

/// Objects of `s` that diff cannot write (functions, triggers, types other than enums,
/// sequences of their own): `squash` refuses rather than lose them.
pub fn not_generated(s: &Schema) -> Vec<String> {
    let serial_sequences: Vec<String> = s
        .tables
        .iter()
        .flat_map(|(t, table)| {
            table.columns.iter().filter_map(move |c| {
                let d = c.default.as_deref()?;
                d.starts_with("nextval(").then(|| {
                    let (ns, name) = t.rsplit_once('.').unwrap_or(("public", t));
                    format!("sequence {ns}.{name}_{}_seq", c.name)
                })
            })
        })
        .collect();
    s.other
        .iter()
        .filter(|o| !o.starts_with("extension ") && !o.starts_with("schema "))
        .filter(|o| !serial_sequences.contains(o))
        .cloned()
        .collect()
}

fn postgres(from: &Schema, to: &Schema) -> Vec<String> {
    let mut out = Vec::new();
    other_creates(from, to, &mut out);
    let changed_view = |n: &String| from.views.get(n) != to.views.get(n);
    // Views first: they depend on the tables about to change.
    for (name, v) in from.views.iter().filter(|(n, _)| changed_view(n)) {
        let kind = if v.materialized {
            "MATERIALIZED VIEW"
        } else {
            "VIEW"
        };
        out.push(format!("DROP {kind} {}", quote(name)));
    }
    // Enums new or grown, before tables use them.
    for (name, labels) in &to.enums {
        match from.enums.get(name) {
            None => out.push(format!(
                "CREATE TYPE {} AS ENUM ({})",
                quote(name),
                labels
                    .iter()
                    .map(|l| literal(l))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Some(old) if old != labels && labels.starts_with(old) => {
                for l in &labels[old.len()..] {
                    out.push(format!(
                        "ALTER TYPE {} ADD VALUE {}",
                        quote(name),
                        literal(l)
                    ));
                }
            }
            Some(old) if old != labels => {
                for l in old.iter().filter(|l| !labels.contains(l)) {
                    out.push(format!(
                        "-- enum {name}: label {l} was removed; PostgreSQL cannot drop enum labels, recreate the type by hand"
                    ));
                }
                for l in labels.iter().filter(|l| !old.contains(l)) {
                    out.push(format!(
                        "ALTER TYPE {} ADD VALUE {}",
                        quote(name),
                        literal(l)
                    ));
                }
            }
            Some(_) => {}
        }
    }
    // Constraints and indexes that go away or change, foreign keys first.
    let mut drops: Vec<(ConstraintKind, String)> = Vec::new();
    for (tname, ft) in &from.tables {
        let Some(tt) = to.tables.get(tname) else {
            continue;
        };
        for (cname, c) in &ft.constraints {
            if tt.constraints.get(cname) != Some(c) {
                drops.push((
                    c.kind,
                    format!(
                        "ALTER TABLE {} DROP CONSTRAINT {}",
                        quote(tname),
                        quote(cname)
                    ),
                ));
            }
        }
        for (iname, i) in &ft.indexes {
            if tt.indexes.get(iname) != Some(i) {
                out.push(format!("DROP INDEX {}", quote(&qualified(tname, iname))));
            }
        }
    }
    drops.sort_by_key(|(k, _)| std::cmp::Reverse(*k));
    out.extend(drops.into_iter().map(|(_, s)| s));
    for tname in from.tables.keys().filter(|t| !to.tables.contains_key(*t)) {
        out.push(format!("DROP TABLE {} CASCADE", quote(tname)));
    }
    // Tables and columns.
    let mut adds: Vec<(ConstraintKind, String)> = Vec::new();
    for (tname, tt) in &to.tables {
        match from.tables.get(tname) {
            None => {
                let cols: Vec<String> = tt.columns.iter().map(pg_column).collect();
                out.push(format!(
                    "CREATE TABLE {} (\n    {}\n)",
                    quote(tname),
                    cols.join(",\n    ")
                ));
                for (cname, c) in &tt.constraints {
                    adds.push((c.kind, add_constraint(tname, cname, &c.definition)));
                }
                for i in tt.indexes.values() {
                    out.push(i.definition.clone());
                }
            }
            Some(ft) => {
                alter_columns(&mut out, tname, ft, tt);
                for (cname, c) in &tt.constraints {
                    if ft.constraints.get(cname) != Some(c) {
                        adds.push((c.kind, add_constraint(tname, cname, &c.definition)));
                    }
                }
                for (iname, i) in &tt.indexes {
                    if ft.indexes.get(iname) != Some(i) {
                        out.push(i.definition.clone());
                    }
                }
            }
        }
    }
    // Primary keys, unique and checks, then foreign keys once every table exists.
    adds.sort_by_key(|(k, _)| *k);
    out.extend(adds.into_iter().map(|(_, s)| s));
    for (name, v) in to.views.iter().filter(|(n, _)| changed_view(n)) {
        let kind = if v.materialized {
            "MATERIALIZED VIEW"
        } else {
            "VIEW"
        };
        let query = v.definition.trim().trim_end_matches(';');
        out.push(format!("CREATE {kind} {} AS\n{query}", quote(name)));
    }
    for name in from.enums.keys().filter(|e| !to.enums.contains_key(*e)) {
        out.push(format!("DROP TYPE {}", quote(name)));
    }
    other_drops(from, to, &mut out);
    out
}

/// An index lives in its table's schema.
fn qualified(table: &str, index: &str) -> String {
    match table.rsplit_once('.') {
        Some((ns, _)) => format!("{ns}.{index}"),
        None => index.to_string(),
    }
}

fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn add_constraint(table: &str, name: &str, def: &str) -> String {
    format!(
        "ALTER TABLE {} ADD CONSTRAINT {} {def}",
        quote(table),
        quote(name)
    )
}

/// A column definition; `nextval` defaults become `serial` so the sequence comes along.
fn pg_column(c: &crate::schema::Column) -> String {
    let serial = c
        .default
        .as_deref()
        .is_some_and(|d| d.starts_with("nextval("));
    let ty = match (serial, c.data_type.as_str()) {
        (true, "integer") => "serial".to_string(),
        (true, "bigint") => "bigserial".to_string(),
        (true, "smallint") => "smallserial".to_string(),
        (_, t) => t.to_string(),
    };
    let mut s = format!("{} {ty}", quote(&c.name));
    if !c.nullable {
        s.push_str(" NOT NULL");
    }
    if let (false, Some(d)) = (serial, &c.default) {
        s.push_str(&format!(" DEFAULT {d}"));
    }
    s
}

fn alter_columns(out: &mut Vec<String>, tname: &str, ft: &Table, tt: &Table) {
    let t = quote(tname);
    for c in &tt.columns {
        let Some(old) = ft.columns.iter().find(|o| o.name == c.name) else {
            out.push(format!("ALTER TABLE {t} ADD COLUMN {}", pg_column(c)));
            continue;
        };
        let col = quote(&c.name);
        if old.data_type != c.data_type {
            out.push(format!(
                "ALTER TABLE {t} ALTER COLUMN {col} TYPE {ty} USING {col}::{ty}",
                ty = c.data_type
            ));
        }
        if old.default != c.default {
            out.push(match &c.default {
                Some(d) => format!("ALTER TABLE {t} ALTER COLUMN {col} SET DEFAULT {d}"),
                None => format!("ALTER TABLE {t} ALTER COLUMN {col} DROP DEFAULT"),
            });
        }
        if old.nullable != c.nullable {
            let verb = if c.nullable { "DROP" } else { "SET" };
            out.push(format!(
                "ALTER TABLE {t} ALTER COLUMN {col} {verb} NOT NULL"
            ));
        }
    }
    for old in ft
        .columns
        .iter()
        .filter(|o| !tt.columns.iter().any(|c| c.name == o.name))
    {
        out.push(format!("ALTER TABLE {t} DROP COLUMN {}", quote(&old.name)));
    }
}

fn sqlite(from: &Schema, to: &Schema) -> Vec<String> {
    let mut out = Vec::new();
    let changed_view = |n: &String| from.views.get(n) != to.views.get(n);
    for name in from.views.keys().filter(|n| changed_view(n)) {
        out.push(format!("DROP VIEW {}", quote(name)));
    }
    for (tname, ft) in &from.tables {
        match to.tables.get(tname) {
            None => out.push(format!("DROP TABLE {}", quote(tname))),
            Some(tt) => {
                for (iname, i) in &ft.indexes {
                    if tt.indexes.get(iname) != Some(i) || ft.create_sql != tt.create_sql {
                        out.push(format!("DROP INDEX {}", quote(iname)));
                    }
                }
            }
        }
    }
    for (tname, tt) in &to.tables {
        let body = tt.create_sql.as_deref().unwrap_or("");
        match from.tables.get(tname) {
            None => out.push(format!("CREATE TABLE {} {body}", quote(tname))),
            Some(ft) if ft.create_sql != tt.create_sql => {
                // SQLite alters little in place: build the declared table beside the old
                // one, copy the shared columns, swap.
                let tmp = format!("strata_new_{tname}");
                let shared: Vec<String> = tt
                    .columns
                    .iter()
                    .filter(|c| ft.columns.iter().any(|o| o.name == c.name))
                    .map(|c| quote(&c.name))
                    .collect();
                out.push(format!("CREATE TABLE {} {body}", quote(&tmp)));
                if !shared.is_empty() {
                    out.push(format!(
                        "INSERT INTO {} ({cols}) SELECT {cols} FROM {}",
                        quote(&tmp),
                        quote(tname),
                        cols = shared.join(", ")
                    ));
                }
                out.push(format!("DROP TABLE {}", quote(tname)));
                out.push(format!(
                    "ALTER TABLE {} RENAME TO {}",
                    quote(&tmp),
                    quote(tname)
                ));
            }
            Some(_) => {}
        }
        let rebuilt = from
            .tables
            .get(tname)
            .is_none_or(|ft| ft.create_sql != tt.create_sql);
        for (iname, i) in &tt.indexes {
            let before = from.tables.get(tname).and_then(|ft| ft.indexes.get(iname));
            if rebuilt || before != Some(i) {
                out.push(i.definition.clone());
            }
        }
    }
    for (name, v) in to.views.iter().filter(|(n, _)| changed_view(n)) {
        let _ = name;
        out.push(v.definition.clone());
    }
    out
}
