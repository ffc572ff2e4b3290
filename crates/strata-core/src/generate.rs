//! `strata generate TEMPLATE ...`: the up and down SQL of common changes, written for
//! the project's database and in the form that does not lock a busy table by default
//! (indexes built concurrently, constraints added `NOT VALID` then validated, data
//! changed in batches). Where an engine cannot do a change in place (SQLite adding a
//! foreign key or a check to an existing table) the template refuses and says what to
//! do instead.

use crate::lint::Engine;

/// A change to generate.
#[derive(Debug, Clone)]
pub enum Template {
    AddColumn {
        table: String,
        column: String,
        data_type: String,
        not_null: bool,
        default: Option<String>,
    },
    AddIndex {
        table: String,
        columns: Vec<String>,
        unique: bool,
        name: Option<String>,
    },
    AddForeignKey {
        table: String,
        column: String,
        references: String,
        ref_column: String,
        on_delete: Option<String>,
        name: Option<String>,
    },
    CreateTable {
        table: String,
        /// (name, type, not null)
        columns: Vec<(String, String, bool)>,
        timestamps: bool,
        soft_delete: bool,
    },
    RenameColumn {
        table: String,
        from: String,
        to: String,
    },
    AddCheckConstraint {
        table: String,
        name: String,
        expression: String,
    },
    DataMigration {
        table: String,
        /// `col = expr, ...`
        set: String,
        /// Matches only the rows still to change, so batches finish.
        filter: String,
        /// The inverse `SET`, when the change can be undone.
        revert: Option<String>,
        batch: usize,
        key: String,
    },
}

/// A generated migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// For the file name: `add_email_to_users`.
    pub name: String,
    pub description: String,
    pub up: String,
    pub down: String,
    /// Needs `-- strata:no-transaction` (concurrent index builds, batched commits).
    pub no_transaction: bool,
}

impl Generated {
    /// The up section, with the no-transaction marker when needed.
    pub fn up_section(&self) -> String {
        if self.no_transaction {
            format!("-- strata:no-transaction\n{}", self.up)
        } else {
            self.up.clone()
        }
    }
}

fn gen(
    name: String,
    description: String,
    up: Vec<String>,
    down: Vec<String>,
    nt: bool,
) -> Generated {
    Generated {
        name,
        description,
        up: up.join("\n"),
        down: down.join("\n"),
        no_transaction: nt,
    }
}

/// The migration for `t` on `engine`, or why it cannot be generated.
pub fn generate(t: &Template, engine: Engine) -> Result<Generated, String> {
    use Engine::*;
    Ok(match t {
        Template::AddColumn {
            table,
            column,
            data_type,
            not_null,
            default,
        } => {
            if *not_null && default.is_none() {
                return Err(format!(
                    "a NOT NULL column needs --default on a table that has rows; or add `{column}` nullable, backfill it (generate data-migration), then set NOT NULL"
                ));
            }
            let mut def = format!("{column} {data_type}");
            if *not_null {
                def.push_str(" NOT NULL");
            }
            if let Some(d) = default {
                def.push_str(&format!(" DEFAULT {d}"));
            }
            gen(
                format!("add_{column}_to_{table}"),
                format!("Add column {column} to {table}"),
                vec![format!("ALTER TABLE {table} ADD COLUMN {def};")],
                vec![format!("ALTER TABLE {table} DROP COLUMN {column};")],
                false,
            )
        }
        Template::AddIndex {
            table,
            columns,
            unique,
            name,
        } => {
            let name = name
                .clone()
                .unwrap_or_else(|| format!("{table}_{}_{}", columns.join("_"), if *unique { "key" } else { "idx" }));
            let u = if *unique { "UNIQUE " } else { "" };
            let cols = columns.join(", ");
            let (up, down, nt) = match engine {
                // Built without blocking writes; CONCURRENTLY cannot run in a transaction.
                Postgres => (
                    format!("CREATE {u}INDEX CONCURRENTLY IF NOT EXISTS {name} ON {table} ({cols});"),
                    format!("DROP INDEX CONCURRENTLY IF EXISTS {name};"),
                    true,
                ),
                MySql => (
                    format!("CREATE {u}INDEX {name} ON {table} ({cols}) ALGORITHM=INPLACE LOCK=NONE;"),
                    format!("DROP INDEX {name} ON {table};"),
                    false,
                ),
                Sqlite => (
                    format!("CREATE {u}INDEX IF NOT EXISTS {name} ON {table} ({cols});"),
                    format!("DROP INDEX IF EXISTS {name};"),
                    false,
                ),
            };
            gen(
                format!("add_{name}"),
                format!("Add {}index {name} on {table} ({cols})", u.to_lowercase()),
                vec![up],
                vec![down],
                nt,
            )
        }
        Template::AddForeignKey {
            table,
            column,
            references,
            ref_column,
            on_delete,
            name,
        } => {
            let name = name.clone().unwrap_or_else(|| format!("{table}_{column}_fkey"));
            let on = on_delete
                .as_deref()
                .map(|o| format!(" ON DELETE {}", o.replace(['-', '_'], " ").to_uppercase()))
                .unwrap_or_default();
            let fk = format!("FOREIGN KEY ({column}) REFERENCES {references} ({ref_column}){on}");
            let desc = format!("Add foreign key {table}.{column} -> {references}.{ref_column}");
            match engine {
                // NOT VALID takes a brief lock; VALIDATE then scans without blocking
                // writes, as its own statement outside the first one's transaction.
                Postgres => gen(
                    format!("add_{name}"),
                    desc,
                    vec![
                        format!("ALTER TABLE {table} ADD CONSTRAINT {name} {fk} NOT VALID;"),
                        format!("ALTER TABLE {table} VALIDATE CONSTRAINT {name};"),
                    ],
                    vec![format!("ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name};")],
                    true,
                ),
                MySql => gen(
                    format!("add_{name}"),
                    desc,
                    vec![format!("ALTER TABLE {table} ADD CONSTRAINT {name} {fk};")],
                    vec![format!("ALTER TABLE {table} DROP FOREIGN KEY {name};")],
                    false,
                ),
                Sqlite => return Err(sqlite_rebuild("a foreign key")),
            }
        }
        Template::CreateTable {
            table,
            columns,
            timestamps,
            soft_delete,
        } => {
            let id = match engine {
                Postgres => "id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
                MySql => "id BIGINT AUTO_INCREMENT PRIMARY KEY",
                Sqlite => "id INTEGER PRIMARY KEY",
            };
            let mut cols = vec![id.to_string()];
            for (name, ty, not_null) in columns {
                cols.push(format!("{name} {ty}{}", if *not_null { " NOT NULL" } else { "" }));
            }
            let (ts, now) = match engine {
                Postgres => ("TIMESTAMPTZ", "now()"),
                MySql => ("TIMESTAMP", "CURRENT_TIMESTAMP"),
                Sqlite => ("TEXT", "CURRENT_TIMESTAMP"),
            };
            if *timestamps {
                cols.push(format!("created_at {ts} NOT NULL DEFAULT {now}"));
                let on_update = if engine == MySql { " ON UPDATE CURRENT_TIMESTAMP" } else { "" };
                cols.push(format!("updated_at {ts} NOT NULL DEFAULT {now}{on_update}"));
            }
            if *soft_delete {
                cols.push(format!("deleted_at {ts} NULL"));
            }
            let mut up = vec![format!("CREATE TABLE {table} (\n    {}\n);", cols.join(",\n    "))];
            if *soft_delete && engine != MySql {
                // Most reads want the live rows only.
                up.push(format!("CREATE INDEX {table}_live_idx ON {table} (id) WHERE deleted_at IS NULL;"));
            }
            gen(
                format!("create_{table}"),
                format!("Create table {table}"),
                up,
                vec![format!("DROP TABLE {table};")],
                false,
            )
        }
        Template::RenameColumn { table, from, to } => gen(
            format!("rename_{table}_{from}_to_{to}"),
            format!("Rename {table}.{from} to {to}"),
            vec![
                format!("-- Code still reading `{from}` breaks: deploy code that reads both names first."),
                format!("ALTER TABLE {table} RENAME COLUMN {from} TO {to};"),
            ],
            vec![format!("ALTER TABLE {table} RENAME COLUMN {to} TO {from};")],
            false,
        ),
        Template::AddCheckConstraint {
            table,
            name,
            expression,
        } => match engine {
            Postgres => gen(
                format!("add_{name}"),
                format!("Add check constraint {name} on {table}"),
                vec![
                    format!("ALTER TABLE {table} ADD CONSTRAINT {name} CHECK ({expression}) NOT VALID;"),
                    format!("ALTER TABLE {table} VALIDATE CONSTRAINT {name};"),
                ],
                vec![format!("ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name};")],
                true,
            ),
            MySql => gen(
                format!("add_{name}"),
                format!("Add check constraint {name} on {table}"),
                vec![format!("ALTER TABLE {table} ADD CONSTRAINT {name} CHECK ({expression});")],
                vec![format!("ALTER TABLE {table} DROP CONSTRAINT {name};")],
                false,
            ),
            Sqlite => return Err(sqlite_rebuild("a check constraint")),
        },
        Template::DataMigration {
            table,
            set,
            filter,
            revert,
            batch,
            key,
        } => {
            let name = format!("update_{table}");
            let description = format!("Data: {table} SET {set} WHERE {filter}");
            let down = match revert {
                Some(r) => vec![format!("UPDATE {table} SET {r};")],
                None => vec!["-- Not reversible: restore from a backup, or write the inverse UPDATE here.".to_string()],
            };
            match engine {
                // Batches that commit one by one: no long transaction holding row locks.
                // The WHERE must match only rows still to change, so the loop ends.
                Postgres => gen(
                    name,
                    description,
                    vec![format!(
                        "DO $$\nDECLARE\n    changed bigint;\nBEGIN\n    LOOP\n        UPDATE {table} SET {set}\n        WHERE {key} IN (SELECT {key} FROM {table} WHERE {filter} LIMIT {batch});\n        GET DIAGNOSTICS changed = ROW_COUNT;\n        EXIT WHEN changed = 0;\n        COMMIT;\n    END LOOP;\nEND $$;"
                    )],
                    down,
                    true,
                ),
                MySql => gen(
                    name,
                    description,
                    vec![format!("UPDATE {table} SET {set} WHERE {filter};")],
                    down,
                    false,
                ),
                Sqlite => gen(
                    name,
                    description,
                    vec![format!("UPDATE {table} SET {set} WHERE {filter};")],
                    down,
                    false,
                ),
            }
        }
    })
}

fn sqlite_rebuild(what: &str) -> String {
    format!(
        "SQLite cannot add {what} to an existing table; declare the table as it should be and run `strata diff --schema FILE`, which rebuilds it"
    )
}
