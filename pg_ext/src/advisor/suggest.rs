//! `pitstop.suggest_indexes` and `pitstop.unhelped_queries`: index advice for a whole
//! workload. Every query is planned natively (generic plans for `$n`), candidates come from
//! what the planner saw each query ask of each table, and the greedy selection in
//! `select.rs` picks the indexes with the largest planner-estimated saving over the workload,
//! weighted by calls, net of the write cost, within the budget.

use crate::advisor::hypo;
use crate::advisor::layout;
use crate::advisor::progress::Progress;
use crate::advisor::remember;
use crate::error::{OrReport, PitstopError};
use crate::pg::hypo_index::{self, HypoIndex};
use crate::pg::role::{ActingRole, Refusal};
use crate::pg::{parse, planning, spi, subxact};
use pgrx::prelude::*;
use pitstop_core::advisor::candidates::{self, Candidate, ExistingIndex, KeyColumn};
use pitstop_core::advisor::progress::Stage;
use pitstop_core::advisor::select::{self, CandidateCost, Limits};
use pitstop_core::advisor::size::AccessMethod;
use pitstop_core::advisor::usage::{TableUsage, TableWrite};
use pitstop_core::advisor::workload;
use pitstop_core::query::{self, OWN_STATEMENT};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// One statement of the workload.
struct Statement {
    queryid: Option<i64>,
    sql: String,
    /// The role that ran it (the caller, for an explicit list).
    role_name: String,
    /// Who it is planned as; refused when the caller may not act as that role.
    planner: Result<ActingRole, Refusal>,
    /// Executions it stands for (pg_stat_statements calls; 1 for an explicit list).
    calls: f64,
    /// Rows it returned or wrote over those calls, when pg_stat_statements counted them.
    rows: Option<f64>,
    /// Length of the whole text; over `MAX_STATEMENT_BYTES`, `sql` is only its beginning.
    text_bytes: usize,
}

/// Longer statement texts are not planned: copying and parsing them again for every candidate
/// would cost the backend's memory, and pg_stat_statements keeps texts of any length.
const MAX_STATEMENT_BYTES: usize = 1024 * 1024;

/// A planned statement: its cost without any new index, what it reads and writes.
struct Planned {
    cost: f64,
    usage: Vec<TableUsage>,
    write: Option<TableWrite>,
}

struct Options {
    limits: Limits,
    top_n: i64,
    /// Keep pitstop's own statements in the workload (sql/queries/own_statement.sql).
    include_self: bool,
    /// Lazy greedy rounds (`select::select_reporting`); false only in tests, to check them
    /// against eager ones.
    lazy: bool,
}

fn options(
    budget_mb: Option<f64>,
    max_indexes: Option<i32>,
    min_improvement: Option<f64>,
    top_n: Option<i32>,
    min_workload_gain: Option<f64>,
) -> Result<Options, PitstopError> {
    let out_of_range =
        |name, value: String, expected| PitstopError::OutOfRange { name, value, expected };
    if let Some(budget) = budget_mb.filter(|b| !(*b > 0.0 && b.is_finite())) {
        return Err(out_of_range(
            "budget_mb",
            budget.to_string(),
            "a positive number of megabytes",
        ));
    }
    if let Some(max) = max_indexes.filter(|m| *m < 1) {
        return Err(out_of_range("max_indexes", max.to_string(), "at least 1"));
    }
    let min_improvement = min_improvement.ok_or(PitstopError::NullArgument("min_improvement"))?;
    if !(0.0..1.0).contains(&min_improvement) {
        return Err(out_of_range(
            "min_improvement",
            min_improvement.to_string(),
            "between 0 and 1 (a share, 0.05 = 5 %)",
        ));
    }
    let top_n = top_n.ok_or(PitstopError::NullArgument("top_n"))?;
    if top_n < 1 {
        return Err(out_of_range("top_n", top_n.to_string(), "at least 1"));
    }
    let min_workload_gain =
        min_workload_gain.ok_or(PitstopError::NullArgument("min_workload_gain"))?;
    if !(0.0..1.0).contains(&min_workload_gain) {
        return Err(out_of_range(
            "min_workload_gain",
            min_workload_gain.to_string(),
            "between 0 and 1 (a share, 0.01 = 1 %)",
        ));
    }
    Ok(Options {
        limits: Limits {
            budget_bytes: budget_mb.map(|mb| mb * 1024.0 * 1024.0),
            max_indexes: max_indexes.map(|m| m as usize),
            min_improvement,
            min_workload_gain,
        },
        top_n: i64::from(top_n),
        include_self: false,
        lazy: true,
    })
}

/// The statements to advise on: the explicit list (planned as the caller, who wrote it), or
/// the top of pg_stat_statements (each planned as the role that ran it).
fn workload(
    queries: Option<Vec<Option<String>>>,
    top_n: i64,
    include_self: bool,
) -> Result<Vec<Statement>, PitstopError> {
    if let Some(queries) = queries {
        let me = spi::connect(|client| {
            spi::select_one::<String>(client, "SELECT current_user::text", &[])
        })
        .unwrap_or_default();
        return Ok(queries
            .into_iter()
            .flatten()
            .filter(|q| !q.trim().is_empty())
            .map(|sql| Statement {
                queryid: None,
                text_bytes: sql.len(),
                sql,
                role_name: me.clone(),
                planner: Ok(ActingRole::caller()),
                calls: 1.0,
                rows: None,
            })
            .collect());
    }
    #[allow(clippy::type_complexity)]
    let recorded: Vec<(Option<i64>, pg_sys::Oid, String, String, f64, Option<f64>, usize)> =
        spi::connect(|client| {
            let pgss = spi::extension_object(client, "pg_stat_statements", "pg_stat_statements")
                .ok_or(PitstopError::MissingPgStatStatements)?;
            let sql = include_str!("../../../sql/queries/advisor_workload.sql");
            let sql = query::fill(&query::fill(sql, "pgss", &pgss), "own_statement", OWN_STATEMENT);
            let rows = client
                .select(
                    &sql,
                    None,
                    &[top_n.into(), include_self.into(), (MAX_STATEMENT_BYTES as i64).into()],
                )
                .unwrap_or_else(|e| {
                    pgrx::error!("suggest_indexes: reading pg_stat_statements failed: {e}")
                });
            Ok::<_, PitstopError>(
                rows.filter_map(|row| {
                    Some((
                        spi::column::<i64>(&row, "queryid"),
                        spi::column::<pg_sys::Oid>(&row, "userid")?,
                        spi::column::<String>(&row, "role_name")?,
                        spi::column::<String>(&row, "query")?,
                        spi::column::<f64>(&row, "calls").unwrap_or(1.0),
                        spi::column::<f64>(&row, "rows"),
                        spi::column::<i64>(&row, "text_bytes").map_or(0, |n| n as usize),
                    ))
                })
                .collect(),
            )
        })?;
    Ok(recorded
        .into_iter()
        .filter(|(_, _, _, sql, _, _, _)| !is_utility(sql))
        .map(|(queryid, userid, role_name, sql, calls, rows, text_bytes)| Statement {
            queryid,
            sql,
            role_name,
            planner: ActingRole::of(userid, || default_search_path(userid)),
            calls,
            rows,
            text_bytes,
        })
        .collect())
}

/// The search_path a new session of `role` would start with here.
fn default_search_path(role: pg_sys::Oid) -> String {
    spi::connect(|client| {
        spi::select_one(
            client,
            include_str!("../../../sql/queries/role_search_path.sql"),
            &[role.into()],
        )
    })
    .unwrap_or_else(|| "\"$user\", public".to_string())
}

/// Plans a workload statement as its role, or says why it may not be planned.
fn plan_statement(
    statement: &Statement,
    indexes: &[&HypoIndex],
    collect_usage: bool,
) -> Result<planning::PlannedQuery, String> {
    if statement.text_bytes > MAX_STATEMENT_BYTES {
        return Err(format!(
            "its text is {} bytes; the advisor plans statements of up to {MAX_STATEMENT_BYTES} bytes",
            statement.text_bytes
        ));
    }
    match &statement.planner {
        Ok(role) => planning::plan_workload(&statement.sql, role, indexes, collect_usage),
        Err(Refusal::Dropped) => Err(format!("role {} no longer exists", statement.role_name)),
        Err(Refusal::NotPermitted) => Err(format!(
            "recorded by role {}: planned only by a superuser, by that role, or by a role that may SET ROLE to it",
            statement.role_name
        )),
    }
}

/// Utility statements (BEGIN, SET, VACUUM, …) that pg_stat_statements also records are not
/// part of the workload an index can serve. Texts that do not parse stay in, to be reported,
/// unless their first word is a utility command's: since PostgreSQL 18 pg_stat_statements
/// records `SET work_mem = '1MB'` as `SET work_mem = $1`, which does not parse.
fn is_utility(sql: &str) -> bool {
    match subxact::try_rolled_back(|| parse::single_workload_statement(sql)) {
        Ok(Err(PitstopError::NotExplainable(_))) => true,
        Ok(Ok(_)) => false,
        _ => workload::starts_with_utility_command(sql),
    }
}

fn existing_indexes(relids: &[u32]) -> Vec<ExistingIndex> {
    let relids: Vec<pg_sys::Oid> = relids.iter().map(|r| pg_sys::Oid::from(*r)).collect();
    let hidden = hypo_index::hidden();
    spi::connect(|client| {
        let sql = include_str!("../../../sql/queries/advisor_existing_indexes.sql");
        let Ok(rows) = client.select(sql, None, &[relids.into(), hidden.into()]) else {
            return Vec::new();
        };
        rows.filter_map(|row| {
            let relid: pg_sys::Oid = spi::column(&row, "indrelid")?;
            let key_columns: i32 = spi::column(&row, "key_columns")?;
            let columns: Vec<i16> = spi::column(&row, "columns")?;
            let options: Vec<i16> = spi::column(&row, "options").unwrap_or_default();
            let plain: Vec<bool> = spi::column(&row, "plain_keys").unwrap_or_default();
            let key_columns = key_columns as usize;
            Some(ExistingIndex {
                relid: relid.to_u32(),
                am: spi::column::<String>(&row, "amname")
                    .and_then(|name| AccessMethod::from_name(&name)),
                partial: spi::column(&row, "partial").unwrap_or(true),
                // A key under another operator class or collation than the column's default
                // ones orders it otherwise: it stands for no candidate's key (0, as an
                // expression).
                keys: columns
                    .iter()
                    .take(key_columns)
                    .enumerate()
                    .map(|(i, a)| {
                        let attnum = if plain.get(i) == Some(&true) { *a } else { 0 };
                        (attnum, options.get(i).is_some_and(|o| o & 1 != 0))
                    })
                    .collect(),
                include: columns.iter().skip(key_columns).copied().collect(),
            })
        })
        .collect()
    })
}

/// Per table, the share of updates that were not HOT (1 when unknown).
fn non_hot_shares(relids: &[u32]) -> BTreeMap<u32, f64> {
    let oids: Vec<pg_sys::Oid> = relids.iter().map(|r| pg_sys::Oid::from(*r)).collect();
    spi::connect(|client| {
        let sql = include_str!("../../../sql/queries/advisor_non_hot_updates.sql");
        let Ok(rows) = client.select(sql, None, &[oids.into()]) else { return BTreeMap::new() };
        rows.filter_map(|row| {
            let relid: pg_sys::Oid = spi::column(&row, "relid")?;
            Some((relid.to_u32(), spi::column(&row, "non_hot_share")?))
        })
        .collect()
    })
}

/// Index maintenance the workload's own writes would cause for `candidate`, in planner cost
/// units: each row entering the index dirties about one leaf page, priced at random_page_cost
/// (a BRIN: 1/128 of that, `Candidate::write_share`).
fn write_cost(
    candidate: &Candidate,
    statements: &[Statement],
    planned: &[Result<Planned, String>],
    non_hot: f64,
    page_cost: f64,
) -> f64 {
    let columns: Vec<i16> = candidate
        .keys
        .iter()
        .map(|k| k.attnum)
        .chain(candidate.include.iter().map(|(a, _)| *a))
        .collect();
    statements
        .iter()
        .zip(planned)
        .filter_map(|(statement, plan)| {
            let write =
                plan.as_ref().ok()?.write.as_ref().filter(|w| w.relid == candidate.relid)?;
            let rows = statement.rows.unwrap_or(write.estimated_rows * statement.calls);
            Some(rows * write.index_share(&columns, non_hot) * candidate.write_share() * page_cost)
        })
        .sum::<f64>()
        + 0.0 // an empty sum is -0.0
}

pub struct Suggestion {
    pub candidate: Candidate,
    pub bytes: i64,
    pub workload_before: f64,
    pub workload_after: f64,
    pub write_cost: f64,
    /// (statement, cost before, cost after)
    pub helped: Vec<(usize, f64, f64)>,
}

pub struct Unhelped {
    pub statement: usize,
    pub cost: Option<f64>,
    pub reason: String,
}

struct Advice {
    statements: Vec<Statement>,
    suggestions: Vec<Suggestion>,
    unhelped: Vec<Unhelped>,
    /// Plans made while choosing (after the cache); read by tests.
    #[cfg_attr(not(feature = "pg_test"), allow(dead_code))]
    planned: usize,
}

fn advise(queries: Option<Vec<Option<String>>>, options: &Options) -> Result<Advice, PitstopError> {
    let mut progress = Progress::start();
    let statements = workload(queries, options.top_n, options.include_self)?;
    let begun = std::time::Instant::now();
    // Baseline: every statement planned once, with no new index, collecting what it reads.
    let total = statements.len();
    progress.report(Stage::Planning { done: 0, total });
    let planned: Vec<Result<Planned, String>> = statements
        .iter()
        .enumerate()
        .map(|(q, s)| {
            let plan = plan_statement(s, &[], true).map(|p| Planned {
                cost: p.total_cost,
                usage: p.usage,
                write: p.write,
            });
            progress.report(Stage::Planning { done: q + 1, total });
            plan
        })
        .collect();

    let baseline_ms = begun.elapsed().as_millis();
    // Each candidate remembers the first statement that proposed it: its DDL (a predicate may
    // come from the statement's text) is prepared as that statement's role.
    let mut proposed: BTreeMap<Candidate, usize> = BTreeMap::new();
    let read: BTreeSet<u32> =
        planned.iter().flatten().flat_map(|p| &p.usage).map(|u| u.relid).collect();
    let layouts = layout::table_layouts(&read.into_iter().collect::<Vec<_>>());
    for (q, plan) in planned.iter().enumerate() {
        for usage in plan.iter().flat_map(|p| &p.usage) {
            let brin = layouts
                .get(&usage.relid)
                .map_or_else(Vec::new, |l| candidates::brin_for_usage(usage, l));
            for candidate in candidates::for_usage(usage).into_iter().chain(brin) {
                proposed.entry(candidate).or_insert(q);
            }
        }
    }
    let merged = candidates::merged_covering(&proposed.keys().cloned().collect());
    for candidate in &merged {
        let from = proposed.iter().find(|(c, _)| c.same_key(candidate)).map(|(_, q)| *q);
        if let Some(q) = from {
            proposed.entry(candidate.clone()).or_insert(q);
        }
    }
    // A btree serves a query only through its leading column: candidates are planned only
    // with the queries that filter, join or order on that column of the table.
    let users_of = |candidate: &Candidate| -> Vec<usize> {
        let leading = candidate.keys[0].attnum;
        (0..planned.len())
            .filter(|q| {
                planned[*q]
                    .iter()
                    .flat_map(|p| &p.usage)
                    .any(|u| u.relid == candidate.relid && u.mentions(leading))
            })
            .collect()
    };
    let relids: Vec<u32> =
        proposed.keys().map(|c| c.relid).collect::<BTreeSet<_>>().into_iter().collect();
    let existing = existing_indexes(&relids);
    let non_hot = non_hot_shares(&relids);
    let page_cost =
        spi::connect(|client| spi::setting_value(client, "random_page_cost")).unwrap_or(4.0);

    // Candidates that exist already are dropped; the rest become hypothetical indexes.
    let mut kept: Vec<(Candidate, HypoIndex, CandidateCost)> = Vec::new();
    let mut taken: Vec<pg_sys::Oid> = Vec::new();
    let caller = ActingRole::caller();
    let mut tables = hypo::Tables::default();
    let fresh: Vec<(Candidate, usize)> =
        proposed.into_iter().filter(|(c, _)| !existing.iter().any(|e| e.covers(c))).collect();
    let total = fresh.len();
    for (done, (candidate, q)) in fresh.into_iter().enumerate() {
        progress.report(Stage::Preparing { done, total });
        let Ok(role) = &statements[q].planner else { continue };
        // Plain columns run nothing while the index is prepared: as the caller, who may reach a
        // table that the statement's role reads only through a view. A predicate or an
        // expression key comes from the statement's text and preparing it folds and inlines its
        // functions: as the statement's role, never with the caller's rights. A candidate that
        // cannot be prepared is left out.
        let from_text =
            candidate.predicate.is_some() || candidate.keys.iter().any(|k| k.expression.is_some());
        let preparer = if from_text { role } else { &caller };
        let Some(mut index) = hypo::prepare_for_advice(&candidate.ddl(), preparer, &mut tables)
        else {
            continue;
        };
        index.desc.oid = hypo_index::unused_oid(&taken);
        taken.push(index.desc.oid);
        let bytes = tables.size_bytes(&index.desc) as f64;
        let cost = CandidateCost {
            size_bytes: bytes,
            write_cost: write_cost(
                &candidate,
                &statements,
                &planned,
                non_hot.get(&candidate.relid).copied().unwrap_or(1.0),
                page_cost,
            ),
            queries: users_of(&candidate),
            supersedes: Vec::new(),
            same_key: Vec::new(),
        };
        kept.push((candidate, index, cost));
    }
    // Each query planned once with every candidate on its tables: a candidate that no query's
    // plan chooses when it could have any of them is dropped before the greedy rounds, which
    // then weigh far fewer (evaluation still covers every query that could use a candidate).
    let prepared_ms = begun.elapsed().as_millis();
    let mut chosen = vec![false; kept.len()];
    // Per query, the (table, leading key) of each candidate its plan used then (None when it
    // could not be planned so).
    let mut used_keys: Vec<Option<Vec<(u32, KeyColumn)>>> = vec![None; statements.len()];
    // Per query, its cost with every candidate offered: no set of them makes it cheaper, which
    // bounds what a candidate not planned yet could save (0 when not known).
    let mut floors = vec![0.0; statements.len()];
    for q in 0..statements.len() {
        progress.report(Stage::Screening { done: q, total: statements.len() });
        let offered: Vec<usize> =
            (0..kept.len()).filter(|c| kept[*c].2.queries.contains(&q)).collect();
        if offered.is_empty() {
            continue;
        }
        let indexes: Vec<&HypoIndex> = offered.iter().map(|c| &kept[*c].1).collect();
        if let Ok(plan) = plan_statement(&statements[q], &indexes, false) {
            floors[q] = plan.total_cost;
            let mut keys = Vec::new();
            for c in offered.iter().filter(|c| plan.used_indexes.contains(&kept[**c].1.desc.oid)) {
                chosen[*c] = true;
                keys.push((kept[*c].0.relid, kept[*c].0.keys[0].clone()));
            }
            used_keys[q] = Some(keys);
        }
    }
    // A merged covering index is never the cheapest for one query (a variant is narrower),
    // but it can do the work of several chosen variants in one index: it stays when at
    // least two of them were chosen, so selection can trade the variants for it.
    for c in 0..kept.len() {
        if merged.contains(&kept[c].0) {
            chosen[c] =
                (0..kept.len()).filter(|o| chosen[*o] && kept[c].0.supersedes(&kept[*o].0)).count()
                    >= 2;
        }
    }
    // Under a budget the narrower variants of a chosen candidate (its leading keys, fewer
    // INCLUDE columns) stay too: when the wide one does not fit, a narrower one may.
    if options.limits.budget_bytes.is_some() {
        let wide: Vec<usize> = (0..kept.len()).filter(|c| chosen[*c]).collect();
        for c in 0..kept.len() {
            if !chosen[c]
                && !merged.contains(&kept[c].0)
                && wide.iter().any(|w| kept[*w].0.supersedes(&kept[c].0))
            {
                chosen[c] = true;
            }
        }
    }
    pgrx::debug1!(
        "suggest_indexes: baseline planned in {} ms, candidates prepared by {} ms, every candidate offered at once by {} ms; {} of {} candidates chosen",
        baseline_ms,
        prepared_ms,
        begun.elapsed().as_millis(),
        chosen.iter().filter(|c| **c).count(),
        kept.len()
    );
    let mut index = 0;
    kept.retain(|_| {
        index += 1;
        chosen[index - 1]
    });
    // A candidate is weighed only on the queries whose plan, offered every candidate, used an
    // index on its table with its leading key: where another key won, that one does the job
    // (and is weighed there). This cuts most of the planning on join-heavy workloads, where a
    // dimension's key column is mentioned by nearly every query.
    let offered_to: Vec<bool> = (0..statements.len())
        .map(|q| kept.iter().any(|(_, _, c)| c.queries.contains(&q)))
        .collect();
    for (candidate, _, cost) in kept.iter_mut() {
        let leading = &candidate.keys[0];
        let same = |relid: u32, key: &KeyColumn| {
            relid == candidate.relid
                && key.attnum == leading.attnum
                && key.expression == leading.expression
        };
        cost.queries.retain(|q| {
            used_keys[*q]
                .as_ref()
                .is_none_or(|keys| keys.iter().any(|(relid, key)| same(*relid, key)))
        });
    }
    for c in 0..kept.len() {
        kept[c].2.supersedes =
            (0..kept.len()).filter(|o| kept[c].0.supersedes(&kept[*o].0)).collect();
        kept[c].2.same_key =
            (0..kept.len()).filter(|o| *o != c && kept[c].0.same_key(&kept[*o].0)).collect();
    }

    let weights: Vec<f64> = statements.iter().map(|s| s.calls).collect();
    let base: Vec<f64> =
        planned.iter().map(|p| p.as_ref().map(|p| p.cost).unwrap_or(0.0)).collect();
    let costs: Vec<CandidateCost> = kept.iter().map(|(_, _, c)| c.clone()).collect();
    // A query's plan depends only on the candidates it could use (on its tables, led by a
    // column it filters, joins or orders on): it is planned with those alone, once per set.
    let mut planned_costs: HashMap<(usize, Vec<usize>), Option<f64>> = HashMap::new();
    let (mut asked, started) = (0usize, std::time::Instant::now());
    // Plans and their milliseconds in the first greedy rounds, the later ones, and measuring.
    let phase = std::cell::Cell::new(0usize);
    let mut by_phase = [(0usize, 0u128); 3];
    let cost_with = |set: &[usize], q: usize| {
        asked += 1;
        let mut relevant: Vec<usize> =
            set.iter().copied().filter(|c| kept[*c].2.queries.contains(&q)).collect();
        relevant.sort_unstable();
        if relevant.is_empty() {
            return planned[q].as_ref().ok().map(|p| p.cost);
        }
        *planned_costs.entry((q, relevant)).or_insert_with_key(|(_, relevant)| {
            let begun = std::time::Instant::now();
            let indexes: Vec<&HypoIndex> = relevant.iter().map(|c| &kept[*c].1).collect();
            let cost = plan_statement(&statements[q], &indexes, false).ok().map(|p| p.total_cost);
            let counts = &mut by_phase[phase.get()];
            *counts = (counts.0 + 1, counts.1 + begun.elapsed().as_millis());
            cost
        })
    };
    let mut report = |stage: Stage| {
        phase.set(match stage {
            Stage::Choosing { round: 1, .. } => 0,
            Stage::Choosing { .. } => 1,
            _ => 2,
        });
        progress.report(stage)
    };
    let picks = if options.lazy {
        let limits = &options.limits;
        select::select_reporting(&weights, &base, &floors, &costs, limits, cost_with, &mut report)
    } else {
        select::select_eagerly(&weights, &base, &costs, &options.limits, cost_with, &mut report)
    };
    pgrx::debug1!(
        "suggest_indexes: {} statements, {} candidates weighed, {} costs asked, {} planned (first rounds {} in {} ms, later rounds {} in {} ms, measuring {} in {} ms), selection {} ms",
        statements.len(),
        kept.len(),
        asked,
        planned_costs.len(),
        by_phase[0].0,
        by_phase[0].1,
        by_phase[1].0,
        by_phase[1].1,
        by_phase[2].0,
        by_phase[2].1,
        started.elapsed().as_millis()
    );
    let planned_count = planned_costs.len();

    let suggestions: Vec<Suggestion> = picks
        .iter()
        .map(|pick| {
            let (candidate, _, cost) = &kept[pick.candidate];
            Suggestion {
                candidate: candidate.clone(),
                bytes: cost.size_bytes as i64,
                workload_before: pick.workload_before,
                workload_after: pick.workload_after,
                write_cost: cost.write_cost,
                helped: pick.helped.clone(),
            }
        })
        .collect();
    let helped: BTreeSet<usize> =
        suggestions.iter().flat_map(|s| s.helped.iter().map(|h| h.0)).collect();
    let limited = options.limits.max_indexes.is_some_and(|m| suggestions.len() >= m)
        || options.limits.budget_bytes.is_some();
    let unhelped = planned
        .iter()
        .enumerate()
        .filter(|(q, _)| !helped.contains(q))
        .map(|(q, plan)| Unhelped {
            statement: q,
            cost: plan.as_ref().ok().map(|p| p.cost),
            reason: match plan {
                Err(message) => format!("could not be planned: {message}"),
                // Expression keys left out for their parameters: say so rather than that
                // no candidate helped.
                Ok(plan) => candidates::parameterized_reason(&plan.usage).unwrap_or_else(|| {
                    let maintained =
                        kept.iter().any(|(_, _, c)| c.queries.contains(&q) && c.write_cost > 0.0);
                    let limits = &options.limits;
                    workload::unhelped_reason(
                        &plan.usage,
                        offered_to[q],
                        maintained,
                        limits,
                        limited,
                    )
                }),
            },
        })
        .collect();
    progress.done(suggestions.len());
    Ok(Advice { statements, suggestions, unhelped, planned: planned_count })
}

/// For tests: (DDL, estimated bytes, workload cost after) of each suggestion for `queries`
/// (defaults otherwise), with lazy or eager greedy rounds, and the plans selection made.
#[cfg(any(test, feature = "pg_test"))]
pub(crate) fn advice_with_rounds(queries: &[&str], lazy: bool) -> (Vec<(String, i64, f64)>, usize) {
    let options =
        Options { lazy, ..options(None, None, Some(0.05), Some(100), Some(0.01)).or_report() };
    let queries = queries.iter().map(|q| Some(q.to_string())).collect();
    let advice = advise(Some(queries), &options).or_report();
    let list =
        advice.suggestions.iter().map(|s| (s.candidate.ddl(), s.bytes, s.workload_after)).collect();
    (list, advice.planned)
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// A suggestion as `index_health` matches it against a foreign key.
pub struct SuggestedKeys {
    pub rank: usize,
    pub relid: u32,
    /// Key columns in order (attnums).
    pub keys: Vec<i16>,
    pub partial: bool,
    /// A btree: what a foreign key's lookups of single values want (not a BRIN).
    pub btree: bool,
    pub ddl: String,
}

/// What `suggest_indexes` suggests with its default arguments, in rank order.
pub fn default_suggestions(include_self: bool) -> Result<Vec<SuggestedKeys>, PitstopError> {
    let options =
        Options { include_self, ..options(None, None, Some(0.05), Some(100), Some(0.01))? };
    Ok(advise(None, &options)?
        .suggestions
        .iter()
        .enumerate()
        .map(|(i, s)| SuggestedKeys {
            rank: i + 1,
            relid: s.candidate.relid,
            keys: s.candidate.keys.iter().map(|k| k.indkey()).collect(),
            partial: s.candidate.predicate.is_some(),
            btree: s.candidate.am == AccessMethod::Btree,
            ddl: s.candidate.ddl(),
        })
        .collect())
}

/// Indexes that would lower the workload's estimated cost the most, in the order chosen.
/// `queries` (default: the top `top_n` statements of pg_stat_statements by total time,
/// weighted by calls); `budget_mb` and `max_indexes` bound the advice; a query counts as
/// helped when its cost drops by at least `min_improvement` (a share), and an index is
/// chosen only when it lowers the remaining workload cost by at least `min_workload_gain`.
/// pitstop's own statements are left out of the workload unless `include_self`.
#[pg_extern(volatile, parallel_unsafe)]
#[allow(clippy::type_complexity)]
fn suggest_indexes(
    queries: default!(Option<Vec<Option<String>>>, "NULL"),
    budget_mb: default!(Option<f64>, "NULL"),
    max_indexes: default!(Option<i32>, "NULL"),
    min_improvement: default!(Option<f64>, 0.05),
    top_n: default!(Option<i32>, 100),
    min_workload_gain: default!(Option<f64>, 0.01),
    include_self: default!(Option<bool>, false),
) -> TableIterator<
    'static,
    (
        name!(rank, i32),
        name!(ddl, String),
        name!(table_name, String),
        name!(estimated_bytes, i64),
        name!(workload_cost_before, f64),
        name!(workload_cost_after, f64),
        name!(improvement_pct, f64),
        name!(write_cost, f64),
        name!(queries_helped, i32),
        name!(helped, pgrx::JsonB),
        name!(reason, String),
    ),
> {
    let options = Options {
        include_self: include_self.ok_or(PitstopError::NullArgument("include_self")).or_report(),
        ..options(budget_mb, max_indexes, min_improvement, top_n, min_workload_gain).or_report()
    };
    let from_pg_stat_statements = queries.is_none();
    let advice = advise(queries, &options).or_report();
    if from_pg_stat_statements {
        remember::remember(&remembered(&advice));
    }
    let rows: Vec<_> = advice
        .suggestions
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let helped: Vec<serde_json::Value> = s
                .helped
                .iter()
                .map(|(q, before, after)| {
                    let statement = &advice.statements[*q];
                    serde_json::json!({
                        "queryid": statement.queryid,
                        "role": statement.role_name,
                        "query": workload::label(&statement.sql),
                        "calls": statement.calls,
                        "cost_before": round2(*before),
                        "cost_after": round2(*after),
                    })
                })
                .collect();
            let best = s
                .helped
                .iter()
                .map(|(_, b, a)| if *b > 0.0 { (b - a) / b } else { 0.0 })
                .fold(0.0, f64::max);
            let reason = format!(
                "{}; helps {} {} (up to {:.0} % cheaper)",
                s.candidate.purpose(),
                s.helped.len(),
                if s.helped.len() == 1 { "query" } else { "queries" },
                best * 100.0
            );
            let improvement = if s.workload_before > 0.0 {
                (s.workload_before - s.workload_after) / s.workload_before
            } else {
                0.0
            };
            (
                i as i32 + 1,
                s.candidate.ddl(),
                s.candidate.table.clone(),
                s.bytes,
                round2(s.workload_before),
                round2(s.workload_after),
                round2(improvement * 100.0),
                round2(s.write_cost),
                s.helped.len() as i32,
                pgrx::JsonB(serde_json::Value::Array(helped)),
                reason,
            )
        })
        .collect();
    TableIterator::new(rows)
}

/// The suggestions with the queryids of the statements each helps, for `index_effect`.
fn remembered(advice: &Advice) -> Vec<remember::Remembered<'_>> {
    advice
        .suggestions
        .iter()
        .map(|s| remember::Remembered {
            candidate: &s.candidate,
            queryids: s
                .helped
                .iter()
                .filter_map(|(q, _, _)| advice.statements[*q].queryid)
                .collect(),
            improvement_pct: if s.workload_before > 0.0 {
                100.0 * (s.workload_before - s.workload_after) / s.workload_before
            } else {
                0.0
            },
        })
        .collect()
}

/// The workload statements none of `suggest_indexes`' indexes (same arguments) helps, and why.
#[pg_extern(volatile, parallel_unsafe)]
#[allow(clippy::type_complexity)]
fn unhelped_queries(
    queries: default!(Option<Vec<Option<String>>>, "NULL"),
    budget_mb: default!(Option<f64>, "NULL"),
    max_indexes: default!(Option<i32>, "NULL"),
    min_improvement: default!(Option<f64>, 0.05),
    top_n: default!(Option<i32>, 100),
    min_workload_gain: default!(Option<f64>, 0.01),
    include_self: default!(Option<bool>, false),
) -> TableIterator<
    'static,
    (
        name!(queryid, Option<i64>),
        name!(query, String),
        name!(calls, f64),
        name!(cost, Option<f64>),
        name!(reason, String),
        name!(role, String),
    ),
> {
    let options = Options {
        include_self: include_self.ok_or(PitstopError::NullArgument("include_self")).or_report(),
        ..options(budget_mb, max_indexes, min_improvement, top_n, min_workload_gain).or_report()
    };
    let advice = advise(queries, &options).or_report();
    let rows: Vec<_> = advice
        .unhelped
        .iter()
        .map(|u| {
            let statement = &advice.statements[u.statement];
            (
                statement.queryid,
                workload::label(&statement.sql),
                statement.calls,
                u.cost.map(round2),
                u.reason.clone(),
                statement.role_name.clone(),
            )
        })
        .collect();
    TableIterator::new(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_validated() {
        let gain = Some(0.01);
        assert!(options(None, None, Some(0.05), Some(100), gain).is_ok());
        for bad in [
            options(Some(0.0), None, Some(0.05), Some(100), gain),
            options(Some(-1.0), None, Some(0.05), Some(100), gain),
            options(Some(f64::NAN), None, Some(0.05), Some(100), gain),
            options(None, Some(0), Some(0.05), Some(100), gain),
            options(None, None, Some(1.0), Some(100), gain),
            options(None, None, Some(-0.1), Some(100), gain),
            options(None, None, Some(0.05), Some(0), gain),
            options(None, None, Some(0.05), Some(100), Some(1.5)),
            options(None, None, Some(0.05), Some(100), Some(-0.01)),
        ] {
            assert!(matches!(bad, Err(PitstopError::OutOfRange { .. })));
        }
        assert!(matches!(
            options(None, None, None, Some(1), gain),
            Err(PitstopError::NullArgument("min_improvement"))
        ));
        assert!(matches!(
            options(None, None, Some(0.05), Some(1), None),
            Err(PitstopError::NullArgument("min_workload_gain"))
        ));
    }
}
