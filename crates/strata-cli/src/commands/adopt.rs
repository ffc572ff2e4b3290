//! `strata adopt`: take over a database another migration tool manages.

use serde_json::json;
use strata_core::adopt::{self, Foreign};
use strata_core::{Error, RunOptions};

use crate::args::AdoptArgs;
use crate::context::Context;
use crate::output::{print_json, TextReporter};

pub async fn run(ctx: &Context, a: AdoptArgs) -> Result<i32, Error> {
    let migrator = ctx.migrator()?;
    let mut db = ctx.connect_for_change().await?;
    let found = adopt::detect(db.as_mut()).await?;
    let foreign = choose(found, a.from.as_deref())?;
    let count = foreign.count(migrator.migrations());
    if a.dry_run {
        let versions: Vec<String> = foreign
            .matching(migrator.migrations())
            .map_err(Error::Refused)?
            .iter()
            .map(|m| m.version.to_string())
            .collect();
        if ctx.global.json {
            print_json(
                &json!({ "tool": foreign.tool, "table": foreign.table, "would_record": versions, "problem": foreign.problem }),
            );
        } else {
            println!(
                "This database is managed by {} ({}): {count} applied.",
                foreign.tool, foreign.table
            );
            if let Some(p) = &foreign.problem {
                println!("It cannot be adopted yet: {p}");
            }
            println!(
                "Dry run: would record {} in strata's history; nothing was changed.",
                versions.join(", ")
            );
        }
        return Ok(0);
    }
    ctx.confirm(&format!("adopt the history of {}", foreign.tool))?;
    let report = migrator
        .adopt(
            db.as_mut(),
            &foreign,
            &RunOptions::default(),
            &mut TextReporter::new(ctx.global.json),
        )
        .await?;
    let recorded: Vec<&str> = report.done.iter().map(|s| s.version.as_str()).collect();
    if ctx.global.json {
        print_json(&json!({ "tool": foreign.tool, "table": foreign.table, "recorded": recorded }));
    } else {
        println!(
            "Adopted {} ({}): {} migration(s) recorded in strata's history; {} was not changed.",
            foreign.tool,
            foreign.table,
            recorded.len(),
            foreign.table
        );
    }
    Ok(0)
}

/// The one tool's history to adopt: `--from`, or the only one found.
fn choose(found: Vec<Foreign>, from: Option<&str>) -> Result<Foreign, Error> {
    let names: Vec<&str> = found.iter().map(|f| f.tool).collect();
    let listed = names.join(", ");
    match from {
        Some(tool) => found
            .iter()
            .find(|f| f.tool.eq_ignore_ascii_case(tool))
            .cloned()
            .ok_or_else(|| Error::Config(format!("no {tool} history in this database (found: {})", if listed.is_empty() { "none" } else { &listed }))),
        None => match found.len() {
            0 => Err(Error::Config(
                "no other tool's history in this database (looked for diesel, sqlx, golang-migrate, Flyway, dbmate, goose, refinery and Prisma tables)".into(),
            )),
            1 => Ok(found.into_iter().next().expect("one")),
            _ => Err(Error::Config(format!(
                "this database has the history of several tools ({listed}); choose one with --from TOOL"
            ))),
        },
    }
}
