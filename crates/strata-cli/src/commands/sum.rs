//! `strata sum`: rewrites `strata.sum`.

use strata_core::Error;

use crate::context::Context;

pub fn run(ctx: &Context) -> Result<i32, Error> {
    let migrator = ctx.migrator()?;
    let dir = &ctx.config.dir;
    strata_core::sum::write(dir, migrator.migrations())?;
    let path = dir.join(strata_core::sum::SUM_FILE);
    let n = migrator.migrations().len();
    if ctx.global.json {
        crate::output::print_json(&serde_json::json!({ "file": path, "migrations": n }));
    } else {
        println!("Wrote {} ({n} migrations)", path.display());
    }
    Ok(0)
}
