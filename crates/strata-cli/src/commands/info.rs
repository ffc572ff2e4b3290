//! `strata info`.

use strata_core::Error;

use crate::context::Context;
use crate::output::print_json;

pub async fn run(ctx: &Context) -> Result<i32, Error> {
    let migrator = ctx.migrator()?;
    let mut db = ctx.connect().await?;
    let info = strata_core::info(&ctx.config, &migrator, db.as_mut()).await?;
    let c = &ctx.config;
    if ctx.global.json {
        print_json(&info);
    } else {
        println!("strata {}", env!("CARGO_PKG_VERSION"));
        println!(
            "database:     {} ({}, from {})",
            ctx.database(),
            info["database"]["server_version"].as_str().unwrap_or(""),
            c.url_source
        );
        // What was detected about the server, and the lock it leads to.
        let d = &info["database"];
        if let Some(role) = d["role"].as_str() {
            let tls = match d["encrypted"].as_bool() {
                Some(true) => ", encrypted",
                Some(false) => ", not encrypted",
                None => "",
            };
            println!("server:       {role}{tls}");
        }
        for (label, key) in [
            ("read-only:    ", "read_only"),
            ("cluster:      ", "cluster"),
            ("lock:         ", "lock"),
        ] {
            if let Some(v) = d[key].as_str() {
                println!("{label}{v}");
            }
        }
        println!(
            "config file:  {}",
            c.config_path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "(none)".into())
        );
        println!(
            "environment:  {}{}",
            c.env.as_deref().unwrap_or("(none)"),
            if c.protected { " (protected)" } else { "" }
        );
        println!("migrations:   {}", c.dir.display());
        println!("settings:     {}", info["settings"]);
        println!("backup:       {}", info["backup"]);
        println!("counts:       {}", info["counts"]);
        println!(
            "current:      {}   head: {}",
            info["current"].as_str().unwrap_or("(none)"),
            info["head"].as_str().unwrap_or("(none)")
        );
    }
    Ok(0)
}
