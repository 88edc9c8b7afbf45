//! Scheduled maintenance: jobs on cron schedules, within optional windows, that VACUUM,
//! ANALYZE and REINDEX what `pitstop.maintenance_plan()` calls for, snapshot
//! pg_stat_statements and prune pitstop's history tables — safely (see `execute`), and
//! recorded in `pitstop.maintenance_log`. `runner` is the daemon's task, `cli` the
//! `pitstop maintenance` command; the rest is the logic they share.

pub mod cli;
pub mod command;
pub mod execute;
pub mod guard;
pub mod log;
pub mod plan;
pub mod prune;
pub mod retry;
mod runner;
pub mod schedule;
pub mod session;
pub mod snapshot;

pub use runner::run;
