//! `embed_migrations!("dir")`: reads a migrations directory at build time with the same
//! reader the CLI uses, so a bad file is a compile error naming file and line, and
//! expands to a `strata::EmbeddedMigrations` holding every script and its checksum.
//!
//! Written without syn/quote: the input is one string literal and the output is data,
//! so a formatted string parsed into tokens is all it takes.

#![deny(missing_docs)]

use proc_macro::TokenStream;
use std::path::PathBuf;

use strata_core::{Format, MigrationKind};

/// `embed_migrations!("dir")` (default `migrations`, relative to `Cargo.toml`): the directory's migrations and checksums, read at build time, as a `strata::EmbeddedMigrations`. A bad file is a compile error naming it.
#[proc_macro]
pub fn embed_migrations(input: TokenStream) -> TokenStream {
    match expand(&input.to_string()) {
        Ok(code) => code.parse().expect("generated code parses"),
        Err(message) => format!("::core::compile_error!({message:?})")
            .parse()
            .expect("compile_error parses"),
    }
}

fn expand(input: &str) -> Result<String, String> {
    let raw = input.trim();
    let rel = if raw.is_empty() {
        "migrations".to_string()
    } else {
        raw.strip_prefix('"')
            .and_then(|r| r.strip_suffix('"'))
            .ok_or("embed_migrations! takes a string literal: the migrations directory")?
            .replace("\\\\", "\\")
    };
    let root = std::env::var("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_default();
    let dir = root.join(&rel);
    if !dir.is_dir() {
        return Err(format!(
            "embed_migrations!: {} is not a directory",
            dir.display()
        ));
    }
    let source = strata_core::read_dir(&dir).map_err(|e| format!("embed_migrations!: {e}"))?;
    let mut includes = String::new();
    let mut out = String::from("::strata::EmbeddedMigrations::new(::strata::Embedded { dir: ");
    out.push_str(&format!("{rel:?}, migrations: &["));
    for m in &source.migrations {
        let path = m.up.path.display().to_string();
        // Recompile when a file changes (new files need a build script's
        // `cargo:rerun-if-changed=migrations`, as with every embedding macro).
        if m.up.path.is_file() {
            includes.push_str(&format!("const _: &str = ::core::include_str!({path:?});"));
        }
        let text = |s: &strata_core::Script| {
            s.text()
                .map(|t| t.into_owned())
                .map_err(|e| format!("embed_migrations!: {e}"))
        };
        let up = text(&m.up)?;
        let down = m.down.as_ref().map(text).transpose()?;
        let deps: Vec<String> = m
            .dependencies
            .iter()
            .map(|d| format!("{:?}", d.target))
            .collect();
        out.push_str(&format!(
            "::strata::EmbeddedMigration {{ id: {:?}, version: {:?}, name: {:?}, description: {:?}, \
             repeatable: {}, format: {:?}, up: {:?}, down: {:?}, checksum: {:?}, transactional: {}, \
             dependencies: &[{}], timeout_ms: {:?}, path: {:?} }},",
            m.id,
            m.version.as_str(),
            m.name,
            m.description,
            m.kind == MigrationKind::Repeatable,
            if m.format == Format::Operations { "operations" } else { "sql" },
            up,
            down,
            m.checksum.as_str(),
            m.transactional,
            deps.join(", "),
            m.timeout.map(|t| t.as_millis() as u64),
            path.strip_prefix(&format!("{}/", root.display())).unwrap_or(&path),
        ));
    }
    out.push_str("] })");
    Ok(format!("{{ {includes} {out} }}"))
}
