//! `strata health`: exit 0 healthy, 1 degraded, 2 unhealthy.

use strata_core::{Error, HealthStatus};

use crate::context::Context;
use crate::output::{paint, print_json, GREEN, RED, YELLOW};

pub async fn run(ctx: &Context) -> Result<i32, Error> {
    let migrator = ctx.migrator()?;
    let mut db = ctx.connect().await;
    let report = match &mut db {
        Ok(d) => migrator.health(Ok(d.as_mut())).await,
        Err(e) => migrator.health(Err(e)).await,
    };
    if ctx.global.json {
        let mut v = serde_json::to_value(&report).expect("report serializes");
        v["database"] = serde_json::json!(ctx.database());
        print_json(&v);
    } else {
        let (word, colour) = match report.status {
            HealthStatus::Healthy => ("healthy", GREEN),
            HealthStatus::Degraded => ("degraded", YELLOW),
            HealthStatus::Unhealthy => ("unhealthy", RED),
        };
        println!("{}: {}", ctx.database(), paint(word, colour));
        if let Some(ms) = report.latency_ms {
            println!("  reachable      yes ({ms:.1} ms)");
        } else {
            println!("  reachable      no");
        }
        if report.reachable {
            if let Some(role) = &report.role {
                let how = match report.encrypted {
                    Some(true) => ", encrypted (TLS)",
                    Some(false) => ", not encrypted",
                    None => "",
                };
                match &report.read_only {
                    Some(why) => println!("  server         {role}{how}: {why}"),
                    None => println!("  server         {role}{how}"),
                }
            }
            if let Some(cluster) = &report.cluster {
                println!("  cluster        {cluster}");
            }
            if let Some(lock) = &report.lock {
                println!("  lock           {lock}");
            }
            println!(
                "  history tables {}",
                if report.history_tables {
                    "present"
                } else {
                    "missing"
                }
            );
            println!(
                "  current        {}",
                report.current.as_deref().unwrap_or("none")
            );
            let pending = report
                .pending
                .map_or("unknown".to_string(), |n| n.to_string());
            println!("  pending        {pending}");
            println!("  drift          {}", list(&report.drift));
            println!("  failed         {}", list(&report.failed));
            println!(
                "  lock holder    {}",
                report.lock_holder.as_deref().unwrap_or("none")
            );
        }
        for p in &report.problems {
            println!("  - {p}");
        }
    }
    Ok(report.status.exit_code())
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}
