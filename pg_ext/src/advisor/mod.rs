//! Index advice: native hypothetical indexes and their size model.

pub mod health;
pub mod hypo;
pub mod size;
