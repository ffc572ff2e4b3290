//! `strata diff --schema FILE [--dry-run]`: the migration (up and down) from the schema
//! the migrations build to the declared one, both built on scratch databases.

use serde_json::json;
use strata_core::lint::Engine;
use strata_core::{Error, Script, SourceError};

use crate::args::DiffArgs;
use crate::context::Context;
use crate::output::print_json;

pub async fn run(ctx: &Context, a: DiffArgs) -> Result<i32, Error> {
    let sql = std::fs::read_to_string(&a.schema).map_err(|e| {
        SourceError::new(
            &a.schema,
            None,
            format!("cannot read the declared schema: {e}"),
        )
    })?;
    let declared = Script::inline(sql, &a.schema, 1);
    let engine = Engine::of_url(&ctx.config.database_url)
        .filter(|e| *e != Engine::MySql)
        .ok_or_else(|| Error::Config("diff needs PostgreSQL or SQLite".into()))?;
    let migrator = ctx.migrator()?;
    let mut scratch = super::verify::scratch(ctx)?;
    let (up, down) =
        strata_core::diff::schema_diff(&migrator, &declared, &mut scratch, engine).await?;
    let script = |stmts: &[String]| {
        stmts
            .iter()
            .map(|s| {
                if s.starts_with("--") {
                    s.clone()
                } else {
                    format!("{s};")
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    if up.is_empty() {
        if ctx.global.json {
            print_json(&json!({ "up": [], "down": [], "created": null }));
        } else {
            println!("No difference: the migrations build the declared schema.");
        }
        return Ok(0);
    }
    let (up_sql, down_sql) = (script(&up), script(&down));
    if a.dry_run {
        if ctx.global.json {
            print_json(&json!({ "up": up, "down": down, "created": null }));
        } else {
            println!("-- strata:up\n{up_sql}\n\n-- strata:down\n{down_sql}");
        }
        return Ok(0);
    }
    let description = format!("schema changes from {}", a.schema.display());
    let (path, version) =
        super::create::write_sql(ctx, &a.name, &description, &up_sql, Some(&down_sql))?;
    if ctx.global.json {
        print_json(&json!({ "up": up, "down": down, "created": path, "version": version }));
    } else {
        println!(
            "Created {} ({} statement(s) up, {} down)",
            path.display(),
            up.len(),
            down.len()
        );
    }
    Ok(0)
}
