//! `strata verify --roundtrip`: every rollback checked on a scratch database.

use serde_json::json;
use strata_core::Error;
use strata_drivers::{HistoryNames, ScratchDbs};

use crate::context::Context;
use crate::output::{paint, print_json, BOLD, GREEN, RED};

/// Scratch databases beside the configured one.
pub fn scratch(ctx: &Context) -> Result<ScratchDbs, Error> {
    let names = HistoryNames::from_config(&ctx.config);
    ScratchDbs::new(&ctx.config.database_url, &names)
}

pub async fn run(ctx: &Context) -> Result<i32, Error> {
    let migrator = ctx.migrator()?;
    let mut scratch = scratch(ctx)?;
    let json_mode = ctx.global.json;
    let mut progress = |line: String| {
        if !json_mode {
            eprintln!("verify: {line}");
        }
    };
    let report = strata_core::verify::roundtrip(&migrator, &mut scratch, &mut progress).await?;
    if json_mode {
        print_json(&json!({ "roundtrip": report, "passed": report.passed() }));
    } else {
        for p in &report.problems {
            let at = match (&p.file, p.line) {
                (Some(f), Some(l)) => format!("{}:{l}", f.display()),
                (Some(f), None) => f.display().to_string(),
                _ => p.migration.clone(),
            };
            println!(
                "{} {} {}: {}",
                paint(p.kind, RED),
                p.migration,
                paint(&format!("({at})"), BOLD),
                p.detail
            );
        }
        for n in &report.notes {
            println!("{} {}: {}", paint("note:", BOLD), n.migration, n.detail);
        }
        let verdict = if report.passed() {
            paint("passed", GREEN)
        } else {
            paint(&format!("{} problem(s)", report.problems.len()), RED)
        };
        println!(
            "Round trip of {} migration(s): {} rollback(s) ran; {verdict}.",
            report.migrations, report.rollbacks_ok
        );
    }
    Ok(if report.passed() { 0 } else { 1 })
}
