//! One file per command; each takes the [`Context`] and returns the exit code.

mod adopt;
mod backup;
mod create;
mod diff;
mod fleet;
mod generate;
mod health;
mod history;
mod info;
mod lint;
mod list;
mod mark;
mod project;
mod repair;
mod rollback;
mod serve;
mod squash;
mod status;
mod sum;
mod up;
mod validate;
mod verify;

use strata_core::Error;

use crate::args::{Cli, Command};
use crate::context::Context;

pub async fn run(cli: Cli) -> Result<i32, Error> {
    if let Command::Completions { shell } = &cli.command {
        // Needs no project: written before any configuration is read.
        use clap::CommandFactory;
        if cli.global.json {
            // A script is not JSON: refused as a usage error, in JSON.
            crate::output::print_json(&serde_json::json!({ "error": {
                "kind": "usage",
                "message": "`completions` prints a shell script, not JSON; run it without --json",
                "file": null, "line": null,
            }}));
            return Ok(2);
        }
        let mut cmd = Cli::command();
        clap_complete::generate(*shell, &mut cmd, "strata", &mut std::io::stdout());
        return Ok(0);
    }
    let ctx = Context::load(&cli.global)?;
    let fleet = match &cli.command {
        Command::Up(a) => a.fleet.fleet.is_some(),
        Command::Status(a) => a.fleet.fleet.is_some(),
        _ => false,
    };
    if let Command::Serve(a) = &cli.command {
        // The server handles every database of a project itself (`?database=`).
        return serve::run(&ctx, a.clone()).await;
    }
    if ctx.is_project() && !fleet {
        return project::run(&ctx, cli.command).await;
    }
    dispatch(&ctx, cli.command).await
}

/// Runs a command on the one database `ctx` names.
pub async fn dispatch(ctx: &Context, command: Command) -> Result<i32, Error> {
    match command {
        Command::Status(a) if a.fleet.fleet.is_some() => fleet::status(ctx, a.fleet).await,
        Command::Status(_) => status::run(ctx).await,
        Command::Up(a) if a.fleet.fleet.is_some() => fleet::up(ctx, a).await,
        Command::Up(a) => up::run(ctx, a).await,
        Command::Down(a) => rollback::down(ctx, a).await,
        Command::Rollback(a) => rollback::rollback(ctx, a).await,
        Command::History(a) => history::run(ctx, a).await,
        Command::List => list::run(ctx),
        Command::Info => info::run(ctx).await,
        Command::Validate => validate::run(ctx).await,
        Command::Create(a) => create::run(ctx, a),
        Command::Stamp(a) => mark::run(ctx, a, strata_core::Mark::Stamp).await,
        Command::Baseline(a) => mark::run(ctx, a, strata_core::Mark::Baseline).await,
        Command::Sum => sum::run(ctx),
        Command::Adopt(a) => adopt::run(ctx, a).await,
        Command::Repair(a) => repair::run(ctx, a).await,
        Command::Health => health::run(ctx).await,
        Command::Backup(c) => backup::run(ctx, c).await,
        Command::Serve(a) => serve::run(ctx, a).await,
        Command::Lint(a) => lint::run(ctx, a),
        Command::Verify(_) => verify::run(ctx).await,
        Command::Diff(a) => diff::run(ctx, a).await,
        Command::Generate(g) => generate::run(ctx, g),
        Command::Squash(a) => squash::run(ctx, a).await,
        Command::Graph(a) => {
            use strata_core::graph::{render, Format};
            let format = match a.format {
                crate::args::GraphFormat::Mermaid => Format::Mermaid,
                crate::args::GraphFormat::Dot => Format::Dot,
            };
            let migrations = ctx.migrator()?;
            let migrations = migrations.migrations();
            if ctx.global.json {
                // The graph as data: nodes and their dependency edges.
                let nodes: Vec<_> = migrations
                    .iter()
                    .map(|m| serde_json::json!({
                        "version": m.version.as_str(), "name": m.name,
                        "depends_on": m.dependencies.iter().map(|d| d.target.clone()).collect::<Vec<_>>(),
                    }))
                    .collect();
                crate::output::print_json(&serde_json::json!({ "migrations": nodes }));
            } else {
                print!("{}", render(migrations, format));
            }
            Ok(0)
        }
        Command::Completions { .. } => unreachable!("answered before the project is read"),
    }
}
