//! `pitstop.top_queries(sort, lim, include_self)`: pg_stat_statements ranked, never reset;
//! pitstop's own statements left out unless asked. The sort keys and the query text are in
//! `pitstop_core::insight::top_queries`.

use crate::error::{required, OrReport, PitstopError};
use crate::pg::spi::{self, column};
use pgrx::prelude::*;
use pitstop_core::insight::top_queries::{order_by, top_queries_sql, validate_limit};

type TopQueryRow = (
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    Option<i64>,
    Option<f64>,
    Option<i64>,
    Option<f64>,
    Option<String>,
);

#[pg_extern(stable, parallel_safe)]
#[allow(clippy::type_complexity)]
fn top_queries(
    sort: default!(Option<&str>, "'total_time'"),
    lim: default!(Option<i32>, 20),
    include_self: default!(Option<bool>, false),
) -> TableIterator<
    'static,
    (
        name!(queryid, Option<i64>),
        name!(username, Option<String>),
        name!(calls, Option<i64>),
        name!(total_ms, Option<f64>),
        name!(mean_ms, Option<f64>),
        name!(stddev_ms, Option<f64>),
        name!(max_ms, Option<f64>),
        name!(rows, Option<i64>),
        name!(shared_hit_pct, Option<f64>),
        name!(temp_blks, Option<i64>),
        name!(pct_total_time, Option<f64>),
        name!(query, Option<String>),
    ),
> {
    let order = required(sort, "sort")
        .and_then(|sort| {
            order_by(sort)
                .map_err(|e| PitstopError::UnknownSortKey { given: e.given, valid: e.valid })
        })
        .or_report();
    let limit = required(lim, "lim")
        .and_then(|lim| {
            validate_limit(lim)
                .ok_or(PitstopError::Negative { name: "lim", value: lim.to_string() })
        })
        .or_report();
    let include_self = required(include_self, "include_self").or_report();
    let rows: Vec<TopQueryRow> = spi::connect(|client| {
        let pgss =
            crate::pg::spi::extension_object(client, "pg_stat_statements", "pg_stat_statements")
                .ok_or(PitstopError::MissingPgStatStatements)
                .or_report();
        let table = client
            .select(&top_queries_sql(&pgss, &order), None, &[limit.into(), include_self.into()])
            .unwrap_or_else(|e| pgrx::error!("top_queries: {e}"));
        table
            .map(|row| {
                (
                    column(&row, "queryid"),
                    column(&row, "username"),
                    column(&row, "calls"),
                    column(&row, "total_ms"),
                    column(&row, "mean_ms"),
                    column(&row, "stddev_ms"),
                    column(&row, "max_ms"),
                    column(&row, "rows"),
                    column(&row, "shared_hit_pct"),
                    column(&row, "temp_blks"),
                    column(&row, "pct_total_time"),
                    column(&row, "query"),
                )
            })
            .collect()
    });
    TableIterator::new(rows)
}
