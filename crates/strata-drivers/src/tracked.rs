//! The bookkeeping of a migration run statement by statement, the same on every SQL
//! engine (the engines only execute it): which statement is in flight, how many
//! completed, and a hash of each completed one.
//!
//! The history row is written before the first statement and after each one. A
//! statement that can share a transaction with that write (a data change) commits with
//! it, so a crash leaves both or neither; any other statement (DDL, `CREATE INDEX
//! CONCURRENTLY`) is marked in flight before it runs, so a crash while it runs leaves
//! it *in doubt* instead of silently counted one way or the other.

use strata_core::sql::{commits_with_progress, statement_hash, Statement};
use strata_core::{Change, Record};

use crate::history::{self, Stmt};
use crate::layout::Names;

/// The progress of one tracked run.
pub(crate) struct Tracker<'a> {
    sql: &'a str,
    stmts: &'a [Statement],
    hashes: Vec<String>,
    /// The script manages transactions itself (allowed without one of strata's): its
    /// statements are never wrapped in another.
    own_transactions: bool,
}

/// What the history row says at one point of the run.
pub(crate) struct Row {
    pub done: i64,
    pub hashes: String,
    pub in_flight: Option<i64>,
}

impl<'a> Tracker<'a> {
    /// A run of `stmts` starting after the first `from` (a resume: those completed).
    pub fn new(sql: &'a str, stmts: &'a [Statement], from: usize) -> Self {
        let hashes = stmts
            .iter()
            .take(from)
            .map(|s| statement_hash(s.text(sql)))
            .collect();
        let own_transactions = stmts
            .iter()
            .any(|s| strata_core::sql::is_transaction_control(s.text(sql)));
        Tracker {
            sql,
            stmts,
            hashes,
            own_transactions,
        }
    }

    /// How many statements completed.
    pub fn done(&self) -> usize {
        self.hashes.len()
    }

    /// Statement `i` runs in one transaction with the record of its completion.
    pub fn atomic(&self, i: usize) -> bool {
        !self.own_transactions && commits_with_progress(self.stmts[i].text(self.sql))
    }

    /// The row while statement `i` (0-based) is the next to run.
    pub fn before(&self, i: usize) -> Row {
        Row {
            done: self.hashes.len() as i64,
            hashes: self.hashes.join(","),
            in_flight: (i < self.stmts.len() && !self.atomic(i)).then_some(i as i64 + 1),
        }
    }

    /// Statement `i` completed: the row to write (it names the next one in flight).
    pub fn completed(&mut self, i: usize) -> Row {
        self.hashes
            .push(statement_hash(self.stmts[i].text(self.sql)));
        self.before(i + 1)
    }
}

/// The [`strata_core::Progress`] of a history row from its three columns.
pub(crate) fn progress(
    hashes: Option<String>,
    in_flight: Option<i64>,
    direction: Option<String>,
) -> strata_core::Progress {
    strata_core::Progress {
        statement_hashes: hashes
            .filter(|h| !h.is_empty())
            .map(|h| h.split(',').map(str::to_string).collect())
            .unwrap_or_default(),
        in_flight,
        rolling_back: direction.as_deref() == Some("down"),
    }
}

/// What a tracked run writes before its first statement, `first` being the progress
/// at that point: the `success=false` row of an apply (none when it resumes: the row is
/// there), so a crash at any point leaves a visible row, and the progress record, which
/// for a rollback also marks it in progress.
pub(crate) fn start(n: &Names, change: &Change<'_>, first: &Row) -> Vec<Stmt> {
    let version = change.record.version();
    let mut out = Vec::new();
    match &change.record {
        Record::Apply(row) => {
            if change.resume_from == 0 {
                let mut r = row.clone();
                r.success = false;
                r.statements_done = 0;
                out.push(history::write(n, &r, 0, change.replaces));
            }
            out.push(history::progress(n, version, first, false));
        }
        Record::Remove { .. } => out.push(history::progress(n, version, first, true)),
        Record::Repair { .. } => {}
    }
    out
}

/// The final record of a tracked run that completed its `total` statements: the
/// history row written (or resumed) at the start, rewritten as a success.
pub(crate) fn finished(n: &Names, change: &Change<'_>, total: usize, ms: i64) -> Vec<Stmt> {
    let mut done = change.clone();
    done.replaces = true;
    if let Record::Apply(row) = &mut done.record {
        row.success = true;
        row.statements_done = total as i64;
    }
    history::record(n, &done, ms)
}

/// The record after a statement the server refused (see [`history::refused`]).
pub(crate) fn refused(n: &Names, change: &Change<'_>, t: &Tracker<'_>) -> Stmt {
    let untouched = matches!(change.record, Record::Remove { .. }) && t.done() == 0;
    history::refused(n, change.record.version(), untouched)
}
