//! The statement splitter on any text: statements are in order, do not overlap, lie on
//! character boundaries, and every statement's start maps back to it; in both dialects.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    use strata_core::sql::Dialect;
    for dialect in [Dialect::Standard, Dialect::MySql] {
        check(sql, dialect);
    }
});

fn check(sql: &str, dialect: strata_core::sql::Dialect) {
    let stmts = strata_core::sql::split_dialect(sql, dialect);
    let mut end = 0;
    for (i, s) in stmts.iter().enumerate() {
        assert!(s.range.start >= end, "statements overlap");
        assert!(s.range.start <= s.range.end && s.range.end <= sql.len());
        assert!(sql.is_char_boundary(s.range.start) && sql.is_char_boundary(s.range.end));
        assert!(
            s.text(sql).bytes().any(|b| !strata_core::sql::is_space(b)),
            "an empty statement was returned"
        );
        assert_eq!(strata_core::sql::statement_at(&stmts, s.range.start), Some(i));
        end = s.range.end;
    }
}
