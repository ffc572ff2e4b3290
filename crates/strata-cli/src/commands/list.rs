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
            if m.transactional { "yes" } else { "no" },
            deps.join(", ")
        );
    }
    println!(
        "\n{} migration(s) in {}",
        migrator.migrations().len(),
        ctx.config.dir.display()
    );
    Ok(0)
}
