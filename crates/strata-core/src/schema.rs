//! A database's schema as drivers introspect it: tables with columns, indexes and
//! constraints, views, enums, and the other objects (functions, triggers, sequences,
//! extensions) by name only. Text fields hold the server's own canonical rendering
//! (`format_type`, `pg_get_constraintdef`, SQLite's stored `sql`), so two databases
//! built from equivalent SQL compare equal. strata's own tables are never included.
//!
//! `verify --roundtrip` compares snapshots; `diff` and `squash` turn the difference of
//! two into SQL ([`crate::ddl`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Schema {
    /// By name (`schema.table` outside the default schema).
    pub tables: BTreeMap<String, Table>,
    /// Views and materialized views: name -> definition.
    pub views: BTreeMap<String, View>,
    /// PostgreSQL enums: name -> labels in order.
    pub enums: BTreeMap<String, Vec<String>>,
    /// Everything else, as `kind name` (`function f(integer)`, `trigger t on x`, ...):
    /// compared, never generated.
    pub other: BTreeSet<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Table {
    /// In column order.
    pub columns: Vec<Column>,
    /// Indexes that back no constraint: name -> index.
    pub indexes: BTreeMap<String, Index>,
    /// name -> constraint (primary key, unique, check, foreign key).
    pub constraints: BTreeMap<String, Constraint>,
    /// SQLite: the `CREATE TABLE` statement as stored (tables are rebuilt from it).
    pub create_sql: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Column {
    pub name: String,
    pub data_type: String,
    pub nullable: bool,
    pub default: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Index {
    pub unique: bool,
    /// The full `CREATE [UNIQUE] INDEX` statement as the server renders it.
    pub definition: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConstraintKind {
    PrimaryKey,
    Unique,
    Check,
    ForeignKey,
    Exclusion,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Constraint {
    pub kind: ConstraintKind,
    /// What follows `ADD CONSTRAINT name`, e.g. `FOREIGN KEY (a) REFERENCES b(id)`.
    pub definition: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct View {
    pub materialized: bool,
    /// The query (`SELECT ...`), or for SQLite the whole `CREATE VIEW` statement.
    pub definition: String,
}

impl Schema {
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
            && self.views.is_empty()
            && self.enums.is_empty()
            && self.other.is_empty()
    }

    /// Every object as a key (`table users`, `column users.email`, `index users.ix`,
    /// `constraint users.fk`, `view v`, `enum e`, and the other objects as named), to
    /// find what a rollback left behind and which migration created it.
    pub fn objects(&self) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = self.other.clone();
        for (name, t) in &self.tables {
            out.insert(format!("table {name}"));
            for c in &t.columns {
                out.insert(format!("column {name}.{}", c.name));
            }
            for i in t.indexes.keys() {
                out.insert(format!("index {name}.{i}"));
            }
            for c in t.constraints.keys() {
                out.insert(format!("constraint {name}.{c}"));
            }
        }
        out.extend(self.views.keys().map(|v| format!("view {v}")));
        out.extend(self.enums.keys().map(|e| format!("enum {e}")));
        out
    }

    /// What differs from `before`, one line each (`+` added, `-` removed, `~` changed).
    pub fn changes_from(&self, before: &Schema) -> Vec<String> {
        let mut out = Vec::new();
        keyed(
            &mut out,
            "table",
            &before.tables,
            &self.tables,
            table_changes,
        );
        keyed(
            &mut out,
            "view",
            &before.views,
            &self.views,
            |out, name, _, _| out.push(format!("~ view {name}")),
        );
        keyed(
            &mut out,
            "enum",
            &before.enums,
            &self.enums,
            |out, name, a, b| out.push(format!("~ enum {name}: {a:?} -> {b:?}")),
        );
        for o in before.other.difference(&self.other) {
            out.push(format!("- {o}"));
        }
        for o in self.other.difference(&before.other) {
            out.push(format!("+ {o}"));
        }
        out
    }
}

/// Added, removed and (when unequal) changed entries of two maps.
fn keyed<V: PartialEq>(
    out: &mut Vec<String>,
    kind: &str,
    a: &BTreeMap<String, V>,
    b: &BTreeMap<String, V>,
    changed: impl Fn(&mut Vec<String>, &str, &V, &V),
) {
    for (name, va) in a {
        match b.get(name) {
            None => out.push(format!("- {kind} {name}")),
            Some(vb) if vb != va => changed(out, name, va, vb),
            Some(_) => {}
        }
    }
    for name in b.keys().filter(|n| !a.contains_key(*n)) {
        out.push(format!("+ {kind} {name}"));
    }
}

fn table_changes(out: &mut Vec<String>, table: &str, a: &Table, b: &Table) {
    let before = out.len();
    let q = |name: &str| format!("{table}.{name}");
    let cols = |t: &Table| -> BTreeMap<String, Column> {
        t.columns.iter().map(|c| (q(&c.name), c.clone())).collect()
    };
    let requal = |m: &BTreeMap<String, Index>| -> BTreeMap<String, Index> {
        m.iter().map(|(k, v)| (q(k), v.clone())).collect()
    };
    let requal_c = |m: &BTreeMap<String, Constraint>| -> BTreeMap<String, Constraint> {
        m.iter().map(|(k, v)| (q(k), v.clone())).collect()
    };
    let show = |c: &Column| {
        format!(
            "{} {}{}",
            c.data_type,
            if c.nullable { "null" } else { "not null" },
            c.default
                .as_deref()
                .map(|d| format!(" default {d}"))
                .unwrap_or_default()
        )
    };
    keyed(out, "column", &cols(a), &cols(b), |out, name, x, y| {
        out.push(format!("~ column {name}: {} -> {}", show(x), show(y)))
    });
    keyed(
        out,
        "index",
        &requal(&a.indexes),
        &requal(&b.indexes),
        |out, name, _, y| out.push(format!("~ index {name}: {}", y.definition)),
    );
    keyed(
        out,
        "constraint",
        &requal_c(&a.constraints),
        &requal_c(&b.constraints),
        |out, name, x, y| {
            out.push(format!(
                "~ constraint {name}: {} -> {}",
                x.definition, y.definition
            ))
        },
    );
    if out.len() == before {
        // Same parts, different statement (SQLite): the table itself changed.
        out.push(format!("~ table {table}"));
    }
}
