//! `strata repair`: re-record checksums of edited migrations, clear `failed` rows.

use strata_core::Error;

use crate::args::RepairArgs;
use crate::context::Context;
use crate::output::{print_json, TextReporter};

pub async fn run(ctx: &Context, a: RepairArgs) -> Result<i32, Error> {
    let migrator = ctx.migrator()?;
    if !a.dry_run {
        ctx.confirm("repair the history")?;
    }
    let mut db = ctx.connect_for_change().await?;
    let report = migrator
        .repair(
            db.as_mut(),
            a.dry_run,
            &mut TextReporter::new(ctx.global.json),
        )
        .await?;
    if ctx.global.json {
        print_json(&serde_json::to_value(&report).expect("report serializes"));
        return Ok(0);
    }
    if report.repaired.is_empty() {
        println!("Nothing to repair: every applied migration matches its file.");
    } else if report.dry_run {
        println!("Dry run: would repair {} row(s):", report.repaired.len());
        for r in &report.repaired {
            println!("  {} {}: {}", r.version, r.name, r.detail);
        }
    } else {
        println!("Repaired {} row(s).", report.repaired.len());
    }
    for v in &report.missing {
        println!(
            "note: {v} is applied but its file is missing; restore the file, or roll it back with `strata down {v}`"
        );
    }
    Ok(0)
}
