//! `strata squash --to V`: the migrations up to V replaced by one baseline built from
//! the schema they produce. New databases apply the baseline; databases already past
//! V keep their history rows, which the baseline stands for (`-- strata:baseline`).

use serde_json::json;
use strata_core::lint::Engine;
use strata_core::{Error, SourceError, Target};

use crate::args::SquashArgs;
use crate::context::Context;
use crate::output::print_json;

pub async fn run(ctx: &Context, a: SquashArgs) -> Result<i32, Error> {
    let migrator = ctx.migrator()?;
    let all = migrator.migrations();
    let Some(last) = all
        .iter()
        .find(|m| m.version.as_str() == a.to || m.id == a.to)
    else {
        return Err(strata_core::PlanError::UnknownTarget(a.to.clone()).into());
    };
    let squashed: Vec<_> = all
        .iter()
        .filter(|m| m.kind == strata_core::MigrationKind::Versioned && m.version <= last.version)
        .collect();
    let engine = Engine::of_url(&ctx.config.database_url)
        .filter(|e| *e != Engine::MySql)
        .ok_or_else(|| Error::Config("squash needs PostgreSQL or SQLite".into()))?;
    let mut scratch = super::verify::scratch(ctx)?;
    let (up, down) = strata_core::diff::baseline(
        &migrator,
        &Target::Version(last.id.clone()),
        &mut scratch,
        engine,
    )
    .await?;
    let join = |v: &[String]| {
        v.iter()
            .map(|s| format!("{s};"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let up_sql = format!("-- strata:baseline\n{}", join(&up));
    if a.dry_run {
        if ctx.global.json {
            print_json(
                &json!({ "squashes": squashed.iter().map(|m| &m.id).collect::<Vec<_>>(), "up": up, "down": down }),
            );
        } else {
            println!("-- strata:up\n{up_sql}\n\n-- strata:down\n{}", join(&down));
        }
        return Ok(0);
    }
    // Remove the squashed files (git keeps them), then write the baseline at V.
    let dir = ctx
        .config
        .dir
        .canonicalize()
        .unwrap_or(ctx.config.dir.clone());
    for m in &squashed {
        for path in [Some(m.source.as_path()), m.down.as_ref().map(|d| &*d.path)]
            .into_iter()
            .flatten()
        {
            let inside = path
                .canonicalize()
                .is_ok_and(|p| p.starts_with(&dir) && p != dir);
            if !inside {
                continue;
            }
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(path)
            } else {
                std::fs::remove_file(path)
            };
            removed.map_err(|e| SourceError::new(path, None, format!("cannot remove: {e}")))?;
        }
    }
    let file = ctx
        .config
        .dir
        .join(format!("{}_baseline.sql", last.version.as_str()));
    let text = format!(
        "-- Migration: {}\n-- Description: Baseline: {} migration(s) up to {} squashed\n-- Created: {}\n\n-- strata:up\n{up_sql}\n\n-- strata:down\n{}\n",
        file.file_name().unwrap_or_default().to_string_lossy(),
        squashed.len(),
        last.id,
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ"),
        join(&down)
    );
    std::fs::write(&file, text)
        .map_err(|e| SourceError::new(&file, None, format!("cannot write: {e}")))?;
    let updated = ctx.migrator()?;
    strata_core::sum::write(&ctx.config.dir, updated.migrations())?;
    if ctx.global.json {
        print_json(
            &json!({ "created": file, "squashed": squashed.iter().map(|m| &m.id).collect::<Vec<_>>() }),
        );
    } else {
        println!(
            "Squashed {} migration(s) into {}; databases already past {} are unaffected.",
            squashed.len(),
            file.display(),
            last.version.as_str()
        );
    }
    Ok(0)
}
