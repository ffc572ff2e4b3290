//! `strata up` (alias `migrate`).

use strata_core::lint;
use strata_core::policy::{self, Consent};
use strata_core::{Error, RunOptions, Target, UpOptions};

use crate::args::UpArgs;
use crate::context::Context;
use crate::output::{print_json, print_run, TextReporter};

pub async fn run(ctx: &Context, a: UpArgs) -> Result<i32, Error> {
    let target = Target::parse(&a.target)?;
    let migrator = ctx.migrator()?;
    let mut db = ctx.connect_for_change().await?;
    let opts = RunOptions {
        up: UpOptions {
            allow_out_of_order: a.allow_out_of_order,
            resume: a.resume,
            in_doubt: a.in_doubt.get(),
        },
        ..ctx.run_options(a.dry_run, false)
    };
    // A protected environment refuses error-level lint findings before anything runs.
    if ctx.config.protected && !a.dry_run && !a.allow_unsafe {
        let findings =
            policy::planned_findings(&ctx.config, &migrator, db.as_mut(), &target, &opts).await?;
        let consent = Consent {
            confirmed: true,
            allow_unsafe: a.allow_unsafe,
        };
        if let Err(e) = policy::lint_gate(&ctx.config, &findings, &consent) {
            super::lint::print_findings(&findings);
            return Err(Error::Refused(format!("{e} (--allow-unsafe)")));
        }
    }
    let mut rep = TextReporter::new(ctx.global.json);
    let report = match migrator.up(db.as_mut(), &target, &opts, &mut rep).await {
        Ok(r) => r,
        Err(e) => return rep.answer_failure(&e, "applied").ok_or(e),
    };
    if report.dry_run {
        // A dry run shows what lint says about the plan.
        let findings = policy::plan_findings(&ctx.config, &migrator, &report.plan);
        if ctx.global.json {
            let mut v = report.to_json("applied");
            v["lint"] = serde_json::json!(findings);
            print_json(&v);
        } else if !findings.is_empty() {
            let (e, w, n) = lint::counts(&findings);
            println!("\nLint: {e} error(s), {w} warning(s), {n} statement(s) not analysed");
            super::lint::print_findings(&findings);
        }
        return Ok(0);
    }
    print_run(&report, "applied", ctx.global.json);
    Ok(0)
}
