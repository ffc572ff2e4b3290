//! Where strata keeps its bookkeeping on the SQL engines, decided once for all of them.
//!
//! Nothing strata creates may share a name with an application's table or another
//! migration tool's (`schema_migrations` is golang-migrate's and dbmate's; `audit_log`
//! is every second application's). By default PostgreSQL keeps strata's tables in a
//! schema of their own, `strata`; MySQL/MariaDB, SQLite, DuckDB and a PostgreSQL tenant
//! schema (`?search_path=tenant_42`, one history per tenant) prefix them with `strata_`.
//! `schema`, `history_table` and `table_prefix` override that.
//!
//! Earlier strata versions kept `schema_migrations`, `application_metadata` and
//! `audit_log` in the application's own schema. Such a database is read where it is and
//! moved in place (renamed, nothing copied) the first time strata changes it, under the
//! migration lock, with an audit row. A table that has one of strata's names but not
//! strata's columns is refused, never reused, and a history that disappeared while its
//! metadata table is still there is reported instead of silently recreated empty.

use strata_core::{DriverError, DriverErrorKind};

use crate::HistoryNames;

/// The SQL engines that keep strata's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Postgres,
    MySql,
    Sqlite,
    #[allow(dead_code)] // without the duckdb feature
    DuckDb,
}

impl Dialect {
    pub fn quote(self, ident: &str) -> String {
        match self {
            Dialect::MySql => format!("`{}`", ident.replace('`', "``")),
            _ => format!("\"{}\"", ident.replace('"', "\"\"")),
        }
    }

    /// The SQL literal of `s`, exact whatever the server's settings: PostgreSQL's
    /// escape string (`standard_conforming_strings` does not change it); on MySQL a
    /// hex string when `s` holds a backslash (`NO_BACKSLASH_ESCAPES` changes what a
    /// backslash in quotes means).
    pub fn literal(self, s: &str) -> String {
        match self {
            Dialect::Postgres if s.contains('\\') => {
                format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
            }
            Dialect::MySql if s.contains('\\') => {
                let hex: String = s.bytes().map(|b| format!("{b:02X}")).collect();
                format!("_utf8mb4 X'{hex}'")
            }
            _ => format!("'{}'", s.replace('\'', "''")),
        }
    }
}

/// One of strata's tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Table {
    /// Unqualified, unquoted.
    pub name: String,
    /// Qualified and quoted, ready for SQL text.
    pub sql: String,
}

/// The names of strata's tables on one database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Names {
    pub dialect: Dialect,
    /// The schema (PostgreSQL) or database (MySQL) that holds them; `None` for the
    /// connection's own (SQLite, DuckDB).
    pub schema: Option<String>,
    pub history: Table,
    pub metadata: Table,
    pub audit: Table,
    /// The lease table (`lock = "lease"`).
    pub lease: Table,
    /// The history has the columns of statement-level progress (`statement_hashes`,
    /// `in_flight`, `direction`); an earlier layout gains them when it is moved.
    pub progress_columns: bool,
}

impl Names {
    fn new(dialect: Dialect, schema: Option<&str>, history: &str, prefix: &str) -> Self {
        let table = |name: &str| Table {
            name: name.to_string(),
            sql: match schema {
                Some(s) => format!("{}.{}", dialect.quote(s), dialect.quote(name)),
                None => dialect.quote(name),
            },
        };
        Names {
            dialect,
            schema: schema.map(str::to_string),
            history: table(history),
            metadata: table(&format!("{prefix}application_metadata")),
            audit: table(&format!("{prefix}audit_log")),
            lease: table(&format!("{history}_lock")),
            progress_columns: true,
        }
    }

    /// Where strata's tables go. `home` is the application's schema or database (the
    /// connection's current one, or a tenant's `search_path`); `tenant` says it came
    /// from a `search_path` and must keep its own history.
    pub fn resolve(
        dialect: Dialect,
        config: &HistoryNames,
        home: Option<&str>,
        tenant: bool,
    ) -> Self {
        let (schema, default_prefix) = match (dialect, &config.schema) {
            (_, Some(s)) if dialect == Dialect::Postgres => (Some(s.as_str()), ""),
            (Dialect::Postgres, None) if !tenant => (Some("strata"), ""),
            (Dialect::Postgres, None) => (home, "strata_"),
            (Dialect::MySql, s) => (s.as_deref().or(home), "strata_"),
            (_, _) => (None, "strata_"),
        };
        let prefix = config.prefix.as_deref().unwrap_or(default_prefix);
        let history = config
            .table
            .clone()
            .unwrap_or_else(|| format!("{prefix}schema_migrations"));
        Names::new(dialect, schema, &history, prefix)
    }

    /// Where an earlier strata kept them: unprefixed, in the application's schema.
    pub fn legacy(dialect: Dialect, config: &HistoryNames, home: Option<&str>) -> Self {
        let schema = match dialect {
            Dialect::Postgres | Dialect::MySql => config.schema.as_deref().or(home),
            _ => None,
        };
        let history = config.table.as_deref().unwrap_or("schema_migrations");
        Names {
            progress_columns: false,
            ..Names::new(dialect, schema, history, "")
        }
    }

    /// The history columns after `applied_by`, in the order the readers take them
    /// (`NULL`s where the table predates them).
    pub fn progress_select(&self) -> &'static str {
        match (self.progress_columns, self.dialect) {
            (true, _) => "statement_hashes, in_flight, direction",
            // Typed, so the readers decode them as the real columns.
            (false, Dialect::Postgres | Dialect::DuckDb) => {
                "CAST(NULL AS TEXT), CAST(NULL AS INTEGER), CAST(NULL AS TEXT)"
            }
            (false, _) => "NULL, NULL, NULL",
        }
    }

    pub fn own_names(&self) -> Vec<String> {
        [&self.history, &self.metadata, &self.audit, &self.lease]
            .iter()
            .map(|t| t.name.clone())
            .collect()
    }

    /// `CREATE TABLE IF NOT EXISTS` for the history, metadata and audit tables (and the
    /// schema or sequences they need), one statement each.
    pub fn create_sql(&self) -> Vec<String> {
        let d = self.dialect;
        // Column types per dialect: id, short text, long text, timestamp, json, bool.
        let (id, ts, long, json, boolean) = match d {
            Dialect::Postgres => (
                "BIGSERIAL PRIMARY KEY",
                "TIMESTAMPTZ NOT NULL DEFAULT now()",
                "TEXT",
                "JSONB",
                "BOOLEAN",
            ),
            Dialect::MySql => (
                "BIGINT AUTO_INCREMENT PRIMARY KEY",
                "TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)",
                "LONGTEXT",
                "LONGTEXT",
                "BOOLEAN",
            ),
            Dialect::Sqlite => (
                "INTEGER PRIMARY KEY AUTOINCREMENT",
                "TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
                "TEXT",
                "TEXT",
                "BOOLEAN",
            ),
            Dialect::DuckDb => ("", "VARCHAR NOT NULL", "VARCHAR", "VARCHAR", "BOOLEAN"),
        };
        let mut out = Vec::new();
        let duck_id = |seq: &str| format!("BIGINT PRIMARY KEY DEFAULT nextval('{seq}')");
        let id_of = |seq: &str| {
            if d == Dialect::DuckDb {
                duck_id(seq)
            } else {
                id.to_string()
            }
        };
        let (hseq, mseq, aseq) = (
            format!("{}_id", self.history.name),
            format!("{}_id", self.metadata.name),
            format!("{}_id", self.audit.name),
        );
        match (d, &self.schema) {
            (Dialect::Postgres, Some(s)) => {
                out.push(format!("CREATE SCHEMA IF NOT EXISTS {}", d.quote(s)))
            }
            (Dialect::MySql, Some(s)) => {
                out.push(format!("CREATE DATABASE IF NOT EXISTS {}", d.quote(s)))
            }
            (Dialect::DuckDb, _) => {
                for s in [&hseq, &mseq, &aseq] {
                    out.push(format!("CREATE SEQUENCE IF NOT EXISTS {}", d.quote(s)));
                }
            }
            _ => {}
        }
        let text = if d == Dialect::MySql {
            "VARCHAR(255)"
        } else {
            long
        };
        let key = if d == Dialect::MySql { "`key`" } else { "key" };
        let engine = if d == Dialect::MySql {
            " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
        } else {
            ""
        };
        let text_col = if d == Dialect::MySql { "TEXT" } else { long };
        out.push(format!(
            "CREATE TABLE IF NOT EXISTS {h} (
                id {hid},
                version VARCHAR(255) NOT NULL UNIQUE,
                name {text_col} NOT NULL,
                description {text_col},
                applied_at {ts},
                checksum CHAR(64) NOT NULL,
                execution_time_ms BIGINT NOT NULL DEFAULT 0,
                rollback_sql {long},
                success {boolean} NOT NULL DEFAULT TRUE,
                statements_done INTEGER NOT NULL DEFAULT 0,
                applied_by {text_col},
                statement_hashes {long},
                in_flight INTEGER,
                direction VARCHAR(8)
            ){engine}",
            h = self.history.sql,
            hid = id_of(&hseq),
        ));
        out.push(format!(
            "CREATE TABLE IF NOT EXISTS {m} (
                id {mid},
                {key} VARCHAR(255) NOT NULL UNIQUE,
                value {text_col},
                description {text_col},
                created_at {ts},
                updated_at {ts}
            ){engine}",
            m = self.metadata.sql,
            mid = id_of(&mseq),
        ));
        out.push(format!(
            "CREATE TABLE IF NOT EXISTS {a} (
                id {aid},
                table_name VARCHAR(255) NOT NULL,
                record_id VARCHAR(255),
                operation VARCHAR(32) NOT NULL,
                old_values {json},
                new_values {json},
                changed_by {text_col},
                changed_at {ts},
                ip_address {text_col},
                user_agent {text_col}
            ){engine}",
            a = self.audit.sql,
            aid = id_of(&aseq),
        ));
        let _ = text;
        out
    }

    /// A query answering `(table_name, column_name)` for every column of the tables of
    /// `self` and `other` (the earlier layout) that exist.
    pub fn columns_sql(&self, other: &Names) -> String {
        let d = self.dialect;
        let mut tables = [self, other]
            .iter()
            .flat_map(|n| {
                [&n.history, &n.metadata, &n.audit].map(|t| (n.schema.clone(), t.name.clone()))
            })
            .collect::<Vec<_>>();
        tables.sort();
        tables.dedup();
        if d == Dialect::Sqlite {
            return tables
                .iter()
                .map(|(_, t)| {
                    format!(
                        "SELECT {l}, name FROM pragma_table_info({l})",
                        l = d.literal(t)
                    )
                })
                .collect::<Vec<_>>()
                .join(" UNION ALL ");
        }
        let cond = tables
            .iter()
            .map(|(s, t)| match s {
                Some(s) => format!(
                    "(table_schema = {} AND table_name = {})",
                    d.literal(s),
                    d.literal(t)
                ),
                None => format!(
                    "(table_schema = current_schema() AND table_name = {})",
                    d.literal(t)
                ),
            })
            .collect::<Vec<_>>()
            .join(" OR ");
        let cast = if d == Dialect::MySql { "" } else { "::text" };
        format!(
            "SELECT table_schema{cast}, table_name{cast}, column_name{cast} FROM information_schema.columns WHERE {cond}"
        )
    }

    /// What the database holds, from the answer of [`Names::columns_sql`]:
    /// `(schema or "", table, column)` rows.
    pub fn classify(
        &self,
        legacy: &Names,
        columns: &[(String, String, String)],
    ) -> Result<Found, DriverError> {
        let cols = |n: &Names, t: &Table| -> Option<Vec<&str>> {
            let found: Vec<&str> = columns
                .iter()
                .filter(|(s, table, _)| {
                    table == &t.name
                        && (self.dialect == Dialect::Sqlite
                            || n.schema.as_deref().is_none_or(|want| want == s))
                })
                .map(|(_, _, c)| c.as_str())
                .collect();
            (!found.is_empty()).then_some(found)
        };
        let shaped = |have: &[&str], need: &[&str]| {
            need.iter()
                .all(|c| have.iter().any(|h| h.eq_ignore_ascii_case(c)))
        };
        let checks: [(&Table, &[&str]); 3] = [
            (&self.history, HISTORY_COLUMNS),
            (&self.metadata, METADATA_COLUMNS),
            (&self.audit, AUDIT_COLUMNS),
        ];
        // A table under one of our names that is not ours is never written to.
        for (t, need) in checks {
            if let Some(have) = cols(self, t) {
                if !shaped(&have, need) {
                    return Err(collision(self, t, &have));
                }
            }
        }
        if cols(self, &self.history).is_some() {
            return Ok(Found::Current);
        }
        if cols(self, &self.metadata).is_some() {
            return Ok(Found::HistoryGone);
        }
        if *legacy != *self {
            if let Some(have) = cols(legacy, &legacy.history) {
                if shaped(&have, HISTORY_COLUMNS) {
                    // The old metadata and audit tables move along only if they are
                    // strata's; an application's own `audit_log` stays where it is.
                    let metadata = cols(legacy, &legacy.metadata)
                        .is_some_and(|c| shaped(&c, METADATA_COLUMNS));
                    let audit =
                        cols(legacy, &legacy.audit).is_some_and(|c| shaped(&c, AUDIT_COLUMNS));
                    let progress = shaped(&have, &["statement_hashes", "in_flight", "direction"]);
                    return Ok(Found::Legacy {
                        metadata,
                        audit,
                        progress,
                    });
                }
            }
        }
        Ok(Found::Nothing)
    }

    /// The statements moving the earlier layout's tables (those `found` names) to
    /// these names, for [`Found::Legacy`].
    pub fn upgrade_sql(
        &self,
        legacy: &Names,
        metadata: bool,
        audit: bool,
        progress: bool,
    ) -> Vec<String> {
        let d = self.dialect;
        let mut pairs = vec![
            (&legacy.history, &self.history),
            (&legacy.lease, &self.lease),
        ];
        if metadata {
            pairs.push((&legacy.metadata, &self.metadata));
        }
        if audit {
            pairs.push((&legacy.audit, &self.audit));
        }
        let long = if d == Dialect::MySql {
            "LONGTEXT"
        } else {
            "TEXT"
        };
        let add_columns = [
            format!(
                "ALTER TABLE {} ADD COLUMN statement_hashes {long}",
                self.history.sql
            ),
            format!(
                "ALTER TABLE {} ADD COLUMN in_flight INTEGER",
                self.history.sql
            ),
            format!(
                "ALTER TABLE {} ADD COLUMN direction VARCHAR(8)",
                self.history.sql
            ),
        ];
        let mut out = Vec::new();
        match d {
            Dialect::MySql => {
                // One RENAME TABLE moves them all atomically; the lease table may not exist.
                let renames: Vec<String> = pairs
                    .iter()
                    .filter(|(from, _)| from.name != legacy.lease.name)
                    .map(|(from, to)| format!("{} TO {}", from.sql, to.sql))
                    .collect();
                if let Some(s) = &self.schema {
                    out.push(format!("CREATE DATABASE IF NOT EXISTS {}", d.quote(s)));
                }
                out.push(format!("RENAME TABLE {}", renames.join(", ")));
                out.push(format!("DROP TABLE IF EXISTS {}", legacy.lease.sql));
            }
            Dialect::Postgres => {
                if let Some(s) = &self.schema {
                    out.push(format!("CREATE SCHEMA IF NOT EXISTS {}", d.quote(s)));
                }
                out.push(format!("DROP TABLE IF EXISTS {}", legacy.lease.sql));
                for (from, to) in pairs.iter().filter(|(f, _)| f.name != legacy.lease.name) {
                    let mut at = from.sql.clone();
                    if from.name != to.name {
                        out.push(format!("ALTER TABLE {at} RENAME TO {}", d.quote(&to.name)));
                        at = match &legacy.schema {
                            Some(s) => format!("{}.{}", d.quote(s), d.quote(&to.name)),
                            None => d.quote(&to.name),
                        };
                    }
                    if legacy.schema != self.schema {
                        if let Some(s) = &self.schema {
                            out.push(format!("ALTER TABLE {at} SET SCHEMA {}", d.quote(s)));
                        }
                    }
                }
            }
            Dialect::Sqlite | Dialect::DuckDb => {
                out.push(format!("DROP TABLE IF EXISTS {}", legacy.lease.sql));
                for (from, to) in pairs.iter().filter(|(f, _)| f.name != legacy.lease.name) {
                    out.push(format!(
                        "ALTER TABLE {} RENAME TO {}",
                        from.sql,
                        d.quote(&to.name)
                    ));
                }
            }
        }
        if !progress {
            out.extend(add_columns);
        }
        out
    }
}

/// strata's tables on one connection: where they go, where an earlier layout had
/// them, and what the database was last found to hold.
#[derive(Debug, Clone)]
pub(crate) struct Bookkeeping {
    pub current: Names,
    pub legacy: Names,
    found: Option<Found>,
}

impl Bookkeeping {
    pub fn new(dialect: Dialect, config: &HistoryNames, home: Option<&str>, tenant: bool) -> Self {
        Bookkeeping {
            current: Names::resolve(dialect, config, home, tenant),
            legacy: Names::legacy(dialect, config, home),
            found: None,
        }
    }

    /// The tables to read and write now: the earlier layout's until it is moved.
    pub fn active(&self) -> &Names {
        match self.found {
            Some(Found::Legacy { .. }) => &self.legacy,
            _ => &self.current,
        }
    }

    /// The query for [`Bookkeeping::classify`].
    pub fn probe_sql(&self) -> String {
        self.current.columns_sql(&self.legacy)
    }

    /// Judges (and remembers) the answer of [`Bookkeeping::probe_sql`].
    pub fn classify(&mut self, columns: &[(String, String, String)]) -> Result<Found, DriverError> {
        let found = self.current.classify(&self.legacy, columns)?;
        self.found = Some(found);
        Ok(found)
    }

    /// Whether history tables exist, per the last probe (an error for a history that
    /// disappeared).
    pub fn has_history(&self) -> Result<bool, DriverError> {
        match self.found {
            Some(Found::Current | Found::Legacy { .. }) => Ok(true),
            Some(Found::HistoryGone) => Err(history_gone(&self.current)),
            Some(Found::Nothing) | None => Ok(false),
        }
    }

    /// The statements that make the current layout exist, given what a probe taken
    /// under the migration lock found; then [`Bookkeeping::created`].
    pub fn ensure_sql(&self, found: Found) -> Result<Vec<String>, DriverError> {
        Ok(match found {
            Found::Current => vec![],
            Found::Nothing => self.current.create_sql(),
            Found::HistoryGone => return Err(history_gone(&self.current)),
            Found::Legacy {
                metadata,
                audit,
                progress,
            } => {
                let mut sql = self
                    .current
                    .upgrade_sql(&self.legacy, metadata, audit, progress);
                // Whatever did not move (an application's own `audit_log`) is created.
                sql.extend(self.current.create_sql());
                sql
            }
        })
    }

    /// The current layout exists now.
    pub fn created(&mut self) {
        self.found = Some(Found::Current);
    }

    /// The audit row of an in-place upgrade.
    pub fn upgrade_audit(
        &self,
        found: Found,
        changed_by: String,
    ) -> Option<strata_core::AuditEntry> {
        let Found::Legacy {
            metadata, audit, ..
        } = found
        else {
            return None;
        };
        let mut moved = vec![(&self.legacy.history, &self.current.history)];
        if metadata {
            moved.push((&self.legacy.metadata, &self.current.metadata));
        }
        if audit {
            moved.push((&self.legacy.audit, &self.current.audit));
        }
        let moved: Vec<_> = moved
            .iter()
            .map(|(a, b)| serde_json::json!({"from": a.sql, "to": b.sql}))
            .collect();
        Some(strata_core::AuditEntry {
            operation: "upgrade".into(),
            record_id: String::new(),
            old_values: None,
            new_values: Some(
                serde_json::json!({"moved": moved, "strata_version": env!("CARGO_PKG_VERSION")}),
            ),
            changed_by,
            ip_address: None,
            user_agent: None,
        })
    }
}

/// What [`Names::classify`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Found {
    /// strata's tables under the current names.
    Current,
    /// The earlier layout's history (with its metadata and audit tables when they are
    /// strata's): read there, moved on the next change.
    Legacy {
        metadata: bool,
        audit: bool,
        /// It has the progress columns already.
        progress: bool,
    },
    /// Nothing yet: a fresh database.
    Nothing,
    /// The metadata table without its history: something dropped the history.
    HistoryGone,
}

const HISTORY_COLUMNS: &[&str] = &[
    "version",
    "name",
    "checksum",
    "rollback_sql",
    "success",
    "statements_done",
    "applied_by",
];
const METADATA_COLUMNS: &[&str] = &["key", "value", "description", "created_at", "updated_at"];
const AUDIT_COLUMNS: &[&str] = &[
    "table_name",
    "record_id",
    "operation",
    "old_values",
    "new_values",
    "changed_by",
    "changed_at",
];

fn collision(n: &Names, t: &Table, have: &[&str]) -> DriverError {
    DriverError::new(
        DriverErrorKind::Refused,
        format!(
            "{} exists but is not one of strata's tables (its columns: {}); strata never writes to it",
            t.sql,
            have.join(", ")
        ),
    )
    .with_detail(match n.dialect {
        Dialect::Postgres => "give strata other names with `schema` or `history_table` in strata.toml".to_string(),
        _ => "give strata other names with `table_prefix` or `history_table` in strata.toml".to_string(),
    })
}

/// A history insert refused by the unique version: another run recorded this version
/// while this one ran it (two runs that both believed they held the lock). The
/// migration's transaction, where it has one, rolls back with the insert.
pub(crate) fn already_recorded(version: &str) -> DriverError {
    DriverError::new(
        DriverErrorKind::Refused,
        format!("migration {version} was recorded by another run while this one ran it; strata refused to record it twice"),
    )
    .with_detail("the migration lock did not hold (a cluster or pooler it does not cover?): see `strata info` for the lock in use".to_string())
}

/// A history update that matched no row: the row this run wrote or read is gone.
pub(crate) fn row_vanished(version: &str) -> DriverError {
    DriverError::new(
        DriverErrorKind::Refused,
        format!("the history row of migration {version} changed or disappeared while this run used it; strata stopped"),
    )
}

/// The error for [`Found::HistoryGone`].
pub(crate) fn history_gone(n: &Names) -> DriverError {
    DriverError::new(
        DriverErrorKind::Refused,
        format!(
            "strata's history table {} is missing while its metadata table {} is still there: something dropped it, and strata will not start an empty history over a migrated database",
            n.history.sql, n.metadata.sql
        ),
    )
    .with_detail("restore it from a backup (`strata backup list`), or drop the metadata table too if this database really is new".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(d: Dialect, tenant: bool) -> Names {
        Names::resolve(d, &HistoryNames::default(), Some("app"), tenant)
    }

    #[test]
    fn default_names_never_collide_with_common_application_tables() {
        let pg = names(Dialect::Postgres, false);
        assert_eq!(pg.history.sql, "\"strata\".\"schema_migrations\"");
        assert_eq!(pg.audit.sql, "\"strata\".\"audit_log\"");
        let tenant = names(Dialect::Postgres, true);
        assert_eq!(tenant.history.sql, "\"app\".\"strata_schema_migrations\"");
        let my = names(Dialect::MySql, false);
        assert_eq!(my.history.sql, "`app`.`strata_schema_migrations`");
        assert_eq!(my.lease.name, "strata_schema_migrations_lock");
        let lite = names(Dialect::Sqlite, false);
        assert_eq!(lite.metadata.sql, "\"strata_application_metadata\"");
        for n in [pg, tenant, my, lite] {
            for t in n.own_names() {
                assert!(
                    !["schema_migrations", "audit_log", "application_metadata"]
                        .contains(&t.as_str())
                        || n.schema.as_deref() == Some("strata"),
                    "{t}"
                );
            }
        }
    }

    #[test]
    fn a_foreign_table_under_our_name_is_refused() {
        let n = names(Dialect::Sqlite, false);
        let legacy = Names::legacy(Dialect::Sqlite, &HistoryNames::default(), None);
        let cols = vec![
            (
                String::new(),
                "strata_schema_migrations".into(),
                "version".into(),
            ),
            (
                String::new(),
                "strata_schema_migrations".into(),
                "dirty".into(),
            ),
        ];
        let err = n.classify(&legacy, &cols).unwrap_err();
        assert!(err.message.contains("not one of strata's tables"), "{err}");
    }

    #[test]
    fn golang_migrate_table_is_not_taken_for_an_earlier_strata() {
        let n = names(Dialect::MySql, false);
        let legacy = Names::legacy(Dialect::MySql, &HistoryNames::default(), Some("app"));
        let cols = vec![
            ("app".into(), "schema_migrations".into(), "version".into()),
            ("app".into(), "schema_migrations".into(), "dirty".into()),
        ];
        assert_eq!(n.classify(&legacy, &cols).unwrap(), Found::Nothing);
    }

    #[test]
    fn earlier_layout_is_found_with_only_its_strata_tables() {
        let n = names(Dialect::Postgres, false);
        let legacy = Names::legacy(Dialect::Postgres, &HistoryNames::default(), Some("public"));
        let mut cols = Vec::new();
        for c in HISTORY_COLUMNS {
            cols.push(("public".into(), "schema_migrations".into(), c.to_string()));
        }
        cols.push(("public".into(), "audit_log".into(), "message".into()));
        assert_eq!(
            n.classify(&legacy, &cols).unwrap(),
            Found::Legacy {
                metadata: false,
                audit: false,
                progress: false
            }
        );
        let sql = n.upgrade_sql(&legacy, false, false, false);
        assert!(
            sql.iter()
                .any(|s| s == "ALTER TABLE \"public\".\"schema_migrations\" SET SCHEMA \"strata\""),
            "{sql:?}"
        );
        assert!(!sql.iter().any(|s| s.contains("audit_log")), "{sql:?}");
    }

    #[test]
    fn history_dropped_under_its_metadata_is_reported() {
        let n = names(Dialect::Sqlite, false);
        let legacy = Names::legacy(Dialect::Sqlite, &HistoryNames::default(), None);
        let cols: Vec<_> = METADATA_COLUMNS
            .iter()
            .map(|c| {
                (
                    String::new(),
                    "strata_application_metadata".to_string(),
                    c.to_string(),
                )
            })
            .collect();
        assert_eq!(n.classify(&legacy, &cols).unwrap(), Found::HistoryGone);
    }
}
