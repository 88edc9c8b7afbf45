//! docs/sql-objects.md, the map of SQL objects to the files that define them, against an
//! installed extension's members (pg_depend) and the code.

use pitstop_tests::markdown::{
    cells, first_cell, is_table_row, lines_outside_code, read_repo_file, repo_file, span_names,
};
use pitstop_tests::PgCluster;
use std::collections::BTreeSet;

/// The extension's members as (name, kind): the functions, views, tables and types of schema
/// `pitstop` and its event triggers, which docs/sql-objects.md maps; any other member as
/// "other" (a kind of object the map has no place for). Sequences of serial columns, the row
/// types of tables and views and the array types (members too on PostgreSQL 17) go with what
/// they belong to; pgrx's `#[pg_test]` functions (schema `tests`, test builds only) are left
/// out.
const MEMBERS: &str = "
    WITH m AS (
        SELECT d.classid, d.objid FROM pg_depend d
        WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
          AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pitstop')),
    named AS (
        SELECT p.proname::text AS name, 'function' AS kind, p.pronamespace AS ns
        FROM m JOIN pg_proc p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid
        UNION ALL
        SELECT c.relname::text, CASE WHEN c.relkind IN ('v', 'm') THEN 'view'
                                     WHEN c.relkind IN ('r', 'p') THEN 'table'
                                     WHEN c.relkind = 'S' THEN 'sequence'
                                     ELSE 'relkind ' || c.relkind::text END, c.relnamespace
        FROM m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid
        UNION ALL
        SELECT t.typname::text, 'type', t.typnamespace
        FROM m JOIN pg_type t ON m.classid = 'pg_type'::regclass AND t.oid = m.objid
        WHERE NOT EXISTS (SELECT 1 FROM pg_type e WHERE e.typarray = t.oid)
          AND (t.typrelid = 0 OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
        UNION ALL
        SELECT e.evtname::text, 'event trigger', 'pitstop'::regnamespace
        FROM m JOIN pg_event_trigger e ON m.classid = 'pg_event_trigger'::regclass AND e.oid = m.objid)
    SELECT name, CASE WHEN ns = 'pitstop'::regnamespace THEN kind
                      ELSE 'other (' || kind || ' in schema ' || ns::regnamespace::text || ')' END
    FROM named WHERE ns::regnamespace::text <> 'tests' AND kind <> 'sequence'
    UNION ALL
    SELECT m.objid::text, 'other (' || m.classid::regclass::text || ')' FROM m
    WHERE m.classid NOT IN ('pg_proc'::regclass, 'pg_class'::regclass, 'pg_type'::regclass,
                            'pg_event_trigger'::regclass, 'pg_namespace'::regclass)";

/// `text` after `word` and the whitespace around it, when it starts with `word` (ASCII case
/// ignored).
fn after_word<'a>(text: &'a str, word: &str) -> Option<&'a str> {
    let text = text.trim_start();
    let head = text.get(..word.len())?;
    let rest = &text[word.len()..];
    let ends = rest.chars().next().is_none_or(|c| !c.is_ascii_alphanumeric() && c != '_');
    (head.eq_ignore_ascii_case(word) && ends).then_some(rest)
}

/// The statements of `text` that `CREATE [OR REPLACE] [MATERIALIZED] <kind> [IF NOT EXISTS]
/// [pitstop.]<name>`, each from its name on.
fn creates<'a>(text: &'a str, kind: &str, name: &str) -> Vec<&'a str> {
    let mut found = Vec::new();
    let lower = text.to_ascii_lowercase();
    for (at, _) in lower.match_indices("create") {
        if text[..at].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let Some(mut rest) = after_word(&text[at..], "create") else { continue };
        for optional in ["or replace", "materialized"] {
            let words = optional.split(' ').try_fold(rest, after_word);
            rest = words.unwrap_or(rest);
        }
        let Some(mut rest) = kind.split(' ').try_fold(rest, after_word) else { continue };
        rest = ["if", "not", "exists"].into_iter().try_fold(rest, after_word).unwrap_or(rest);
        let rest = rest.trim_start();
        let rest = rest.strip_prefix("pitstop.").unwrap_or(rest);
        let rest = rest.strip_prefix('"').unwrap_or(rest);
        if after_word(rest, name).is_some() || rest.starts_with(&format!("{name}(")) {
            found.push(rest);
        }
    }
    found
}

/// Whether `text` has a `#[pg_extern]` function `rust_fn` whose SQL name is `sql_name` (its
/// own name, or the attribute's `name = "…"`).
fn defines_pg_extern(text: &str, sql_name: &str, rust_fn: &str) -> bool {
    text.match_indices("#[pg_extern").any(|(at, _)| {
        let item = &text[at..];
        let Some(fn_at) = item.find("fn ") else { return false };
        let attributes = &item[..fn_at];
        let named = item[fn_at + 3..]
            .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .next()
            .is_some_and(|ident| ident == rust_fn);
        let sql_named = if attributes.contains("name = \"") {
            attributes.contains(&format!("name = \"{sql_name}\""))
        } else {
            rust_fn == sql_name
        };
        named && sql_named
    })
}

/// What the map's check takes for a definition, and what it does not.
#[test]
fn the_map_check_knows_a_definition_from_a_mention() {
    let sql = "CREATE OR REPLACE VIEW pitstop.v1 AS SELECT 1;\n\
               create materialized view if not exists v2 as select 1;\n\
               CREATE EVENT TRIGGER t1 ON ddl_command_end EXECUTE FUNCTION f1();\n\
               CREATE FUNCTION cached(q text) RETURNS void AS 'MODULE_PATHNAME', 'c_sym';\n\
               SELECT hypo_create('x'); -- CREATE VIEW mention_only\n";
    assert_eq!(creates(sql, "view", "v1").len(), 1);
    assert_eq!(creates(sql, "view", "v2").len(), 1);
    assert_eq!(creates(sql, "event trigger", "t1").len(), 1);
    assert!(creates(sql, "function", "cached")[0].contains("'c_sym'"));
    assert!(creates(sql, "view", "v").is_empty(), "a prefix of a name is not the name");
    assert!(creates(sql, "table", "v1").is_empty(), "another kind");
    assert!(creates(sql, "function", "f1").is_empty(), "a function only called");
    assert_eq!(creates(sql, "view", "mention_only").len(), 1, "comments are not parsed");

    let rust = "#[pg_extern]\nfn top_queries() {}\n\
                #[pg_extern(name = \"cache_stats\")]\npub fn stats_of_cache() {}\n\
                fn helper() {}\n";
    assert!(defines_pg_extern(rust, "top_queries", "top_queries"));
    assert!(defines_pg_extern(rust, "cache_stats", "stats_of_cache"));
    assert!(!defines_pg_extern(rust, "stats_of_cache", "stats_of_cache"), "its SQL name differs");
    assert!(!defines_pg_extern(rust, "helper", "helper"), "not a #[pg_extern]");
}

/// docs/sql-objects.md against the installed extension and the code: every function, view,
/// table, type and event trigger of the extension has a row and every row names one; each
/// row's file defines its object — the `#[pg_extern]` fn of that SQL name, or the `CREATE`
/// statement (for a hand-written C function, one naming the Rust symbol of the row, whose file
/// has that `fn`).
#[test]
fn the_sql_object_map_names_the_file_that_defines_each_object() {
    let (_cluster, mut db) = PgCluster::with_extension("");
    let members: BTreeSet<(String, String)> =
        db.query(MEMBERS, &[]).unwrap().iter().map(|r| (r.get(0), r.get(1))).collect();
    assert!(members.len() > 50, "only {} members: {members:?}", members.len());
    let mut problems: Vec<String> = members
        .iter()
        .filter(|(_, kind)| kind.starts_with("other") || kind.starts_with("relkind"))
        .map(|(name, kind)| format!("{name}, {kind}: a kind of object the map has no place for"))
        .collect();

    let doc = repo_file("docs/sql-objects.md");
    let mut mapped = BTreeSet::new();
    for (fenced, line) in lines_outside_code(&doc) {
        if fenced || !is_table_row(line) || span_names(first_cell(line)).is_empty() {
            continue;
        }
        let row = cells(line);
        let (name, kind) = (span_names(row[0])[0].clone(), row[1].to_string());
        let spans: Vec<&str> = row[3].split('`').skip(1).step_by(2).collect();
        let file = row[2].trim_matches('`');
        let Some(text) = read_repo_file(file) else {
            problems.push(format!("{kind} {name}: {file} does not exist"));
            continue;
        };
        let defined = match spans.as_slice() {
            [] => !creates(&text, &kind, &name).is_empty(),
            [rust_fn, rest @ ..] => {
                let rust_text = match rest {
                    [] => text.clone(),
                    [rust_file] => read_repo_file(rust_file).unwrap_or_default(),
                    _ => String::new(),
                };
                let has_fn = |t: &str| t.contains(&format!("fn {rust_fn}("));
                kind == "function"
                    && (defines_pg_extern(&text, &name, rust_fn) && rest.is_empty()
                        || creates(&text, "function", &name).iter().any(|statement| {
                            let statement = statement.split(';').next().unwrap_or("");
                            statement.contains(&format!("'{rust_fn}'"))
                        }) && has_fn(&rust_text))
            }
        };
        if !defined {
            problems
                .push(format!("{kind} {name}: {file} does not define it as the row says:\n{line}"));
        }
        if !mapped.insert((name.clone(), kind.clone())) {
            problems.push(format!("{kind} {name}: two rows"));
        }
    }
    for (name, kind) in members.difference(&mapped) {
        problems.push(format!(
            "{kind} {name} of the installed extension has no row in docs/sql-objects.md"
        ));
    }
    for (name, kind) in mapped.difference(&members) {
        problems.push(format!(
            "docs/sql-objects.md maps {kind} {name}, which a fresh install does not create"
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
