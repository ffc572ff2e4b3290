//! `strata info`.

use serde_json::json;
use strata_core::{Error, MigrationState};

use crate::context::Context;
use crate::output::print_json;

pub async fn run(ctx: &Context) -> Result<i32, Error> {
    let migrator = ctx.migrator()?;
    let mut db = ctx.connect().await?;
    let server = db.server_version().await?;
    let status = migrator.status(db.as_mut()).await?;
    let metadata = db.metadata().await?;
    let c = &ctx.config;
    let counts = json!({
        "migrations": status.migrations.len(),
        "applied": status.count(MigrationState::Applied),
        "pending": status.count(MigrationState::Pending),
        "modified": status.count(MigrationState::Modified),
        "missing": status.count(MigrationState::Missing),
        "failed": status.count(MigrationState::Failed),
    });
    let info = json!({
        "strata_version": env!("CARGO_PKG_VERSION"),
        "database": { "kind": db.kind(), "url": ctx.database(), "url_source": c.url_source, "server_version": server },
        "config": { "file": c.config_path, "env": c.env, "protected": c.protected, "migrations_dir": c.dir, "history_table": c.history_table, "manifest": migrator.source().manifest.as_ref().map(|m| m.path.clone()) },
        "settings": {
            "timeout_seconds": migrator.settings().timeout().as_secs(),
            "retry_attempts": migrator.settings().retry_attempts(),
            "retry_delay_seconds": migrator.settings().retry_delay().as_secs(),
            "lock_timeout_seconds": migrator.settings().lock_timeout().as_secs(),
            "lock_wait_ms": migrator.settings().lock_wait().as_millis() as u64,
            "out_of_order": migrator.settings().out_of_order(),
            "rollback_enabled": migrator.settings().rollback_enabled(),
            "init_sql": migrator.settings().init_sql(),
            "lock": migrator.settings().lock_mode(),
            "lease_seconds": migrator.settings().lease().as_secs(),
        },
        "backup": {
            "location": c.backup.location(),
            "before_migration": c.backup.before_migration(),
            "retention_days": c.backup.backup_retention_days,
            "required_for_rollback": c.protected && c.backup.require_for_rollback(),
        },
        "metadata": metadata.into_iter().collect::<std::collections::BTreeMap<_, _>>(),
        "counts": counts,
        "current": status.current,
        "head": status.head,
    });
    if ctx.global.json {
        print_json(&info);
    } else {
        println!("strata {}", env!("CARGO_PKG_VERSION"));
        println!(
            "database:     {} ({}, from {:?})",
            ctx.database(),
            server,
            c.url_source
        );
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
        println!("counts:       {counts}");
        println!(
            "current:      {}   head: {}",
            status.current.as_deref().unwrap_or("(none)"),
            status.head.as_deref().unwrap_or("(none)")
        );
    }
    Ok(0)
}
