//! MongoDB's operations (SPEC section 6), each one database command, so the server's
//! own error comes back unchanged. JSON values become BSON through extended JSON, so
//! `{"$date": …}` and `{"$oid": …}` mean what they mean in mongosh.

use mongodb::bson::{doc, Bson, Document};
use mongodb::Database;
use serde_json::Value;
use strata_core::docops::{self, Operation};
use strata_core::{DriverError, SourceError};

use super::db_error;

/// Checks an operation's kind and arguments.
pub(super) fn check(op: &Operation) -> Result<(), SourceError> {
    match op.kind.as_str() {
        "create_collection" => {
            op.only(&["collection", "options"])?;
            op.str("collection")?;
            op.object("options")?;
        }
        "drop_collection" => {
            op.only(&["collection"])?;
            op.str("collection")?;
        }
        "create_index" => {
            op.only(&["collection", "index", "options"])?;
            op.str("collection")?;
            docops::index_keys(op)?;
            op.object("options")?;
        }
        "drop_index" => {
            op.only(&["collection", "name", "index"])?;
            op.str("collection")?;
            if op.opt_str("name")?.is_none() {
                docops::index_keys(op)
                    .map_err(|_| op.error("`drop_index` needs `name` (or the `index` keys)"))?;
            }
        }
        "add_field" => {
            op.only(&["collection", "field", "default", "filter"])?;
            op.str("collection")?;
            op.str("field")?;
            op.object("filter")?;
        }
        "remove_field" => {
            op.only(&["collection", "field", "filter"])?;
            op.str("collection")?;
            op.str("field")?;
            op.object("filter")?;
        }
        "rename_field" => {
            op.only(&["collection", "from", "to"])?;
            op.str("collection")?;
            op.str("from")?;
            op.str("to")?;
        }
        "update_documents" => {
            op.only(&["collection", "filter", "update", "options"])?;
            op.str("collection")?;
            op.object("filter")?;
            match op.args.get("update") {
                Some(Value::Object(_) | Value::Array(_)) => {}
                _ => return Err(op.error("`update_documents` needs `update` (an object or a pipeline)")),
            }
            op.object("options")?;
        }
        "run_command" => {
            op.only(&["command"])?;
            if op.object("command")?.is_none_or(|c| c.is_empty()) {
                return Err(op.error("`run_command` needs `command`, e.g. {\"collMod\": \"users\", …}"));
            }
        }
        other => {
            return Err(op
                .error(format!("unknown MongoDB operation `{other}`"))
                .with_help("known: create_collection, drop_collection, create_index, drop_index, add_field, remove_field, rename_field, update_documents, run_command"))
        }
    }
    Ok(())
}

fn bson(v: &Value) -> Result<Bson, DriverError> {
    Bson::try_from(v.clone())
        .map_err(|e| DriverError::query(format!("not valid extended JSON: {e}")))
}

fn document(v: Option<&Value>) -> Result<Document, DriverError> {
    match v {
        None | Some(Value::Null) => Ok(Document::new()),
        Some(v) => match bson(v)? {
            Bson::Document(d) => Ok(d),
            other => Err(DriverError::query(format!(
                "expected an object, got {other}"
            ))),
        },
    }
}

fn arg<'a>(op: &'a Operation, key: &str) -> Result<&'a str, DriverError> {
    op.str(key).map_err(|e| DriverError::query(e.message))
}

/// An update of every document matching `q`.
fn update(coll: &str, q: Document, u: Bson, multi: bool, upsert: bool) -> Document {
    doc! {"update": coll, "updates": [{"q": q, "u": u, "multi": multi, "upsert": upsert}]}
}

/// The command an operation runs.
fn command(op: &Operation) -> Result<Document, DriverError> {
    let a = &op.args;
    Ok(match op.kind.as_str() {
        "create_collection" => {
            let mut c = doc! {"create": arg(op, "collection")?};
            c.extend(document(a.get("options"))?);
            c
        }
        "drop_collection" => doc! {"drop": arg(op, "collection")?},
        "create_index" => {
            let mut key = Document::new();
            for (field, dir) in docops::index_keys(op).map_err(|e| DriverError::query(e.message))? {
                key.insert(field, bson(&dir)?);
            }
            let mut index = doc! {"key": key, "name": docops::mongo_index_name(op)};
            index.extend(document(a.get("options"))?);
            doc! {"createIndexes": arg(op, "collection")?, "indexes": [index]}
        }
        "drop_index" => {
            let name = match op.opt_str("name").ok().flatten() {
                Some(n) => n.to_string(),
                None => docops::mongo_index_name(op).unwrap_or_default(),
            };
            doc! {"dropIndexes": arg(op, "collection")?, "index": name}
        }
        "add_field" => {
            let field = arg(op, "field")?;
            let mut q = doc! {field: {"$exists": false}};
            q.extend(document(a.get("filter"))?);
            let default = a
                .get("default")
                .map(bson)
                .transpose()?
                .unwrap_or(Bson::Null);
            update(
                arg(op, "collection")?,
                q,
                doc! {"$set": {field: default}}.into(),
                true,
                false,
            )
        }
        "remove_field" => {
            let field = arg(op, "field")?;
            let mut q = doc! {field: {"$exists": true}};
            q.extend(document(a.get("filter"))?);
            update(
                arg(op, "collection")?,
                q,
                doc! {"$unset": {field: ""}}.into(),
                true,
                false,
            )
        }
        "rename_field" => {
            let (from, to) = (arg(op, "from")?, arg(op, "to")?);
            let q = doc! {from: {"$exists": true}};
            update(
                arg(op, "collection")?,
                q,
                doc! {"$rename": {from: to}}.into(),
                true,
                false,
            )
        }
        "update_documents" => {
            let opts = a.get("options");
            let flag = |k: &str| opts.and_then(|o| o.get(k)).and_then(Value::as_bool);
            let u = bson(a.get("update").unwrap_or(&Value::Null))?;
            update(
                arg(op, "collection")?,
                document(a.get("filter"))?,
                u,
                flag("multi").unwrap_or(true),
                flag("upsert").unwrap_or(false),
            )
        }
        "run_command" => document(a.get("command"))?,
        other => {
            return Err(DriverError::query(format!(
                "unknown MongoDB operation `{other}`"
            )))
        }
    })
}

/// Runs one operation. Write commands report per-document errors in their reply rather
/// than failing, so those are turned into errors here.
pub(super) async fn run(db: &Database, op: &Operation) -> Result<(), DriverError> {
    let reply = db
        .run_command(command(op)?)
        .await
        .map_err(|e| db_error(&e))?;
    if let Ok(errors) = reply.get_array("writeErrors") {
        if let Some(Bson::Document(first)) = errors.first() {
            let mut err =
                DriverError::query(first.get_str("errmsg").unwrap_or("write error").to_string());
            err.code = first.get("code").map(|c| c.to_string());
            return Err(err);
        }
    }
    if let Ok(wce) = reply.get_document("writeConcernError") {
        return Err(DriverError::query(
            wce.get_str("errmsg")
                .unwrap_or("write concern error")
                .to_string(),
        ));
    }
    Ok(())
}
