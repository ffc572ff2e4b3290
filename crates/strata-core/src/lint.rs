//! `strata lint`: operations that lock a busy table for a long time, rewrite it, or
//! break code still running against the old schema (SPEC section 7), found with a real
//! SQL parser (`sqlparser`). A statement the parser cannot read is reported as "not
//! analysed" and never blocks anything.
//!
//! A table counts as existing (so locking it matters) unless the same migration
//! created it: an earlier migration created it, or the database already has it.

use std::collections::HashSet;
use std::path::PathBuf;

use serde::Serialize;
use sqlparser::ast::{
    AlterColumnOperation, AlterTableOperation, ColumnOption, Expr, ObjectName, ObjectType,
    Statement, TableConstraint,
};
use sqlparser::dialect::{Dialect, MySqlDialect, PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;

use crate::migration::{Format, Migration};
use crate::sql;

/// Which engine's locking rules apply.
/// Named in JSON as `--dialect` takes it: `postgres`, `mysql`, `sqlite`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Postgres,
    MySql,
    Sqlite,
}

impl Engine {
    /// The engine of a database URL; `None` for engines lint has no rules for.
    pub fn of_url(url: &str) -> Option<Engine> {
        match url.split(':').next()?.to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" => Some(Engine::Postgres),
            "mysql" | "mariadb" => Some(Engine::MySql),
            "sqlite" => Some(Engine::Sqlite),
            _ => None,
        }
    }

    pub fn parse(name: &str) -> Option<Engine> {
        match name.to_ascii_lowercase().as_str() {
            "pg" | "psql" | "cockroachdb" => Some(Engine::Postgres),
            "sqlite3" => Some(Engine::Sqlite),
            other => Engine::of_url(&format!("{other}:")),
        }
    }

    /// The engine a migrations directory is written for when no database says so, and
    /// how that was decided: Prisma's `migration_lock.toml` provider, then a directory
    /// named after an engine (`db/postgres/migrations`, `riversqlite`), then the SQL
    /// itself (each engine's own words: `SERIAL`, `::`, `$$` / `AUTO_INCREMENT`,
    /// `ENGINE=` / `AUTOINCREMENT`, `PRAGMA`), when one engine clearly leads.
    pub fn detect(dir: &std::path::Path, migrations: &[Migration]) -> Option<(Engine, String)> {
        let lock = dir.join("migration_lock.toml");
        if let Ok(text) = std::fs::read_to_string(&lock) {
            let provider = text.parse::<toml::Table>().ok().and_then(|t| {
                t.get("provider")
                    .and_then(|p| p.as_str())
                    .map(str::to_string)
            });
            if let Some(e) = provider.as_deref().and_then(Engine::parse) {
                return Some((e, format!("the provider in {}", lock.display())));
            }
        }
        let full = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        // `postgres`, `atuin-server-postgres`, `riversqlite`, `riverpgxv5`: an engine's
        // name (or Go's pgx driver) inside a directory name.
        let named = |part: &str| {
            let p = part.to_ascii_lowercase();
            if ["pg", "psql"].contains(&p.as_str())
                || ["postgres", "pgx"].iter().any(|w| p.contains(w))
            {
                Some(Engine::Postgres)
            } else if ["mysql", "mariadb"].iter().any(|w| p.contains(w)) {
                Some(Engine::MySql)
            } else if p.contains("sqlite") {
                Some(Engine::Sqlite)
            } else {
                None
            }
        };
        for part in full.iter().rev() {
            if let Some(e) = part.to_str().and_then(named) {
                return Some((
                    e,
                    format!("the directory name `{}`", part.to_string_lossy()),
                ));
            }
        }
        let mut votes = [0usize; 3];
        for m in migrations.iter().filter(|m| m.format == Format::Sql) {
            let Ok(text) = m.up.text() else { continue };
            let upper = text.to_ascii_uppercase();
            let count = |words: &[&str]| {
                words
                    .iter()
                    .map(|w| upper.matches(w).count())
                    .sum::<usize>()
            };
            votes[0] += count(&[
                "SERIAL",
                "::",
                "$$",
                "JSONB",
                "TIMESTAMPTZ",
                "BYTEA",
                "CREATE EXTENSION",
                "PLPGSQL",
                "CONCURRENTLY",
                "GEN_RANDOM_UUID",
            ]);
            // Not backticks: SQLite accepts them too, and SQLite projects use them.
            votes[1] += count(&[
                "AUTO_INCREMENT",
                "ENGINE=",
                "ENGINE =",
                "UNSIGNED",
                "DEFAULT CHARSET",
                "TINYINT(",
            ]);
            votes[2] += count(&[
                "AUTOINCREMENT",
                "PRAGMA ",
                "WITHOUT ROWID",
                "STRFTIME(",
                "DATETIME('NOW')",
            ]);
        }
        let engines = [Engine::Postgres, Engine::MySql, Engine::Sqlite];
        let (best, &n) = votes.iter().enumerate().max_by_key(|(_, n)| **n)?;
        let runner_up = votes
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != best)
            .map(|(_, n)| *n)
            .max()
            .unwrap_or(0);
        (n > 0 && n >= 2 * runner_up + 1).then(|| {
            (
                engines[best],
                format!(
                    "the SQL of the migrations ({n} {:?}-specific words)",
                    engines[best]
                ),
            )
        })
    }

    fn dialect(self) -> Box<dyn Dialect> {
        match self {
            Engine::Postgres => Box::new(PostgreSqlDialect {}),
            Engine::MySql => Box::new(MySqlDialect {}),
            Engine::Sqlite => Box::new(SQLiteDialect {}),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// A note: a statement the parser could not read (`not-analysed`), or how the
    /// migration will run (`outside-transaction`).
    Info,
    Warning,
    Error,
}

/// One finding: which rule, how bad, where, and what to do instead.
#[derive(Debug, Clone, Serialize)]
pub struct LintFinding {
    pub rule: &'static str,
    pub severity: Severity,
    pub migration: String,
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
    /// The safe alternative.
    pub fix: String,
}

/// Lints the up scripts of `migrations` (SQL only) for `engine`.
pub fn lint<'a>(
    migrations: impl IntoIterator<Item = &'a Migration>,
    engine: Engine,
) -> Vec<LintFinding> {
    migrations
        .into_iter()
        .filter(|m| m.format == Format::Sql)
        .flat_map(|m| lint_one(m, engine))
        .collect()
}

/// Counts by severity: (errors, warnings, not analysed).
pub fn counts(findings: &[LintFinding]) -> (usize, usize, usize) {
    let n = |s| findings.iter().filter(|f| f.severity == s).count();
    let not_analysed = findings.iter().filter(|f| f.rule == "not-analysed").count();
    (n(Severity::Error), n(Severity::Warning), not_analysed)
}

struct Ctx<'a> {
    m: &'a Migration,
    engine: Engine,
    /// Tables this migration created, lower-case, unqualified.
    created: HashSet<String>,
    out: Vec<LintFinding>,
    line: usize,
}

impl Ctx<'_> {
    fn push(&mut self, rule: &'static str, severity: Severity, message: String, fix: &str) {
        self.out.push(LintFinding {
            rule,
            severity,
            migration: self.m.id.clone(),
            file: self.m.up.path.to_path_buf(),
            line: self.line,
            message,
            fix: fix.to_string(),
        });
    }

    fn existing(&self, table: &ObjectName) -> bool {
        !self.created.contains(&table_key(table))
    }

    fn pg(&self) -> bool {
        self.engine == Engine::Postgres
    }
}

/// `schema.Table` -> `table`.
fn table_key(name: &ObjectName) -> String {
    name.0
        .last()
        .map(|p| {
            p.to_string()
                .trim_matches(['"', '`', '[', ']'])
                .to_lowercase()
        })
        .unwrap_or_default()
}

fn lint_one(m: &Migration, engine: Engine) -> Vec<LintFinding> {
    let dialect = engine.dialect();
    let split = if engine == Engine::MySql {
        sql::Dialect::MySql
    } else {
        sql::Dialect::Standard
    };
    let mut cx = Ctx {
        m,
        engine,
        created: HashSet::new(),
        out: Vec::new(),
        line: m.up.first_line,
    };
    if let Some(why) = &m.outside_transaction {
        cx.push(
            "outside-transaction",
            Severity::Info,
            format!("runs outside a transaction: {why} cannot run in one"),
            "nothing to do: strata tracks it statement by statement (`-- strata:transaction` forces a transaction)",
        );
    }
    let mut ddl = false;
    let script = match m.up.text() {
        Ok(t) => t,
        Err(e) => {
            cx.push(
                "not-analysed",
                Severity::Info,
                e.message,
                "read the file again",
            );
            return cx.out;
        }
    };
    for st in sql::split_dialect(&script, split) {
        let text = st.text(&script);
        cx.line =
            m.up.line_at(&script, st.range.start + sql::code_start(text));
        // strata runs a transactional migration in its own transaction: `up` refuses
        // one that begins or commits a transaction itself, and lint says so first.
        if m.transactional && sql::is_transaction_control(text) {
            let word = sql::leading_words(text, 1).join("");
            cx.push(
                "transaction-control",
                Severity::Error,
                format!("`{word}` inside a transactional migration would commit part of it without its history row; `up` refuses it"),
                "remove the BEGIN/COMMIT lines, or add `-- strata:no-transaction` to run the file statement by statement",
            );
            continue;
        }
        match Parser::parse_sql(dialect.as_ref(), text) {
            Ok(statements) => {
                for s in &statements {
                    ddl |= is_ddl(s);
                    statement(&mut cx, s);
                }
            }
            Err(e) => {
                let first = text.trim().lines().next().unwrap_or("").trim();
                let head: String = first.chars().take(60).collect();
                ddl |= looks_like_ddl(first);
                cx.push(
                    "not-analysed",
                    Severity::Info,
                    format!("not analysed: the SQL parser cannot read `{head}` ({e})"),
                    "review this statement by hand",
                );
            }
        }
    }
    if ddl && m.down.is_none() {
        cx.line = m.up.first_line;
        cx.push(
            "no-rollback",
            Severity::Warning,
            format!("{} changes the schema but has no rollback", m.id),
            "add a `-- strata:down` section or a .down.sql file",
        );
    }
    cx.out
}

fn is_ddl(s: &Statement) -> bool {
    matches!(
        s,
        Statement::CreateTable(_)
            | Statement::CreateIndex(_)
            | Statement::CreateView { .. }
            | Statement::AlterTable { .. }
            | Statement::Drop { .. }
            | Statement::CreateType { .. }
            | Statement::CreateSchema { .. }
            | Statement::CreateSequence { .. }
            | Statement::AlterIndex { .. }
    )
}

fn looks_like_ddl(first_line: &str) -> bool {
    let w = first_line.to_ascii_uppercase();
    ["CREATE ", "ALTER ", "DROP "]
        .iter()
        .any(|k| w.starts_with(k))
}

fn statement(cx: &mut Ctx<'_>, s: &Statement) {
    match s {
        Statement::CreateTable(t) => {
            cx.created.insert(table_key(&t.name));
        }
        Statement::CreateView { name, .. } => {
            // A materialized view is indexed like a table.
            cx.created.insert(table_key(name));
        }
        Statement::CreateIndex(ix) => {
            let table = table_key(&ix.table_name);
            if cx.pg() && ix.concurrently && cx.m.transactional {
                cx.push(
                    "concurrently-in-transaction",
                    Severity::Error,
                    format!("CREATE INDEX CONCURRENTLY on `{table}` cannot run inside a transaction"),
                    "remove `-- strata:transaction`: strata runs a migration with a CONCURRENTLY statement outside a transaction by itself",
                );
            } else if cx.pg() && !ix.concurrently && cx.existing(&ix.table_name) {
                cx.push(
                    "index-not-concurrent",
                    Severity::Error,
                    format!("CREATE INDEX on existing table `{table}` blocks its writes until the index is built"),
                    "CREATE INDEX CONCURRENTLY in a `-- strata:no-transaction` migration",
                );
            }
        }
        Statement::AlterTable {
            name, operations, ..
        } => {
            for op in operations {
                alter(cx, name, op);
            }
        }
        Statement::Drop {
            object_type: ObjectType::Table,
            names,
            ..
        } => {
            let list: Vec<String> = names.iter().map(table_key).collect();
            cx.push(
                "drop-table",
                Severity::Warning,
                format!(
                    "DROP TABLE {} loses its data and breaks code still reading it",
                    list.join(", ")
                ),
                "stop using the table in a deploy first; keep a backup; drop it in a later release",
            );
        }
        _ => {}
    }
}

fn alter(cx: &mut Ctx<'_>, table: &ObjectName, op: &AlterTableOperation) {
    let t = table_key(table);
    let existing = cx.existing(table);
    match op {
        AlterTableOperation::RenameTable { .. } => cx.push(
            "rename-table",
            Severity::Warning,
            format!("renaming table `{t}` breaks code still using the old name"),
            "create the new table (or a view under the old name), move readers and writers over, then drop the old one",
        ),
        AlterTableOperation::AddColumn { column_def, .. } if existing => {
            let options: Vec<&ColumnOption> =
                column_def.options.iter().map(|o| &o.option).collect();
            let default = options.iter().find_map(|o| match o {
                ColumnOption::Default(e) => Some(e),
                _ => None,
            });
            let not_null = options.iter().any(|o| matches!(o, ColumnOption::NotNull));
            let col = &column_def.name;
            if let Some(f) = default.and_then(volatile) {
                cx.push(
                    "volatile-default",
                    Severity::Error,
                    format!("adding column `{col}` to existing table `{t}` with the volatile default {f}() rewrites the whole table under an exclusive lock"),
                    "add the column without a default, set the default afterwards, and backfill existing rows in batches",
                );
            } else if not_null && default.is_none() {
                cx.push(
                    "not-null-without-default",
                    Severity::Error,
                    format!("adding NOT NULL column `{col}` without a default to existing table `{t}` fails on any existing row"),
                    "add it nullable (or with a constant default), backfill in batches, then set NOT NULL",
                );
            }
        }
        AlterTableOperation::AddConstraint {
            constraint,
            not_valid,
        } if cx.pg() && existing && !not_valid => {
            let kind = match constraint {
                TableConstraint::ForeignKey { .. } => "foreign key",
                TableConstraint::Check { .. } => "check constraint",
                _ => return,
            };
            cx.push(
                "constraint-not-valid",
                Severity::Error,
                format!("adding a {kind} to existing table `{t}` scans it under a lock that blocks writes"),
                "ADD CONSTRAINT ... NOT VALID, then VALIDATE CONSTRAINT in a separate migration",
            );
        }
        AlterTableOperation::AlterColumn { column_name, op } if existing => match op {
            AlterColumnOperation::SetDataType { .. } if cx.engine != Engine::Sqlite => cx.push(
                "column-type-change",
                Severity::Error,
                format!("changing the type of `{t}.{column_name}` rewrites the table under an exclusive lock and breaks code reading it"),
                "add a new column, backfill it in batches, switch the code over, then drop the old column",
            ),
            AlterColumnOperation::SetNotNull if cx.pg() => cx.push(
                "set-not-null",
                Severity::Error,
                format!("SET NOT NULL on `{t}.{column_name}` scans the whole table under an exclusive lock"),
                "ADD CONSTRAINT ... CHECK (col IS NOT NULL) NOT VALID, VALIDATE it, then SET NOT NULL (PostgreSQL 12+ skips the scan) and drop the check",
            ),
            _ => {}
        },
        AlterTableOperation::ModifyColumn { col_name, .. }
        | AlterTableOperation::ChangeColumn {
            old_name: col_name, ..
        } if existing && cx.engine == Engine::MySql => cx.push(
            "column-type-change",
            Severity::Error,
            format!("redefining `{t}.{col_name}` copies the table and breaks code reading it"),
            "add a new column, backfill it in batches, switch the code over, then drop the old column",
        ),
        AlterTableOperation::RenameColumn {
            old_column_name,
            new_column_name,
        } => cx.push(
            "rename-column",
            Severity::Warning,
            format!("renaming `{t}.{old_column_name}` to `{new_column_name}` breaks code still using the old name"),
            "add the new column, write both, backfill, move readers, then drop the old column",
        ),
        AlterTableOperation::DropColumn { column_names, .. } => cx.push(
            "drop-column",
            Severity::Warning,
            format!(
                "dropping {} from `{t}` loses data and breaks code still reading it",
                column_names
                    .iter()
                    .map(|c| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "stop reading the column in a deploy first, then drop it in a later migration",
        ),
        _ => {}
    }
}

/// The volatile function a default calls (evaluated per row, so every existing row is
/// rewritten), if any. `now()` is stable: PostgreSQL evaluates it once.
fn volatile(e: &Expr) -> Option<String> {
    const VOLATILE: &[&str] = &[
        "random",
        "gen_random_uuid",
        "uuid_generate_v1",
        "uuid_generate_v1mc",
        "uuid_generate_v4",
        "clock_timestamp",
        "timeofday",
        "nextval",
        "uuid",
    ];
    match e {
        Expr::Function(f) => {
            let name = f.name.to_string().to_lowercase();
            let short = name.rsplit('.').next().unwrap_or(&name).to_string();
            VOLATILE.contains(&short.as_str()).then_some(short)
        }
        Expr::Nested(inner) => volatile(inner),
        Expr::Cast { expr, .. } => volatile(expr),
        Expr::BinaryOp { left, right, .. } => volatile(left).or_else(|| volatile(right)),
        _ => None,
    }
}
