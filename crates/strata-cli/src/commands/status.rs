//! `strata status`.

use std::io::Write;

use strata_core::{Error, MigrationState, StatusReport, StatusRow};

use crate::context::Context;
use crate::output::{paint, print_json, DIM, GREEN, RED, YELLOW};

pub async fn run(ctx: &Context) -> Result<i32, Error> {
    let migrator = ctx.migrator()?;
    let mut db = ctx.connect().await?;
    let not_runnable = &migrator.source().not_runnable;
    // Another tool's history, while strata has none: the database is theirs until
    // `strata adopt`.
    let managed_by = if db.has_history().await? {
        vec![]
    } else {
        strata_core::adopt::detect(db.as_mut()).await?
    };
    if ctx.global.json {
        let status = migrator.status(db.as_mut()).await?;
        let mut json = status.to_json(&ctx.database());
        if !not_runnable.is_empty() {
            json["not_runnable"] = serde_json::json!(not_runnable);
        }
        if !managed_by.is_empty() {
            json["managed_by"] = serde_json::json!(managed_by
                .iter()
                .map(|f| serde_json::json!({"tool": f.tool, "table": f.table, "applied": f.count(migrator.migrations()), "problem": f.problem}))
                .collect::<Vec<_>>());
        }
        print_json(&json);
        return Ok(0);
    }
    // Row by row: a table of 10,000 migrations is printed without holding its rows.
    let applied = migrator.applied_rows(db.as_mut()).await?;
    let (current, head) = migrator.current_and_head(&applied);
    print_rows(&ctx.database(), current.as_deref(), head.as_deref(), || {
        migrator.status_rows(&applied)
    });
    print_not_runnable(not_runnable);
    for f in &managed_by {
        println!(
            "\n{}",
            paint(
                &format!(
                    "This database is managed by {} ({}): {} applied. `strata adopt` records them in strata's history.",
                    f.tool,
                    f.table,
                    f.count(migrator.migrations())
                ),
                YELLOW
            )
        );
    }
    Ok(0)
}

/// Files that look like migrations but cannot run, after `status` and `list`.
pub fn print_not_runnable(files: &[strata_core::source::NotRunnable]) {
    if files.is_empty() {
        return;
    }
    println!("\nNot runnable ({}):", files.len());
    for n in files {
        println!("  {}  {}", n.file.display(), paint(&n.reason, YELLOW));
    }
}

pub fn print_table(database: &str, status: &StatusReport) {
    print_rows(
        database,
        status.current.as_deref(),
        status.head.as_deref(),
        || status.migrations.iter().cloned(),
    );
}

/// Prints the status table; `rows` is called twice (column widths, then the rows).
fn print_rows<I: Iterator<Item = StatusRow>>(
    database: &str,
    current: Option<&str>,
    head: Option<&str>,
    rows: impl Fn() -> I,
) {
    // One write per 8 KB, not per line: stdout is line-buffered, and 10,000 rows were
    // 10,000 system calls.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let _ = write_table(&mut out, database, current, head, rows);
    let _ = out.flush();
}

fn write_table<I: Iterator<Item = StatusRow>>(
    out: &mut impl Write,
    database: &str,
    current: Option<&str>,
    head: Option<&str>,
    rows: impl Fn() -> I,
) -> std::io::Result<()> {
    writeln!(out, "Database: {database}")?;
    writeln!(
        out,
        "Current:  {}   Head: {}\n",
        current.unwrap_or("(none)"),
        head.unwrap_or("(none)")
    )?;
    let (mut wv, mut wn) = (7, 4);
    for r in rows() {
        wv = wv.max(r.version.len());
        wn = wn.max(r.name.len());
    }
    let wn = wn.min(48);
    writeln!(
        out,
        "{:<wv$}  {:<wn$}  {:<8}  {:<20}  {:>8}",
        "VERSION", "NAME", "STATE", "APPLIED AT", "TIME"
    )?;
    let mut counts = [0usize; 5];
    for r in rows() {
        counts[r.state as usize] += 1;
        let color = match r.state {
            MigrationState::Applied => GREEN,
            MigrationState::Pending => DIM,
            MigrationState::Modified | MigrationState::Missing => YELLOW,
            MigrationState::Failed => RED,
        };
        let state = paint(&format!("{:<8}", r.state.to_string()), color);
        let at = r
            .applied_at
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default();
        let ms = r
            .execution_time_ms
            .map(|m| format!("{m} ms"))
            .unwrap_or_default();
        let name = match r.name.char_indices().nth(wn) {
            Some((cut, _)) => &r.name[..cut],
            None => r.name.as_str(),
        };
        let note = if r.code {
            "  (code migration, run by the application)"
        } else {
            ""
        };
        writeln!(
            out,
            "{:<wv$}  {:<wn$}  {state}  {:<20}  {:>8}{note}",
            r.version, name, at, ms
        )?;
    }
    let n = |s: MigrationState| counts[s as usize];
    writeln!(
        out,
        "\n{} applied, {} pending{}",
        n(MigrationState::Applied),
        n(MigrationState::Pending),
        [
            (MigrationState::Modified, "modified"),
            (MigrationState::Missing, "missing"),
            (MigrationState::Failed, "failed")
        ]
        .iter()
        .filter(|(s, _)| n(*s) > 0)
        .map(|(s, w)| format!(", {} {w}", n(*s)))
        .collect::<String>()
    )
}
