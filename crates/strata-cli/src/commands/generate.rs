//! `strata generate TEMPLATE ...`: writes the next migration from a template, for the
//! configured database's dialect.

use serde_json::json;
use strata_core::generate::{generate, Template};
use strata_core::lint::Engine;
use strata_core::Error;

use crate::args::GenerateCommand;
use crate::context::Context;
use crate::output::print_json;

pub fn run(ctx: &Context, g: GenerateCommand) -> Result<i32, Error> {
    write(ctx, g, None)
}

/// `create NAME --template TEMPLATE ARGS...`: the template's words parsed as
/// `generate` parses them, written under the name given to `create`.
pub fn from_create(
    ctx: &Context,
    name: &str,
    description: &str,
    words: &[String],
) -> Result<i32, Error> {
    #[derive(clap::Parser)]
    #[command(name = "strata create --template")]
    struct Words {
        #[command(subcommand)]
        template: GenerateCommand,
    }
    let parsed = <Words as clap::Parser>::try_parse_from(
        std::iter::once("template".to_string()).chain(words.iter().cloned()),
    )
    .map_err(|e| Error::Config(format!("--template: {}", e.render().to_string().trim())))?;
    write(ctx, parsed.template, Some((name, description)))
}

fn write(ctx: &Context, g: GenerateCommand, named: Option<(&str, &str)>) -> Result<i32, Error> {
    let engine = Engine::of_url(&ctx.config.database_url).ok_or_else(|| {
        Error::Config(format!(
            "generate writes SQL for PostgreSQL, MySQL or SQLite, not {}",
            ctx.database()
        ))
    })?;
    let template = template(g)?;
    let made = generate(&template, engine).map_err(Error::Config)?;
    let (name, description) = named.unwrap_or((&made.name, &made.description));
    let (path, version) =
        super::create::write_sql(ctx, name, description, &made.up_section(), Some(&made.down))?;
    if ctx.global.json {
        print_json(
            &json!({ "created": path, "version": version, "dialect": engine, "no_transaction": made.no_transaction }),
        );
    } else {
        println!("Created {} ({engine:?})", path.display());
    }
    Ok(0)
}

/// The clap arguments as the core's template; most variants carry the same fields.
fn template(g: GenerateCommand) -> Result<Template, Error> {
    // `Variant { fields }` arms that move the fields across unchanged, then the rest.
    macro_rules! convert {
        ($g:expr; $($v:ident { $($f:ident),* }),*; $($rest:tt)*) => {
            match $g {
                $(GenerateCommand::$v { $($f),* } => Template::$v { $($f),* },)*
                $($rest)*
            }
        };
    }
    Ok(convert!(g;
        AddColumn { table, column, data_type, not_null, default },
        AddIndex { table, columns, unique, name },
        RenameColumn { table, from, to },
        AddCheckConstraint { table, name, expression },
        DataMigration { table, set, filter, revert, batch, key };
        GenerateCommand::AddForeignKey { table, column, references, ref_column, on_delete, name } => {
            if let Some(o) = &on_delete {
                let known = ["cascade", "set-null", "set-default", "restrict", "no-action"];
                if !known.contains(&o.to_lowercase().replace('_', "-").as_str()) {
                    return Err(Error::Config(format!(
                        "--on-delete {o}: expected one of {}",
                        known.join(", ")
                    )));
                }
            }
            Template::AddForeignKey { table, column, references, ref_column, on_delete, name }
        }
        GenerateCommand::CreateTable { table, columns, timestamps, soft_delete } => {
            let columns = columns
                .iter()
                .map(|c| {
                    let (name, ty) = c.split_once(':').ok_or_else(|| {
                        Error::Config(format!("column `{c}`: write NAME:TYPE (NAME:TYPE! for NOT NULL)"))
                    })?;
                    let not_null = ty.ends_with('!');
                    Ok((name.to_string(), ty.trim_end_matches('!').to_string(), not_null))
                })
                .collect::<Result<_, Error>>()?;
            Template::CreateTable { table, columns, timestamps, soft_delete }
        }
    ))
}
