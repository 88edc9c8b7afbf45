//! Slow-query insight: capture, top queries, plan advice.

pub mod capture;
pub mod explain_advice;
pub mod latency;
pub mod latency_sql;
pub mod ring;
pub mod top_queries;
