//! `strata create "Name"`: the next `NNN_snake_name.sql`, numbered in the style of the
//! directory's existing files (width, or timestamps), with a header and a down section.

use serde_json::json;
use strata_core::{Error, SourceError};

use crate::args::CreateArgs;
use crate::context::Context;
use crate::output::print_json;

fn snake(name: &str) -> String {
    let mut out = String::new();
    for c in name.trim().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    out.trim_end_matches('_').to_string()
}

pub fn run(ctx: &Context, a: CreateArgs) -> Result<i32, Error> {
    let dir = &ctx.config.dir;
    let migrator = ctx.migrator()?;
    let name = snake(&a.name);
    if name.is_empty() {
        return Err(Error::Config(format!(
            "`{}` has no letters or digits to name a file with",
            a.name
        )));
    }
    let versions: Vec<&str> = migrator
        .migrations()
        .iter()
        .filter(|m| m.version.as_str().bytes().all(|b| b.is_ascii_digit()))
        .map(|m| m.version.as_str())
        .collect();
    let now = chrono::Utc::now();
    let version = match versions.iter().max_by_key(|v| (v.len(), v.to_string())) {
        // Timestamps stay timestamps.
        Some(v) if v.len() >= 12 => now.format("%Y%m%d%H%M%S").to_string(),
        Some(v) => {
            let next: u128 = v.parse::<u128>().unwrap_or(0) + 1;
            format!("{next:0width$}", width = v.len())
        }
        None => "001".into(),
    };
    let file = format!("{version}_{name}.sql");
    let path = dir.join(&file);
    let io = |e: std::io::Error| {
        Error::Source(SourceError::new(&path, None, format!("cannot write: {e}")))
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    if path.exists() {
        return Err(Error::Config(format!("{} already exists", path.display())));
    }
    let description = a
        .description
        .clone()
        .unwrap_or_else(|| a.name.trim().to_string());
    let mut text = format!(
        "-- Migration: {file}\n-- Description: {description}\n-- Created: {}\n\n-- strata:up\n\n",
        now.format("%Y-%m-%dT%H:%M:%SZ")
    );
    if !a.no_down {
        text.push_str("\n-- strata:down\n\n");
    }
    std::fs::write(&path, text).map_err(io)?;
    // Keep strata.sum in step with the directory.
    let updated = ctx.migrator()?;
    strata_core::sum::write(dir, updated.migrations()).map_err(io)?;
    if ctx.global.json {
        print_json(&json!({ "created": path, "version": version }));
    } else {
        println!("Created {}", path.display());
    }
    Ok(0)
}
