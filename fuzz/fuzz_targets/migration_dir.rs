//! Every migration-file and manifest parser, through the one entry point users hit:
//! a directory of files. The input is cut at NUL bytes into files; the first byte of
//! each piece picks the file's name from the layouts strata reads. Reading may fail
//! with a `SourceError`, never panic, and what it reads must be usable.
#![no_main]

use libfuzzer_sys::fuzz_target;

const NAMES: &[&str] = &[
    "001_a.sql",
    "001_a.down.sql",
    "002_b.up.sql",
    "002_b.down.sql",
    "003_c.json",
    "003_c.sql",
    "003_c_rollback.sql",
    "V4__d.sql",
    "U4__d.sql",
    "R__e.sql",
    "migration_config.yaml",
    "strata.sum",
    "2024-01-01-000000_f/up.sql",
    "2024-01-01-000000_f/down.sql",
    "2024-01-01-000000_f/metadata.toml",
    "1528395834/up.sql",
    "1528395834/metadata.yaml",
    "V0005.G.up.sql",
    "20240101120000_h.sql",
];

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("tempdir");
    for piece in data.split(|b| *b == 0).take(8) {
        let Some((&pick, body)) = piece.split_first() else {
            continue;
        };
        let path = dir.path().join(NAMES[pick as usize % NAMES.len()]);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }
    match strata_core::read_dir(dir.path()) {
        Err(e) => {
            // Errors render, and point at a line that exists when they name one.
            let _ = e.to_string();
        }
        Ok(src) => {
            for m in &src.migrations {
                for script in std::iter::once(&m.up).chain(m.down.as_ref()) {
                    // Nothing changed the files: every script reads back and passes its hash.
                    let sql = script.text().expect("an unchanged file reads back");
                    for s in strata_core::sql::split(&sql) {
                        let _ = s.text(&sql);
                    }
                    let _ = script.line_at(&sql, sql.len());
                }
            }
            let _ = strata_core::sum::render(&src.migrations);
            let _ = strata_core::order(src.migrations.clone());
        }
    }
});
