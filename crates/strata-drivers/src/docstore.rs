//! What MongoDB and Elasticsearch share: running a migration's operations tracked one by
//! one, and the lease lock document. Neither store can put a schema change and a history
//! write in one transaction, so a run is tracked as MySQL DDL is: a `success=false` row
//! first, `statements_done` after each operation, the finished row last. A failure
//! leaves a `failed` row saying how far it got; `up --resume` goes on from there.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use strata_core::docops::{self, Operation};
use strata_core::{
    AppliedMigration, AuditEntry, Change, DriverError, DriverErrorKind, Format, LockOptions,
    Migration, Record, SourceError, StatementRef,
};

/// One document store's side of a run.
#[async_trait]
pub(crate) trait DocStore: Send {
    /// Checks an operation's kind and arguments before anything runs.
    fn check_op(&self, op: &Operation) -> Result<(), SourceError>;
    async fn run_op(&mut self, op: &Operation) -> Result<(), DriverError>;
    /// Inserts or replaces a history row.
    async fn put_row(&mut self, row: &AppliedMigration) -> Result<(), DriverError>;
    async fn set_progress(&mut self, version: &str, done: usize) -> Result<(), DriverError>;
    async fn set_failed(&mut self, version: &str) -> Result<(), DriverError>;
    async fn remove_row(&mut self, version: &str) -> Result<(), DriverError>;
    async fn repair_row(
        &mut self,
        version: &str,
        checksum: &str,
        rollback: Option<&str>,
    ) -> Result<(), DriverError>;
    async fn write_audit(&mut self, entry: &AuditEntry) -> Result<(), DriverError>;
    async fn set_metadata(&mut self, pairs: &[(&'static str, String)]) -> Result<(), DriverError>;
    /// True once the lease heartbeat failed: another process may hold the lock now.
    fn lease_lost(&self) -> bool;
}

/// The check every document-store driver makes of a migration before a run.
pub(crate) fn check(store: &dyn DocStore, kind: &str, m: &Migration) -> Result<(), SourceError> {
    match m.format {
        Format::Sql => Err(SourceError::new(
            &m.up.path,
            None,
            format!("a SQL migration, but the database is {kind}"),
        )
        .with_help(format!(
            "{kind} migrations are JSON files with an `operations` array (SPEC section 6)"
        ))),
        Format::Code => Ok(()),
        Format::Operations => {
            for script in std::iter::once(&m.up).chain(m.down.as_ref()) {
                for op in docops::parse(script)? {
                    store.check_op(&op)?;
                }
            }
            Ok(())
        }
    }
}

/// Runs a change: its operations tracked one by one, then its history, audit and
/// metadata writes.
pub(crate) async fn execute(
    store: &mut dyn DocStore,
    change: &Change<'_>,
) -> Result<Duration, DriverError> {
    let ops = match change.script {
        Some(s) => docops::parse_text(change.sql, &s.path)
            .map_err(|e| DriverError::query(e.to_string()))?,
        None => vec![],
    };
    let version = match &change.record {
        Record::Apply(row) if change.script.is_some() => {
            if change.resume_from == 0 {
                // Visible before anything runs: a crash leaves a `failed` row, never silence.
                let mut r = row.clone();
                r.success = false;
                r.statements_done = 0;
                store.put_row(&r).await?;
            }
            Some(row.version.clone())
        }
        _ => None,
    };
    let started = Instant::now();
    for (i, op) in ops.iter().enumerate().skip(change.resume_from) {
        if store.lease_lost() {
            return Err(DriverError::new(
                DriverErrorKind::LockTimeout,
                "the migration lease could not be renewed; stopping before another process runs",
            ));
        }
        if change.echo {
            tracing::info!(target: "strata::sql", "{} {}", op.kind, serde_json::Value::Object(op.args.clone()));
        }
        let ran = match tokio::time::timeout(change.timeout, store.run_op(op)).await {
            Ok(r) => r,
            Err(_) => Err(DriverError::query(format!(
                "operation took longer than the timeout of {}s",
                change.timeout.as_secs()
            ))),
        };
        if let Err(mut err) = ran {
            err.statement = Some(locate(change, op, i));
            if let (Record::Remove { version }, true) = (&change.record, i > 0) {
                // Half a rollback took effect: the row must not claim "applied".
                store.set_failed(version).await?;
                err.detail = Some(format!(
                    "operations 1-{i} of this rollback took effect, so {version} is now recorded \
                     as failed; finish the rollback by hand and run `strata repair`, or undo them \
                     and run `strata up --resume`"
                ));
            }
            return Err(err);
        }
        if let Some(v) = &version {
            store.set_progress(v, i + 1).await?;
        }
    }
    let elapsed = started.elapsed();
    let ms = elapsed.as_millis() as i64;
    match &change.record {
        Record::Apply(row) => {
            let mut r = row.clone();
            r.execution_time_ms = ms;
            if change.script.is_some() {
                r.success = true;
                r.statements_done = ops.len() as i64;
            }
            store.put_row(&r).await?;
        }
        Record::Remove { version } => store.remove_row(version).await?,
        Record::Repair {
            version,
            checksum,
            rollback_sql,
        } => {
            store
                .repair_row(version, checksum, rollback_sql.as_deref())
                .await?
        }
    }
    let mut audit = change.audit.clone();
    if let Some(v) = audit.new_values.as_mut().or(audit.old_values.as_mut()) {
        v["execution_time_ms"] = serde_json::json!(ms);
    }
    store.write_audit(&audit).await?;
    store.set_metadata(&change.metadata).await?;
    Ok(elapsed)
}

fn locate(change: &Change<'_>, op: &Operation, i: usize) -> StatementRef {
    let target = ["collection", "index", "alias"]
        .iter()
        .find_map(|k| op.args.get(*k).and_then(|v| v.as_str()))
        .unwrap_or("");
    StatementRef {
        index: i + 1,
        line: op.line,
        path: change
            .script
            .map(|s| s.path.to_path_buf())
            .unwrap_or_default(),
        excerpt: format!("{} {target}", op.kind).trim_end().to_string(),
    }
}

/// Milliseconds since the epoch (lease expiry is compared across processes).
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The lock document as read back.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    pub holder: String,
    pub expires_ms: i64,
    /// What a conditional take-over compares (sequence number, previous expiry...).
    pub token: String,
}

/// A store's lock document: created only if absent, taken over only when expired and
/// unchanged since read, renewed and deleted only by its holder.
#[async_trait]
pub(crate) trait LeaseDoc: Send + Sync + 'static {
    /// Creates the collection or index the lock document lives in, if missing.
    async fn ensure(&self) -> Result<(), DriverError>;
    async fn create(&self, holder: &str, expires_ms: i64) -> Result<bool, DriverError>;
    async fn read(&self) -> Result<Option<Held>, DriverError>;
    async fn take(&self, prev: &Held, holder: &str, expires_ms: i64) -> Result<bool, DriverError>;
    async fn renew(&self, holder: &str, expires_ms: i64) -> Result<bool, DriverError>;
    async fn release(&self, holder: &str) -> Result<(), DriverError>;
}

/// A held lease: its heartbeat runs until [`Lease::release`].
pub(crate) struct Lease {
    pub holder: String,
    pub lost: Arc<AtomicBool>,
    heartbeat: tokio::task::JoinHandle<()>,
    doc: Arc<dyn LeaseDoc>,
}

impl Lease {
    pub async fn release(self) -> Result<(), DriverError> {
        self.heartbeat.abort();
        self.doc.release(&self.holder).await
    }
}

/// `Driver::lock` of a document store: the lock's home made ready, then the lease
/// taken into `slot`.
pub(crate) async fn lock(
    slot: &mut Option<Lease>,
    doc: Arc<dyn LeaseDoc>,
    opts: &LockOptions,
) -> Result<(), DriverError> {
    doc.ensure().await?;
    *slot = Some(acquire(doc, opts.lease, opts.patience()).await?);
    Ok(())
}

/// `Driver::unlock` of a document store.
pub(crate) async fn unlock(slot: &mut Option<Lease>) -> Result<(), DriverError> {
    match slot.take() {
        Some(l) => l.release().await,
        None => Ok(()),
    }
}

/// Takes the lease, waiting up to `timeout` for the holder to release it or let it
/// expire (a killed holder stops renewing, so its lease runs out).
pub(crate) async fn acquire(
    doc: Arc<dyn LeaseDoc>,
    lease: Duration,
    timeout: Duration,
) -> Result<Lease, DriverError> {
    let holder = crate::lease_holder();
    let lease_ms = lease.as_millis().max(1000) as i64;
    let deadline = Instant::now() + timeout;
    let mut wait = Duration::from_millis(50);
    loop {
        let expires = now_ms() + lease_ms;
        if doc.create(&holder, expires).await? {
            break;
        }
        match doc.read().await? {
            Some(h) if h.expires_ms < now_ms() && doc.take(&h, &holder, expires).await? => {
                tracing::warn!(previous = %h.holder, "took over an expired migration lease");
                break;
            }
            Some(h) if Instant::now() >= deadline => {
                let left = (h.expires_ms - now_ms()).max(0) / 1000;
                return Err(DriverError::new(
                    DriverErrorKind::LockTimeout,
                    format!(
                        "migration lock not granted within {}s: held by {} (lease runs out in {left}s unless renewed)",
                        timeout.as_secs(),
                        h.holder
                    ),
                ));
            }
            _ => {}
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_millis(500));
    }
    let lost = Arc::new(AtomicBool::new(false));
    let heartbeat = {
        let (doc, holder, lost) = (doc.clone(), holder.clone(), lost.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(lease_ms as u64 / 3)).await;
                match doc.renew(&holder, now_ms() + lease_ms).await {
                    Ok(true) => {}
                    Ok(false) => {
                        lost.store(true, Ordering::SeqCst);
                        return;
                    }
                    Err(e) => tracing::warn!("could not renew the migration lease: {e}"),
                }
            }
        })
    };
    Ok(Lease {
        holder,
        lost,
        heartbeat,
        doc,
    })
}

/// `lease_lost` for a driver holding `Option<Lease>`.
pub(crate) fn lost(lease: &Option<Lease>) -> bool {
    lease
        .as_ref()
        .is_some_and(|l| l.lost.load(Ordering::SeqCst))
}

/// "holder (lease runs out in Ns)" for `health`, when the lock document is live.
pub(crate) async fn holder(doc: &dyn LeaseDoc) -> Result<Option<String>, DriverError> {
    Ok(doc.read().await?.and_then(|h| {
        let left = h.expires_ms - now_ms();
        (left > 0).then(|| format!("{} (lease runs out in {}s)", h.holder, left / 1000))
    }))
}
