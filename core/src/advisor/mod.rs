//! Index advice without PostgreSQL: what a planned query asks of its tables (usage), the
//! candidate indexes that follows from it, their size model, the greedy selection over the
//! workload, and making pg_stat_statements texts plannable (normalized).

pub mod candidates;
pub mod normalized;
pub mod select;
pub mod size;
pub mod usage;
