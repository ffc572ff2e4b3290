//! strata's tables in PostgreSQL: the statements of [`crate::history`], each batch
//! sent as one simple query (one round trip, no prepared statement to lose to a
//! pooler or a migration's `DEALLOCATE ALL`).

use futures_util::TryStreamExt;
use strata_core::DriverError;
use tokio_postgres::{Client, SimpleQueryMessage};

use super::exec::db_error;
use crate::history::{self, Cells, Stmt};
use crate::layout::{Bookkeeping, Found, Names};

/// strata's tables on this connection ([`crate::layout`]).
pub(super) struct Tables {
    pub names: Names,
}

impl Tables {
    pub fn new(names: &Names) -> Self {
        Tables {
            names: names.clone(),
        }
    }

    /// strata's own tables as (schema, table): left out of schema introspection.
    pub fn own_names(&self) -> Vec<(String, String)> {
        let schema = self.names.schema.clone().unwrap_or_default();
        self.names
            .own_names()
            .into_iter()
            .map(|t| (schema.clone(), t))
            .collect()
    }
}

/// The rows of `sql`, each cell as text.
pub(super) async fn rows(client: &Client, sql: &str) -> Result<Vec<Cells>, DriverError> {
    let messages = client.simple_query(sql).await.map_err(|e| db_error(&e))?;
    Ok(messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect())
}

/// Runs bookkeeping statements between `before` and `after` (plain statements, such as
/// `BEGIN` and `COMMIT`) as one simple query, each checked. The server stops at the
/// first error; a transaction the batch opened is then left aborted for the caller to
/// roll back.
pub(super) async fn run_with(
    client: &Client,
    before: &[&str],
    stmts: &[Stmt],
    after: &[&str],
) -> Result<(), DriverError> {
    let sql = history::script(before, stmts, after);
    let counts = async {
        let stream = client.simple_query_raw(&sql).await?;
        let mut stream = std::pin::pin!(stream);
        let mut counts = Vec::new();
        while let Some(m) = stream.try_next().await? {
            if let SimpleQueryMessage::CommandComplete(n) = m {
                counts.push(n);
            }
        }
        Ok::<_, tokio_postgres::Error>(counts)
    }
    .await;
    match counts {
        Ok(counts) => history::check_all(stmts, counts.get(before.len()..).unwrap_or_default()),
        Err(e) if e.code().is_some_and(|c| c.code() == "23505") => {
            Err(history::duplicate(stmts).unwrap_or_else(|| db_error(&e)))
        }
        Err(e) => Err(db_error(&e)),
    }
}

pub(super) async fn run(client: &Client, stmts: &[Stmt]) -> Result<(), DriverError> {
    run_with(client, &[], stmts, &[]).await
}

/// What the database holds of strata's tables, remembered in `b`.
pub(super) async fn probe(client: &Client, b: &mut Bookkeeping) -> Result<Found, DriverError> {
    let found: Vec<_> = rows(client, &b.probe_sql())
        .await?
        .into_iter()
        .map(history::probe_row)
        .collect();
    b.classify(&found)
}

/// Creates strata's tables, or moves an earlier layout's into place, with an audit
/// row for the move, in one transaction; called under the migration lock.
pub(super) async fn ensure(client: &Client, b: &mut Bookkeeping) -> Result<(), DriverError> {
    let found = probe(client, b).await?;
    let sql = b.ensure_sql(found)?;
    if sql.is_empty() {
        return Ok(());
    }
    // Notices about existing objects are noise; the migration lock prevents races.
    let script = format!(
        "SET client_min_messages = warning; BEGIN; {}; COMMIT; RESET client_min_messages",
        sql.join(";\n")
    );
    if let Err(e) = client.batch_execute(&script).await {
        let _ = client
            .batch_execute("ROLLBACK; RESET client_min_messages")
            .await;
        return Err(db_error(&e));
    }
    b.created();
    if let Some(entry) = b.upgrade_audit(found, whoami::username()) {
        run(client, &[history::audit_row(&b.current, &entry)]).await?;
    }
    Ok(())
}
