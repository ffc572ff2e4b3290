//! `diff --schema FILE`: the migrations applied to one scratch database, the declared
//! schema loaded into another, both introspected, and the SQL between them in each
//! direction (the new migration's up and down).

use crate::ddl;
use crate::error::Result;
use crate::event::Silent;
use crate::lint::Engine;
use crate::migration::Script;
use crate::migrator::{Migrator, RunOptions};
use crate::plan::Target;
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
