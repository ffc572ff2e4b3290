//! `strata lint [PATHS]`, and the lint gate of `up` (findings in a dry run; error-level
//! findings refused in a protected environment without `--allow-unsafe`).

use serde_json::json;
use strata_core::lint::{self, Engine, LintFinding, Severity};
use strata_core::{Error, Migration, Migrator, SourceError};

use crate::args::LintArgs;
use crate::context::Context;
use crate::output::{paint, print_json, BOLD, DIM, RED, YELLOW};

pub fn run(ctx: &Context, a: LintArgs) -> Result<i32, Error> {
    let mut migrations: Vec<Migration> = Vec::new();
    if a.paths.is_empty() {
        migrations.extend(ctx.migrator()?.migrations().iter().cloned());
    }
    for p in &a.paths {
        if p.is_dir() {
            migrations.extend(Migrator::from_dir(p)?.migrations().iter().cloned());
            continue;
        }
        // A file: the migrations of its directory that it defines.
        let dir = p
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        let found: Vec<Migration> = Migrator::from_dir(dir)?
            .migrations()
            .iter()
            .filter(|m| same_file(&m.source, p) || same_file(&m.up.path, p))
            .cloned()
            .collect();
        if found.is_empty() {
            return Err(SourceError::new(p, None, "not a migration file (or not found)").into());
        }
        migrations.extend(found);
    }
    let linted_dir = match a.paths.first() {
        Some(p) if p.is_dir() => p.clone(),
        Some(p) => p.parent().map(|d| d.to_path_buf()).unwrap_or_default(),
        None => ctx.config.dir.clone(),
    };
    let (engine, why) = choose(ctx, a.dialect.as_deref(), &linted_dir, &migrations)?;
    let findings = lint::lint(&migrations, engine);
    let (errors, warnings, not_analysed) = lint::counts(&findings);
    if ctx.global.json {
        print_json(&json!({
            "dialect": engine, "dialect_from": why, "findings": findings,
            "errors": errors, "warnings": warnings, "not_analysed": not_analysed,
        }));
    } else {
        print_findings(&findings);
        println!("dialect: {engine:?}, from {why} (--dialect postgres|mysql|sqlite to change)");
        println!(
            "{} migration(s) linted for {engine:?}: {errors} error(s), {warnings} warning(s), {not_analysed} statement(s) not analysed",
            migrations.len()
        );
    }
    Ok(if errors > 0 { 1 } else { 0 })
}

fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

/// Whose rules, and why: `--dialect`; a database URL that was set (flag, environment,
/// config); what the migrations directory says ([`Engine::detect`]); else the default
/// database's engine.
fn choose(
    ctx: &Context,
    flag: Option<&str>,
    dir: &std::path::Path,
    migrations: &[Migration],
) -> Result<(Engine, String), Error> {
    if flag.is_some() {
        return Ok((engine(ctx, flag)?, "--dialect".into()));
    }
    if ctx.config.url_source != strata_core::UrlSource::Default {
        return Ok((
            engine(ctx, None)?,
            format!("the database URL ({})", ctx.database()),
        ));
    }
    if let Some(found) = Engine::detect(dir, migrations) {
        return Ok(found);
    }
    Ok((
        engine(ctx, None)?,
        "the default database (sqlite://strata.db)".into(),
    ))
}

/// `--dialect`, else the engine of the configured database.
pub fn engine(ctx: &Context, flag: Option<&str>) -> Result<Engine, Error> {
    match flag {
        Some(d) => Engine::parse(d).ok_or_else(|| {
            Error::Config(format!(
                "--dialect `{d}`: lint knows postgres, mysql and sqlite"
            ))
        }),
        None => Engine::of_url(&ctx.config.database_url).ok_or_else(|| {
            Error::Config(format!(
                "lint has no rules for {}; pass --dialect postgres|mysql|sqlite",
                ctx.database()
            ))
        }),
    }
}

/// `file:line: severity[rule] message` and the safe alternative under it.
pub fn print_findings(findings: &[LintFinding]) {
    for f in findings {
        let (word, colour) = match f.severity {
            Severity::Error => ("error", RED),
            Severity::Warning => ("warning", YELLOW),
            Severity::Info => ("note", DIM),
        };
        println!(
            "{}:{}: {} {}",
            f.file.display(),
            f.line,
            paint(&format!("{word}[{}]", f.rule), colour),
            f.message
        );
        if f.severity != Severity::Info {
            println!("  {} {}", paint("safe:", BOLD), f.fix);
        }
    }
}
