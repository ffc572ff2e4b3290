//! `strata validate`: checks the directory (exit 2 on bad input) and, against the
//! database, drift (exit 3). Changes nothing.

use serde_json::json;
use strata_core::Error;

use crate::context::Context;
use crate::output::{paint, print_json, GREEN, YELLOW};

pub async fn run(ctx: &Context) -> Result<i32, Error> {
    let migrator = ctx.migrator()?;
    let mut db = ctx.connect().await?;
    let applied = migrator.applied_rows(db.as_mut()).await?;
    let findings = migrator.validate(Some(&applied));
    if ctx.global.json {
        print_json(
            &json!({ "valid": findings.is_empty(), "migrations": migrator.migrations().len(), "findings": findings }),
        );
    } else if findings.is_empty() {
        println!(
            "{} {} migration(s) in {}, history consistent",
            paint("valid:", GREEN),
            migrator.migrations().len(),
            ctx.config.dir.display()
        );
    } else {
        for f in &findings {
            let loc = f
                .file
                .as_ref()
                .map(|p| {
                    format!(
                        " ({}{})",
                        p.display(),
                        f.line.map(|l| format!(":{l}")).unwrap_or_default()
                    )
                })
                .unwrap_or_default();
            println!(
                "{} {}{loc}",
                paint(&format!("{}:", f.kind), YELLOW),
                f.message
            );
        }
    }
    Ok(if findings.is_empty() { 0 } else { 3 })
}
