//! Index advice without PostgreSQL: what a planned query asks of its tables (usage), the
//! candidate indexes that follow from it, their size model, the greedy selection over the
//! workload, making pg_stat_statements texts plannable (normalized), and how the workload's
//! statements are reported (workload).

pub mod candidates;
pub mod normalized;
pub mod progress;
pub mod select;
pub mod size;
pub mod usage;
pub mod workload;
