//! `strata up --fleet FILE` and `strata status --fleet FILE`: one directory of
//! migrations, many databases. The work is `strata_core::fleet`; this file reads flags,
//! draws progress and prints the summary.

use std::path::PathBuf;

use async_trait::async_trait;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use strata_core::fleet::{self, Connector, FleetOptions, TargetState};
use strata_core::{Driver, Error, RunOptions, SourceError, Target, UpOptions};
use strata_drivers::HistoryNames;

use crate::args::{FleetArgs, UpArgs};
use crate::context::Context;
use crate::output::{paint, print_json, DIM, GREEN, RED, YELLOW};

/// Connects targets with the project's history names, retrying refused connections.
struct Drivers<'a>(&'a Context);

#[async_trait]
impl Connector for Drivers<'_> {
    async fn connect(&self, url: &str) -> Result<Box<dyn Driver>, Error> {
        let names = HistoryNames::from_config(&self.0.config);
        Ok(strata_drivers::connect(url, &names).await?)
    }
}

/// The fleet file: `--fleet FILE`, else `[fleet] file`, and its targets.
fn targets(ctx: &Context, args: &FleetArgs) -> Result<(Option<PathBuf>, Vec<String>), Error> {
    let cfg = ctx.config.fleet.clone().unwrap_or_default();
    let file = args
        .fleet
        .clone()
        .filter(|p| !p.as_os_str().is_empty())
        .or(cfg.file.clone());
    match (file, cfg.targets) {
        (Some(f), _) => {
            let t = fleet::read_targets(&f)?;
            Ok((Some(f), t))
        }
        (None, Some(t)) if !t.is_empty() => Ok((None, t)),
        _ => Err(SourceError::new(
            ctx.config
                .config_path
                .clone()
                .unwrap_or_else(|| "strata.toml".into()),
            None,
            "--fleet needs a FILE, or a [fleet] section with `file` or `targets`",
        )
        .into()),
    }
}

fn concurrency(ctx: &Context, args: &FleetArgs) -> usize {
    args.concurrency
        .or(ctx.config.fleet.as_ref().and_then(|f| f.concurrency))
        .unwrap_or(4)
        .max(1)
}

pub async fn up(ctx: &Context, a: UpArgs) -> Result<i32, Error> {
    let migrator = ctx.migrator()?;
    migrator.check_sum()?;
    let (file, targets) = targets(ctx, &a.fleet)?;
    let state_file = file.as_ref().map(|f| {
        let mut name = f.file_name().unwrap_or_default().to_os_string();
        name.push(".state.json");
        f.with_file_name(name)
    });
    let opts = FleetOptions {
        concurrency: concurrency(ctx, &a.fleet),
        canary: a
            .canary
            .or(ctx.config.fleet.as_ref().and_then(|f| f.canary))
            .unwrap_or(0),
        resume: a.resume,
        target: Target::parse(&a.target)?,
        run: RunOptions {
            up: UpOptions {
                allow_out_of_order: a.allow_out_of_order,
                resume: a.resume,
                in_doubt: a.in_doubt.get(),
            },
            ..ctx.run_options(a.dry_run, false)
        },
        state_file,
    };
    // The bar draws only on a terminal; logs and JSON are unaffected.
    let bar = ProgressBar::new(targets.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} targets  {msg}  [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut failed = 0;
    let report = fleet::up(&migrator, &targets, &Drivers(ctx), &opts, &mut |_, _, r| {
        if r.state == TargetState::Failed {
            failed += 1;
            bar.println(format!(
                "{} {}: {}",
                paint("FAILED", RED),
                r.target,
                r.error.as_deref().unwrap_or("")
            ));
        }
        bar.set_message(format!("{failed} failed"));
        bar.inc(1);
    })
    .await?;
    bar.finish_and_clear();
    let code = if report.summary.failed > 0 { 1 } else { 0 };
    if ctx.global.json {
        print_json(
            &json!({ "dry_run": a.dry_run, "targets": report.targets, "summary": report.summary }),
        );
        return Ok(code);
    }
    let w = report
        .targets
        .iter()
        .map(|t| t.target.len())
        .max()
        .unwrap_or(6)
        .clamp(6, 60);
    println!(
        "{:<w$}  {:<8}  {:>7}  {:<16}  {:>8}  ERROR",
        "TARGET", "STATE", "APPLIED", "CURRENT", "TIME"
    );
    for t in &report.targets {
        let (word, color) = match t.state {
            TargetState::Done => ("done", GREEN),
            TargetState::Failed => ("failed", RED),
            TargetState::Skipped => ("skipped", DIM),
        };
        let name: String = t.target.chars().take(w).collect();
        println!(
            "{name:<w$}  {}  {:>7}  {:<16}  {:>8}  {}",
            paint(&format!("{word:<8}"), color),
            t.applied.len(),
            t.current.as_deref().unwrap_or("-"),
            if t.earlier {
                "earlier".to_string()
            } else {
                format!("{}ms", t.elapsed_ms)
            },
            t.error
                .as_deref()
                .unwrap_or("")
                .lines()
                .next()
                .unwrap_or("")
        );
    }
    let s = &report.summary;
    println!(
        "\n{} targets: {} done, {} failed, {} skipped in {} ms{}",
        report.targets.len(),
        s.done,
        s.failed,
        s.skipped,
        s.elapsed_ms,
        if s.failed > 0 {
            "; fix them and run again with --resume"
        } else {
            ""
        }
    );
    Ok(code)
}

pub async fn status(ctx: &Context, args: FleetArgs) -> Result<i32, Error> {
    let migrator = ctx.migrator()?;
    let (_, targets) = targets(ctx, &args)?;
    let rows = fleet::status(&migrator, &targets, &Drivers(ctx), concurrency(ctx, &args)).await;
    if ctx.global.json {
        print_json(&json!({ "targets": rows }));
        return Ok(0);
    }
    let w = rows
        .iter()
        .map(|t| t.target.len())
        .max()
        .unwrap_or(6)
        .clamp(6, 60);
    println!(
        "{:<w$}  {:<12}  {:<16}  {:>7}",
        "TARGET", "STATE", "CURRENT", "PENDING"
    );
    for r in &rows {
        let color = match r.state {
            "up_to_date" => GREEN,
            "behind" => YELLOW,
            _ => RED,
        };
        let name: String = r.target.chars().take(w).collect();
        println!(
            "{name:<w$}  {}  {:<16}  {:>7}  {}",
            paint(&format!("{:<12}", r.state), color),
            r.current.as_deref().unwrap_or("-"),
            r.pending,
            r.error.as_deref().unwrap_or("")
        );
    }
    let behind = rows.iter().filter(|r| r.state != "up_to_date").count();
    println!("\n{} targets, {behind} not at head", rows.len());
    Ok(0)
}
