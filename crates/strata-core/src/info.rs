//! What `strata info` and `GET /info` report: tool version, database kind and server
//! version, where the configuration came from, effective settings and counts.

use serde_json::{json, Value};

use crate::config::Config;
use crate::driver::Driver;
use crate::error::Result;
use crate::migration::MigrationState;
use crate::migrator::Migrator;

/// Reads the server version, status and metadata of `d` and describes them with the
/// configuration that selected it.
pub async fn info(config: &Config, migrator: &Migrator, d: &mut dyn Driver) -> Result<Value> {
    let server = d.server_version().await?;
    let topology = d.topology().await?;
    let status = migrator.status(d).await?;
    let metadata = d.metadata().await?;
    let s = migrator.settings();
    let c = config;
    Ok(json!({
        "strata_version": env!("CARGO_PKG_VERSION"),
        "database": { "kind": d.kind(), "url": c.redacted_url(), "url_source": c.url_source, "server_version": server,
            "role": topology.role, "read_only": topology.read_only, "encrypted": topology.encrypted,
            "cluster": topology.cluster, "lock": topology.lock },
        "config": { "file": c.config_path, "env": c.env, "protected": c.protected, "migrations_dir": c.dir, "history_table": c.history_table, "manifest": migrator.source().manifest.as_ref().map(|m| m.path.clone()) },
        "settings": {
            "timeout_seconds": s.timeout().as_secs(),
            "retry_attempts": s.retry_attempts(),
            "retry_delay_seconds": s.retry_delay().as_secs(),
            "lock_timeout_seconds": s.lock_timeout().as_secs(),
            "lock_wait_ms": s.lock_wait().as_millis() as u64,
            "out_of_order": s.out_of_order(),
            "rollback_enabled": s.rollback_enabled(),
            "init_sql": s.init_sql(),
            "lock": s.lock_mode(),
            "lease_seconds": s.lease().as_secs(),
        },
        "backup": {
            "location": c.backup.location(),
            "before_migration": c.backup.before_migration(),
            "retention_days": c.backup.backup_retention_days,
            "required_for_rollback": c.protected && c.backup.require_for_rollback(),
        },
        "metadata": metadata.into_iter().collect::<std::collections::BTreeMap<_, _>>(),
        "counts": {
            "migrations": status.migrations.len(),
            "applied": status.count(MigrationState::Applied),
            "pending": status.count(MigrationState::Pending),
            "modified": status.count(MigrationState::Modified),
            "missing": status.count(MigrationState::Missing),
            "failed": status.count(MigrationState::Failed),
        },
        "current": status.current,
        "head": status.head,
    }))
}
