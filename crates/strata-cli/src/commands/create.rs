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

fn camel(snake: &str) -> String {
    let mut out: String = snake
        .split('_')
        .filter(|w| !w.is_empty())
        .map(|w| w[..1].to_ascii_uppercase() + &w[1..])
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, 'M');
    }
    out
}

/// A Rust file implementing `strata::CodeMigration`, ready to fill in.
fn code_template(version: &str, name: &str, description: &str, down: bool) -> String {
    let ty = camel(name);
    let down = if down {
        "\n    async fn down(&self, db: &mut CodeContext<'_>) -> Result<(), CodeError> {\n        \
         // Undo what up did.\n        let _ = db;\n        Ok(())\n    }\n"
    } else {
        "\n    fn reversible(&self) -> bool {\n        false\n    }\n"
    };
    format!(
        "//! Code migration {version}: {description}\n//!\n\
         //! Runs between two history writes: a failure leaves a `failed` row, and\n\
         //! `strata up --resume` runs `up` again, so keep it re-runnable.\n\n\
         use strata::{{CodeContext, CodeError, CodeMigration}};\n\n\
         pub struct {ty};\n\n\
         #[strata::async_trait]\n\
         impl CodeMigration for {ty} {{\n    \
         fn version(&self) -> &str {{\n        \"{version}\"\n    }}\n\n    \
         fn name(&self) -> &str {{\n        \"{name}\"\n    }}\n\n    \
         fn description(&self) -> Option<&str> {{\n        Some({description:?})\n    }}\n\n    \
         async fn up(&self, db: &mut CodeContext<'_>) -> Result<(), CodeError> {{\n        \
         // The driver's own client, from the crates strata re-exports:\n        \
         // db.require::<strata::tokio_postgres::Client>()?,\n        \
         // db.require::<strata::rusqlite::Connection>()?, ...\n        \
         let _ = db.kind();\n        Ok(())\n    }}\n{down}}}\n"
    )
}

/// The next version in the directory's style: the same width, or a timestamp when
/// the directory uses timestamps.
pub fn next_version(migrator: &strata_core::Migrator) -> String {
    let versions: Vec<&str> = migrator
        .migrations()
        .iter()
        .filter(|m| m.version.as_str().bytes().all(|b| b.is_ascii_digit()))
        .map(|m| m.version.as_str())
        .collect();
    match versions.iter().max_by_key(|v| (v.len(), v.to_string())) {
        // Timestamps stay timestamps.
        Some(v) if v.len() >= 12 => chrono::Utc::now().format("%Y%m%d%H%M%S").to_string(),
        Some(v) => {
            let next: u128 = v.parse::<u128>().unwrap_or(0) + 1;
            format!("{next:0width$}", width = v.len())
        }
        None => "001".into(),
    }
}

/// Writes `NNN_name.sql` (next version) with a header, `up` and, when given, a down
/// section, then brings `strata.sum` up to date. Returns the path and version.
pub fn write_sql(
    ctx: &Context,
    name: &str,
    description: &str,
    up: &str,
    down: Option<&str>,
) -> Result<(std::path::PathBuf, String), Error> {
    let dir = &ctx.config.dir;
    let name = snake(name);
    if name.is_empty() {
        return Err(Error::Config(format!(
            "`{description}` has no letters or digits to name a file with"
        )));
    }
    ensure_dir(dir)?;
    let version = next_version(&ctx.migrator()?);
    let file = format!("{version}_{name}.sql");
    let path = dir.join(&file);
    let io = |e: std::io::Error| {
        Error::Source(SourceError::new(&path, None, format!("cannot write: {e}")))
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    if path.exists() {
        return Err(Error::Config(format!("{} already exists", path.display())));
    }
    let mut text = format!(
        "-- Migration: {file}\n-- Description: {description}\n-- Created: {}\n\n-- strata:up\n{up}\n",
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
    );
    if let Some(down) = down {
        text.push_str(&format!("\n-- strata:down\n{down}\n"));
    }
    std::fs::write(&path, text).map_err(io)?;
    // Keep strata.sum in step with the directory.
    let updated = ctx.migrator()?;
    strata_core::sum::write(dir, updated.migrations())?;
    Ok((path, version))
}

pub fn run(ctx: &Context, a: CreateArgs) -> Result<i32, Error> {
    let description = a
        .description
        .clone()
        .unwrap_or_else(|| a.name.trim().to_string());
    if !a.template.is_empty() {
        return super::generate::from_create(ctx, &a.name, &description, &a.template);
    }
    if !a.code {
        let down = (!a.no_down).then_some("");
        let (path, version) = write_sql(ctx, &a.name, &description, "", down)?;
        if ctx.global.json {
            print_json(&json!({ "created": path, "version": version }));
        } else {
            println!("Created {}", path.display());
        }
        return Ok(0);
    }
    let dir = &ctx.config.dir;
    let name = snake(&a.name);
    if name.is_empty() {
        return Err(Error::Config(format!(
            "`{}` has no letters or digits to name a file with",
            a.name
        )));
    }
    ensure_dir(dir)?;
    let version = next_version(&ctx.migrator()?);
    let path = dir.join(format!("{version}_{name}.rs"));
    let io = |e: std::io::Error| {
        Error::Source(SourceError::new(&path, None, format!("cannot write: {e}")))
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    if path.exists() {
        return Err(Error::Config(format!("{} already exists", path.display())));
    }
    std::fs::write(
        &path,
        code_template(&version, &name, &description, !a.no_down),
    )
    .map_err(io)?;
    if ctx.global.json {
        print_json(&json!({ "created": path, "version": version }));
    } else {
        println!("Created {}", path.display());
        println!(
            "Register it where the application builds its migrator: \
             `Migrator::from_dir(\"{}\")?.register({})?` (add the file as a module first)",
            dir.display(),
            camel(&name)
        );
    }
    Ok(0)
}

/// The directory of a new project: created here, by the one command that makes files
/// (everywhere else a missing directory is an input error).
fn ensure_dir(dir: &std::path::Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|e| {
        Error::Source(SourceError::new(
            dir,
            None,
            format!("cannot create the migrations directory: {e}"),
        ))
    })
}
