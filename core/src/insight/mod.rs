//! Query insight: advice over EXPLAIN plans (`plan_advice`) and the ranking of
//! pg_stat_statements (`top_queries`). The extension's `insight` module runs the SQL.

pub mod plan_advice;
pub mod top_queries;
