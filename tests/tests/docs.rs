//! The user documentation in `docs/` against what the code creates and reports. A fresh
//! install's schema `pitstop` (functions, views, tables, event triggers), which functions
//! are revoked from PUBLIC or SECURITY DEFINER, which views pg_monitor may read, every
//! `pitstop.*` setting with its default and context, every bypass reason of the result cache
//! and every metric family the daemon exports must each have their entry in docs/, and every
//! entry there must name something that exists. The links of README.md and docs/ must
//! resolve, to a heading where they name one, and never leave the repository.

use pitstop_tests::markdown::{
    cells, first_cell, is_table_row, lines_outside_code, repo_file, span_names,
};
use pitstop_tests::query::first_column;
use pitstop_tests::{poll_until, ClusterOptions, Daemon, DaemonConfig, PgCluster};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

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
    let counted: BTreeSet<String> = first_column(
        &mut db,
        "SELECT jsonb_object_keys(bypass_reasons) FROM pitstop.cache_stats()",
        &[],
    );
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
