//! Other migration tools' histories, so a database one of them manages can be taken
//! over (`strata adopt`) instead of migrated again from the start.
//!
//! Each tool's table is read as the tool documents it; nothing is ever written to it,
//! so the team can still go back to the tool. What each table means:
//!
//! | tool | table | applied |
//! |---|---|---|
//! | diesel | `__diesel_schema_migrations(version)` | every row (version without dashes) |
//! | sqlx | `_sqlx_migrations(version, success)` | rows with `success`; a failed one is refused |
//! | golang-migrate | `schema_migrations(version, dirty)` | every version up to the one row's; `dirty` is refused |
//! | Flyway | `flyway_schema_history(version, success)` | versioned rows with `success`; a failed one is refused |
//! | dbmate | `schema_migrations(version)` | every row |
//! | goose | `goose_db_version(version_id, is_applied)` | each version's latest row, when applied |
//! | refinery | `refinery_schema_history(version)` | every row |
//! | Prisma | `_prisma_migrations(migration_name, finished_at, rolled_back_at)` | finished, not rolled back; unfinished is refused |

use crate::driver::Driver;
use crate::error::{DriverError, DriverErrorKind};
use crate::migration::Migration;

/// Another tool's history found in the database.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Foreign {
    /// `diesel`, `sqlx`, `golang-migrate`, `flyway`, `dbmate`, `goose`, `refinery`, `prisma`.
    pub tool: &'static str,
    pub table: &'static str,
    /// What it records as applied: versions, or (Prisma) migration directory names.
    pub applied: Vec<String>,
    /// golang-migrate records only the last version: every one up to it is applied.
    pub up_to: Option<String>,
    /// A failed or dirty state, with what to do about it: adoption is refused.
    pub problem: Option<String>,
}

impl Foreign {
    /// How many migrations it says are applied (golang-migrate: counted on `migrations`).
    pub fn count(&self, migrations: &[Migration]) -> usize {
        match &self.up_to {
            Some(v) => migrations
                .iter()
                .filter(|m| at_or_below(m.version.as_str(), v))
                .count(),
            None => self.applied.len(),
        }
    }

    /// How many of the migrations here it has applied: an unrelated table of the same
    /// name (Rails' `schema_migrations`, say) matches none.
    pub fn overlap(&self, migrations: &[Migration]) -> usize {
        match &self.up_to {
            // Its version must be one of ours, or the table records another tree.
            Some(v)
                if migrations
                    .iter()
                    .any(|m| same_version(m.version.as_str(), v)) =>
            {
                self.count(migrations)
            }
            Some(_) => 0,
            None => migrations
                .iter()
                .filter(|m| {
                    self.applied.iter().any(|v| {
                        if self.tool == "prisma" {
                            m.id == *v
                        } else {
                            same_version(m.version.as_str(), v)
                        }
                    })
                })
                .count(),
        }
    }

    /// The migrations it has applied, or an error naming what it applied that no file
    /// here is.
    pub fn matching<'m>(&self, migrations: &'m [Migration]) -> Result<Vec<&'m Migration>, String> {
        if let Some(v) = &self.up_to {
            if !migrations
                .iter()
                .any(|m| same_version(m.version.as_str(), v))
            {
                return Err(format!(
                    "{} is at version {v}, and no migration here has that version",
                    self.tool
                ));
            }
            return Ok(migrations
                .iter()
                .filter(|m| at_or_below(m.version.as_str(), v))
                .collect());
        }
        self.applied
            .iter()
            .map(|v| {
                migrations
                    .iter()
                    .find(|m| {
                        if self.tool == "prisma" {
                            m.id == *v
                        } else {
                            same_version(m.version.as_str(), v)
                        }
                    })
                    .ok_or_else(|| {
                        format!(
                            "{} has applied {v}, and no migration here is {v}",
                            self.tool
                        )
                    })
            })
            .collect()
    }
}

/// The other tools' histories in the database (usually none or one).
pub async fn detect(d: &mut dyn Driver) -> Result<Vec<Foreign>, DriverError> {
    let tables_sql = match d.kind() {
        "sqlite" => "SELECT name FROM sqlite_master WHERE type = 'table'",
        "mysql" => {
            "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()"
        }
        _ => {
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        }
    };
    let Some(rows) = d.query_text(tables_sql).await? else {
        return Ok(vec![]);
    };
    let tables: Vec<String> = rows
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .map(|t| t.to_ascii_lowercase())
        .collect();
    let has = |t: &str| tables.iter().any(|x| x == t);
    let mut found = Vec::new();
    if has("__diesel_schema_migrations") {
        let v = column(d, "SELECT version FROM __diesel_schema_migrations").await?;
        found.push(plain("diesel", "__diesel_schema_migrations", v));
    }
    if has("_sqlx_migrations") {
        let rows = read(
            d,
            "SELECT version, success FROM _sqlx_migrations ORDER BY version",
        )
        .await?;
        let failed = rows.iter().find(|r| !truthy(cell(r, 1)));
        let mut f = plain(
            "sqlx",
            "_sqlx_migrations",
            rows.iter()
                .filter(|r| truthy(cell(r, 1)))
                .map(|r| cell(r, 0).to_string())
                .collect(),
        );
        f.problem = failed.map(|r| format!("sqlx recorded version {} as failed: fix the database by hand, then delete that row (sqlx migrate would retry it)", cell(r, 0)));
        found.push(f);
    }
    if has("schema_migrations") {
        // golang-migrate's has `dirty`; dbmate's only `version`; strata's own (an
        // earlier layout) has `checksum` and is not another tool's.
        if let Ok(rows) = read(d, "SELECT version, dirty FROM schema_migrations").await {
            let row = rows.first();
            found.push(Foreign {
                tool: "golang-migrate",
                table: "schema_migrations",
                applied: vec![],
                up_to: row.map(|r| cell(r, 0).to_string()),
                problem: row.filter(|r| truthy(cell(r, 1))).map(|r| {
                    format!("golang-migrate is dirty at version {}: a migration failed halfway; fix the database, then `migrate force VERSION`", cell(r, 0))
                }),
            });
        } else if read(d, "SELECT checksum FROM schema_migrations WHERE 1 = 0")
            .await
            .is_err()
        {
            let v = column(d, "SELECT version FROM schema_migrations").await?;
            found.push(plain("dbmate", "schema_migrations", v));
        }
    }
    if has("flyway_schema_history") {
        let rows = read(d, "SELECT version, success FROM flyway_schema_history WHERE version IS NOT NULL ORDER BY installed_rank").await?;
        let failed = rows.iter().find(|r| !truthy(cell(r, 1)));
        let mut f = plain(
            "flyway",
            "flyway_schema_history",
            rows.iter()
                .filter(|r| truthy(cell(r, 1)))
                .map(|r| cell(r, 0).to_string())
                .collect(),
        );
        f.problem = failed.map(|r| {
            format!(
                "Flyway recorded version {} as failed: fix the database, then `flyway repair`",
                cell(r, 0)
            )
        });
        found.push(f);
    }
    if has("goose_db_version") {
        let rows = read(
            d,
            "SELECT version_id, is_applied FROM goose_db_version ORDER BY id",
        )
        .await?;
        // The latest row of each version says whether it is applied; version 0 is
        // goose's own first row.
        let mut state: Vec<(String, bool)> = Vec::new();
        for r in &rows {
            let v = cell(r, 0).to_string();
            let on = truthy(cell(r, 1));
            match state.iter_mut().find(|(x, _)| *x == v) {
                Some(s) => s.1 = on,
                None => state.push((v, on)),
            }
        }
        let applied = state
            .into_iter()
            .filter(|(v, on)| *on && v != "0")
            .map(|(v, _)| v)
            .collect();
        found.push(plain("goose", "goose_db_version", applied));
    }
    if has("refinery_schema_history") {
        let v = column(
            d,
            "SELECT version FROM refinery_schema_history ORDER BY version",
        )
        .await?;
        found.push(plain("refinery", "refinery_schema_history", v));
    }
    if has("_prisma_migrations") {
        let rows = read(d, "SELECT migration_name, finished_at, rolled_back_at FROM _prisma_migrations ORDER BY started_at").await?;
        let unfinished = rows.iter().find(|r| {
            r.get(1).cloned().flatten().is_none() && r.get(2).cloned().flatten().is_none()
        });
        let mut f = plain(
            "prisma",
            "_prisma_migrations",
            rows.iter()
                .filter(|r| {
                    r.get(1).cloned().flatten().is_some() && r.get(2).cloned().flatten().is_none()
                })
                .map(|r| cell(r, 0).to_string())
                .collect(),
        );
        f.problem = unfinished.map(|r| format!("Prisma recorded {} as started but not finished: fix the database, then `prisma migrate resolve`", cell(r, 0)));
        found.push(f);
    }
    Ok(found)
}

fn plain(tool: &'static str, table: &'static str, applied: Vec<String>) -> Foreign {
    Foreign {
        tool,
        table,
        applied,
        up_to: None,
        problem: None,
    }
}

async fn read(d: &mut dyn Driver, sql: &str) -> Result<Vec<Vec<Option<String>>>, DriverError> {
    d.query_text(sql)
        .await?
        .ok_or_else(|| DriverError::new(DriverErrorKind::Other, "this database has no SQL"))
}

async fn column(d: &mut dyn Driver, sql: &str) -> Result<Vec<String>, DriverError> {
    Ok(read(d, sql)
        .await?
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .collect())
}

fn cell(r: &[Option<String>], i: usize) -> &str {
    r.get(i).and_then(|c| c.as_deref()).unwrap_or("")
}

/// A boolean as each engine prints it: `t`, `true`, `1`.
fn truthy(s: &str) -> bool {
    matches!(s.to_ascii_lowercase().as_str(), "t" | "true" | "1")
}

/// Versions as the tools write them: `2019-09-12-150000` is diesel's `20190912150000`,
/// Flyway's `1.1` is `1.01`'s equal, `00001` is goose's `1`.
pub fn same_version(a: &str, b: &str) -> bool {
    match (numeric(a), numeric(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn at_or_below(v: &str, limit: &str) -> bool {
    matches!((numeric(v), numeric(limit)), (Some(x), Some(y)) if x <= y)
}

/// Dot-separated numbers, dashes dropped, leading zeros ignored.
fn numeric(v: &str) -> Option<Vec<u128>> {
    let v = v.replace('-', "");
    let parts: Option<Vec<u128>> = v.split('.').map(|p| p.parse::<u128>().ok()).collect();
    let mut parts = parts?;
    while parts.len() > 1 && parts.last() == Some(&0) {
        parts.pop();
    }
    Some(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_as_their_tools_write_them() {
        assert!(same_version("2019-09-12-150000", "20190912150000"));
        assert!(same_version("00001", "1"));
        assert!(same_version("1.1", "1.01"));
        assert!(same_version("2", "2.0"));
        assert!(!same_version("1.1", "1.10"));
        assert!(!same_version("10", "1"));
        assert!(at_or_below("3", "30") && !at_or_below("31", "30"));
    }
}
