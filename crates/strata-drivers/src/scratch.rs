//! Scratch databases for `verify --roundtrip`, `diff` and `squash`: a temporary
//! database created beside the configured one on the same PostgreSQL server (dropped
//! afterwards), or a temporary SQLite file.

use async_trait::async_trait;
use strata_core::{Driver, DriverError, DriverErrorKind, Error, Scratch};

use crate::HistoryNames;

/// Scratch databases next to `url`.
pub struct ScratchDbs {
    base: String,
    names: HistoryNames,
    counter: usize,
    /// The current scratch database: a PostgreSQL database name or a SQLite file.
    current: Option<String>,
}

impl ScratchDbs {
    /// Checks the engine can host scratch databases (PostgreSQL, SQLite).
    pub fn new(url: &str, names: &HistoryNames) -> Result<Self, Error> {
        let scheme = url.split(':').next().unwrap_or("").to_ascii_lowercase();
        if !matches!(scheme.as_str(), "postgres" | "postgresql" | "sqlite") {
            return Err(Error::Config(format!(
                "scratch databases (verify --roundtrip, diff, squash) need PostgreSQL or SQLite, not {scheme}"
            )));
        }
        Ok(ScratchDbs {
            base: url.to_string(),
            names: names.clone(),
            counter: 0,
            current: None,
        })
    }

    fn is_sqlite(&self) -> bool {
        self.base.to_ascii_lowercase().starts_with("sqlite")
    }

    async fn admin(&self) -> Result<tokio_postgres::Client, DriverError> {
        crate::postgres::connect_admin(&self.base).await
    }

    async fn drop_current(&mut self) {
        let Some(name) = self.current.take() else {
            return;
        };
        if self.is_sqlite() {
            let _ = std::fs::remove_file(&name);
        } else if let Ok(c) = self.admin().await {
            let _ = c
                .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .await;
        }
    }
}

#[async_trait]
impl Scratch for ScratchDbs {
    async fn fresh(&mut self) -> Result<Box<dyn Driver>, Error> {
        self.drop_current().await;
        self.counter += 1;
        let name = format!("strata_scratch_{}_{}", std::process::id(), self.counter);
        let url = if self.is_sqlite() {
            let path = std::env::temp_dir().join(format!("{name}.db"));
            let _ = std::fs::remove_file(&path);
            self.current = Some(path.display().to_string());
            format!("sqlite://{}", path.display())
        } else {
            let admin = self.admin().await?;
            admin
                .batch_execute(&format!("CREATE DATABASE \"{name}\""))
                .await
                .map_err(|e| {
                    DriverError::new(
                        DriverErrorKind::Other,
                        format!("cannot create a scratch database (needs CREATEDB): {e}"),
                    )
                })?;
            self.current = Some(name.clone());
            let mut u = url::Url::parse(&self.base)
                .map_err(|e| Error::Config(format!("database URL: {e}")))?;
            u.set_path(&format!("/{name}"));
            u.to_string()
        };
        Ok(crate::connect(&url, &self.names).await?)
    }

    async fn cleanup(&mut self) {
        self.drop_current().await;
    }
}
