//! `strata.sum`: the directory's integrity file.
//!
//! ```text
//! h1:<sha256 of every line below>
//! 001_init h1:<chain>
//! 002_users h1:<chain>
//! ```
//! Each migration's line carries a chained hash: SHA-256 of the previous line's hash, the
//! migration id and the SHA-256 of its up and down scripts. Editing a migration changes
//! its line; inserting or reordering changes every line after it; editing the file by
//! hand breaks the first line. The hash algorithm is fixed forever, like checksums.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::SourceError;
use crate::migration::Migration;

/// The file name inside a migrations directory.
pub const SUM_FILE: &str = "strata.sum";

/// Each migration's id and chained hash. The scripts are read one at a time (they are
/// not held in memory), so this reads every file again.
fn entries(migrations: &[Migration]) -> Result<Vec<(String, String)>, SourceError> {
    let own = content_hashes(migrations)?;
    let mut prev = String::new();
    Ok(migrations
        .iter()
        .zip(own)
        .map(|(m, content)| {
            prev = chain(&prev, &m.id, &content);
            (m.id.clone(), prev.clone())
        })
        .collect())
}

/// SHA-256 of each migration's up and down scripts.
fn content_hashes(migrations: &[Migration]) -> Result<Vec<Vec<u8>>, SourceError> {
    migrations
        .iter()
        .map(|m| {
            let mut content = Sha256::new();
            content.update(m.up.text()?.replace("\r\n", "\n"));
            if let Some(d) = &m.down {
                content.update(b"\0down\0");
                content.update(d.text()?.replace("\r\n", "\n"));
            }
            Ok(content.finalize().to_vec())
        })
        .collect()
}

/// One line's hash: the previous line's, the id and the content hash.
fn chain(prev: &str, id: &str, content: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(id.as_bytes());
    h.update(content);
    hex::encode(h.finalize())
}

/// The text of `strata.sum` for these migrations (in plan order).
pub fn render(migrations: &[Migration]) -> Result<String, SourceError> {
    let body: String = entries(migrations)?
        .into_iter()
        .map(|(id, h)| format!("{id} h1:{h}\n"))
        .collect();
    Ok(format!(
        "h1:{}\n{body}",
        hex::encode(Sha256::digest(body.as_bytes()))
    ))
}

/// Writes `strata.sum` into `dir`.
pub fn write(dir: &Path, migrations: &[Migration]) -> Result<(), SourceError> {
    let path = dir.join(SUM_FILE);
    std::fs::write(&path, render(migrations)?)
        .map_err(|e| SourceError::new(&path, None, format!("cannot write: {e}")))
}

/// Checks `dir/strata.sum` against the migrations. `Ok(false)` when there is no sum file.
pub fn verify(dir: &Path, migrations: &[Migration]) -> Result<bool, SourceError> {
    match check(dir, migrations)? {
        Check::Absent => Ok(false),
        Check::Matches => Ok(true),
        Check::Edited(mut edits) => Err(edits.remove(0).1),
    }
}

/// What `strata.sum` says about the migrations.
pub enum Check {
    Absent,
    Matches,
    /// Only the content of these migrations changed (id and the error naming it), in
    /// order; the ids and their order agree. A migration edited after `strata create`
    /// and before it was applied anywhere is the usual case.
    Edited(Vec<(String, SourceError)>),
}

/// Like [`verify`], telling an edited migration from an inserted, removed or reordered
/// one (those, and a hand-edited file, are errors here).
pub fn check(dir: &Path, migrations: &[Migration]) -> Result<Check, SourceError> {
    let path = dir.join(SUM_FILE);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(Check::Absent);
    };
    let help = "run `strata sum` after a deliberate change; after a merge, renumber the newer migrations first";
    let mut lines = text.lines();
    let head = lines.next().unwrap_or("");
    let body: String = text.lines().skip(1).map(|l| format!("{l}\n")).collect();
    if head != format!("h1:{}", hex::encode(Sha256::digest(body.as_bytes()))) {
        return Err(SourceError::new(
            &path,
            Some(1),
            "strata.sum was edited by hand or is corrupt",
        )
        .with_help(help));
    }
    let want = entries(migrations)?;
    // Chained, so every line after an edit differs too: an edit is a migration whose
    // own content hash changed, found by recomputing the chain from the file's lines.
    let own = content_hashes(migrations)?;
    let mut edited = Vec::new();
    for (i, line) in text.lines().skip(1).enumerate() {
        let (id, _) = line.split_once(' ').unwrap_or((line, ""));
        match want.get(i) {
            Some((wid, wh)) if wid == id && line == format!("{wid} h1:{wh}") => continue,
            Some((wid, _)) if wid == id => {
                let prev = text
                    .lines()
                    .nth(i)
                    .filter(|_| i > 0)
                    .and_then(|l| l.rsplit_once(" h1:").map(|(_, h)| h.to_string()))
                    .unwrap_or_default();
                let recorded = line.rsplit_once(" h1:").map(|(_, h)| h).unwrap_or("");
                if chain(&prev, id, &own[i]) != recorded {
                    edited.push((
                        id.to_string(),
                        SourceError::new(&path, Some(i + 2), format!("migration {id} changed since strata.sum was written")).with_help(help),
                    ));
                }
            }
            Some((wid, _)) => {
                return Err(SourceError::new(&path, Some(i + 2), format!("strata.sum expects {id} here, the directory has {wid} (inserted, removed or reordered)")).with_help(help))
            }
            None => return Err(SourceError::new(&path, Some(i + 2), format!("migration {id} is in strata.sum but not in the directory")).with_help(help)),
        }
    }
    if let Some((id, _)) = want.get(text.lines().count().saturating_sub(1)) {
        return Err(
            SourceError::new(&path, None, format!("migration {id} is not in strata.sum"))
                .with_help(help),
        );
    }
    Ok(if edited.is_empty() {
        Check::Matches
    } else {
        Check::Edited(edited)
    })
}
