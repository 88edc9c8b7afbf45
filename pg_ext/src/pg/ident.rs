//! SQL identifiers in the DDL pitstop suggests, quoted as PostgreSQL's own quote_identifier()
//! does: only when needed, and always for a keyword the grammar does not take as a bare name
//! (`order`, `user`, `group`…), so every suggestion parses. Pure: no catalog, no unsafe.

/// Keywords that are not unreserved (reserved, column-name and type/function-name keywords):
/// PostgreSQL 15's kwlist.h, plus those later majors added (quoting one more is harmless).
const NOT_UNRESERVED: &[&str] = &[
    "all", "analyse",
    "analyze", "and", "any", "array", "as", "asc", "asymmetric", "authorization", "between",
    "bigint", "binary", "bit", "boolean", "both", "case", "cast", "char", "character", "check",
    "coalesce", "collate", "collation", "column", "concurrently", "constraint", "create",
    "cross", "current_catalog", "current_date", "current_role", "current_schema",
    "current_time", "current_timestamp", "current_user", "dec", "decimal", "default",
    "deferrable", "desc", "distinct", "do", "else", "end", "except", "exists", "extract",
    "false", "fetch", "float", "for", "foreign", "freeze", "from", "full", "grant", "greatest",
    "group", "grouping", "having", "ilike", "in", "initially", "inner", "inout", "int",
    "integer", "intersect", "interval", "into", "is", "isnull", "join", "lateral", "leading",
    "least", "left", "like", "limit", "localtime", "localtimestamp", "national", "natural",
    "nchar", "none", "normalize", "not", "notnull", "null", "nullif", "numeric", "offset",
    "on", "only", "or", "order", "out", "outer", "overlaps", "overlay", "placing", "position",
    "precision", "primary", "real", "references", "returning", "right", "row", "select",
    "session_user", "setof", "similar", "smallint", "some", "substring", "symmetric", "table",
    "tablesample", "then", "time", "timestamp", "to", "trailing", "treat", "trim", "true",
    "union", "unique", "user", "using", "values", "varchar", "variadic", "verbose", "when",
    "where", "window", "with", "xmlattributes", "xmlconcat", "xmlelement", "xmlexists",
    "xmlforest", "xmlnamespaces", "xmlparse", "xmlpi", "xmlroot", "xmlserialize", "xmltable",
    // Added after PostgreSQL 15.
    "json", "json_array", "json_arrayagg", "json_exists", "json_object", "json_objectagg", "json_query",
    "json_scalar", "json_serialize", "json_table", "json_value", "merge_action", "system_user",
];

/// `ident` as SQL: bare when it is lower case letters, digits and underscores (not first a
/// digit) and no keyword that needs quoting; else in double quotes, inner quotes doubled.
pub fn quote_ident(ident: &str) -> String {
    let plain = ident.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && ident.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !NOT_UNRESERVED.contains(&ident);
    if plain {
        ident.to_string()
    } else {
        format!("\"{}\"", ident.replace('"', "\"\""))
    }
}

#[cfg(test)]
mod tests {
    use super::quote_ident;

    #[test]
    fn keywords_and_unusual_names_are_quoted_plain_names_are_not() {
        for (name, quoted) in [
            ("customer_id", "customer_id"),
            ("_x1", "_x1"),
            ("order", "\"order\""),
            ("user", "\"user\""),
            ("group", "\"group\""),
            ("select", "\"select\""),
            ("timestamp", "\"timestamp\""),
            ("Mixed", "\"Mixed\""),
            ("1st", "\"1st\""),
            ("a\"b", "\"a\"\"b\""),
            ("", "\"\""),
        ] {
            assert_eq!(quote_ident(name), quoted, "{name}");
        }
        // Unreserved keywords are names like any other, as PostgreSQL prints them.
        for name in ["name", "status", "value", "data", "type", "comment"] {
            assert_eq!(quote_ident(name), name);
        }
    }
}
