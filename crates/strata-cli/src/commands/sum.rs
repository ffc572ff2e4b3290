//! `strata sum`: rewrites `strata.sum`.

use strata_core::Error;

use crate::context::Context;

pub fn run(ctx: &Context) -> Result<i32, Error> {
    let migrator = ctx.migrator()?;
    let dir = &ctx.config.dir;
    strata_core::sum::write(dir, migrator.migrations())?;
    if !ctx.global.json {
        println!(
            "Wrote {} ({} migrations)",
            dir.join(strata_core::sum::SUM_FILE).display(),
            migrator.migrations().len()
        );
    }
    Ok(0)
}
