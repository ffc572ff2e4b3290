//! `strata history`: audit events, newest first.

use serde_json::json;
use strata_core::Error;

use crate::args::HistoryArgs;
use crate::context::Context;
use crate::output::print_json;

pub async fn run(ctx: &Context, a: HistoryArgs) -> Result<i32, Error> {
    let migrator = ctx.migrator()?;
    let mut db = ctx.connect().await?;
    let events = migrator.history(db.as_mut(), a.limit).await?;
    if ctx.global.json {
        let events: Vec<_> = events.iter().map(|e| e.to_event_json()).collect();
        print_json(&json!({ "events": events }));
        return Ok(0);
    }
    if events.is_empty() {
        println!("No history yet.");
    }
    println!(
        "{:<20}  {:<9}  {:<24}  {:<12}  {:>8}",
        "WHEN", "EVENT", "MIGRATION", "WHO", "TIME"
    );
    for e in &events {
        let values = e.new_values.as_ref().or(e.old_values.as_ref());
        let name = values.and_then(|v| v["name"].as_str()).unwrap_or("");
        let ms = values
            .and_then(|v| v["execution_time_ms"].as_i64())
            .map(|m| format!("{m} ms"))
            .unwrap_or_default();
        let who = e.changed_by.clone().unwrap_or_default();
        let migration: String = format!("{} {name}", e.record_id).chars().take(24).collect();
        println!(
            "{:<20}  {:<9}  {:<24}  {:<12}  {:>8}",
            e.changed_at.format("%Y-%m-%d %H:%M:%S"),
            e.operation,
            migration,
            who,
            ms
        );
        if let Some(err) = values.and_then(|v| v["error"].as_str()) {
            println!("{:<20}  {}", "", err.lines().next().unwrap_or(""));
        }
    }
    Ok(0)
}
