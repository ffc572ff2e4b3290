//! Elasticsearch's operations (SPEC section 6), each one or a few REST calls.
//! `reindex_and_swap_alias` is the zero-downtime mapping change: create the new index,
//! copy the documents into it, then move the alias in one `_aliases` call, so readers
//! of the alias see the old index or the new one and never neither.

use reqwest::{Method, StatusCode};
use serde_json::{json, Map, Value};
use strata_core::docops::Operation;
use strata_core::{DriverError, SourceError};

use super::client::{error, segment, Client};

const KNOWN: &str = "create_index, delete_index, update_mapping, update_settings, create_alias, delete_alias, reindex, reindex_and_swap_alias, swap_alias";

/// Checks an operation's kind and arguments.
pub(super) fn check(op: &Operation) -> Result<(), SourceError> {
    match op.kind.as_str() {
        "create_index" => {
            op.only(&["index", "mapping", "mappings", "settings", "aliases"])?;
            op.str("index")?;
            mapping(op)?;
            op.object("settings")?;
            op.object("aliases")?;
        }
        "delete_index" => {
            op.only(&["index"])?;
            op.str("index")?;
        }
        "update_mapping" => {
            op.only(&["index", "mapping", "mappings", "properties"])?;
            op.str("index")?;
            if mapping(op)?.is_none() {
                return Err(op.error("`update_mapping` needs `mapping` (or `properties`)"));
            }
        }
        "update_settings" => {
            op.only(&["index", "settings"])?;
            op.str("index")?;
            if op.object("settings")?.is_none() {
                return Err(op.error("`update_settings` needs `settings`"));
            }
        }
        "create_alias" | "delete_alias" => {
            op.only(&["index", "alias", "filter", "is_write_index", "routing"])?;
            op.str("index")?;
            op.str("alias")?;
            op.object("filter")?;
        }
        "reindex" => {
            op.only(&["source", "dest", "script", "query"])?;
            op.str("source")?;
            op.str("dest")?;
            script(op)?;
            op.object("query")?;
        }
        "reindex_and_swap_alias" => {
            op.only(&[
                "alias",
                "source",
                "dest",
                "mapping",
                "mappings",
                "settings",
                "script",
                "query",
                "delete_old",
            ])?;
            op.str("alias")?;
            op.str("source")?;
            op.str("dest")?;
            mapping(op)?;
            op.object("settings")?;
            script(op)?;
            op.object("query")?;
            op.flag("delete_old")?;
        }
        "swap_alias" => {
            op.only(&["alias", "from", "to"])?;
            op.str("alias")?;
            op.str("from")?;
            op.str("to")?;
        }
        other => {
            return Err(op
                .error(format!("unknown Elasticsearch operation `{other}`"))
                .with_help(format!("known: {KNOWN}")))
        }
    }
    Ok(())
}

/// `mapping`/`mappings`/`properties` as a mappings body: `{"properties": …}` kept as is,
/// a bare field map wrapped in `properties`.
fn mapping(op: &Operation) -> Result<Option<Value>, SourceError> {
    for key in ["mapping", "mappings"] {
        if let Some(m) = op.object(key)? {
            return Ok(Some(
                if m.contains_key("properties") || m.contains_key("dynamic") {
                    Value::Object(m.clone())
                } else {
                    json!({ "properties": m })
                },
            ));
        }
    }
    Ok(op.object("properties")?.map(|p| json!({ "properties": p })))
}

/// A reindex script: a string of Painless, or the full `{"source", "lang", "params"}`.
fn script(op: &Operation) -> Result<Option<Value>, SourceError> {
    match op.args.get("script") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(json!({ "source": s }))),
        Some(v @ Value::Object(_)) => Ok(Some(v.clone())),
        Some(_) => Err(op.error("`script` must be a string or an object")),
    }
}

fn arg<'a>(op: &'a Operation, key: &str) -> Result<&'a str, DriverError> {
    op.str(key).map_err(|e| DriverError::query(e.message))
}

fn input<T>(r: Result<T, SourceError>) -> Result<T, DriverError> {
    r.map_err(|e| DriverError::query(e.message))
}

pub(super) async fn run(c: &Client, op: &Operation) -> Result<(), DriverError> {
    match op.kind.as_str() {
        "create_index" => create_index(c, op, arg(op, "index")?).await,
        "delete_index" => {
            c.ok(Method::DELETE, &segment(arg(op, "index")?), None)
                .await?;
            Ok(())
        }
        "update_mapping" => {
            let body = input(mapping(op))?.unwrap_or_default();
            c.ok(
                Method::PUT,
                &format!("{}/_mapping", segment(arg(op, "index")?)),
                Some(&body),
            )
            .await?;
            Ok(())
        }
        "update_settings" => {
            let body = Value::Object(input(op.object("settings"))?.cloned().unwrap_or_default());
            c.ok(
                Method::PUT,
                &format!("{}/_settings", segment(arg(op, "index")?)),
                Some(&body),
            )
            .await?;
            Ok(())
        }
        "create_alias" | "delete_alias" => {
            let mut action = Map::new();
            action.insert("index".into(), json!(arg(op, "index")?));
            action.insert("alias".into(), json!(arg(op, "alias")?));
            let verb = if op.kind == "create_alias" {
                for k in ["filter", "is_write_index", "routing"] {
                    if let Some(v) = op.args.get(k) {
                        action.insert(k.into(), v.clone());
                    }
                }
                "add"
            } else {
                "remove"
            };
            aliases(c, vec![json!({ verb: action })]).await
        }
        "reindex" => reindex(c, op, arg(op, "source")?, arg(op, "dest")?).await,
        "reindex_and_swap_alias" => {
            let (alias, source, dest) = (arg(op, "alias")?, arg(op, "source")?, arg(op, "dest")?);
            if !super::history::index_exists(c, dest).await? {
                create_index(c, op, dest).await?;
            }
            reindex(c, op, source, dest).await?;
            move_alias(c, alias, dest).await?;
            if input(op.flag("delete_old"))? && source != dest {
                c.ok(Method::DELETE, &segment(source), None).await?;
            }
            Ok(())
        }
        "swap_alias" => {
            let (alias, to) = (arg(op, "alias")?, arg(op, "to")?);
            move_alias(c, alias, to).await
        }
        other => Err(DriverError::query(format!(
            "unknown Elasticsearch operation `{other}`"
        ))),
    }
}

async fn create_index(c: &Client, op: &Operation, name: &str) -> Result<(), DriverError> {
    let mut body = Map::new();
    if let Some(m) = input(mapping(op))? {
        body.insert("mappings".into(), m);
    }
    for k in ["settings", "aliases"] {
        if let Some(v) = input(op.object(k))? {
            body.insert(k.into(), Value::Object(v.clone()));
        }
    }
    c.ok(Method::PUT, &segment(name), Some(&Value::Object(body)))
        .await?;
    Ok(())
}

async fn reindex(c: &Client, op: &Operation, source: &str, dest: &str) -> Result<(), DriverError> {
    let mut src = json!({ "index": source });
    if let Some(q) = input(op.object("query"))? {
        src["query"] = Value::Object(q.clone());
    }
    let mut body = json!({ "source": src, "dest": { "index": dest } });
    if let Some(s) = input(script(op))? {
        body["script"] = s;
    }
    let r = c
        .ok(
            Method::POST,
            "_reindex?refresh=true&wait_for_completion=true",
            Some(&body),
        )
        .await?;
    if let Some(first) = r
        .get("failures")
        .and_then(Value::as_array)
        .and_then(|f| f.first())
    {
        return Err(DriverError::query(format!(
            "reindex {source} -> {dest} failed: {first}"
        )));
    }
    Ok(())
}

/// Points `alias` at `to` alone, in one atomic `_aliases` call.
async fn move_alias(c: &Client, alias: &str, to: &str) -> Result<(), DriverError> {
    let (status, current) = c
        .send(Method::GET, &format!("_alias/{}", segment(alias)), None)
        .await?;
    let mut actions = Vec::new();
    if status.is_success() {
        for index in current.as_object().into_iter().flat_map(|m| m.keys()) {
            if index != to {
                actions.push(json!({"remove": {"index": index, "alias": alias}}));
            }
        }
    } else if status != StatusCode::NOT_FOUND {
        return Err(error(status, &current));
    }
    actions.push(json!({"add": {"index": to, "alias": alias}}));
    aliases(c, actions).await
}

async fn aliases(c: &Client, actions: Vec<Value>) -> Result<(), DriverError> {
    c.ok(
        Method::POST,
        "_aliases",
        Some(&json!({ "actions": actions })),
    )
    .await?;
    Ok(())
}
