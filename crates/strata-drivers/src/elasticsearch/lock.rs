//! The lease document `.strata-lock/_doc/strata`: created with `op_type=create`, taken
//! over and renewed with `if_seq_no`/`if_primary_term`, so two processes can never both
//! believe they won.

use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use strata_core::DriverError;

use super::client::{error, segment, Client};
use super::history::{self, Names};
use crate::docstore::{now_ms, Held, LeaseDoc};

pub(crate) struct EsLease {
    client: Client,
    index: String,
}

impl EsLease {
    pub fn new(client: &Client, names: &Names) -> Self {
        EsLease {
            client: client.clone(),
            index: names.lock.clone(),
        }
    }

    fn path(&self, action: &str, query: &str) -> String {
        format!(
            "{}/{action}/strata?refresh=true{query}",
            segment(&self.index)
        )
    }

    /// Writes the document if it is still at `token` (`seq_no:primary_term`).
    async fn put_if(&self, token: &str, body: &Value) -> Result<bool, DriverError> {
        let (seq, term) = token.split_once(':').unwrap_or((token, "1"));
        let q = format!("&if_seq_no={seq}&if_primary_term={term}");
        let (status, value) = self
            .client
            .send(Method::PUT, &self.path("_doc", &q), Some(body))
            .await?;
        match status {
            s if s.is_success() => Ok(true),
            StatusCode::CONFLICT | StatusCode::NOT_FOUND => Ok(false),
            s => Err(error(s, &value)),
        }
    }
}

#[async_trait]
impl LeaseDoc for EsLease {
    async fn ensure(&self) -> Result<(), DriverError> {
        if history::index_exists(&self.client, &self.index).await? {
            return Ok(());
        }
        let kw = json!({"type": "keyword"});
        history::create_index(
            &self.client,
            &self.index,
            json!({"holder": kw, "expires_at": {"type": "long"}}),
        )
        .await
    }
    async fn create(&self, holder: &str, expires_ms: i64) -> Result<bool, DriverError> {
        let body = json!({"holder": holder, "expires_at": expires_ms, "acquired_at": now_ms()});
        let (status, value) = self
            .client
            .send(Method::PUT, &self.path("_create", ""), Some(&body))
            .await?;
        match status {
            s if s.is_success() => Ok(true),
            StatusCode::CONFLICT => Ok(false),
            s => Err(error(s, &value)),
        }
    }

    async fn read(&self) -> Result<Option<Held>, DriverError> {
        let path = format!("{}/_doc/strata", segment(&self.index));
        let (status, v) = self.client.send(Method::GET, &path, None).await?;
        if status == StatusCode::NOT_FOUND || v.get("found") == Some(&json!(false)) {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(error(status, &v));
        }
        Ok(Some(Held {
            holder: v
                .pointer("/_source/holder")
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_string(),
            expires_ms: v
                .pointer("/_source/expires_at")
                .and_then(Value::as_i64)
                .unwrap_or(0),
            token: format!(
                "{}:{}",
                v.get("_seq_no").and_then(Value::as_i64).unwrap_or(0),
                v.get("_primary_term").and_then(Value::as_i64).unwrap_or(1)
            ),
        }))
    }

    async fn take(&self, prev: &Held, holder: &str, expires_ms: i64) -> Result<bool, DriverError> {
        let body = json!({"holder": holder, "expires_at": expires_ms, "acquired_at": now_ms()});
        self.put_if(&prev.token, &body).await
    }

    async fn renew(&self, holder: &str, expires_ms: i64) -> Result<bool, DriverError> {
        for _ in 0..3 {
            match self.read().await? {
                Some(h) if h.holder == holder => {
                    let body = json!({"holder": holder, "expires_at": expires_ms, "acquired_at": now_ms()});
                    if self.put_if(&h.token, &body).await? {
                        return Ok(true);
                    }
                }
                _ => return Ok(false),
            }
        }
        Ok(false)
    }

    async fn release(&self, holder: &str) -> Result<(), DriverError> {
        if let Some(h) = self.read().await?.filter(|h| h.holder == holder) {
            let (seq, term) = h.token.split_once(':').unwrap_or((&h.token, "1"));
            let path = format!(
                "{}/_doc/strata?refresh=true&if_seq_no={seq}&if_primary_term={term}",
                segment(&self.index)
            );
            let (status, value) = self.client.send(Method::DELETE, &path, None).await?;
            if !status.is_success()
                && status != StatusCode::CONFLICT
                && status != StatusCode::NOT_FOUND
            {
                return Err(error(status, &value));
            }
        }
        Ok(())
    }
}
