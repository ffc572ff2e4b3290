//! Document-store migrations: `NNN_name.json` holding an `operations` array, for MongoDB
//! and Elasticsearch (SPEC section 6).
//!
//! ```json
//! {
//!   "version": "1.1.0",
//!   "description": "users collection",
//!   "operations": [
//!     {"type": "create_collection", "collection": "users", "options": {"validator": {}}},
//!     {"type": "create_index", "collection": "users", "index": [["email", 1]], "options": {"unique": true}}
//!   ]
//! }
//! ```
//!
//! The core reads operations generically (a kind, its arguments, its line) and derives
//! the default inverse of a migration; each document-store driver checks the operations
//! it knows and runs them. The operation's kind is under `type` (`operation` and `op`
//! are accepted too). A rollback file `NNN_name_rollback.json` holds the same shape, or
//! a bare array.

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::error::SourceError;
use crate::migration::Script;

/// One operation as written.
#[derive(Debug, Clone)]
pub struct Operation {
    pub kind: String,
    /// Every key but the kind.
    pub args: Map<String, Value>,
    pub path: PathBuf,
    /// 1-based line of the operation in its file.
    pub line: usize,
}

impl Operation {
    /// An input error pointing at this operation.
    pub fn error(&self, message: impl Into<String>) -> SourceError {
        SourceError::new(&self.path, Some(self.line), message)
    }

    /// A required string argument.
    pub fn str(&self, key: &str) -> Result<&str, SourceError> {
        match self.args.get(key) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s),
            Some(_) => Err(self.error(format!("`{}`: `{key}` must be a string", self.kind))),
            None => Err(self.error(format!("`{}` needs `{key}`", self.kind))),
        }
    }

    /// An optional string argument.
    pub fn opt_str(&self, key: &str) -> Result<Option<&str>, SourceError> {
        match self.args.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => self.str(key).map(Some),
        }
    }

    /// An optional object argument.
    pub fn object(&self, key: &str) -> Result<Option<&Map<String, Value>>, SourceError> {
        match self.args.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(_) => Err(self.error(format!("`{}`: `{key}` must be an object", self.kind))),
        }
    }

    /// An optional boolean argument.
    pub fn flag(&self, key: &str) -> Result<bool, SourceError> {
        match self.args.get(key) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(self.error(format!("`{}`: `{key}` must be true or false", self.kind))),
        }
    }

    /// Refuses arguments outside `known`, so a typo is not silently ignored.
    pub fn only(&self, known: &[&str]) -> Result<(), SourceError> {
        match self.args.keys().find(|k| !known.contains(&k.as_str())) {
            Some(k) => Err(self
                .error(format!("`{}` does not take `{k}`", self.kind))
                .with_help(format!("it takes: {}", known.join(", ")))),
            None => Ok(()),
        }
    }
}

/// True when a JSON document is a document-store migration (it has `operations`).
pub fn is_operations(value: &Value) -> bool {
    value.get("operations").is_some()
}

/// Reads the operations of a migration or rollback script.
pub fn parse(script: &Script) -> Result<Vec<Operation>, SourceError> {
    parse_text(&script.text()?, &script.path)
}

/// [`parse`] on text already read.
pub fn parse_text(text: &str, path: &Path) -> Result<Vec<Operation>, SourceError> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        SourceError::new(path, Some(e.line()), format!("malformed JSON: {e}"))
            .with_column(Some(e.column()))
    })?;
    let list = match &value {
        Value::Array(a) => a,
        Value::Object(o) => match o.get("operations") {
            Some(Value::Array(a)) => a,
            Some(_) => {
                return Err(SourceError::new(
                    path,
                    Some(crate::source::line_of(text, "\"operations\"")),
                    "`operations` must be an array",
                ))
            }
            None => {
                return Err(
                    SourceError::new(path, Some(1), "no `operations` array").with_help(
                        "a document-store migration is {\"operations\": [{\"type\": …}, …]}",
                    ),
                )
            }
        },
        _ => {
            return Err(SourceError::new(
                path,
                Some(1),
                "expected an object with `operations` or an array of operations",
            ))
        }
    };
    let starts = element_starts(text);
    list.iter()
        .enumerate()
        .map(|(i, v)| {
            let line = starts
                .get(i)
                .map(|&at| text[..at].matches('\n').count() + 1)
                .unwrap_or(1);
            let Value::Object(obj) = v else {
                return Err(SourceError::new(
                    path,
                    Some(line),
                    format!("operation {} is not an object", i + 1),
                ));
            };
            let mut args = obj.clone();
            let kind = ["type", "operation", "op"]
                .iter()
                .find_map(|k| args.remove(*k))
                .ok_or_else(|| {
                    SourceError::new(
                        path,
                        Some(line),
                        format!("operation {} has no `type`", i + 1),
                    )
                })?;
            let Value::String(kind) = kind else {
                return Err(SourceError::new(
                    path,
                    Some(line),
                    "`type` must be a string",
                ));
            };
            Ok(Operation {
                kind,
                args,
                path: path.to_path_buf(),
                line,
            })
        })
        .collect()
}

/// Byte offsets where the elements of the operations array start: the top-level array,
/// or the array under the top-level key `operations`. serde_json keeps no positions, and
/// an error must name the operation's line, so this walks the text once.
fn element_starts(text: &str) -> Vec<usize> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let (mut depth, mut i) = (0usize, 0usize);
    let mut target: Option<usize> = None; // depth inside the operations array
    let mut expecting = false;
    let mut last_string: Option<(usize, usize)> = None;
    let mut key_ops = false;
    while i < b.len() {
        let c = b[i];
        if target == Some(depth) && expecting && !c.is_ascii_whitespace() && c != b']' {
            out.push(i);
            expecting = false;
        }
        match c {
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                last_string = Some((start, i.min(b.len())));
            }
            b':' if depth == 1 => {
                key_ops = last_string.is_some_and(|(s, e)| &text[s..e] == "operations");
            }
            b'[' | b'{' => {
                let top_array = depth == 0 && c == b'[';
                let ops_value = depth == 1 && c == b'[' && key_ops;
                depth += 1;
                if target.is_none() && (top_array || ops_value) {
                    target = Some(depth);
                    expecting = true;
                }
            }
            b']' | b'}' => {
                if target == Some(depth) {
                    return out;
                }
                depth = depth.saturating_sub(1);
            }
            b',' if target == Some(depth) => expecting = true,
            _ => {}
        }
        i += 1;
    }
    out
}

/// The operations that undo `ops` (in reverse order), as a rollback script's JSON, or
/// `None` when one of them has no inverse (drops, data updates, commands): such a
/// migration rolls back only with a `_rollback.json`.
pub fn inverse(ops: &[Operation]) -> Option<String> {
    let mut out = Vec::with_capacity(ops.len());
    for op in ops.iter().rev() {
        let a = &op.args;
        let get = |k: &str| a.get(k).cloned().unwrap_or(Value::Null);
        match op.kind.as_str() {
            "create_collection" => {
                out.push(json!({"type": "drop_collection", "collection": get("collection")}))
            }
            "create_index" if a.contains_key("collection") => out.push(json!({
                "type": "drop_index",
                "collection": get("collection"),
                "name": mongo_index_name(op)?,
            })),
            "create_index" => out.push(json!({"type": "delete_index", "index": get("index")})),
            "add_field" => out.push(json!({
                "type": "remove_field", "collection": get("collection"), "field": get("field"),
            })),
            "rename_field" => out.push(json!({
                "type": "rename_field", "collection": get("collection"),
                "from": get("to"), "to": get("from"),
            })),
            "create_alias" => out.push(json!({
                "type": "delete_alias", "index": get("index"), "alias": get("alias"),
            })),
            "reindex_and_swap_alias" if !op.flag("delete_old").unwrap_or(true) => {
                a.get("source")?;
                out.push(json!({
                    "type": "swap_alias", "alias": get("alias"),
                    "from": get("dest"), "to": get("source"),
                }));
                out.push(json!({"type": "delete_index", "index": get("dest")}));
            }
            _ => return None,
        }
    }
    Some(serde_json::to_string_pretty(&json!({ "operations": out })).expect("JSON values print"))
}

/// The name MongoDB gives an index: its options' `name`, else `field_dir` pairs joined
/// by `_` (`email_1`, `a_1_b_-1`, `body_text`).
pub fn mongo_index_name(op: &Operation) -> Option<String> {
    if let Some(Value::String(n)) = op.args.get("options").and_then(|o| o.get("name")) {
        return Some(n.clone());
    }
    let keys = index_keys(op).ok()?;
    Some(
        keys.iter()
            .map(|(f, d)| match d {
                Value::String(s) => format!("{f}_{s}"),
                other => format!("{f}_{other}"),
            })
            .collect::<Vec<_>>()
            .join("_"),
    )
}

/// A MongoDB index's keys in order: `[["field", 1], ...]`, `["field", 1]`, or an object
/// with one key (an object with several would lose their order in some tools).
pub fn index_keys(op: &Operation) -> Result<Vec<(String, Value)>, SourceError> {
    let bad = || op.error("`index` must list [field, direction] pairs, e.g. [[\"email\", 1]]");
    let pair = |v: &Value| -> Option<(String, Value)> {
        let a = v.as_array()?;
        match a.as_slice() {
            [Value::String(f), d @ (Value::Number(_) | Value::String(_))] => {
                Some((f.clone(), d.clone()))
            }
            _ => None,
        }
    };
    match op.args.get("index") {
        Some(Value::Array(items)) if !items.is_empty() => {
            if let Some(p) = pair(&Value::Array(items.clone())) {
                return Ok(vec![p]);
            }
            items.iter().map(|v| pair(v).ok_or_else(bad)).collect()
        }
        Some(Value::Object(o)) if o.len() == 1 => {
            Ok(o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        }
        Some(Value::String(f)) => Ok(vec![(f.clone(), json!(1))]),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(text: &str) -> Script {
        Script::inline(text, "m.json", 1)
    }

    #[test]
    fn operations_carry_their_lines() {
        let text = "{\n  \"version\": \"1.0.0\",\n  \"operations\": [\n    {\"type\": \"create_collection\", \"collection\": \"a\"},\n\n    {\n      \"type\": \"add_field\", \"collection\": \"a\", \"field\": \"x\", \"default\": \"[,]\"\n    }\n  ]\n}";
        let ops = parse(&script(text)).unwrap();
        assert_eq!(ops.len(), 2);
        assert_eq!(
            (ops[0].kind.as_str(), ops[0].line),
            ("create_collection", 4)
        );
        assert_eq!((ops[1].kind.as_str(), ops[1].line), ("add_field", 6));
        let bare = parse(&script(
            "[\n{\"op\": \"drop_collection\", \"collection\": \"a\"}\n]",
        ))
        .unwrap();
        assert_eq!(
            (bare[0].kind.as_str(), bare[0].line),
            ("drop_collection", 2)
        );
    }

    #[test]
    fn bad_operations_name_the_line() {
        let e = parse(&script("{\"operations\": [\n {\"collection\": \"a\"}]}")).unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("no `type`"), "{e}");
        let e = parse(&script("{\"operations\": [\n {\"type\": 1,}]}")).unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
    }

    #[test]
    fn inverses_undo_in_reverse_order() {
        let ops = parse(&script(
            r#"{"operations": [
                {"type": "create_collection", "collection": "u"},
                {"type": "create_index", "collection": "u", "index": [["email", 1], ["at", -1]]},
                {"type": "rename_field", "collection": "u", "from": "a", "to": "b"}
            ]}"#,
        ))
        .unwrap();
        let inv: Value = serde_json::from_str(&inverse(&ops).unwrap()).unwrap();
        let kinds: Vec<&str> = inv["operations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["type"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["rename_field", "drop_index", "drop_collection"]);
        assert_eq!(inv["operations"][0]["from"], "b");
        assert_eq!(inv["operations"][1]["name"], "email_1_at_-1");
        let data = parse(&script(
            r#"[{"type": "update_documents", "collection": "u", "filter": {}, "update": {}}]"#,
        ))
        .unwrap();
        assert!(inverse(&data).is_none());
    }
}
