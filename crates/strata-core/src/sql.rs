//! Splitting SQL scripts into statements.
//!
//! Written here rather than taken from a SQL parser crate because it must be lossless
//! and never refuse input: it only finds statement boundaries, and every byte between
//! them goes to the server untouched. Parsers such as `sqlparser` reject valid
//! PostgreSQL they do not know (plpgsql, new syntax) and re-print what they accept.
//!
//! It understands `--` and nested `/* */` comments, `'…'` strings (with `''`, and `E'…'`
//! backslash escapes), `"…"` and `` `…` `` identifiers, `$tag$…$tag$` dollar quoting,
//! parentheses, `BEGIN … END` bodies of `CREATE TRIGGER/FUNCTION/PROCEDURE` (SQLite
//! triggers, PostgreSQL `BEGIN ATOMIC`, MySQL procedures), goose's
//! `-- +goose StatementBegin` / `StatementEnd` blocks, and the MySQL client's
//! `DELIMITER $$` lines (which change the terminator and belong to no statement).
//!
//! [`Dialect::MySql`] lexes as MySQL does: backslash escapes in `'…'` and `"…"`, `#`
//! line comments, no dollar quoting (`$` is an identifier character), and `/*! … */`
//! version comments counted as statement text (mysqldump's `/*!40101 SET … */;` runs).

use std::ops::Range;

/// One statement: its byte range in the script, without the terminating `;`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    pub range: Range<usize>,
}

impl Statement {
    pub fn text<'a>(&self, script: &'a str) -> &'a str {
        &script[self.range.clone()]
    }
}

/// White space as SQL engines lex it: ASCII white space and vertical tab (which
/// `is_ascii_whitespace` leaves out; a lone `\x0b` once came back as a statement).
pub fn is_space(c: u8) -> bool {
    c.is_ascii_whitespace() || c == 0x0b
}

/// How a script is lexed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    /// PostgreSQL and SQLite (and anything else).
    #[default]
    Standard,
    MySql,
}

/// Splits a script into statements, skipping empty ones (only comments or white space).
pub fn split(sql: &str) -> Vec<Statement> {
    split_dialect(sql, Dialect::Standard)
}

/// [`split`] for a given SQL dialect.
pub fn split_dialect(sql: &str, dialect: Dialect) -> Vec<Statement> {
    let mut s = Splitter::new(sql);
    s.mysql = dialect == Dialect::MySql;
    s.run()
}

/// A statement's identity for `--resume`: 16 hex digits of the SHA-256 of its text
/// with surrounding white space trimmed and CRLF read as LF. Fixed forever: stored
/// hashes are compared with it.
pub fn statement_hash(text: &str) -> String {
    use sha2::{Digest, Sha256};
    let norm = text.trim().replace("\r\n", "\n");
    hex::encode(&Sha256::digest(norm.as_bytes())[..8])
}

/// True for a statement that can share a transaction with its progress record, so a
/// crash leaves it and the record both done or both undone, never in doubt: data
/// changes and queries. DDL, `CREATE INDEX CONCURRENTLY`, `VACUUM` and the like cannot.
pub fn commits_with_progress(text: &str) -> bool {
    matches!(
        leading_words(text, 1).first().map(String::as_str),
        Some("INSERT" | "UPDATE" | "DELETE" | "REPLACE" | "MERGE" | "SELECT" | "WITH" | "VALUES")
    )
}

/// The first statement of `script` that no engine runs inside a transaction, as
/// (what it is, its 1-based line in `script`): PostgreSQL refuses `CREATE/DROP INDEX
/// CONCURRENTLY`, `REINDEX … CONCURRENTLY`, `VACUUM`, `CREATE/DROP DATABASE`,
/// `ALTER SYSTEM`, `CREATE/DROP TABLESPACE` and `CREATE/DROP SUBSCRIPTION` in one;
/// SQLite refuses `VACUUM`; MySQL commits implicitly before `CREATE/DROP DATABASE`.
/// A script without any of the words is not split (most are not).
pub fn outside_transaction(script: &str) -> Option<(&'static str, usize)> {
    let lower = script.to_ascii_lowercase();
    let maybe = [
        "concurrently",
        "vacuum",
        "database",
        "system",
        "tablespace",
        "subscription",
    ]
    .iter()
    .any(|w| lower.contains(w));
    if !maybe {
        return None;
    }
    split(script).iter().find_map(|s| {
        let text = s.text(script);
        let w = leading_words(text, 6);
        let word = |i: usize| w.get(i).map(String::as_str).unwrap_or("");
        let what = match (word(0), word(1)) {
            ("CREATE", "INDEX") if word(2) == "CONCURRENTLY" => "CREATE INDEX CONCURRENTLY",
            ("CREATE", "UNIQUE") if word(2) == "INDEX" && word(3) == "CONCURRENTLY" => {
                "CREATE INDEX CONCURRENTLY"
            }
            ("DROP", "INDEX") if word(2) == "CONCURRENTLY" => "DROP INDEX CONCURRENTLY",
            ("REINDEX", _) if w.iter().any(|x| x == "CONCURRENTLY") => "REINDEX CONCURRENTLY",
            ("VACUUM", _) => "VACUUM",
            ("CREATE" | "DROP", "DATABASE") => "CREATE/DROP DATABASE",
            ("ALTER", "SYSTEM") => "ALTER SYSTEM",
            ("CREATE" | "DROP", "TABLESPACE") => "CREATE/DROP TABLESPACE",
            ("CREATE" | "DROP", "SUBSCRIPTION") => "CREATE/DROP SUBSCRIPTION",
            _ => return None,
        };
        let line = script[..s.range.start + code_start(text)]
            .matches('\n')
            .count()
            + 1;
        Some((what, line))
    })
}

/// Where a statement's code starts, past its leading white space and comments.
pub fn code_start(text: &str) -> usize {
    let mut rest = text;
    loop {
        let trimmed = rest.trim_start();
        if let Some(after) = trimmed.strip_prefix("--") {
            rest = after.split_once('\n').map(|(_, r)| r).unwrap_or("");
        } else if let Some(after) = trimmed.strip_prefix("/*") {
            rest = after.split_once("*/").map(|(_, r)| r).unwrap_or("");
        } else {
            return text.len() - trimmed.len();
        }
    }
}

/// The first `n` words of a statement, upper-cased, after its leading comments.
pub fn leading_words(text: &str, n: usize) -> Vec<String> {
    let mut rest = text;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_ascii() && is_space(c as u8));
        if let Some(r) = rest.strip_prefix("--").or_else(|| rest.strip_prefix('#')) {
            rest = r.split_once('\n').map_or("", |(_, r)| r);
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r.split_once("*/").map_or("", |(_, r)| r);
        } else {
            break;
        }
    }
    rest.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .take(n)
        .map(str::to_ascii_uppercase)
        .collect()
}

/// True for a statement that begins, commits or aborts a transaction (`BEGIN`,
/// `START TRANSACTION`, `COMMIT`, `END`, `ROLLBACK` but not `ROLLBACK TO SAVEPOINT`,
/// `ABORT`): inside a migration strata runs in a transaction, it would commit part of
/// the migration without its history row.
pub fn is_transaction_control(text: &str) -> bool {
    let w = leading_words(text, 2);
    let second = w.get(1).map(String::as_str);
    match w.first().map(String::as_str) {
        Some("BEGIN") => matches!(
            second,
            None | Some(
                "TRANSACTION"
                    | "WORK"
                    | "ISOLATION"
                    | "READ"
                    | "NOT"
                    | "DEFERRED"
                    | "IMMEDIATE"
                    | "EXCLUSIVE"
            )
        ),
        Some("START") => second == Some("TRANSACTION"),
        Some("COMMIT" | "END" | "ABORT") => {
            matches!(second, None | Some("TRANSACTION" | "WORK" | "AND"))
        }
        Some("ROLLBACK") => second != Some("TO"),
        _ => false,
    }
}

/// The first string, quoted identifier, block comment, dollar-quoted string or goose
/// `StatementBegin` block that `sql` leaves open, as (byte offset of its start, what
/// it is). Such a script would send everything after it to the server as one token
/// (an unclosed `/*` silently swallows the statements behind it).
pub fn unterminated(sql: &str, dialect: Dialect) -> Option<(usize, &'static str)> {
    let mut s = Splitter::new(sql);
    s.mysql = dialect == Dialect::MySql;
    s.lex().unterminated
}

/// Byte offsets of the `--` comments of `sql` that stand outside every string, quoted
/// identifier, dollar quote and block comment (lexed as PostgreSQL and SQLite do).
pub fn line_comment_starts(sql: &str) -> Vec<usize> {
    Splitter::new(sql).lex().line_comments
}

/// The index of the statement holding byte `offset`, if any.
pub fn statement_at(stmts: &[Statement], offset: usize) -> Option<usize> {
    // A position between statements belongs to the next one (leading comments).
    stmts
        .iter()
        .position(|s| offset < s.range.end + 1)
        .or(if stmts.is_empty() {
            None
        } else {
            Some(stmts.len() - 1)
        })
}

struct Splitter<'a> {
    s: &'a [u8],
    src: &'a str,
    i: usize,
    out: Vec<Statement>,
    /// Start of the first token of the current statement.
    start: Option<usize>,
    first_word: Option<String>,
    /// Set by a `DELIMITER x` line; `None` is `;`.
    delimiter: Option<String>,
    body_depth: usize,
    paren_depth: usize,
    goose_block: bool,
    goose_begin: usize,
    prev_word: String,
    mysql: bool,
    /// Byte offsets of the `--` comments outside every literal and block comment.
    line_comments: Vec<usize>,
    /// The first construct left open at the end of the script: (its start, what).
    unterminated: Option<(usize, &'static str)>,
}

impl<'a> Splitter<'a> {
    fn new(src: &'a str) -> Self {
        Splitter {
            s: src.as_bytes(),
            src,
            i: 0,
            out: Vec::new(),
            start: None,
            first_word: None,
            delimiter: None,
            body_depth: 0,
            paren_depth: 0,
            goose_block: false,
            goose_begin: 0,
            prev_word: String::new(),
            mysql: false,
            line_comments: Vec::new(),
            unterminated: None,
        }
    }

    fn mark(&mut self, at: usize) {
        if self.start.is_none() {
            self.start = Some(at);
        }
    }

    fn finish(&mut self, end: usize) {
        if let Some(start) = self.start.take() {
            let mut e = end;
            while e > start && is_space(self.s[e - 1]) {
                e -= 1;
            }
            self.out.push(Statement { range: start..e });
        }
        self.first_word = None;
        self.body_depth = 0;
        self.paren_depth = 0;
        self.prev_word.clear();
    }

    fn run(self) -> Vec<Statement> {
        self.lex().out
    }

    fn left_open(&mut self, start: usize, what: &'static str) {
        if self.unterminated.is_none() {
            self.unterminated = Some((start, what));
        }
    }

    fn lex(mut self) -> Self {
        let n = self.s.len();
        while self.i < n {
            if let Some(d) = &self.delimiter {
                if self.s[self.i..].starts_with(d.as_bytes()) {
                    let len = d.len();
                    self.finish(self.i);
                    self.i += len;
                    continue;
                }
            }
            let c = self.s[self.i];
            match c {
                _ if self.start.is_none() && self.at_delimiter_line() => self.delimiter_line(),
                b'-' if self.peek(1) == Some(b'-') => {
                    self.line_comments.push(self.i);
                    let end = self.find_byte(b'\n').unwrap_or(n);
                    let comment = self.src[self.i..end].trim();
                    self.goose_marker(comment, end);
                    self.i = end;
                }
                b'#' if self.mysql => self.i = self.find_byte(b'\n').unwrap_or(n),
                b'/' if self.peek(1) == Some(b'*') => {
                    if self.mysql && self.peek(2) == Some(b'!') {
                        self.mark(self.i);
                    }
                    self.skip_block_comment();
                }
                b'\'' => {
                    self.mark(self.i);
                    let escapes = self.mysql
                        || (self.i > 0
                            && matches!(self.s[self.i - 1], b'e' | b'E')
                            && !self.ident_before(self.i - 1));
                    self.skip_quoted(b'\'', escapes);
                }
                b'"' | b'`' => {
                    self.mark(self.i);
                    self.skip_quoted(c, self.mysql && c == b'"');
                }
                b'$' if !self.mysql && self.dollar_tag().is_some() => {
                    self.mark(self.i);
                    let tag = self.dollar_tag().unwrap_or_default();
                    let body_start = self.i + tag.len();
                    self.i = match self.src[body_start..].find(&tag) {
                        Some(p) => body_start + p + tag.len(),
                        None => {
                            self.left_open(self.i, "dollar-quoted string");
                            n
                        }
                    };
                }
                b'(' => {
                    self.mark(self.i);
                    self.paren_depth += 1;
                    self.i += 1;
                }
                b')' => {
                    self.mark(self.i);
                    self.paren_depth = self.paren_depth.saturating_sub(1);
                    self.i += 1;
                }
                b';' => {
                    if self.delimiter.is_some() {
                        self.mark(self.i);
                        self.i += 1;
                    } else if self.goose_block || self.body_depth > 0 || self.paren_depth > 0 {
                        self.i += 1;
                    } else {
                        self.finish(self.i);
                        self.i += 1;
                    }
                }
                c if c.is_ascii_alphabetic() || c == b'_' => self.word(),
                c if is_space(c) => self.i += 1,
                _ => {
                    self.mark(self.i);
                    self.i += 1;
                }
            }
        }
        if self.goose_block {
            self.left_open(self.goose_begin, "`-- +goose StatementBegin` block");
        }
        self.finish(n);
        self
    }

    /// `DELIMITER <x>` (any case) where a statement could start.
    fn at_delimiter_line(&self) -> bool {
        let rest = &self.s[self.i..];
        rest.len() > 9
            && rest[..9].eq_ignore_ascii_case(b"DELIMITER")
            && matches!(rest[9], b' ' | b'\t')
    }

    /// Reads a `DELIMITER` line: the rest of the line is the new terminator.
    fn delimiter_line(&mut self) {
        let end = self.find_byte(b'\n').unwrap_or(self.s.len());
        let d = self.src[self.i + 9..end].trim();
        self.delimiter = (!d.is_empty() && d != ";").then(|| d.to_string());
        self.i = end;
    }

    fn peek(&self, k: usize) -> Option<u8> {
        self.s.get(self.i + k).copied()
    }

    fn find_byte(&self, b: u8) -> Option<usize> {
        self.s[self.i..]
            .iter()
            .position(|&x| x == b)
            .map(|p| self.i + p)
    }

    fn ident_before(&self, at: usize) -> bool {
        at > 0 && (self.s[at - 1].is_ascii_alphanumeric() || self.s[at - 1] == b'_')
    }

    fn goose_marker(&mut self, comment: &str, end: usize) {
        let lower = comment.to_ascii_lowercase();
        if lower.starts_with("-- +goose statementbegin") {
            self.goose_block = true;
            self.goose_begin = self.i;
        } else if lower.starts_with("-- +goose statementend") {
            self.goose_block = false;
            self.finish(self.i);
            self.i = end;
        }
    }

    fn skip_block_comment(&mut self) {
        // PostgreSQL nests block comments; MySQL ends one at the first `*/`.
        let mut depth = 0usize;
        let n = self.s.len();
        let start = self.i;
        while self.i < n {
            if self.s[self.i] == b'/' && self.peek(1) == Some(b'*') && !(self.mysql && depth > 0) {
                depth += 1;
                self.i += 2;
            } else if self.s[self.i] == b'*' && self.peek(1) == Some(b'/') {
                depth -= 1;
                self.i += 2;
                if depth == 0 {
                    return;
                }
            } else {
                self.i += 1;
            }
        }
        self.left_open(start, "block comment");
    }

    fn skip_quoted(&mut self, q: u8, backslash_escapes: bool) {
        let n = self.s.len();
        let start = self.i;
        self.i += 1;
        while self.i < n {
            let c = self.s[self.i];
            if backslash_escapes && c == b'\\' {
                self.i += 2;
                continue;
            }
            self.i += 1;
            if c == q {
                if self.s.get(self.i) == Some(&q) {
                    self.i += 1; // doubled quote
                } else {
                    return;
                }
            }
        }
        self.left_open(
            start,
            if q == b'\'' {
                "string"
            } else {
                "quoted identifier"
            },
        );
    }

    /// `$tag$` or `$$` at the cursor, if it opens a dollar-quoted string.
    fn dollar_tag(&self) -> Option<String> {
        if self.ident_before(self.i) {
            return None; // part of an identifier such as `a$b`
        }
        let rest = &self.s[self.i + 1..];
        let len = rest
            .iter()
            .position(|&b| !(b.is_ascii_alphanumeric() || b == b'_'))?;
        if rest[len] != b'$' || rest.first().is_some_and(|b| b.is_ascii_digit()) {
            return None; // `$1` parameters are not quotes
        }
        Some(self.src[self.i..self.i + len + 2].to_string())
    }

    fn word(&mut self) {
        let start = self.i;
        while self.i < self.s.len()
            && (self.s[self.i].is_ascii_alphanumeric() || matches!(self.s[self.i], b'_' | b'$'))
            && !self
                .delimiter
                .as_ref()
                .is_some_and(|d| self.s[self.i..].starts_with(d.as_bytes()))
        {
            self.i += 1;
        }
        self.mark(start);
        let w = self.src[start..self.i].to_ascii_uppercase();
        match &self.first_word {
            None => self.first_word = Some(w.clone()),
            Some(first) if first == "CREATE" => match w.as_str() {
                "BEGIN" => self.body_depth += 1,
                "CASE" if self.body_depth > 0 => self.body_depth += 1,
                "END" if self.body_depth > 0 => self.body_depth -= 1,
                // MySQL's END IF / END LOOP close blocks that were never counted.
                "IF" | "LOOP" | "WHILE" | "REPEAT" if self.prev_word == "END" => {
                    self.body_depth += 1
                }
                _ => {}
            },
            _ => {}
        }
        self.prev_word = w;
    }
}

#[cfg(test)]
mod transaction_control_tests {
    use super::*;

    #[test]
    fn finds_top_level_transaction_control_only() {
        for yes in [
            "BEGIN",
            "begin transaction",
            "-- c\nCOMMIT",
            "/* x */ START TRANSACTION",
            "END",
            "rollback",
            "ABORT",
            "BEGIN ISOLATION LEVEL SERIALIZABLE",
            "COMMIT WORK",
            "BEGIN IMMEDIATE",
        ] {
            assert!(is_transaction_control(yes), "{yes}");
        }
        for no in [
            "ROLLBACK TO SAVEPOINT a",
            "CREATE TABLE begin_x (a int)",
            "DO $$ BEGIN PERFORM 1; END $$",
            "BEGIN ATOMIC",
            "SELECT 1",
            "ending()",
            "COMMITTED",
        ] {
            assert!(!is_transaction_control(no), "{no}");
        }
    }
}

#[cfg(test)]
mod outside_transaction_tests {
    use super::*;

    #[test]
    fn finds_what_no_transaction_holds() {
        let cases = [
            (
                "CREATE TABLE a (id int);\n-- x\ncreate unique index concurrently i on a (id);",
                Some(("CREATE INDEX CONCURRENTLY", 3)),
            ),
            (
                "DROP INDEX CONCURRENTLY IF EXISTS i;",
                Some(("DROP INDEX CONCURRENTLY", 1)),
            ),
            (
                "REINDEX (VERBOSE) TABLE CONCURRENTLY a;",
                Some(("REINDEX CONCURRENTLY", 1)),
            ),
            ("/* c */ VACUUM (ANALYZE) a;", Some(("VACUUM", 1))),
            (
                "ALTER SYSTEM SET work_mem = '8MB';",
                Some(("ALTER SYSTEM", 1)),
            ),
            ("CREATE DATABASE x;", Some(("CREATE/DROP DATABASE", 1))),
            // Mentioned, not run: a string, a comment, a column named so.
            (
                "INSERT INTO log VALUES ('VACUUM later; CREATE DATABASE');",
                None,
            ),
            ("-- CREATE INDEX CONCURRENTLY i ON a (x);\nSELECT 1;", None),
            ("ALTER TABLE a ADD COLUMN concurrently int;", None),
            ("CREATE INDEX i ON a (x);", None),
        ];
        for (sql, want) in cases {
            assert_eq!(outside_transaction(sql), want, "{sql}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(sql: &str) -> Vec<&str> {
        split(sql).iter().map(|s| s.text(sql)).collect()
    }

    #[test]
    fn splits_simple_statements() {
        assert_eq!(
            texts("create table a(x int);\n-- c;\ninsert into a values (1);"),
            ["create table a(x int)", "insert into a values (1)"]
        );
        assert!(texts("-- only a comment\n/* and ; this */\n").is_empty());
        // Found by the fuzzer: vertical tab is white space.
        assert!(texts("\n\x0b\n\n").is_empty());
        assert_eq!(texts("\x0bSELECT 1;\x0b"), ["SELECT 1"]);
    }

    #[test]
    fn follows_mysql_delimiter_lines() {
        let sql = "CREATE TABLE t (a INT);\nDELIMITER $$\nCREATE PROCEDURE p()\nBEGIN\n  SELECT 1;\n  SELECT 2;\nEND$$\ndelimiter ;\nINSERT INTO t VALUES (1);\n";
        assert_eq!(
            texts(sql),
            [
                "CREATE TABLE t (a INT)",
                "CREATE PROCEDURE p()\nBEGIN\n  SELECT 1;\n  SELECT 2;\nEND",
                "INSERT INTO t VALUES (1)"
            ]
        );
        // A delimiter inside a string is text; `DELIMITER` mid-statement is a word.
        assert_eq!(
            texts("DELIMITER //\nSELECT '//' //\nSELECT delimiter FROM x//"),
            ["SELECT '//'", "SELECT delimiter FROM x"]
        );
    }

    #[test]
    fn mysql_lexes_backslashes_hashes_and_version_comments() {
        let sql = "INSERT INTO t VALUES ('it\\'s; fine', \"a\\\";b\");\n# a comment; here\n/*!40101 SET NAMES utf8 */;\nSELECT a$b FROM t;";
        let t: Vec<&str> = split_dialect(sql, Dialect::MySql)
            .iter()
            .map(|s| s.text(sql))
            .collect();
        assert_eq!(
            t,
            [
                "INSERT INTO t VALUES ('it\\'s; fine', \"a\\\";b\")",
                "/*!40101 SET NAMES utf8 */",
                "SELECT a$b FROM t"
            ]
        );
        // The standard dialect keeps PostgreSQL's reading of the same bytes.
        assert_eq!(texts("select '\\'; select 1;").len(), 2);
    }

    #[test]
    fn keeps_quotes_and_dollar_bodies_whole() {
        let sql = "select 'a;b', \"c;d\", E'x\\';y';\nCREATE FUNCTION f() RETURNS int AS $body$ BEGIN; select 1; END; $body$ LANGUAGE plpgsql;\nselect $$;$$;";
        let t = texts(sql);
        assert_eq!(t.len(), 3, "{t:?}");
        assert!(t[1].ends_with("LANGUAGE plpgsql"));
    }

    #[test]
    fn trigger_bodies_and_nested_comments() {
        let sql = "CREATE TRIGGER t AFTER INSERT ON a BEGIN UPDATE b SET n = CASE WHEN 1 THEN 2 END; DELETE FROM c; END;\n/* a /* nested */ ; */ select 1;";
        assert_eq!(texts(sql).len(), 2);
        let mysql =
            "CREATE PROCEDURE p() BEGIN IF 1 THEN SELECT 1; END IF; SELECT 2; END;\nSELECT 3;";
        assert_eq!(texts(mysql).len(), 2);
    }

    #[test]
    fn goose_blocks_are_one_statement() {
        let sql =
            "-- +goose StatementBegin\nselect 1; select 2;\n-- +goose StatementEnd\nselect 3;";
        assert_eq!(texts(sql).len(), 2);
    }

    #[test]
    fn begin_transaction_is_not_a_body() {
        assert_eq!(texts("BEGIN; select 1; COMMIT;").len(), 3);
    }

    #[test]
    fn statement_at_maps_offsets() {
        let sql = "select 1;\nselect 2;";
        let st = split(sql);
        assert_eq!(statement_at(&st, 0), Some(0));
        assert_eq!(statement_at(&st, 12), Some(1));
    }
}
