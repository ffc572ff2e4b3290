//! `strata stamp V` and `strata baseline V`.

use strata_core::{Error, Mark, RunOptions};

use crate::args::MarkArgs;
use crate::context::Context;
use crate::output::{print_run, TextReporter};

pub async fn run(ctx: &Context, a: MarkArgs, mark: Mark) -> Result<i32, Error> {
    let migrator = ctx.migrator()?;
    let word = if mark == Mark::Stamp {
        "stamp"
    } else {
        "baseline"
    };
    ctx.confirm(&format!("{word} {}", a.target_version))?;
    let mut db = ctx.connect_for_change().await?;
    let report = migrator
        .mark(
            db.as_mut(),
            &a.target_version,
            mark,
            &RunOptions::default(),
            &mut TextReporter::new(ctx.global.json),
        )
        .await?;
    print_run(&report, "applied", ctx.global.json);
    Ok(0)
}
