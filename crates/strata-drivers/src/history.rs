//! strata's history, audit and metadata rows, written and read once for every SQL
//! engine ([`crate::layout`] says where the tables are).
//!
//! Everything here is SQL text with the values inlined as literals of the engine's
//! dialect, and rows decoded from text cells: a driver only runs the text and hands each
//! cell back as text. Inlined values let a network engine send a whole record in one
//! round trip, need no prepared statement (which a transaction-mode pooler cannot keep
//! between transactions), and keep one implementation whatever each client library's
//! parameter types are. The literals are exact in every server setting (see
//! [`Dialect::literal`]).

use chrono::{DateTime, Utc};
use strata_core::{
    AppliedMigration, AuditEntry, AuditRecord, Change, Checksum, DriverError, Record,
};

use crate::layout::{Bookkeeping, Dialect, Found, Names};
use crate::tracked;

/// One bookkeeping statement and what its outcome must show.
#[derive(Debug, Clone)]
pub(crate) struct Stmt {
    pub sql: String,
    check: Check,
}

#[derive(Debug, Clone)]
enum Check {
    Nothing,
    /// Inserts the history row of this version: a unique-key violation means another
    /// run recorded it first.
    Inserts(String),
    /// Rewrites this version's row, which must still be there.
    RewritesOne(String),
}

impl Stmt {
    fn plain(sql: String) -> Self {
        Stmt {
            sql,
            check: Check::Nothing,
        }
    }

    /// The statement's rows-affected count checked: a rewrite that matched no row found
    /// its row gone.
    pub fn check(&self, affected: u64) -> Result<(), DriverError> {
        match &self.check {
            Check::RewritesOne(v) if affected != 1 => Err(crate::layout::row_vanished(v)),
            _ => Ok(()),
        }
    }

    /// True when the statement can only be refused by the unique version because another
    /// run recorded it; see [`duplicate`].
    fn inserts(&self) -> Option<&str> {
        match &self.check {
            Check::Inserts(v) => Some(v),
            _ => None,
        }
    }
}

/// The error for a unique-key violation raised by `stmts`: only the history insert can
/// raise one, and it means another run recorded the version first.
pub(crate) fn duplicate(stmts: &[Stmt]) -> Option<DriverError> {
    stmts
        .iter()
        .find_map(Stmt::inserts)
        .map(crate::layout::already_recorded)
}

/// Each statement's count checked, in order (a driver that ran them as one batch).
pub(crate) fn check_all(stmts: &[Stmt], affected: &[u64]) -> Result<(), DriverError> {
    stmts
        .iter()
        .zip(affected)
        .try_for_each(|(s, n)| s.check(*n))
}

/// One script of the plain statements `before` (`BEGIN`, say), `stmts` and `after`
/// (`COMMIT`), each terminated: a batch for one round trip.
pub(crate) fn script(before: &[&str], stmts: &[Stmt], after: &[&str]) -> String {
    before
        .iter()
        .copied()
        .chain(stmts.iter().map(|s| s.sql.as_str()))
        .chain(after.iter().copied())
        .map(|s| format!("{s};\n"))
        .collect()
}

fn lit(d: Dialect, s: &str) -> String {
    d.literal(s)
}

fn opt(d: Dialect, s: Option<&str>) -> String {
    s.map_or_else(|| "NULL".to_string(), |s| d.literal(s))
}

/// The current time as the engine stores it (DuckDB's text column: the client's clock,
/// so no time-zone extension is needed).
fn now(d: Dialect) -> String {
    match d {
        Dialect::Postgres => "now()".into(),
        Dialect::MySql => "CURRENT_TIMESTAMP(6)".into(),
        Dialect::Sqlite => "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')".into(),
        Dialect::DuckDb => lit(
            d,
            &Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        ),
    }
}

/// A timestamp column read back as RFC 3339 text in UTC.
fn time_text(d: Dialect, col: &str) -> String {
    match d {
        Dialect::Postgres => format!(
            "to_char(CAST({col} AS TIMESTAMPTZ) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
        ),
        // Sessions run in UTC (see the MySQL driver's `parse_url`).
        Dialect::MySql => format!("DATE_FORMAT({col}, '%Y-%m-%dT%H:%i:%s.%fZ')"),
        Dialect::Sqlite | Dialect::DuckDb => col.to_string(),
    }
}

fn json_in(d: Dialect, v: &Option<serde_json::Value>) -> String {
    let text = opt(d, v.as_ref().map(|v| v.to_string()).as_deref());
    match (d, v) {
        (Dialect::Postgres, Some(_)) => format!("CAST({text} AS JSONB)"),
        _ => text,
    }
}

fn json_out(d: Dialect, col: &str) -> String {
    match d {
        Dialect::Postgres => format!("CAST({col} AS TEXT)"),
        _ => col.to_string(),
    }
}

/// The history row of an applied (or, with `success` false, started) migration: a
/// plain insert, so a version another run recorded first fails on the unique key (an
/// upsert would let both "succeed"), or with `replaces`, a rewrite of exactly that
/// version's row.
pub(crate) fn write(n: &Names, row: &AppliedMigration, ms: i64, replaces: bool) -> Stmt {
    let d = n.dialect;
    let values = [
        ("name", lit(d, &row.name)),
        ("description", opt(d, row.description.as_deref())),
        ("checksum", lit(d, row.checksum.as_str())),
        ("execution_time_ms", ms.to_string()),
        ("rollback_sql", opt(d, row.rollback_sql.as_deref())),
        ("success", bool_sql(row.success)),
        ("statements_done", row.statements_done.to_string()),
        ("applied_by", opt(d, row.applied_by.as_deref())),
        ("applied_at", now(d)),
    ];
    if replaces {
        let set: Vec<String> = values.iter().map(|(c, v)| format!("{c} = {v}")).collect();
        Stmt {
            sql: format!(
                "UPDATE {} SET {} WHERE version = {}",
                n.history.sql,
                set.join(", "),
                lit(d, &row.version)
            ),
            check: Check::RewritesOne(row.version.clone()),
        }
    } else {
        let cols: Vec<&str> = values.iter().map(|(c, _)| *c).collect();
        let vals: Vec<&str> = values.iter().map(|(_, v)| v.as_str()).collect();
        Stmt {
            sql: format!(
                "INSERT INTO {} (version, {}) VALUES ({}, {})",
                n.history.sql,
                cols.join(", "),
                lit(d, &row.version),
                vals.join(", ")
            ),
            check: Check::Inserts(row.version.clone()),
        }
    }
}

fn bool_sql(b: bool) -> String {
    if b { "TRUE" } else { "FALSE" }.into()
}

/// What a change writes besides the migration itself, in one transaction with it: the
/// history change, the audit row (with the time the change took) and the metadata.
pub(crate) fn record(n: &Names, change: &Change<'_>, ms: i64) -> Vec<Stmt> {
    let d = n.dialect;
    let h = &n.history.sql;
    let mut out = vec![match &change.record {
        Record::Apply(row) => write(n, row, ms, change.replaces),
        Record::Remove { version } => Stmt::plain(format!(
            "DELETE FROM {h} WHERE version = {}",
            lit(d, version)
        )),
        // `repair`: a new checksum and rollback script, keeping when and by whom.
        Record::Repair {
            version,
            checksum,
            rollback_sql,
        } => Stmt::plain(format!(
            "UPDATE {h} SET checksum = {}, rollback_sql = {} WHERE version = {}",
            lit(d, checksum),
            opt(d, rollback_sql.as_deref()),
            lit(d, version)
        )),
    }];
    let mut audit = change.audit.clone();
    if let Some(v) = audit.new_values.as_mut().or(audit.old_values.as_mut()) {
        v["execution_time_ms"] = serde_json::json!(ms);
    }
    out.push(audit_row(n, &audit));
    out.extend(metadata_row(n, &change.metadata));
    out
}

/// An audit row about the history table.
pub(crate) fn audit_row(n: &Names, e: &AuditEntry) -> Stmt {
    let d = n.dialect;
    Stmt::plain(format!(
        "INSERT INTO {} (table_name, record_id, operation, old_values, new_values, changed_by, changed_at, ip_address, user_agent) \
         VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {})",
        n.audit.sql,
        lit(d, &n.history.name),
        lit(d, &e.record_id),
        lit(d, &e.operation),
        json_in(d, &e.old_values),
        json_in(d, &e.new_values),
        lit(d, &e.changed_by),
        now(d),
        opt(d, e.ip_address.as_deref()),
        opt(d, e.user_agent.as_deref()),
    ))
}

/// Every metadata pair in one upsert.
fn metadata_row(n: &Names, pairs: &[(&'static str, String)]) -> Option<Stmt> {
    if pairs.is_empty() {
        return None;
    }
    let d = n.dialect;
    let rows: Vec<String> = pairs
        .iter()
        .map(|(key, value)| {
            let description = match *key {
                "schema_version" => "version of the newest applied migration",
                "strata_version" => "strata version that last changed the schema",
                _ => "",
            };
            format!(
                "({}, {}, {}, {now}, {now})",
                lit(d, key),
                lit(d, value),
                lit(d, description),
                now = now(d)
            )
        })
        .collect();
    let on_conflict = match d {
        Dialect::MySql => format!(
            "ON DUPLICATE KEY UPDATE value = VALUES(value), updated_at = {}",
            now(d)
        ),
        _ => "ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at"
            .into(),
    };
    Some(Stmt::plain(format!(
        "INSERT INTO {} ({}, value, description, created_at, updated_at) VALUES {} {on_conflict}",
        n.metadata.sql,
        d.quote("key"),
        rows.join(", ")
    )))
}

/// A tracked run's progress (see [`crate::tracked`]); `start_down` also marks the row
/// as a rollback in progress (`success` false) before its first statement runs.
pub(crate) fn progress(n: &Names, version: &str, row: &tracked::Row, start_down: bool) -> Stmt {
    let d = n.dialect;
    let down = if start_down {
        "success = FALSE, direction = 'down', "
    } else {
        ""
    };
    Stmt::plain(format!(
        "UPDATE {} SET {down}statements_done = {}, statement_hashes = {}, in_flight = {} WHERE version = {}",
        n.history.sql,
        row.done,
        lit(d, &row.hashes),
        row.in_flight.map_or("NULL".into(), |i| i.to_string()),
        lit(d, version)
    ))
}

/// After a statement the server refused (it did not take effect, so nothing is in
/// doubt): the in-flight mark cleared, or for a rollback that stopped before any
/// statement took effect, the row saying applied again.
pub(crate) fn refused(n: &Names, version: &str, rollback_untouched: bool) -> Stmt {
    let set = if rollback_untouched {
        "success = TRUE, direction = NULL, in_flight = NULL"
    } else {
        "in_flight = NULL"
    };
    Stmt::plain(format!(
        "UPDATE {} SET {set} WHERE version = {}",
        n.history.sql,
        lit(n.dialect, version)
    ))
}

/// A row of a query, each cell as text (`None` for NULL).
pub(crate) type Cells = Vec<Option<String>>;

fn text(c: &mut Cells, i: usize) -> Option<String> {
    c.get_mut(i).and_then(Option::take)
}

fn int(c: &mut Cells, i: usize) -> Option<i64> {
    text(c, i).and_then(|s| s.trim().parse().ok())
}

/// Booleans as each engine prints them: `t`, `true`, `1`.
fn flag(c: &mut Cells, i: usize) -> Option<bool> {
    text(c, i).map(|s| matches!(s.trim(), "t" | "true" | "TRUE" | "1"))
}

fn time(c: &mut Cells, i: usize) -> DateTime<Utc> {
    let s = text(c, i).unwrap_or_default();
    DateTime::parse_from_rfc3339(&s)
        .map(|d| d.with_timezone(&Utc))
        .or_else(|_| {
            chrono::NaiveDateTime::parse_from_str(&s, "%Y-%m-%d %H:%M:%S").map(|n| n.and_utc())
        })
        .unwrap_or_default()
}

fn json(c: &mut Cells, i: usize) -> Option<serde_json::Value> {
    text(c, i).and_then(|s| serde_json::from_str(&s).ok())
}

/// The history, oldest first; decode each row with [`applied_row`].
pub(crate) fn applied_sql(n: &Names) -> String {
    format!(
        "SELECT version, name, description, {}, checksum, execution_time_ms, rollback_sql, success, \
         statements_done, applied_by, {} FROM {} ORDER BY id",
        time_text(n.dialect, "applied_at"),
        n.progress_select(),
        n.history.sql
    )
}

pub(crate) fn applied_row(mut c: Cells) -> AppliedMigration {
    let c = &mut c;
    AppliedMigration {
        version: text(c, 0).unwrap_or_default(),
        name: text(c, 1).unwrap_or_default(),
        description: text(c, 2),
        applied_at: time(c, 3),
        checksum: Checksum::from_hex(text(c, 4).unwrap_or_default()),
        execution_time_ms: int(c, 5).unwrap_or(0),
        rollback_sql: text(c, 6),
        success: flag(c, 7).unwrap_or(true),
        statements_done: int(c, 8).unwrap_or(0),
        applied_by: text(c, 9),
        progress: tracked::progress(text(c, 10), int(c, 11), text(c, 12)),
    }
}

/// The newest `limit` audit rows, newest first; decode each with [`audit_record`].
pub(crate) fn audit_log_sql(n: &Names, limit: usize) -> String {
    let d = n.dialect;
    format!(
        "SELECT id, operation, COALESCE(record_id, ''), {}, {}, changed_by, {}, ip_address, user_agent \
         FROM {} ORDER BY id DESC LIMIT {limit}",
        json_out(d, "old_values"),
        json_out(d, "new_values"),
        time_text(d, "changed_at"),
        n.audit.sql
    )
}

pub(crate) fn audit_record(mut c: Cells) -> AuditRecord {
    let c = &mut c;
    AuditRecord {
        id: int(c, 0).unwrap_or(0),
        operation: text(c, 1).unwrap_or_default(),
        record_id: text(c, 2).unwrap_or_default(),
        old_values: json(c, 3),
        new_values: json(c, 4),
        changed_by: text(c, 5),
        changed_at: time(c, 6),
        ip_address: text(c, 7),
        user_agent: text(c, 8),
    }
}

/// Every metadata pair, by key; decode each row with [`metadata_pair`].
pub(crate) fn metadata_sql(n: &Names) -> String {
    let key = n.dialect.quote("key");
    format!(
        "SELECT {key}, COALESCE(value, '') FROM {} ORDER BY {key}",
        n.metadata.sql
    )
}

pub(crate) fn metadata_pair(mut c: Cells) -> (String, String) {
    (
        text(&mut c, 0).unwrap_or_default(),
        text(&mut c, 1).unwrap_or_default(),
    )
}

/// The `(schema, table, column)` rows of [`crate::layout::Bookkeeping::probe_sql`]
/// (SQLite's have no schema).
pub(crate) fn probe_row(mut c: Cells) -> (String, String, String) {
    if c.len() == 2 {
        c.insert(0, None);
    }
    (
        text(&mut c, 0).unwrap_or_default(),
        text(&mut c, 1).unwrap_or_default(),
        text(&mut c, 2).unwrap_or_default(),
    )
}

/// `Driver::query_text` for an embedded engine: its connection is opened at connect when
/// the file exists, and a file that does not exist has nothing to read (and is not
/// created for it).
pub(crate) fn query_text<C: InProcess>(
    conn: Option<&C>,
    sql: &str,
) -> Result<Option<Vec<Cells>>, DriverError> {
    conn.map_or(Ok(Some(vec![])), |c| c.text_rows(sql).map(Some))
}

/// An engine running in this process (SQLite, DuckDB): its whole bookkeeping is
/// [`InProcess::probe`], [`InProcess::ensure`] and [`InProcess::run`] over two
/// primitives.
pub(crate) trait InProcess {
    /// Opens a transaction (or savepoint) for the layout change; `end` closes it.
    const BEGIN: &'static str;
    fn end(ok: bool) -> &'static str;

    /// Runs a script of statements that return nothing.
    fn run_script(&self, sql: &str) -> Result<(), DriverError>;

    /// Runs one statement: the rows it affected, or its error and whether it was a
    /// unique-key violation.
    fn run_counted(&self, sql: &str) -> Result<u64, (DriverError, bool)>;

    /// The rows of `sql`, each cell as text.
    fn text_rows(&self, sql: &str) -> Result<Vec<Cells>, DriverError>;

    /// Runs bookkeeping statements in order, each checked.
    fn run(&self, stmts: &[Stmt]) -> Result<(), DriverError> {
        for s in stmts {
            let n = self
                .run_counted(&s.sql)
                .map_err(|(e, unique)| match unique {
                    true => duplicate(std::slice::from_ref(s)).unwrap_or(e),
                    false => e,
                })?;
            s.check(n)?;
        }
        Ok(())
    }

    fn applied(&self, n: &Names) -> Result<Vec<AppliedMigration>, DriverError> {
        let rows = self.text_rows(&applied_sql(n))?;
        Ok(rows.into_iter().map(applied_row).collect())
    }

    fn audit_log(&self, n: &Names, limit: usize) -> Result<Vec<AuditRecord>, DriverError> {
        let rows = self.text_rows(&audit_log_sql(n, limit))?;
        Ok(rows.into_iter().map(audit_record).collect())
    }

    fn metadata(&self, n: &Names) -> Result<Vec<(String, String)>, DriverError> {
        let rows = self.text_rows(&metadata_sql(n))?;
        Ok(rows.into_iter().map(metadata_pair).collect())
    }

    /// The project's `init_sql`, run ahead of a change.
    fn run_init(&self, change: &Change<'_>) -> Result<(), DriverError> {
        change.init_sql.iter().try_for_each(|stmt| {
            self.run_script(stmt).map_err(|mut e| {
                e.message = format!("init_sql `{stmt}` failed: {}", e.message);
                e
            })
        })
    }

    /// What the database holds of strata's tables, remembered in `b`.
    fn probe(&self, b: &mut Bookkeeping) -> Result<Found, DriverError> {
        let found: Vec<_> = self
            .text_rows(&b.probe_sql())?
            .into_iter()
            .map(probe_row)
            .collect();
        b.classify(&found)
    }

    /// Creates strata's tables, or moves an earlier layout's into place, with an audit
    /// row for the move, all or nothing; called under the migration lock.
    fn ensure(&self, b: &mut Bookkeeping) -> Result<(), DriverError> {
        let found = self.probe(b)?;
        let sql = b.ensure_sql(found)?;
        if sql.is_empty() {
            return Ok(());
        }
        self.run_script(Self::BEGIN)?;
        let mut done = sql.iter().try_for_each(|s| self.run_script(s));
        if done.is_ok() {
            if let Some(entry) = b.upgrade_audit(found, whoami::username()) {
                done = self.run(&[audit_row(&b.current, &entry)]);
            }
        }
        self.run_script(Self::end(done.is_ok()))?;
        done?;
        b.created();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HistoryNames;

    fn names(d: Dialect) -> Names {
        Names::resolve(d, &HistoryNames::default(), Some("app"), false)
    }

    fn row() -> AppliedMigration {
        AppliedMigration {
            version: "001".into(),
            name: "it's \\ here".into(),
            description: None,
            applied_at: Utc::now(),
            checksum: Checksum::from_hex("ab".repeat(32)),
            execution_time_ms: 0,
            rollback_sql: Some("DROP TABLE t; -- 'q' \\n".into()),
            success: true,
            statements_done: 2,
            applied_by: Some("me".into()),
            progress: Default::default(),
        }
    }

    #[test]
    fn an_insert_is_refused_as_a_duplicate_and_a_rewrite_must_find_its_row() {
        let n = names(Dialect::Sqlite);
        let insert = write(&n, &row(), 5, false);
        assert!(insert
            .sql
            .starts_with("INSERT INTO \"strata_schema_migrations\""));
        assert!(duplicate(std::slice::from_ref(&insert)).is_some());
        insert.check(0).unwrap();
        let rewrite = write(&n, &row(), 5, true);
        assert!(rewrite.sql.contains("WHERE version = '001'"));
        assert!(duplicate(std::slice::from_ref(&rewrite)).is_none());
        rewrite.check(1).unwrap();
        assert!(rewrite.check(0).is_err());
    }

    #[test]
    fn values_are_literals_of_each_dialect() {
        let pg = write(&names(Dialect::Postgres), &row(), 1, false).sql;
        assert!(pg.contains("E'it''s \\\\ here'"), "{pg}");
        let my = write(&names(Dialect::MySql), &row(), 1, false).sql;
        // Backslashes mean different things under NO_BACKSLASH_ESCAPES: hex is exact.
        assert!(my.contains("_utf8mb4 X'6974277320"), "{my}");
        let lite = write(&names(Dialect::Sqlite), &row(), 1, false).sql;
        assert!(lite.contains("'it''s \\ here'"), "{lite}");
    }

    #[test]
    fn rows_decode_from_every_engines_text() {
        let cells = |success: &str| -> Cells {
            [
                "001",
                "a",
                "",
                "2026-01-02T03:04:05.000006Z",
                "ab",
                "7",
                "",
                success,
                "3",
                "me",
                "h1,h2",
                "",
                "down",
            ]
            .iter()
            .map(|s| (!s.is_empty()).then(|| s.to_string()))
            .collect()
        };
        for (s, want) in [
            ("t", true),
            ("1", true),
            ("true", true),
            ("f", false),
            ("0", false),
        ] {
            let r = applied_row(cells(s));
            assert_eq!(r.success, want, "{s}");
            assert_eq!(r.statements_done, 3);
            assert_eq!(r.execution_time_ms, 7);
            assert_eq!(r.applied_at.timestamp(), 1767323045);
            assert!(r.progress.rolling_back);
        }
    }
}
