//! The lease document in `_migrations_lock`: inserted only if absent (`_id` is unique),
//! taken over only when expired and unchanged since it was read, renewed and deleted
//! only by its holder.

use async_trait::async_trait;
use mongodb::bson::{doc, Bson, Document};
use mongodb::{Collection, Database};
use strata_core::DriverError;

use super::{code, db_error, history};
use crate::docstore::{Held, LeaseDoc};

const ID: &str = "strata";

pub(crate) struct MongoLease {
    db: Database,
    name: String,
    coll: Collection<Document>,
}

impl MongoLease {
    pub fn new(db: &Database, names: &history::Names) -> Self {
        MongoLease {
            db: db.clone(),
            name: names.lock.clone(),
            coll: db.collection(&names.lock),
        }
    }
}

fn millis(d: &Document, key: &str) -> i64 {
    match d.get(key) {
        Some(Bson::Int64(v)) => *v,
        Some(Bson::Int32(v)) => *v as i64,
        _ => 0,
    }
}

#[async_trait]
impl LeaseDoc for MongoLease {
    async fn ensure(&self) -> Result<(), DriverError> {
        history::create_collection(&self.db, &self.name).await
    }
    async fn create(&self, holder: &str, expires_ms: i64) -> Result<bool, DriverError> {
        let lock = doc! {"_id": ID, "holder": holder, "expires_at": expires_ms,
        "acquired_at": crate::docstore::now_ms()};
        match self.coll.insert_one(lock).await {
            Ok(_) => Ok(true),
            Err(e) if code(&e) == Some(11000) => Ok(false),
            Err(e) => Err(db_error(&e)),
        }
    }

    async fn read(&self) -> Result<Option<Held>, DriverError> {
        let found = self
            .coll
            .find_one(doc! {"_id": ID})
            .await
            .map_err(|e| db_error(&e))?;
        Ok(found.map(|d| Held {
            holder: d.get_str("holder").unwrap_or("unknown").to_string(),
            expires_ms: millis(&d, "expires_at"),
            token: millis(&d, "expires_at").to_string(),
        }))
    }

    async fn take(&self, prev: &Held, holder: &str, expires_ms: i64) -> Result<bool, DriverError> {
        let r = self
            .coll
            .update_one(
                doc! {"_id": ID, "holder": &prev.holder, "expires_at": prev.expires_ms},
                doc! {"$set": {"holder": holder, "expires_at": expires_ms,
                "acquired_at": crate::docstore::now_ms()}},
            )
            .await
            .map_err(|e| db_error(&e))?;
        Ok(r.modified_count == 1)
    }

    async fn renew(&self, holder: &str, expires_ms: i64) -> Result<bool, DriverError> {
        let r = self
            .coll
            .update_one(
                doc! {"_id": ID, "holder": holder},
                doc! {"$set": {"expires_at": expires_ms}},
            )
            .await
            .map_err(|e| db_error(&e))?;
        Ok(r.matched_count == 1)
    }

    async fn release(&self, holder: &str) -> Result<(), DriverError> {
        self.coll
            .delete_one(doc! {"_id": ID, "holder": holder})
            .await
            .map_err(|e| db_error(&e))?;
        Ok(())
    }
}
