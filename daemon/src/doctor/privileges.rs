//! What the connecting role needs for each daemon task, derived from the statements the task
//! runs (relay/outbox.rs, monitor/store.rs and the monitor's sample query, maintenance/log.rs,
//! plan.rs, snapshot.rs, prune.rs), and the GRANT for whatever it lacks. Privileges come
//! through role membership too (pg_monitor reads the history tables), so each is checked with
//! the has_*_privilege functions rather than by reading ACLs.
//!
//! The HTTP side needs nothing beyond connecting: its probe reads pg_extension.

use super::server::Facts;
use super::Check;
use crate::config::maintenance::JobKind;
use crate::config::Config;
use tokio_postgres::Client;

pub const CHECKS: &[&str] = &["relay_privileges", "monitor_privileges", "maintenance_privileges"];

const PLAN_FUNCTION: &str = "pitstop.maintenance_plan(double precision, bigint, double precision, double precision, bigint)";

/// What the snapshot job calls first: it notes the suggested indexes built since
/// (sql/schema/index_effect.sql). It reads index_suggestions and query_snapshots and writes
/// only these columns of index_suggestions (the README grants just them).
const OBSERVE_FUNCTION: &str = "pitstop.index_suggestions_observe()";
pub const OBSERVE_WRITES: &[&str] = &[
    "index_oid",
    "index_name",
    "built_seen_at",
    "table_writes_at_seen",
    "before_until",
    "dropped_seen_at",
];

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Task {
    Relay,
    Monitor,
    Maintenance,
}

impl Task {
    const ALL: [Task; 3] = [Task::Relay, Task::Monitor, Task::Maintenance];

    fn check(self) -> &'static str {
        match self {
            Task::Relay => CHECKS[0],
            Task::Monitor => CHECKS[1],
            Task::Maintenance => CHECKS[2],
        }
    }
}

/// One thing a task's statements need.
#[derive(Debug, Clone, PartialEq)]
pub enum Need {
    /// The rights of a predefined role (through membership); `grant` is the role to grant.
    Role {
        role: &'static str,
        grant: &'static str,
        why: &'static str,
    },
    SchemaUsage(&'static str),
    Table {
        table: String,
        privileges: Vec<&'static str>,
    },
    /// `privilege` on each of `columns` of `table` (a grant on the whole table covers them).
    Columns {
        table: &'static str,
        privilege: &'static str,
        columns: &'static [&'static str],
    },
    SequenceUsage(&'static str),
    Execute(&'static str),
    /// VACUUM/ANALYZE (`reindex` false: the database owner may too) or REINDEX of every user
    /// table the plan may name: ownership, or MAINTAIN from PostgreSQL 17.
    Maintain {
        reindex: bool,
    },
}

/// What `task` needs under `config`; Err says why the task does not run.
pub fn needs(task: Task, config: &Config) -> Result<Vec<Need>, String> {
    let mut n = Vec::new();
    let stats = Need::Role {
        role: "pg_read_all_stats",
        grant: "pg_monitor",
        why: "other sessions' activity and statements",
    };
    match task {
        Task::Relay => {
            if let Some(reason) = config.relay_disabled_reason() {
                return Err(format!("the relay does not run ({reason})"));
            }
            n.push(Need::SchemaUsage("pitstop"));
            table(&mut n, "pitstop.invalidation_outbox", &["SELECT", "DELETE"]);
            table(&mut n, "pitstop.relay_state", &["SELECT", "INSERT", "UPDATE"]);
        }
        Task::Monitor => {
            if !config.monitor.enabled {
                return Err("the monitor does not run (monitor.enabled = false)".into());
            }
            n.push(stats);
            n.push(Need::SchemaUsage("pitstop"));
            table(&mut n, "pitstop.host_metrics", &["SELECT", "INSERT", "DELETE"]);
            table(&mut n, "pitstop.alerts", &["SELECT", "INSERT", "UPDATE"]);
            n.push(Need::SequenceUsage("pitstop.alerts_id_seq"));
        }
        Task::Maintenance => {
            let m = &config.maintenance;
            let jobs: Vec<_> = m.jobs.iter().filter(|j| j.enabled).collect();
            if !m.enabled {
                return Err(
                    "scheduled maintenance does not run (maintenance.enabled = false)".into()
                );
            }
            if jobs.is_empty() {
                return Err("no [[maintenance.jobs]] is enabled".into());
            }
            n.push(Need::SchemaUsage("pitstop"));
            // The run log: INSERT … RETURNING id and UPDATE … WHERE id read the table too.
            table(&mut n, "pitstop.maintenance_log", &["SELECT", "INSERT", "UPDATE"]);
            n.push(Need::SequenceUsage("pitstop.maintenance_log_id_seq"));
            if jobs.iter().any(|j| !j.kind.plan_actions().is_empty()) {
                n.push(Need::Execute(PLAN_FUNCTION));
            }
            if jobs.iter().any(|j| matches!(j.kind, JobKind::Vacuum | JobKind::Analyze)) {
                n.push(Need::Maintain { reindex: false });
            }
            if jobs.iter().any(|j| j.kind == JobKind::Reindex) {
                n.push(Need::Maintain { reindex: true });
            }
            if jobs.iter().any(|j| j.kind == JobKind::Snapshot) {
                // Without it other roles' statements have no query id and are left out.
                if !n.contains(&stats) {
                    n.push(stats);
                }
                table(&mut n, "pitstop.query_snapshots", &["SELECT", "INSERT"]);
                n.push(Need::Execute(OBSERVE_FUNCTION));
                table(&mut n, "pitstop.index_suggestions", &["SELECT"]);
                n.push(Need::Columns {
                    table: "pitstop.index_suggestions",
                    privilege: "UPDATE",
                    columns: OBSERVE_WRITES,
                });
            }
            for job in jobs.iter().filter(|j| j.kind == JobKind::Prune) {
                for (history, _) in &job.retention {
                    table(&mut n, &history.qualified(), &["SELECT", "DELETE"]);
                }
            }
        }
    }
    Ok(n)
}

/// Adds `privileges` on `name`, merged with what an earlier need asked of the same table.
fn table(needs: &mut Vec<Need>, name: &str, privileges: &[&'static str]) {
    let at = needs.iter().position(|n| matches!(n, Need::Table { table, .. } if table == name));
    let Some(Need::Table { privileges: have, .. }) = at.map(|i| &mut needs[i]) else {
        needs.push(Need::Table { table: name.to_string(), privileges: privileges.to_vec() });
        return;
    };
    for p in privileges {
        if !have.contains(p) {
            have.push(p);
        }
    }
}

/// What is missing for one need: the problem and the statement that fixes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Missing {
    pub problem: String,
    pub fix: String,
    /// The task works without it (what is missing is only skipped).
    pub warning_only: bool,
}

impl Missing {
    /// Something the task cannot work without.
    fn required(problem: String, fix: String) -> Missing {
        Missing { problem, fix, warning_only: false }
    }
}

/// The GRANT of `privileges` on an object.
pub fn grant(privileges: &[&str], on: &str, role_ident: &str) -> String {
    format!("GRANT {} ON {on} TO {role_ident};", privileges.join(", "))
}

pub async fn checks(client: &Client, facts: Option<&Facts>, config: Option<&Config>) -> Vec<Check> {
    let mut out = Vec::new();
    for task in Task::ALL {
        let name = task.check();
        let skip = match (facts, config) {
            (None, _) => Some("the server's settings could not be read"),
            (_, None) => Some("the configuration is invalid (see config)"),
            (Some(f), _) if f.pitstop_installed.is_none() => {
                Some("the pitstop extension is not installed (see extension)")
            }
            _ => None,
        };
        let (Some(facts), Some(config), None) = (facts, config, skip) else {
            out.push(Check::skipped(name, skip.unwrap_or_default()));
            continue;
        };
        let needs = match needs(task, config) {
            Ok(needs) => needs,
            Err(why) => {
                out.push(Check::skipped(name, why));
                continue;
            }
        };
        let mut missing = Vec::new();
        let mut error = None;
        for need in &needs {
            match evaluate(client, need, facts).await {
                Ok(m) => missing.extend(m),
                Err(e) => error = Some(crate::db::describe_pg(&e)),
            }
        }
        out.push(match (error, missing.is_empty()) {
            (Some(e), _) => {
                Check::failed(name, format!("cannot check the privileges: {e}"), "see the error")
            }
            (None, true) => Check::ok(
                name,
                format!(
                    "role {:?} has what it runs: {}",
                    facts.role,
                    needs.iter().map(describe).collect::<Vec<_>>().join("; ")
                ),
            ),
            (None, false) => {
                let found = format!(
                    "role {:?} lacks:\n{}",
                    facts.role,
                    missing.iter().map(|m| m.problem.as_str()).collect::<Vec<_>>().join("\n")
                );
                let fix = missing.iter().map(|m| m.fix.as_str()).collect::<Vec<_>>().join("\n");
                if missing.iter().all(|m| m.warning_only) {
                    Check::warning(name, found, fix)
                } else {
                    Check::failed(name, found, fix)
                }
            }
        });
    }
    out
}

fn describe(need: &Need) -> String {
    match need {
        Need::Role { role, .. } => format!("{role} rights"),
        Need::SchemaUsage(s) => format!("USAGE on schema {s}"),
        Need::Table { table, privileges } => format!("{} on {table}", privileges.join(", ")),
        Need::Columns { table, privilege, columns } => {
            format!("{privilege} ({}) on {table}", columns.join(", "))
        }
        Need::SequenceUsage(s) => format!("USAGE on {s}"),
        Need::Execute(f) => format!("EXECUTE on {}", f.split('(').next().unwrap_or(f)),
        Need::Maintain { reindex: false } => "VACUUM/ANALYZE of every user table".into(),
        Need::Maintain { reindex: true } => "REINDEX of every user table".into(),
    }
}

/// The tables a plan job may name that the role may not maintain: name, owner, and whether
/// membership in the owner would give away more than its tables (those last: the others have
/// a GRANT to show). Such an owner is a superuser, may create roles, bypass row-level
/// security or replicate, or is itself a member of a role that may run programs or read and
/// write the server's files, or of a superuser: its members could become those.
const UNMAINTAINABLE: &str = "SELECT pg_catalog.quote_ident(n.nspname::text) || '.' || pg_catalog.quote_ident(c.relname::text), pg_catalog.quote_ident(r.rolname::text), \
       r.rolsuper OR r.rolcreaterole OR r.rolbypassrls OR r.rolreplication OR EXISTS ( \
         SELECT FROM pg_catalog.pg_roles s \
          WHERE (s.rolsuper OR s.rolcreaterole OR s.rolname IN ('pg_execute_server_program', 'pg_read_server_files', 'pg_write_server_files', 'pg_read_all_data', 'pg_write_all_data')) \
            AND s.oid <> r.oid AND pg_catalog.pg_has_role(r.oid, s.oid, 'MEMBER')) \
     FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace JOIN pg_catalog.pg_roles r ON r.oid = c.relowner \
     WHERE c.relkind IN ('r', 'm') AND c.relpersistence <> 't' \
       AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast' \
       AND NOT pg_catalog.pg_has_role(c.relowner, 'USAGE') \
       AND NOT CASE WHEN $1 THEN pg_catalog.has_table_privilege(c.oid, 'MAINTAIN') ELSE false END \
       AND NOT CASE WHEN $2 THEN pg_catalog.pg_has_role((SELECT datdba FROM pg_catalog.pg_database WHERE datname = current_database()), 'USAGE') ELSE false END \
     ORDER BY 3, 1";

async fn evaluate(
    client: &Client,
    need: &Need,
    f: &Facts,
) -> Result<Option<Missing>, tokio_postgres::Error> {
    let role = f.role_ident.as_str();
    Ok(match need {
        Need::Role { role: predefined, grant: to_grant, why } => {
            let has =
                holds(client, "SELECT pg_catalog.pg_has_role($1, 'USAGE')", predefined).await?;
            (!has).then(|| {
                Missing::required(
                    format!("the rights of {predefined} ({why})"),
                    format!("GRANT {to_grant} TO {role};"),
                )
            })
        }
        Need::SchemaUsage(schema) => {
            let has = holds(client, "SELECT pg_catalog.has_schema_privilege($1, 'USAGE')", schema)
                .await?;
            (!has).then(|| {
                Missing::required(
                    format!("USAGE on schema {schema}"),
                    grant(&["USAGE"], &format!("SCHEMA {schema}"), role),
                )
            })
        }
        Need::Table { table, privileges } => {
            let r = client
                .query_one(
                    &format!(
                        "SELECT t.oid IS NOT NULL, ARRAY(SELECT u.p FROM pg_catalog.unnest($3::text[]) AS u(p) \
                          WHERE NOT pg_catalog.has_table_privilege(t.oid, u.p) ORDER BY pg_catalog.array_position($3::text[], u.p)) \
                         FROM {RELATION}"
                    ),
                    &[&schema_of(table), &name_of(table), privileges],
                )
                .await?;
            let (exists, lacking): (bool, Vec<String>) = (r.get(0), r.get(1));
            let lacking: Vec<&str> = lacking.iter().map(String::as_str).collect();
            if !exists {
                Some(absent(table))
            } else {
                (!lacking.is_empty()).then(|| {
                    Missing::required(
                        format!("{} on {table}", lacking.join(", ")),
                        grant(&lacking, table, role),
                    )
                })
            }
        }
        Need::Columns { table, privilege, columns } => {
            let r = client
                .query_one(
                    &format!(
                        "SELECT t.oid IS NOT NULL AND NOT EXISTS (SELECT FROM pg_catalog.unnest($3::text[]) AS u(c) \
                                  LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = t.oid AND a.attname = u.c AND NOT a.attisdropped \
                                  WHERE a.attnum IS NULL), \
                                ARRAY(SELECT u.c FROM pg_catalog.unnest($3::text[]) AS u(c) \
                                  JOIN pg_catalog.pg_attribute a ON a.attrelid = t.oid AND a.attname = u.c AND NOT a.attisdropped \
                                  WHERE NOT pg_catalog.has_column_privilege(t.oid, a.attnum, $4) \
                                  ORDER BY pg_catalog.array_position($3::text[], u.c)) \
                         FROM {RELATION}"
                    ),
                    &[&schema_of(table), &name_of(table), columns, privilege],
                )
                .await?;
            let (exists, lacking): (bool, Vec<String>) = (r.get(0), r.get(1));
            if !exists {
                Some(absent(table))
            } else {
                (!lacking.is_empty()).then(|| {
                    let on = format!("{privilege} ({})", lacking.join(", "));
                    Missing::required(format!("{on} on {table}"), grant(&[&on], table, role))
                })
            }
        }
        Need::SequenceUsage(seq) => {
            let sql = format!("SELECT t.oid IS NOT NULL, coalesce(pg_catalog.has_sequence_privilege(t.oid, 'USAGE'), true) FROM {RELATION}");
            let r = client.query_one(&sql, &[&schema_of(seq), &name_of(seq)]).await?;
            one_privilege(&r, seq, "USAGE", &format!("SEQUENCE {seq}"), role)
        }
        Need::Execute(function) => {
            let (qualified, arguments) = function.split_once('(').unwrap_or((function, ")"));
            let sql = "SELECT f.oid IS NOT NULL, coalesce(pg_catalog.has_function_privilege(f.oid, 'EXECUTE'), true) \
                       FROM (SELECT (SELECT p.oid FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
                       WHERE n.nspname = $1 AND p.proname = $2 AND pg_catalog.oidvectortypes(p.proargtypes) = $3) AS oid) f";
            let r = client
                .query_one(
                    sql,
                    &[&schema_of(qualified), &name_of(qualified), &arguments.trim_end_matches(')')],
                )
                .await?;
            one_privilege(&r, function, "EXECUTE", &format!("FUNCTION {function}"), role)
        }
        Need::Maintain { reindex } => {
            let maintain_privilege = f.major() >= 17;
            let rows = client.query(UNMAINTAINABLE, &[&maintain_privilege, &!reindex]).await?;
            let tables: Vec<Owned> = rows
                .iter()
                .map(|r| Owned { table: r.get(0), owner: r.get(1), privileged: r.get(2) })
                .collect();
            maintain_missing(&tables, *reindex, maintain_privilege, role)
        }
    })
}

/// Whether the role holds what the one-parameter boolean query `sql` asks about `name`.
async fn holds(client: &Client, sql: &str, name: &str) -> Result<bool, tokio_postgres::Error> {
    Ok(client.query_one(sql, &[&name]).await?.get(0))
}

/// An object of the extension that is not there.
fn absent(what: &str) -> Missing {
    Missing::required(
        format!("{what} (missing: the extension is older than this binary)"),
        "ALTER EXTENSION pitstop UPDATE;".into(),
    )
}

/// One privilege on `object`: `r` says whether it exists and whether the role has it.
fn one_privilege(
    r: &tokio_postgres::Row,
    object: &str,
    privilege: &str,
    on: &str,
    role: &str,
) -> Option<Missing> {
    match (r.get(0), r.get(1)) {
        (false, _) => Some(absent(object)),
        (true, true) => None,
        (true, false) => Some(Missing::required(
            format!("{privilege} on {object}"),
            grant(&[privilege], on, role),
        )),
    }
}

/// One row `t` whose `oid` is the relation named by schema $1 and name $2 (NULL when there is
/// none), looked up in the catalogs: to_regclass would fail without USAGE on the schema, which
/// is one of the things checked. A subquery rather than a CTE, and no bare name after a comma
/// in the statements (a table may have it), so that they are pitstop's own by the rule of
/// sql/queries/own_statement.sql.
const RELATION: &str = "(SELECT (SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                        WHERE n.nspname = $1 AND c.relname = $2) AS oid) t";

fn schema_of(qualified: &str) -> String {
    qualified.split_once('.').map_or("pitstop", |(s, _)| s).to_string()
}

fn name_of(qualified: &str) -> String {
    qualified.split_once('.').map_or(qualified, |(_, n)| n).to_string()
}

/// A table and its owner (identifiers quoted).
#[derive(Debug, Clone, PartialEq)]
pub struct Owned {
    pub table: String,
    pub owner: String,
    /// Membership in the owner would give away more than its tables (see UNMAINTAINABLE).
    pub privileged: bool,
}

/// The problem and fix for the tables the role may not maintain. From PostgreSQL 17 on the
/// MAINTAIN privilege on exactly those tables (not pg_maintain, which covers every relation,
/// catalogs included). Before, only owners may: membership in an owner role is the narrowest
/// grant, and gives the role everything that owner owns, so it is offered only for owners
/// whose membership cannot lead further (see UNMAINTAINABLE); the tables of the others are a
/// warning, since the daemon logs them as skipped and autovacuum still covers them.
pub fn maintain_missing(
    tables: &[Owned],
    reindex: bool,
    maintain_privilege: bool,
    role: &str,
) -> Option<Missing> {
    if tables.is_empty() {
        return None;
    }
    const SHOWN: usize = 10;
    let mut names: Vec<String> =
        tables.iter().take(SHOWN).map(|t| format!("{} (owner {})", t.table, t.owner)).collect();
    if tables.len() > SHOWN {
        names.push(format!("and {} more", tables.len() - SHOWN));
    }
    let what = if reindex { "REINDEX" } else { "VACUUM/ANALYZE" };
    let problem = format!(
        "the right to {what} {} table{}: {}",
        tables.len(),
        if tables.len() == 1 { "" } else { "s" },
        names.join(", ")
    );
    if maintain_privilege {
        let all: Vec<&str> = tables.iter().map(|t| t.table.as_str()).collect();
        return Some(Missing::required(
            problem,
            grant(&["MAINTAIN"], &format!("TABLE {}", all.join(", ")), role),
        ));
    }
    let owners = |privileged: bool| {
        let mut o: Vec<&str> = tables
            .iter()
            .filter(|t| t.privileged == privileged)
            .map(|t| t.owner.as_str())
            .collect();
        o.sort_unstable();
        o.dedup();
        o
    };
    let grantable = owners(false);
    let mut fix: Vec<String> = grantable.iter().map(|o| format!("GRANT {o} TO {role};")).collect();
    if !fix.is_empty() {
        fix.push(format!("(each membership lets {role} act as that owner on everything it owns)"));
    }
    let privileged = owners(true);
    if !privileged.is_empty() {
        let instead = if reindex {
            "run those REINDEX jobs as their owner"
        } else {
            "leave them to autovacuum (the daemon logs them as skipped)"
        };
        fix.push(format!(
            "tables of {}, whose membership would give away more than their tables: before PostgreSQL 17 {instead}",
            privileged.join(", ")
        ));
    }
    Some(Missing { problem, fix: fix.join("\n"), warning_only: grantable.is_empty() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    fn config(text: &str) -> Config {
        Config::parse(text, "test.toml", BTreeMap::new()).unwrap()
    }

    fn tables(needs: &[Need]) -> Vec<(String, Vec<&'static str>)> {
        needs
            .iter()
            .filter_map(|n| {
                if let Need::Table { table, privileges } = n {
                    Some((table.clone(), privileges.clone()))
                } else {
                    None
                }
            })
            .collect()
    }

    #[test]
    fn the_relay_needs_its_outbox_and_cursor_only_when_it_runs() {
        assert_eq!(
            needs(Task::Relay, &config("")),
            Err("the relay does not run (no redis.url configured)".into())
        );
        let relay = needs(Task::Relay, &config("[redis]\nurl = \"redis://h:1\"\n")).unwrap();
        assert_eq!(
            tables(&relay),
            [
                ("pitstop.invalidation_outbox".into(), vec!["SELECT", "DELETE"]),
                ("pitstop.relay_state".into(), vec!["SELECT", "INSERT", "UPDATE"])
            ]
        );
        assert!(needs(
            Task::Relay,
            &config("[redis]\nurl = \"redis://h:1\"\n[relay]\nenabled = false\n")
        )
        .is_err());
    }

    #[test]
    fn the_monitor_needs_stats_rights_and_its_tables() {
        let monitor = needs(Task::Monitor, &config("")).unwrap();
        assert!(matches!(
            monitor[0],
            Need::Role { role: "pg_read_all_stats", grant: "pg_monitor", .. }
        ));
        assert!(monitor.contains(&Need::SequenceUsage("pitstop.alerts_id_seq")));
        assert_eq!(
            tables(&monitor)[0],
            ("pitstop.host_metrics".into(), vec!["SELECT", "INSERT", "DELETE"])
        );
        assert!(needs(Task::Monitor, &config("[monitor]\nenabled = false\n")).is_err());
    }

    #[test]
    fn maintenance_needs_follow_the_enabled_jobs() {
        // Defaults: vacuum, analyze, snapshot and prune; reindex is off.
        let m = needs(Task::Maintenance, &config("")).unwrap();
        assert!(
            m.contains(&Need::Maintain { reindex: false })
                && !m.contains(&Need::Maintain { reindex: true })
        );
        assert!(m.contains(&Need::Execute(PLAN_FUNCTION)));
        let t = tables(&m);
        // The log's privileges merged with the prune's.
        assert_eq!(
            t[0],
            ("pitstop.maintenance_log".into(), vec!["SELECT", "INSERT", "UPDATE", "DELETE"])
        );
        assert!(t.contains(&("pitstop.query_snapshots".into(), vec!["SELECT", "INSERT", "DELETE"])));
        assert!(t.contains(&("pitstop.alerts".into(), vec!["SELECT", "DELETE"])));
        let prune_only = config("[[maintenance.jobs]]\nname = \"p\"\nkind = \"prune\"\nschedule = \"@daily\"\nkeep = \"7d\"\n");
        let m = needs(Task::Maintenance, &prune_only).unwrap();
        assert!(
            !m.iter()
                .any(|n| matches!(n, Need::Maintain { .. } | Need::Execute(_) | Need::Role { .. })),
            "{m:?}"
        );
        assert!(needs(Task::Maintenance, &config("[maintenance]\nenabled = false\n")).is_err());
        assert_eq!(
            needs(Task::Maintenance, &config("[maintenance]\njobs = []\n")),
            Err("no [[maintenance.jobs]] is enabled".into())
        );
    }

    /// LOW 7 of the review: observe's UPDATE … FROM reads both tables, so the snapshot job
    /// needs SELECT on them besides the columns it writes.
    #[test]
    fn the_snapshot_job_needs_what_observe_reads_and_writes() {
        let snapshot = config(
            "[[maintenance.jobs]]\nname = \"s\"\nkind = \"snapshot\"\nschedule = \"@hourly\"\n",
        );
        let m = needs(Task::Maintenance, &snapshot).unwrap();
        let t = tables(&m);
        assert!(t.contains(&("pitstop.query_snapshots".into(), vec!["SELECT", "INSERT"])), "{t:?}");
        assert!(t.contains(&("pitstop.index_suggestions".into(), vec!["SELECT"])), "{t:?}");
        assert!(m.contains(&Need::Execute(OBSERVE_FUNCTION)), "{m:?}");
        assert!(m.contains(&Need::Columns {
            table: "pitstop.index_suggestions",
            privilege: "UPDATE",
            columns: OBSERVE_WRITES
        }));
        assert_eq!(
            describe(&m[m.len() - 1]),
            "UPDATE (index_oid, index_name, built_seen_at, table_writes_at_seen, before_until, dropped_seen_at) on pitstop.index_suggestions"
        );
    }

    /// The columns each `UPDATE … index_suggestions SET` of index_suggestions_observe writes.
    fn observe_sets(schema_sql: &str) -> BTreeSet<String> {
        let start = schema_sql.find("CREATE FUNCTION index_suggestions_observe()").unwrap();
        let body = &schema_sql[start..];
        let body = &body[..body.find("\n$$;").unwrap()];
        let mut columns = BTreeSet::new();
        for update in body.split("UPDATE @extschema@.index_suggestions").skip(1) {
            let set = &update[update.find(" SET ").unwrap() + 5..];
            let (mut depth, mut item) = (0, String::new());
            let mut items = Vec::new();
            for word in set.split_inclusive(|c: char| c.is_whitespace() || "(),".contains(c)) {
                let bare = word.trim_end_matches(|c: char| c.is_whitespace() || c == ',');
                if depth == 0 && ["FROM", "WHERE", "RETURNING"].contains(&bare) {
                    break;
                }
                depth += word.matches('(').count() as i32 - word.matches(')').count() as i32;
                if depth == 0 && word.ends_with(',') {
                    items.push(std::mem::take(&mut item));
                } else {
                    item.push_str(word);
                }
            }
            items.push(item);
            columns.extend(items.iter().map(|i| i.split('=').next().unwrap().trim().to_string()));
        }
        columns
    }

    /// The columns the doctor checks and the README grants are the ones observe writes.
    #[test]
    fn observes_writes_are_the_columns_checked_and_granted() {
        let set = observe_sets(include_str!("../../../sql/schema/index_effect.sql"));
        let expected: BTreeSet<String> = OBSERVE_WRITES.iter().map(|c| c.to_string()).collect();
        assert_eq!(set, expected);
        // The reader finds a column in a nested expression's tail too.
        let sample = "CREATE FUNCTION index_suggestions_observe() AS $$ UPDATE @extschema@.index_suggestions s\n SET a = f(x, y), b = CASE WHEN c THEN (SELECT max(d) FROM q) END,\n e = 1 FROM found WHERE x\n$$;";
        assert_eq!(observe_sets(sample), ["a", "b", "e"].map(String::from).into());
        let readme = include_str!("../../../README.md");
        let grant = format!(
            "GRANT SELECT, UPDATE ({}) ON pitstop.index_suggestions TO pitstop;",
            OBSERVE_WRITES.join(", ")
        );
        assert!(readme.contains(&grant), "README lacks {grant}");
    }

    #[test]
    fn fixes_grant_exactly_what_is_missing() {
        assert_eq!(
            grant(&["SELECT", "DELETE"], "pitstop.invalidation_outbox", "\"Relay\""),
            "GRANT SELECT, DELETE ON pitstop.invalidation_outbox TO \"Relay\";"
        );
        let owned = |table: &str, owner: &str, privileged| Owned {
            table: table.into(),
            owner: owner.into(),
            privileged,
        };
        let tables = vec![
            owned("public.a", "app", false),
            owned("public.b", "etl", false),
            owned("s.c", "app", false),
            owned("pitstop.alerts", "postgres", true),
        ];
        let m = maintain_missing(&tables, false, false, "pitstop").unwrap();
        assert_eq!(m.problem, "the right to VACUUM/ANALYZE 4 tables: public.a (owner app), public.b (owner etl), s.c (owner app), pitstop.alerts (owner postgres)");
        assert_eq!(
            m.fix,
            "GRANT app TO pitstop;\nGRANT etl TO pitstop;\n(each membership lets pitstop act as that owner on everything it owns)\n\
             tables of postgres, whose membership would give away more than their tables: before PostgreSQL 17 leave them to autovacuum (the daemon logs them as skipped)"
        );
        assert!(!m.fix.contains("GRANT postgres") && !m.warning_only);
        // Only privileged owners: nothing to grant, a warning.
        let m = maintain_missing(&tables[3..], false, false, "pitstop").unwrap();
        assert!(m.warning_only && !m.fix.contains("GRANT"), "{m:?}");
        // From 17 on: MAINTAIN on exactly those tables, never pg_maintain.
        assert_eq!(
            maintain_missing(&tables, true, true, "pitstop").unwrap().fix,
            "GRANT MAINTAIN ON TABLE public.a, public.b, s.c, pitstop.alerts TO pitstop;"
        );
        assert_eq!(maintain_missing(&[], false, true, "pitstop"), None);
        let many: Vec<Owned> = (0..12).map(|i| owned(&format!("t{i}"), "o", false)).collect();
        assert!(maintain_missing(&many, false, true, "p")
            .unwrap()
            .problem
            .ends_with("t9 (owner o), and 2 more"));
    }
}
