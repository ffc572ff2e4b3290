//! `strata up` (alias `migrate`).

use strata_core::{Error, RunOptions, Target, UpOptions};

use crate::args::UpArgs;
use crate::context::Context;
use crate::output::{print_run, TextReporter};

pub async fn run(ctx: &Context, a: UpArgs) -> Result<i32, Error> {
    let target = Target::parse(&a.target)?;
    let migrator = ctx.migrator()?;
    let mut db = ctx.connect_for_change().await?;
    let opts = RunOptions {
        up: UpOptions {
            allow_out_of_order: a.allow_out_of_order,
            resume: a.resume,
        },
        ..ctx.run_options(a.dry_run, false)
    };
    let report = migrator
        .up(
            db.as_mut(),
            &target,
            &opts,
            &mut TextReporter {
                json: ctx.global.json,
            },
        )
        .await?;
    print_run(&report, "applied", ctx.global.json);
    Ok(0)
}
