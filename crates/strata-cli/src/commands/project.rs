//! Multi-database projects (`[databases.NAME]`): `status`, `up` and `rollback` across
//! the selected databases in cross-database dependency order; every other command runs
//! once per selected database, under a heading.

use serde_json::json;
use strata_core::{Error, MemberReport, Project, RunOptions, SourceError, Target, UpOptions};

use crate::args::Command;
use crate::context::Context;
use crate::output::{print_json, TextReporter, BOLD};

pub async fn run(ctx: &Context, command: Command) -> Result<i32, Error> {
    match command {
        Command::Status(_) => status(ctx).await,
        Command::Up(a) => {
            let target = Target::parse(&a.target)?;
            let opts = RunOptions {
                up: UpOptions {
                    allow_out_of_order: a.allow_out_of_order,
                    resume: a.resume,
                    in_doubt: a.in_doubt.get(),
                },
                ..ctx.run_options(a.dry_run, false)
            };
            let mut p = project(ctx, true).await?;
            let mut rep = TextReporter::new(ctx.global.json);
            let result = p.up(&target, &opts, &mut rep).await;
            finish(result, "applied", a.dry_run, ctx.global.json)
        }
        Command::Rollback(a) => {
            let target = Target::parse(a.to.or(a.target).as_deref().unwrap_or("-1"))?;
            if !a.dry_run {
                ctx.confirm(&format!("roll back to {target}"))?;
            }
            let opts = ctx.run_options(a.dry_run, true);
            let mut p = project(ctx, true).await?;
            let mut rep = TextReporter::new(ctx.global.json);
            let result = p.rollback(&target, &opts, &mut rep).await;
            finish(result, "rolled_back", a.dry_run, ctx.global.json)
        }
        Command::Down(a) => {
            // Through the project, so another database's dependents are seen.
            let [db] = ctx.global.databases.as_slice() else {
                return Err(SourceError::new(
                    ctx.config.config_path.clone().unwrap_or_default(),
                    None,
                    "`down V` rolls back a migration of one database: choose it with --databases NAME",
                )
                .into());
            };
            if !a.dry_run {
                ctx.confirm(&format!("roll back {db}:{}", a.target_version))?;
            }
            let opts = ctx.run_options(a.dry_run, true);
            let mut p = project(ctx, true).await?;
            let mut rep = TextReporter::new(ctx.global.json);
            let result = p
                .down(db, &a.target_version, a.cascade, &opts, &mut rep)
                .await
                .map(|r| vec![r]);
            finish(result, "rolled_back", a.dry_run, ctx.global.json)
        }
        other => each(ctx, other).await,
    }
}

async fn project(ctx: &Context, change: bool) -> Result<Project, Error> {
    strata_drivers::open_project(&ctx.config, &ctx.global.databases, change).await
}

async fn status(ctx: &Context) -> Result<i32, Error> {
    let mut p = project(ctx, false).await?;
    let all = p.status().await?;
    if ctx.global.json {
        let dbs: Vec<serde_json::Value> = all
            .iter()
            .map(|(name, url, s)| {
                let mut v = s.to_json(url);
                v["name"] = json!(name);
                v
            })
            .collect();
        print_json(&json!({ "databases": dbs }));
        return Ok(0);
    }
    for (i, (name, url, s)) in all.iter().enumerate() {
        if i > 0 {
            println!();
        }
        println!("{}", crate::output::paint(&format!("== {name} =="), BOLD));
        super::status::print_table(url, s);
    }
    Ok(0)
}

/// SPEC's run JSON with each entry naming its database.
fn finish(
    result: Result<Vec<MemberReport>, Error>,
    key: &str,
    dry_run: bool,
    json_mode: bool,
) -> Result<i32, Error> {
    let reports = result?;
    if json_mode {
        let entries: Vec<serde_json::Value> = reports
            .iter()
            .flat_map(|r| {
                r.report.done.iter().map(|s| {
                    json!({"database": r.database, "version": s.version, "name": s.name, "execution_time_ms": s.execution_time_ms})
                })
            })
            .collect();
        print_json(&json!({ key: entries, "dry_run": dry_run }));
        return Ok(0);
    }
    let n: usize = reports.iter().map(|r| r.report.done.len()).sum();
    if !dry_run {
        let verb = if key == "applied" {
            "Applied"
        } else {
            "Rolled back"
        };
        let per: Vec<String> = reports
            .iter()
            .map(|r| format!("{} {}", r.report.done.len(), r.database))
            .collect();
        if n == 0 {
            println!("Nothing to do: every database is up to date.");
        } else {
            println!("{verb} {n} migration(s): {}.", per.join(", "));
        }
    }
    Ok(0)
}

/// Any other command, once per selected database.
async fn each(ctx: &Context, command: Command) -> Result<i32, Error> {
    let members = ctx.members()?;
    if ctx.global.json && members.len() > 1 {
        return Err(SourceError::new(
            ctx.config.config_path.clone().unwrap_or_default(),
            None,
            "this command's --json output describes one database; choose it with --databases NAME",
        )
        .into());
    }
    let mut worst = 0;
    for (i, (name, c)) in members.iter().enumerate() {
        if !ctx.global.json {
            if i > 0 {
                println!();
            }
            println!("{}", crate::output::paint(&format!("== {name} =="), BOLD));
        }
        worst = worst.max(super::dispatch(c, command.clone()).await?);
    }
    Ok(worst)
}
