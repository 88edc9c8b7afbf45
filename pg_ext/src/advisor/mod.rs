//! Index advice: native hypothetical indexes and their size model.

pub mod hypo;
pub mod size;
