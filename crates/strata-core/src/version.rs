//! Migration versions and their ordering.
//!
//! A version is what a file name or a metadata key says (`001`, `20240101120000`,
//! `2019-09-12-150000`, `1.2.0`, `V1_1`), kept verbatim for display, plus a sort key:
//! - digit runs compare numerically (`9` < `10`, `001` == `1`), diesel's dashed
//!   timestamps (`2019-09-12-150000`) by their digits;
//! - in a diesel project (dashed versions, every version a timestamp) the source switches
//!   the whole directory to diesel's own order, the digits compared as text, so
//!   `2024-01-01-000000-0000` and `20250101000000` interleave as diesel does. The mode is
//!   per directory, never per pair, so the order stays total;
//! - dotted numbers (`1.2.0`, Flyway's `1.1`) compare component by component, and a
//!   semver pre-release (`1.0.0-beta`) sorts before its release;
//! - anything else compares as text.

use std::cmp::Ordering;
use std::fmt;

/// A migration version: the text the user wrote plus how it orders.
#[derive(Clone, Debug)]
pub struct Version {
    raw: String,
    key: Key,
}

#[derive(Clone, Debug)]
enum Key {
    /// Digit run without leading zeros (empty for zero).
    Number(String),
    /// Digits (dashes removed) compared as text: diesel's order.
    Lexical(String),
    /// Dotted numeric components with an optional pre-release tag.
    Dotted(Vec<String>, Option<String>),
    Text,
}

impl Version {
    /// Parses a version as written in a file name or metadata. Never fails: text that is
    /// not numeric orders lexically.
    pub fn new(raw: impl Into<String>) -> Self {
        let raw = raw.into();
        let key = Self::key_of(&raw);
        Version { raw, key }
    }

    fn key_of(raw: &str) -> Key {
        if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) {
            return Key::Number(strip_zeros(raw).to_string());
        }
        if Self::is_dashed(raw) {
            return Key::Number(strip_zeros(&raw.replace('-', "")).to_string());
        }
        let (main, pre) = match raw.split_once('-') {
            Some((m, p)) => (m, Some(p.to_string())),
            None => (raw, None),
        };
        let parts: Vec<&str> = main.split(['.', '_']).collect();
        if parts.len() > 1
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        {
            return Key::Dotted(
                parts.iter().map(|p| strip_zeros(p).to_string()).collect(),
                pre,
            );
        }
        Key::Text
    }

    /// A diesel timestamp such as `2019-09-12-150000`.
    pub fn is_dashed(raw: &str) -> bool {
        raw.contains('-')
            && raw.len() >= 10
            && raw.as_bytes()[0].is_ascii_digit()
            && raw.bytes().all(|b| b.is_ascii_digit() || b == b'-')
    }

    /// The same version in diesel's order (digits compared as text). Only for numeric versions.
    pub fn in_diesel_order(self) -> Self {
        match self.key {
            Key::Number(_) => Version {
                key: Key::Lexical(self.raw.replace('-', "")),
                raw: self.raw,
            },
            _ => self,
        }
    }

    /// The version exactly as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// True for a version made only of digits and dashes (a number or a timestamp).
    pub fn is_numeric(&self) -> bool {
        matches!(self.key, Key::Number(_) | Key::Lexical(_))
    }
}

fn strip_zeros(s: &str) -> &str {
    s.trim_start_matches('0')
}

fn cmp_numeric(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn cmp_components(a: &[String], b: &[String]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        match cmp_numeric(x, y) {
            Ordering::Equal => continue,
            o => return o,
        }
    }
    a.len().cmp(&b.len())
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        use Key::*;
        match (&self.key, &other.key) {
            (Number(a), Number(b)) => cmp_numeric(a, b),
            (Lexical(a), Lexical(b)) => a.cmp(b),
            (Lexical(a), Number(_)) => a.as_str().cmp(other.raw.replace('-', "").as_str()),
            (Number(_), Lexical(b)) => self.raw.replace('-', "").as_str().cmp(b.as_str()),
            (Dotted(a, pa), Dotted(b, pb)) => cmp_components(a, b).then_with(|| match (pa, pb) {
                (None, None) => Ordering::Equal,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some(x), Some(y)) => x.cmp(y),
            }),
            (Number(a), Dotted(b, _)) => cmp_components(std::slice::from_ref(a), b),
            (Dotted(a, _), Number(b)) => cmp_components(a, std::slice::from_ref(b)),
            _ => self.raw.cmp(&other.raw),
        }
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Version {}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl serde::Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(list: &[&str]) -> Vec<String> {
        let mut v: Vec<Version> = list.iter().map(|s| Version::new(*s)).collect();
        v.sort();
        v.iter().map(|v| v.to_string()).collect()
    }

    #[test]
    fn numbers_compare_numerically() {
        assert_eq!(
            sorted(&["10", "9", "001", "0100"]),
            ["001", "9", "10", "0100"]
        );
        assert_eq!(Version::new("001"), Version::new("1"));
    }

    #[test]
    fn diesel_versions_interleave_like_diesel() {
        let mut v: Vec<Version> = [
            "2024-01-01-000000-0000",
            "2019-09-12-150000",
            "00000000000000",
            "2025-01-01-000000",
            "20200101000000",
        ]
        .iter()
        .map(|s| Version::new(*s).in_diesel_order())
        .collect();
        v.sort();
        let got: Vec<String> = v.iter().map(|v| v.to_string()).collect();
        assert_eq!(
            got,
            [
                "00000000000000",
                "2019-09-12-150000",
                "20200101000000",
                "2024-01-01-000000-0000",
                "2025-01-01-000000"
            ]
        );
    }

    #[test]
    fn dashed_versions_are_numbers_outside_diesel_projects() {
        assert_eq!(
            sorted(&["2024-01-01-000000", "3", "20240102000000"]),
            ["3", "2024-01-01-000000", "20240102000000"]
        );
    }

    #[test]
    fn dotted_and_semver() {
        assert_eq!(
            sorted(&["1.10.0", "1.2.0", "1.2.0-beta", "1.1"]),
            ["1.1", "1.2.0-beta", "1.2.0", "1.10.0"]
        );
        assert_eq!(Version::new("1.0.0"), Version::new("1.0.0"));
        assert!(Version::new("2") > Version::new("1.5"));
    }
}
