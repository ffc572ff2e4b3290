//! Introspecting a PostgreSQL database into a [`Schema`] from the catalogs, with the
//! server's own renderings (`format_type`, `pg_get_constraintdef`, `pg_get_indexdef`,
//! `pg_get_viewdef`). Objects that belong to extensions, and strata's own tables, are
//! left out.

use std::collections::BTreeMap;

use strata_core::schema::{Column, Constraint, ConstraintKind, Index, Schema, Table, View};
use strata_core::DriverError;
use tokio_postgres::Client;

use super::exec::db_error;

/// Schemas of user objects: not the system's, not temporary ones.
const USER_NS: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'";
/// Not created by an extension.
const NOT_EXT: &str =
    "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = {oid} AND d.deptype = 'e')";

fn not_ext(oid: &str) -> String {
    NOT_EXT.replace("{oid}", oid)
}

/// `name` in `public`, `schema.name` elsewhere.
fn qualify(ns: &str, name: &str) -> String {
    if ns == "public" {
        name.to_string()
    } else {
        format!("{ns}.{name}")
    }
}

/// The schema without strata's own tables (`own`, as (schema, table)) and, when strata
/// has a schema of its own (`own_schema`), without that schema.
pub(super) async fn introspect(
    c: &Client,
    own: &[(String, String)],
    own_schema: Option<&str>,
) -> Result<Schema, DriverError> {
    let q = |sql: String| async move { c.query_typed(&sql, &[]).await.map_err(|e| db_error(&e)) };
    let mut s = Schema::default();
    let is_own = |ns: &str, name: &str| own.iter().any(|(os, o)| os == ns && o == name);

    for r in q(format!(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND {USER_NS} AND {}",
        not_ext("c.oid")
    ))
    .await?
    {
        let (ns, name): (String, String) = (r.get(0), r.get(1));
        if !is_own(&ns, &name) {
            s.tables.insert(qualify(&ns, &name), Table::default());
        }
    }
    for r in q(format!(
        "SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, \
         pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
         WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p') AND {USER_NS} ORDER BY n.nspname, c.relname, a.attnum"
    ))
    .await?
    {
        let table = qualify(&r.get::<_, String>(0), &r.get::<_, String>(1));
        if let Some(t) = s.tables.get_mut(&table) {
            t.columns.push(Column {
                name: r.get(2),
                data_type: r.get(3),
                nullable: !r.get::<_, bool>(4),
                default: r.get(5),
            });
        }
    }
    for r in q(format!(
        "SELECT n.nspname, c.relname, k.conname, k.contype::text, pg_get_constraintdef(k.oid) FROM pg_constraint k \
         JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {USER_NS}"
    ))
    .await?
    {
        let table = qualify(&r.get::<_, String>(0), &r.get::<_, String>(1));
        let kind = match r.get::<_, String>(3).as_str() {
            "p" => ConstraintKind::PrimaryKey,
            "u" => ConstraintKind::Unique,
            "c" => ConstraintKind::Check,
            "f" => ConstraintKind::ForeignKey,
            "x" => ConstraintKind::Exclusion,
            _ => continue, // constraint triggers, NOT NULL (PG 18) ...
        };
        if let Some(t) = s.tables.get_mut(&table) {
            t.constraints.insert(
                r.get(2),
                Constraint {
                    kind,
                    definition: r.get(4),
                },
            );
        }
    }
    for r in q(format!(
        "SELECT n.nspname, t.relname, ic.relname, i.indisunique, pg_get_indexdef(i.indexrelid) FROM pg_index i \
         JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE {USER_NS} AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid)"
    ))
    .await?
    {
        let table = qualify(&r.get::<_, String>(0), &r.get::<_, String>(1));
        if let Some(t) = s.tables.get_mut(&table) {
            t.indexes.insert(
                r.get(2),
                Index {
                    unique: r.get(3),
                    definition: r.get(4),
                },
            );
        }
    }
    for r in q(format!(
        "SELECT n.nspname, c.relname, c.relkind = 'm', pg_get_viewdef(c.oid) FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('v', 'm') AND {USER_NS} AND {}",
        not_ext("c.oid")
    ))
    .await?
    {
        s.views.insert(
            qualify(&r.get::<_, String>(0), &r.get::<_, String>(1)),
            View {
                materialized: r.get(2),
                definition: r.get::<_, String>(3).trim().to_string(),
            },
        );
    }
    let mut enums: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in q(format!(
        "SELECT n.nspname, t.typname, e.enumlabel FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid \
         JOIN pg_namespace n ON n.oid = t.typnamespace WHERE {USER_NS} AND {} ORDER BY n.nspname, t.typname, e.enumsortorder",
        not_ext("t.oid")
    ))
    .await?
    {
        enums
            .entry(qualify(&r.get::<_, String>(0), &r.get::<_, String>(1)))
            .or_default()
            .push(r.get(2));
    }
    s.enums = enums;
    // The rest, by name: enough to see that a rollback left one behind.
    let others = [
        format!(
            "SELECT 'function ' || n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')' \
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE {USER_NS} AND {}",
            not_ext("p.oid")
        ),
        format!(
            "SELECT 'trigger ' || t.tgname || ' on ' || n.nspname || '.' || c.relname FROM pg_trigger t \
             JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT t.tgisinternal AND {USER_NS}"
        ),
        format!(
            "SELECT 'sequence ' || n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind = 'S' AND {USER_NS} AND {}",
            not_ext("c.oid")
        ),
        "SELECT 'extension ' || extname FROM pg_extension WHERE extname <> 'plpgsql'".to_string(),
        format!(
            "SELECT 'type ' || n.nspname || '.' || t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
             WHERE t.typtype IN ('c', 'd', 'r') AND {USER_NS} AND {} \
             AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = t.typrelid AND c.relkind <> 'c')",
            not_ext("t.oid")
        ),
        format!(
            "SELECT 'schema ' || n.nspname FROM pg_namespace n WHERE {USER_NS} AND n.nspname <> 'public' AND {}",
            not_ext("n.oid")
        ),
    ];
    for sql in others {
        for r in q(sql).await? {
            let name: String = r.get(0);
            // strata's own tables bring their id sequences.
            if own
                .iter()
                .any(|(ns, o)| name.ends_with(&format!(" {ns}.{o}_id_seq")))
                || own_schema.is_some_and(|o| name == format!("schema {o}"))
            {
                continue;
            }
            s.other.insert(name);
        }
    }
    Ok(s)
}
