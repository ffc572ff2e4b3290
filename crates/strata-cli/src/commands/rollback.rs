//! `strata down V` and `strata rollback [T]`.

use strata_core::{Error, Target};

use crate::args::{DownArgs, RollbackArgs};
use crate::context::Context;
use crate::output::{print_run, TextReporter};

pub async fn down(ctx: &Context, a: DownArgs) -> Result<i32, Error> {
    let migrator = ctx.migrator()?;
    if !a.dry_run {
        ctx.confirm(&format!("roll back {}", a.target_version))?;
    }
    let mut db = ctx.connect_for_change().await?;
    let mut opts = ctx.run_options(a.dry_run, true);
    opts.up.resume = a.resume;
    opts.up.in_doubt = a.in_doubt.get();
    let mut rep = TextReporter::new(ctx.global.json);
    let report = match migrator
        .down(db.as_mut(), &a.target_version, a.cascade, &opts, &mut rep)
        .await
    {
        Ok(r) => r,
        Err(e) => return rep.answer_failure(&e, "rolled_back").ok_or(e),
    };
    print_run(&report, "rolled_back", ctx.global.json);
    Ok(0)
}

pub async fn rollback(ctx: &Context, a: RollbackArgs) -> Result<i32, Error> {
    let target = Target::parse(a.to.or(a.target).as_deref().unwrap_or("-1"))?;
    let migrator = ctx.migrator()?;
    if !a.dry_run {
        ctx.confirm(&format!("roll back to {target}"))?;
    }
    let mut db = ctx.connect_for_change().await?;
    let mut opts = ctx.run_options(a.dry_run, true);
    opts.up.resume = a.resume;
    opts.up.in_doubt = a.in_doubt.get();
    let mut rep = TextReporter::new(ctx.global.json);
    let report = match migrator
        .rollback(db.as_mut(), &target, &opts, &mut rep)
        .await
    {
        Ok(r) => r,
        Err(e) => return rep.answer_failure(&e, "rolled_back").ok_or(e),
    };
    print_run(&report, "rolled_back", ctx.global.json);
    Ok(0)
}
