//! `diff --schema FILE`: the migrations applied to one scratch database, the declared
//! schema loaded into another, both introspected, and the SQL between them in each
//! direction (the new migration's up and down).

use crate::ddl;
use crate::error::{Error, Result};
use crate::event::Silent;
use crate::lint::Engine;
use crate::migration::Script;
use crate::migrator::{Migrator, RunOptions};
use crate::plan::Target;
use crate::schema::Schema;
use crate::verify::Scratch;

/// The up and down statements of the migration that turns what `m` builds into
/// `declared`; both empty when there is no difference.
pub async fn schema_diff(
    m: &Migrator,
    declared: &Script,
    scratch: &mut dyn Scratch,
    engine: Engine,
) -> Result<(Vec<String>, Vec<String>)> {
    let result = async {
        let mut d = scratch.fresh().await?;
        m.up(
            d.as_mut(),
            &Target::Head,
            &RunOptions::default(),
            &mut Silent,
        )
        .await?;
        let built = d.schema().await?;
        drop(d);
        let mut d = scratch.fresh().await?;
        d.run_script(declared).await?;
        let wanted = d.schema().await?;
        Ok((
            ddl::diff(&built, &wanted, engine),
            ddl::diff(&wanted, &built, engine),
        ))
    }
    .await;
    scratch.cleanup().await;
    result
}

/// `squash --to V`: the baseline (up and down) that builds, on an empty database, the
/// schema the migrations up to `target` build; checked by building it on a scratch
/// database. Refuses when that schema holds objects diff cannot write (functions,
/// triggers), which a baseline would silently lose.
pub async fn baseline(
    m: &Migrator,
    target: &Target,
    scratch: &mut dyn Scratch,
    engine: Engine,
) -> Result<(Vec<String>, Vec<String>)> {
    let result = async {
        let mut d = scratch.fresh().await?;
        m.up(d.as_mut(), target, &RunOptions::default(), &mut Silent)
            .await?;
        let built = d.schema().await?;
        drop(d);
        let lost = ddl::not_generated(&built);
        if !lost.is_empty() {
            return Err(Error::Refused(format!(
                "the schema up to {target} holds objects a baseline cannot reproduce: {}; keep them in a repeatable migration (R__name.sql) first",
                lost.join(", ")
            )));
        }
        let empty = Schema::default();
        let up = ddl::diff(&empty, &built, engine);
        let down = ddl::diff(&built, &empty, engine);
        let mut d = scratch.fresh().await?;
        let sql: String = up.iter().map(|s| format!("{s};\n")).collect();
        let script = Script::inline(sql, "baseline", 1);
        d.run_script(&script).await?;
        let rebuilt = d.schema().await?;
        let differs = rebuilt.changes_from(&built);
        if !differs.is_empty() {
            return Err(Error::Refused(format!(
                "the baseline would not rebuild the schema exactly: {}",
                differs.join("; ")
            )));
        }
        Ok((up, down))
    }
    .await;
    scratch.cleanup().await;
    result
}
