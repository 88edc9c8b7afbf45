//! The placeholders of pitstop's query files (`sql/queries/*.sql`): `{name}` for a value the
//! extension finds at run time (`{pgss}`, `{pgstattuple}`: a quoted schema or object), and the
//! predicates that pick out pitstop's own statements (`{own_statement}`) and relations
//! (`{own_relation:EXPR}`).

const OWN_RELATION: &str = include_str!("../../sql/queries/own_relation.sql");

/// The predicate over a pg_stat_statements row `s` that is true for pitstop's own statements
/// and the statements pitstop runs inside functions (see the file for the rule).
pub const OWN_STATEMENT: &str = include_str!("../../sql/queries/own_statement.sql");

/// `sql` with every `{name}` replaced by `value`.
pub fn fill(sql: &str, name: &str, value: &str) -> String {
    sql.replace(&format!("{{{name}}}"), value)
}

/// `sql` with each `{own_relation:EXPR}` replaced by the predicate of own_relation.sql over the
/// relation oid EXPR. One left unclosed stays as written, and the statement fails to parse.
pub fn with_own_relation(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(start) = rest.find("{own_relation:") {
        let after = &rest[start + "{own_relation:".len()..];
        let Some(end) = after.find('}') else { break };
        out.push_str(&rest[..start]);
        out.push_str(&OWN_RELATION.replace("{rel}", &after[..end]));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_relation_is_filled_in_for_each_expression_and_an_unclosed_one_is_left_alone() {
        let sql = with_own_relation("a {own_relation:t.oid} b {own_relation:f.conrelid} c");
        assert!(!sql.contains("{own_relation:") && !sql.contains("{rel}"), "{sql}");
        assert!(
            sql.contains("t.oid")
                && sql.contains("f.conrelid")
                && sql.starts_with("a ")
                && sql.ends_with(" c"),
            "{sql}"
        );
        assert_eq!(with_own_relation("x {own_relation:t.oid"), "x {own_relation:t.oid");
    }

    #[test]
    fn pgstattuple_files_use_the_one_placeholder_syntax() {
        for sql in [
            include_str!("../../sql/queries/table_bloat_pgstattuple.sql"),
            include_str!("../../sql/queries/table_bloat_pgstatindex.sql"),
        ] {
            let filled = fill(sql, "pgstattuple", "\"My Schema\"");
            assert!(filled.contains("FROM \"My Schema\".pgstat"), "{filled}");
            assert!(!filled.contains('@') && !filled.contains("{pgstattuple}"), "{filled}");
        }
    }
}
