//! `strata list`: migrations on disk.

use strata_core::Error;

use crate::context::Context;
use crate::output::print_json;

pub fn run(ctx: &Context) -> Result<i32, Error> {
    let migrator = ctx.migrator()?;
    if ctx.global.json {
        print_json(&migrator.list_json());
        return Ok(0);
    }
    println!(
        "{:<24}  {:<40}  {:<8}  {:<5}  DEPENDS ON",
        "VERSION", "NAME", "ROLLBACK", "TX"
    );
    for m in migrator.migrations() {
        let deps: Vec<&str> = m.dependencies.iter().map(|d| d.target.as_str()).collect();
        let name: String = m.name.chars().take(40).collect();
        println!(
            "{:<24}  {:<40}  {:<8}  {:<5}  {}",
            m.version.as_str(),
            name,
            if m.down.is_some() { "yes" } else { "no" },
            match (m.transactional, &m.outside_transaction) {
                (true, _) => "yes",
                (false, Some(_)) => "auto",
                (false, None) => "no",
            },
            deps.join(", ")
        );
    }
    // TX "auto": a statement that cannot run in a transaction, found without a directive.
    for m in migrator.migrations() {
        if let Some(why) = &m.outside_transaction {
            println!(
                "{}: outside a transaction ({why} cannot run in one)",
                m.version.as_str()
            );
        }
    }
    super::status::print_not_runnable(&migrator.source().not_runnable);
    println!(
        "\n{} migration(s) in {}",
        migrator.migrations().len(),
        ctx.config.dir.display()
    );
    Ok(0)
}
