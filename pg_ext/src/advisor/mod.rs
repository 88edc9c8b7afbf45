//! Index advice: native hypothetical indexes, index health, and workload-level suggestions
//! (usage → candidates → selection). The pure logic (candidates, selection, the size model,
//! table usage, plannable pg_stat_statements texts) is in `pitstop_core::advisor`; this module
//! is the SQL entry points and the catalog reads that feed it.

pub mod health;
pub mod hypo;
pub mod layout;
pub mod progress;
pub mod remember;
pub mod suggest;
