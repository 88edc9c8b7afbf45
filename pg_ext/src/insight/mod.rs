//! Slow-query insight: capture, top queries, plan advice.

pub mod capture;
pub mod explain_advice;
pub mod plan_advice;
pub mod ring;
pub mod top_queries;
