//! `strata status`.

use std::io::Write;

use strata_core::{Error, MigrationState, StatusReport};

use crate::context::Context;
use crate::output::{paint, print_json, DIM, GREEN, RED, YELLOW};

pub async fn run(ctx: &Context) -> Result<i32, Error> {
    let migrator = ctx.migrator()?;
    let mut db = ctx.connect().await?;
    let status = migrator.status(db.as_mut()).await?;
    if ctx.global.json {
        print_json(&status.to_json(&ctx.database()));
        return Ok(0);
    }
    print_table(&ctx.database(), &status);
    Ok(0)
}

pub fn print_table(database: &str, status: &StatusReport) {
    // One write per 8 KB, not per line: stdout is line-buffered, and 10,000 rows were
    // 10,000 system calls.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let _ = write_table(&mut out, database, status);
    let _ = out.flush();
}

fn write_table(out: &mut impl Write, database: &str, status: &StatusReport) -> std::io::Result<()> {
    writeln!(out, "Database: {database}")?;
    writeln!(
        out,
        "Current:  {}   Head: {}\n",
        status.current.as_deref().unwrap_or("(none)"),
        status.head.as_deref().unwrap_or("(none)")
    )?;
    let wv = status
        .migrations
        .iter()
        .map(|r| r.version.len())
        .max()
        .unwrap_or(7)
        .max(7);
    let wn = status
        .migrations
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(4)
        .clamp(4, 48);
    writeln!(
        out,
        "{:<wv$}  {:<wn$}  {:<8}  {:<20}  {:>8}",
        "VERSION", "NAME", "STATE", "APPLIED AT", "TIME"
    )?;
    for r in &status.migrations {
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
        writeln!(
            out,
            "{:<wv$}  {:<wn$}  {state}  {:<20}  {:>8}",
            r.version, name, at, ms
        )?;
    }
    let n = |s| status.count(s);
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
