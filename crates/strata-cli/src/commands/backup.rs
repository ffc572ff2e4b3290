//! `strata backup create|list|restore ID`.

use strata_core::Error;

use crate::args::BackupCommand;
use crate::context::Context;
use crate::output::print_json;

pub async fn run(ctx: &Context, cmd: BackupCommand) -> Result<i32, Error> {
    let store = ctx.backups();
    match cmd {
        BackupCommand::Create => {
            let migrator = ctx.migrator()?;
            let mut db = ctx.connect_for_change().await?;
            let current = migrator.status(db.as_mut()).await?.current;
            let info = store.create(db.as_mut(), "manual", current).await?;
            if ctx.global.json {
                print_json(&serde_json::to_value(&info).expect("info serializes"));
            } else {
                println!(
                    "Backup {} written to {} ({} bytes).",
                    info.id,
                    store.dir.join(&info.file).display(),
                    info.size_bytes
                );
            }
        }
        BackupCommand::List => {
            let all = store.list()?;
            if ctx.global.json {
                print_json(&serde_json::json!({ "backups": all }));
            } else if all.is_empty() {
                println!(
                    "No backups of {} in {}.",
                    store.database,
                    store.dir.display()
                );
            } else {
                println!(
                    "{:<22} {:<25} {:>12}  {:<16} version",
                    "id", "created", "bytes", "reason"
                );
                for b in &all {
                    println!(
                        "{:<22} {:<25} {:>12}  {:<16} {}",
                        b.id,
                        b.created_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
                        b.size_bytes,
                        b.reason,
                        b.schema_version.as_deref().unwrap_or("-")
                    );
                }
            }
        }
        BackupCommand::Restore { id } => {
            ctx.confirm(&format!(
                "restore backup {id} (replacing everything in the database)"
            ))?;
            let info = store.get(&id)?;
            let migrator = ctx.migrator()?;
            let mut db = ctx.connect_for_change().await?;
            migrator.restore(db.as_mut(), &store, &info.id).await?;
            if ctx.global.json {
                print_json(&serde_json::json!({ "restored": info }));
            } else {
                println!(
                    "Restored backup {} (taken {}, schema version {}).",
                    info.id,
                    info.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
                    info.schema_version.as_deref().unwrap_or("none")
                );
            }
        }
    }
    Ok(0)
}
