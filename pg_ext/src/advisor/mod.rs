//! Index advice: native hypothetical indexes and their size model, index health, and
//! workload-level suggestions (usage → candidates → selection).

pub mod candidates;
pub mod health;
pub mod hypo;
pub mod normalized;
pub mod remember;
pub mod select;
pub mod size;
pub mod suggest;
pub mod usage;
