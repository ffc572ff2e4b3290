//! One SQL file: header comments, directives and up/down sections (see [`super`] for
//! the format).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::error::SourceError;
use crate::migration::{Checksum, Dependency, Script};

/// What a SQL file says about itself.
#[derive(Debug, Default)]
pub(crate) struct SqlFile {
    pub up: Option<Script>,
    /// The checksum of the up script, taken while its text is at hand.
    pub checksum: Option<Checksum>,
    pub down: Option<Script>,
    /// `-- strata:baseline` in the header (written by `squash`).
    pub baseline: bool,
    pub description: Option<String>,
    pub header_migration: Option<(String, usize)>,
    pub dependencies: Vec<Dependency>,
    pub no_transaction: bool,
    /// `-- strata:transaction`: run in a transaction even when a statement looks as if
    /// it cannot.
    pub force_transaction: bool,
    /// The statement (and its line) that cannot run in a transaction, when no
    /// directive decides.
    pub outside_transaction: Option<String>,
    pub timeout: Option<Duration>,
}

#[derive(Clone, Copy, PartialEq)]
enum Section {
    Preamble,
    Up,
    Down,
}

/// Parses a SQL file's text. `path` is only used in errors and script locations.
pub(crate) fn parse(path: &Arc<Path>, text: &str) -> Result<SqlFile, SourceError> {
    let mut f = SqlFile::default();
    let mut section = Section::Preamble;
    let mut saw_up_marker = false;
    // (section, byte start of its text, 1-based first line)
    let mut up_start: (usize, usize) = (0, 1);
    let mut down_start: Option<(usize, usize)> = None;
    let mut up_end = text.len();
    let mut in_header = true;
    let mut offset = 0usize;
    // Top-level `--` comments, lexed only when a marker line needs checking.
    let mut top_level: Option<Vec<usize>> = None;
    // The line of a goose `StatementBegin` not yet closed.
    let mut goose_open: Option<usize> = None;

    for (idx, raw_line) in text.split_inclusive('\n').enumerate() {
        let lineno = idx + 1;
        let line_start = offset;
        offset += raw_line.len();
        let line = raw_line.trim();
        if line.is_empty() {
            continue;
        }
        let Some(comment) = line.strip_prefix("--") else {
            in_header = false;
            continue;
        };
        let body = comment.trim();
        let lower = body.to_ascii_lowercase();
        if lower.starts_with("+goose statementbegin") {
            goose_open = Some(lineno);
        } else if lower.starts_with("+goose statementend") && goose_open.take().is_none() {
            return Err(SourceError::new(
                path,
                Some(lineno),
                "`-- +goose StatementEnd` without a `StatementBegin` before it",
            ));
        }

        // Section markers, accepted anywhere.
        let marker =
            if lower == "strata:up" || lower.starts_with("migrate:up") || lower == "+goose up" {
                Some(Section::Up)
            } else if lower == "strata:down"
                || lower.starts_with("migrate:down")
                || lower == "+goose down"
            {
                Some(Section::Down)
            } else {
                None
            };
        if let Some(m) = marker {
            // A marker inside a string, dollar-quoted body or block comment is text: the
            // file cannot be cut there, and guessing would run a rollback as part of up.
            let dashes = line_start + (raw_line.len() - raw_line.trim_start().len());
            let lexed = top_level.get_or_insert_with(|| crate::sql::line_comment_starts(text));
            if lexed.binary_search(&dashes).is_err() {
                return Err(SourceError::new(
                    path,
                    Some(lineno),
                    format!("the section marker `--{comment}` stands inside a string, dollar-quoted body or block comment that an earlier line opened"),
                )
                .with_help("close the literal or comment before the marker (or, if the marker is meant as text, change its wording)"));
            }
            if m == Section::Up {
                if saw_up_marker || section == Section::Down {
                    return Err(SourceError::new(
                        path,
                        Some(lineno),
                        "a second up section marker",
                    ));
                }
                saw_up_marker = true;
                up_start = (offset, lineno + 1);
                if lower.contains("transaction:false") {
                    f.no_transaction = true;
                }
            } else {
                if down_start.is_some() {
                    return Err(SourceError::new(
                        path,
                        Some(lineno),
                        "a second down section marker",
                    ));
                }
                up_end = line_start;
                down_start = Some((offset, lineno + 1));
            }
            section = m;
            continue;
        }
        if lower == "+goose no transaction" || (lineno == 1 && lower == "no-transaction") {
            f.no_transaction = true;
            continue;
        }
        if let Some(directive) = lower.strip_prefix("strata:") {
            f.baseline |= in_header && directive.trim() == "baseline";
            directive_line(path, lineno, directive.trim(), &mut f)?;
            continue;
        }
        if in_header {
            header_line(path, lineno, body, &mut f)?;
        }
    }

    if let Some(line) = goose_open {
        return Err(SourceError::new(
            path,
            Some(line),
            "`-- +goose StatementBegin` without a `StatementEnd` after it",
        )
        .with_help("add `-- +goose StatementEnd` after the statement it wraps"));
    }
    if saw_up_marker && up_start.0 > up_end {
        up_end = up_start.0;
    }
    if !f.no_transaction && !f.force_transaction {
        f.outside_transaction = crate::sql::outside_transaction(&text[up_start.0..up_end])
            .map(|(what, line)| format!("{what} at line {}", up_start.1 + line - 1));
    }
    let (up, checksum) = Script::in_file_with_checksum(path, text, up_start.0..up_end, up_start.1);
    f.up = Some(up);
    f.checksum = Some(checksum);
    if let Some((start, line)) = down_start {
        f.down = Some(Script::in_file(path, text, start..text.len(), line));
    }
    Ok(f)
}

fn directive_line(
    path: &Path,
    lineno: usize,
    directive: &str,
    f: &mut SqlFile,
) -> Result<(), SourceError> {
    if directive == "no-transaction" {
        f.no_transaction = true;
    } else if directive == "transaction" {
        f.force_transaction = true;
    } else if directive == "baseline" {
        // Read into `SqlFile::baseline`: written by `squash`.
    } else if let Some(arg) = directive.strip_prefix("timeout") {
        f.timeout = Some(parse_duration(arg.trim()).ok_or_else(|| {
            SourceError::new(path, Some(lineno), format!("bad timeout `{}`", arg.trim()))
                .with_help("write a duration such as `-- strata:timeout 600s`, `10m` or `1h`")
        })?);
    } else {
        return Err(SourceError::new(path, Some(lineno), format!("unknown directive `strata:{directive}`"))
            .with_help("known directives: strata:up, strata:down, strata:no-transaction, strata:transaction, strata:timeout <duration>, strata:baseline"));
    }
    Ok(())
}

fn header_line(path: &Path, lineno: usize, body: &str, f: &mut SqlFile) -> Result<(), SourceError> {
    let Some((key, value)) = body.split_once(':') else {
        return Ok(());
    };
    let value = value.trim();
    match key.trim().to_ascii_lowercase().as_str() {
        "migration" => f.header_migration = Some((value.to_string(), lineno)),
        "description" => f.description = Some(value.to_string()),
        "depends" | "depends on" => {
            for dep in value.split(',') {
                let dep = dep.trim();
                if dep.is_empty()
                    || !dep
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-:".contains(c))
                {
                    return Err(SourceError::new(path, Some(lineno), format!("malformed `Depends:` header `{value}`"))
                        .with_help("list versions or migration ids separated by commas, e.g. `-- Depends: 001, 002`"));
                }
                f.dependencies.push(Dependency {
                    target: dep.to_string(),
                    path: path.to_path_buf(),
                    line: lineno,
                });
            }
        }
        "created" => {
            let ok = chrono::DateTime::parse_from_rfc3339(value).is_ok()
                || chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d").is_ok()
                || chrono::NaiveDateTime::parse_from_str(value, "%Y-%m-%d %H:%M:%S").is_ok();
            if !ok {
                return Err(SourceError::new(
                    path,
                    Some(lineno),
                    format!("malformed `Created:` header `{value}`"),
                )
                .with_help("use an RFC 3339 timestamp such as 2024-01-01T00:00:00Z"));
            }
        }
        _ => {}
    }
    Ok(())
}

/// `600`, `600s`, `10m`, `1h`, `500ms`.
pub(crate) fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    Some(match unit.trim() {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" | "min" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `text` written to a real file: scripts read their text from it.
    fn p(text: &str) -> (SqlFile, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path: Arc<Path> = Arc::from(dir.path().join("x.sql"));
        std::fs::write(&path, text).unwrap();
        (parse(&path, text).unwrap(), dir)
    }

    fn text(s: &Option<Script>) -> String {
        s.as_ref().unwrap().text().unwrap().into_owned()
    }

    #[test]
    fn up_and_down_sections() {
        let (f, _dir) = p(
            "-- Description: d\n-- strata:up\ncreate table a();\n-- strata:down\ndrop table a;\n",
        );
        assert_eq!(text(&f.up), "create table a();\n");
        assert_eq!(f.up.as_ref().unwrap().first_line, 3);
        assert_eq!(f.checksum, Some(Checksum::of("create table a();\n")));
        assert_eq!(text(&f.down), "drop table a;\n");
        assert_eq!(f.down.as_ref().unwrap().first_line, 5);
        assert_eq!(f.description.as_deref(), Some("d"));
        assert!(!f.baseline);
    }

    #[test]
    fn dbmate_and_goose_markers() {
        let (f, _d) = p("-- migrate:up transaction:false\ncreate index concurrently i on a(x);\n-- migrate:down\ndrop index i;\n");
        assert!(f.no_transaction);
        assert_eq!(text(&f.down), "drop index i;\n");
        let (g, _d) =
            p("-- +goose NO TRANSACTION\n-- +goose Up\nselect 1;\n-- +goose Down\nselect 2;\n");
        assert!(g.no_transaction);
        assert_eq!(text(&g.up), "select 1;\n");
    }

    #[test]
    fn an_edited_file_is_refused_not_run() {
        let (f, dir) = p("-- strata:baseline\ncreate table a();\n-- strata:down\ndrop table a;\n");
        assert!(f.baseline);
        std::fs::write(
            dir.path().join("x.sql"),
            "-- strata:baseline\ncreate table b();\n-- strata:down\ndrop table a;\n",
        )
        .unwrap();
        let e = f.up.as_ref().unwrap().text().unwrap_err();
        assert!(e.message.contains("changed"), "{e:?}");
        // The down section's bytes did not move or change.
        assert_eq!(text(&f.down), "drop table a;\n");
    }

    #[test]
    fn header_errors_name_the_line() {
        let x: Arc<Path> = Arc::from(Path::new("x.sql"));
        let e = parse(&x, "-- Depends: 001,\nselect 1;").unwrap_err();
        assert_eq!(e.line, Some(1));
        let e = parse(&x, "select 1;\n-- strata:tmeout 5s\n").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("unknown directive"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("600s"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("x"), None);
    }
}
