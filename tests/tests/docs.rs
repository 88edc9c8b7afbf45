//! The user documentation in `docs/` against what the code creates and reports. A fresh
//! install's schema `pitstop` (functions, views, tables, event triggers), which functions
//! are revoked from PUBLIC or SECURITY DEFINER, which views pg_monitor may read, every
//! `pitstop.*` setting with its default and context, every bypass reason of the result cache
//! and every metric family the daemon exports must each have their entry in docs/, and every
//! entry there must name something that exists. The links of README.md and docs/ must
//! resolve, to a heading where they name one, and never leave the repository.

use pitstop_tests::{poll_until, ClusterOptions, Daemon, DaemonConfig, PgCluster};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

fn read_repo_file(path: &str) -> Option<String> {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)).ok()
}

fn repo_file(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("read {}: {e}", full.display()))
}

/// The identifier each code span of `text` starts with: `cached(query text, …)` → `cached`,
/// `pitstop.cache_size` → `pitstop.cache_size`, `pitstop_build_info{version}` →
/// `pitstop_build_info`.
fn span_names(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(|span| {
            span.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
                .collect::<String>()
        })
        .filter(|name| !name.is_empty())
        .collect()
}

/// The markdown lines of `doc`, with whether each is inside a fenced code block.
fn lines_outside_code(doc: &str) -> Vec<(bool, &str)> {
    let mut fenced = false;
    doc.lines()
        .map(|line| {
            if line.starts_with("```") {
                fenced = !fenced;
                return (true, line);
            }
            (fenced, line)
        })
        .collect()
}

fn is_table_row(line: &str) -> bool {
    line.starts_with("| ") && !line.starts_with("|---")
}

fn first_cell(row: &str) -> &str {
    row.split('|').nth(1).unwrap_or("")
}

fn cells(row: &str) -> Vec<&str> {
    row.split('|').skip(1).map(str::trim).collect()
}

/// The names a doc gives an entry of their own: the code spans of headings and of the first
/// cell of table rows.
fn entry_names(doc: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (fenced, line) in lines_outside_code(doc) {
        if fenced {
            continue;
        }
        if line.starts_with('#') {
            names.extend(span_names(line));
        } else if is_table_row(line) {
            names.extend(span_names(first_cell(line)));
        }
    }
    names
}

/// The entry of `name` in `doc`: the table row whose first cell, or the section whose heading,
/// names it in code; else the paragraph that first names it in code.
fn entry(doc: &str, name: &str) -> Option<String> {
    let lines = lines_outside_code(doc);
    for (i, (fenced, line)) in lines.iter().enumerate() {
        if *fenced {
            continue;
        }
        if line.starts_with('#') && span_names(line).iter().any(|n| n == name) {
            let section = lines[i..]
                .iter()
                .enumerate()
                .take_while(|(j, (fenced, l))| *j == 0 || *fenced || !l.starts_with('#'))
                .map(|(_, (_, l))| *l)
                .collect::<Vec<_>>();
            return Some(section.join("\n"));
        }
        if is_table_row(line) && span_names(first_cell(line)).iter().any(|n| n == name) {
            return Some(line.to_string());
        }
    }
    doc.split("\n\n")
        .find(|paragraph| span_names(paragraph).iter().any(|n| n == name))
        .map(str::to_string)
}

fn section<'a>(doc: &'a str, heading: &str) -> &'a str {
    let start = doc.find(heading).unwrap_or_else(|| panic!("no section {heading:?}"));
    let rest = &doc[start + heading.len()..];
    let level = heading.chars().take_while(|c| *c == '#').count();
    let end = rest
        .match_indices('\n')
        .map(|(i, _)| i + 1)
        .find(|&i| {
            let hashes = rest[i..].chars().take_while(|c| *c == '#').count();
            hashes > 0 && hashes <= level && rest[i..].chars().nth(hashes) == Some(' ')
        })
        .unwrap_or(rest.len());
    &rest[..end]
}

#[test]
fn every_object_of_the_schema_is_documented_with_who_may_use_it() {
    let (_cluster, mut db) = PgCluster::with_extension("");
    let doc = repo_file("docs/sql-reference.md");
    let security = repo_file("docs/security.md");
    let mut problems = Vec::new();
    // The schema itself (the page's title names it).
    let mut existing = BTreeSet::from(["pitstop".to_string()]);

    let functions = db
        .query(
            "SELECT p.proname::text, p.prosecdef,
                    NOT EXISTS (SELECT 1 FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                                WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE')
             FROM pg_proc p WHERE p.pronamespace = 'pitstop'::regnamespace ORDER BY 1",
            &[],
        )
        .unwrap();
    assert!(functions.len() > 30, "only {} functions in schema pitstop", functions.len());
    let definer_doc: BTreeSet<String> = section(&security, "## SECURITY DEFINER functions")
        .lines()
        .filter(|l| is_table_row(l))
        .flat_map(|l| span_names(first_cell(l)))
        .collect();
    let mut definers = BTreeSet::new();
    for row in &functions {
        let (name, definer, revoked): (String, bool, bool) = (row.get(0), row.get(1), row.get(2));
        existing.insert(name.clone());
        if definer {
            definers.insert(name.clone());
        }
        match entry(&doc, &name) {
            None => problems.push(format!("function {name} is not in docs/sql-reference.md")),
            Some(text) if text.contains("revoked") != revoked => problems.push(format!(
                "function {name}: EXECUTE {} revoked from PUBLIC, its entry says otherwise:\n{text}",
                if revoked { "is" } else { "is not" }
            )),
            Some(_) => {}
        }
    }
    if definers != definer_doc {
        problems.push(format!(
            "SECURITY DEFINER functions are {definers:?}, docs/security.md lists {definer_doc:?}"
        ));
    }

    let relations = db
        .query(
            "SELECT c.relname::text, c.relkind::text, has_table_privilege('pg_monitor', c.oid, 'SELECT')
             FROM pg_class c WHERE c.relnamespace = 'pitstop'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm') ORDER BY 1",
            &[],
        )
        .unwrap();
    for row in &relations {
        let (name, kind, monitor): (String, String, bool) = (row.get(0), row.get(1), row.get(2));
        existing.insert(name.clone());
        match entry(&doc, &name) {
            None => problems.push(format!("relation {name} is not in docs/sql-reference.md")),
            // Views are what monitoring roles read: the entry says whether they may.
            Some(text) if kind == "v" && text.contains("`pg_monitor`") != monitor => {
                problems.push(format!(
                    "view {name}: pg_monitor {} SELECT, its entry says otherwise:\n{text}",
                    if monitor { "has" } else { "has no" }
                ))
            }
            Some(_) => {}
        }
    }

    let event_triggers = db
        .query("SELECT evtname::text FROM pg_event_trigger WHERE evtname LIKE 'pitstop%'", &[])
        .unwrap();
    assert!(!event_triggers.is_empty(), "no event trigger installed");
    for row in &event_triggers {
        let name: String = row.get(0);
        if !span_names(&doc).contains(&name) {
            problems.push(format!("event trigger {name} is not in docs/sql-reference.md"));
        }
        existing.insert(name);
    }

    let settings = db.query("SELECT name, context, current_setting(name) FROM pg_settings WHERE name LIKE 'pitstop.%' ORDER BY 1", &[]).unwrap();
    assert!(
        settings.len() >= 10,
        "only {} pitstop settings (is pitstop preloaded?)",
        settings.len()
    );
    let rows = section(&doc, "## Settings");
    for row in &settings {
        let (name, context, shown): (String, String, String) = (row.get(0), row.get(1), row.get(2));
        existing.insert(name.clone());
        let wanted_context = match context.as_str() {
            "user" => "any user",
            "superuser" => "superuser",
            "postmaster" => "server start",
            other => other,
        };
        match rows.lines().find(|l| is_table_row(l) && span_names(first_cell(l)) == [name.clone()])
        {
            None => problems.push(format!(
                "setting {name} is not in the settings table of docs/sql-reference.md"
            )),
            Some(line) => {
                let c = cells(line);
                if !c[1].contains(&format!("`{shown}`")) || c[2] != wanted_context {
                    problems.push(format!("setting {name}: default `{shown}`, context {wanted_context}; documented as:\n{line}"));
                }
            }
        }
    }

    for name in entry_names(&doc) {
        if !existing.contains(&name) {
            problems.push(format!("docs/sql-reference.md has an entry for {name}, which a fresh install does not create"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

#[test]
fn every_bypass_reason_the_cache_counts_is_documented() {
    let (_cluster, mut db) = PgCluster::with_extension("");
    let counted: BTreeSet<String> = db
        .query("SELECT jsonb_object_keys(bypass_reasons) FROM pitstop.cache_stats()", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(counted.len() > 10, "only {counted:?}");
    let doc = repo_file("docs/cache.md");
    let documented: BTreeSet<String> = section(&doc, "## Bypass reasons")
        .lines()
        .filter(|l| is_table_row(l))
        .flat_map(|l| span_names(first_cell(l)))
        .collect();
    assert_eq!(
        documented, counted,
        "the bypass reasons of docs/cache.md against those cache_stats() reports"
    );
}

#[test]
fn every_metric_the_daemon_exports_is_documented() {
    let (cluster, _db) = PgCluster::with_extension("");
    let config =
        DaemonConfig::new(&cluster.dsn(), "").set("monitor", "sample_interval = \"200ms\"");
    let daemon = Daemon::start(&config.toml(), &[]);
    let sampled = poll_until(Duration::from_secs(20), || {
        let (_, body) = daemon.get("/metrics");
        body.contains("# TYPE pitstop_host_cpu_usage_ratio ")
            && body.contains("# TYPE pitstop_postgres_connections ")
    });
    let (_, body) = daemon.get("/metrics");
    assert!(sampled, "no host and PostgreSQL samples on /metrics:\n{body}");
    let exported: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();

    let doc = repo_file("docs/daemon.md");
    let documented: BTreeSet<String> = span_names(&doc)
        .into_iter()
        .filter(|n| n.starts_with("pitstop_") || n.starts_with("process_"))
        .collect();
    let missing: Vec<&&str> = exported.iter().filter(|name| !documented.contains(**name)).collect();
    assert!(missing.is_empty(), "/metrics exports {missing:?}, which docs/daemon.md does not name");

    // Families that appear only when something is sampled (growth, replication) cannot all be
    // seen here: a documented name must at least be one the daemon's code writes.
    let mut sources = String::new();
    let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("../daemon/src")];
    while let Some(dir) = dirs.pop() {
        for file in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = file.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                sources.push_str(&std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let unknown: Vec<&String> =
        documented.iter().filter(|name| !sources.contains(&format!("\"{name}\""))).collect();
    assert!(
        unknown.is_empty(),
        "docs/daemon.md names metrics the daemon does not export: {unknown:?}"
    );
}

/// The extension's members as (name, kind): the functions, views, tables and types of schema
/// `pitstop` and its event triggers, which docs/sql-objects.md maps; any other member as
/// "other" (a kind of object the map has no place for). Sequences of serial columns go with
/// their tables; pgrx's `#[pg_test]` functions (schema `tests`, test builds only) are left out.
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

/// A heading's anchor as GitHub makes it: lower case, punctuation dropped, spaces to hyphens.
fn anchor_of(heading: &str) -> String {
    heading
        .trim_start_matches('#')
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[test]
fn links_of_the_readme_and_docs_resolve_inside_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().unwrap();
    let mut pages = vec!["README.md".to_string()];
    let mut docs: Vec<String> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            e.file_name().to_str().filter(|n| n.ends_with(".md")).map(|n| format!("docs/{n}"))
        })
        .collect();
    docs.sort();
    pages.extend(docs);
    let mut problems = Vec::new();
    let mut links = 0;
    for page in &pages {
        let text = repo_file(page);
        for (i, _) in text.match_indices("](") {
            let Some(target) =
                text[i + 2..].split(')').next().filter(|t| !t.contains(char::is_whitespace))
            else {
                continue;
            };
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            links += 1;
            let (path, anchor) = target.split_once('#').unwrap_or((target, ""));
            let file = if path.is_empty() {
                root.join(page)
            } else {
                root.join(page).parent().unwrap().join(path)
            };
            let Ok(file) = file.canonicalize() else {
                problems.push(format!("{page}: {target} does not exist"));
                continue;
            };
            if !file.starts_with(&root) {
                problems.push(format!("{page}: {target} points outside the repository"));
                continue;
            }
            if !anchor.is_empty() {
                let headings = std::fs::read_to_string(&file).unwrap_or_default();
                let found = lines_outside_code(&headings)
                    .iter()
                    .any(|(fenced, l)| !fenced && l.starts_with('#') && anchor_of(l) == anchor);
                if !found {
                    problems
                        .push(format!("{page}: {target} names no heading of {}", file.display()));
                }
            }
        }
    }
    assert!(links > 20, "only {links} links found");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The README's statement that preloads pitstop, run as written on a server that preloads
/// nothing, and the server restarted: both libraries load (a single `'a,b'` literal would name
/// one library "a,b" and the server would not start).
#[test]
fn the_readmes_preload_statement_starts_the_server_with_both_libraries() {
    let readme = repo_file("README.md");
    let install = readme
        .split("\n## Install on an existing server\n")
        .nth(1)
        .expect("README: no install section");
    let statement = install
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("ALTER SYSTEM SET shared_preload_libraries"))
        .expect("README: no ALTER SYSTEM");
    let cluster =
        PgCluster::start_with(ClusterOptions { preload: Vec::new(), settings: Vec::new() });
    cluster.connect().batch_execute(statement).unwrap_or_else(|e| panic!("{statement}: {e}"));
    cluster.restart();
    let mut c = cluster.connect();
    let loaded: String = c.query_one("SHOW shared_preload_libraries", &[]).unwrap().get(0);
    assert_eq!(loaded, "pg_stat_statements, pitstop");
    // pitstop's settings exist only when its library is loaded.
    c.query_one("SHOW pitstop.slow_query_ms", &[]).expect("pitstop is preloaded");
}
