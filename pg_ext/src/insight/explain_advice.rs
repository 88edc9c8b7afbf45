//! `pitstop.explain_advice(query, analyze)`: EXPLAIN the query and return plan findings.

use crate::error::{required, OrReport, PitstopError};
use crate::pg::{parse, spi, subxact, timeout};
use pgrx::prelude::*;
use pitstop_core::insight::plan_advice::{
    self, explain_options, MemorySettings, RelationFacts, RelationKey,
};
use std::collections::HashMap;

fn relation_facts(relations: &[RelationKey]) -> HashMap<RelationKey, RelationFacts> {
    let schemas: Vec<String> = relations.iter().map(|r| r.0.clone()).collect();
    let names: Vec<String> = relations.iter().map(|r| r.1.clone()).collect();
    spi::connect(|client| {
        let Ok(table) = client.select(
            include_str!("../../../sql/queries/relation_facts.sql"),
            None,
            &[schemas.into(), names.into()],
        ) else {
            return HashMap::new();
        };
        table
            .map(|row| {
                let schema: String = spi::required(&row, "schema_name");
                let name: String = spi::required(&row, "rel_name");
                let facts = RelationFacts {
                    reltuples: spi::column(&row, "reltuples").unwrap_or(-1.0),
                    has_column_stats: spi::column(&row, "has_column_stats").unwrap_or(false),
                };
                ((schema, name), facts)
            })
            .collect()
    })
}

fn memory_settings() -> MemorySettings {
    spi::connect(|client| MemorySettings {
        work_mem_kb: spi::setting_value(client, "work_mem").unwrap_or(4096.0),
        hash_mem_multiplier: spi::setting_value(client, "hash_mem_multiplier").unwrap_or(2.0),
    })
}

/// Findings about the plan of `query`. With `analyze => true` the query is executed inside a
/// subtransaction that is always rolled back, under `statement_timeout_ms`, so even DML
/// changes nothing (sequences still advance, as in any rolled-back transaction).
#[pg_extern(volatile, parallel_unsafe)]
#[allow(clippy::type_complexity)]
fn explain_advice(
    query: Option<&str>,
    analyze: default!(Option<bool>, false),
    statement_timeout_ms: default!(Option<i32>, 30000),
) -> TableIterator<
    'static,
    (
        name!(finding, String),
        name!(node, String),
        name!(severity, String),
        name!(detail, String),
        name!(suggestion, String),
    ),
> {
    let query = required(query, "query").or_report();
    let analyze = required(analyze, "analyze").or_report();
    let timeout_ms = required(statement_timeout_ms, "statement_timeout_ms").or_report();
    if timeout_ms < 0 {
        PitstopError::Negative { name: "statement_timeout_ms", value: timeout_ms.to_string() }
            .report();
    }
    parse::single_explainable_statement(query).or_report();
    let plan_text = if analyze {
        subxact::rolled_back(|| {
            timeout::with_statement_timeout(timeout_ms, || {
                spi::explain_json(query, explain_options(true))
            })
        })
    } else {
        spi::explain_json(query, explain_options(false))
    }
    .or_report();
    let plan: serde_json::Value =
        serde_json::from_str(&plan_text).map_err(|_| PitstopError::NoPlan).or_report();
    let facts = relation_facts(&plan_advice::relations_in(&plan));
    let rows: Vec<_> = plan_advice::findings(&plan, &facts, memory_settings())
        .into_iter()
        .map(|f| {
            (f.finding.to_string(), f.node, f.severity.as_str().to_string(), f.detail, f.suggestion)
        })
        .collect();
    TableIterator::new(rows)
}
