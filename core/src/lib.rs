//! pitstop's pure logic: what the extension decides, without PostgreSQL. No pgrx and no
//! unsafe here, so every rule is tested with plain `cargo test` (tier 1); the extension
//! (`pg_ext/`) gathers the inputs through SPI and its `pg/` module and calls in.

#![forbid(unsafe_code)]

pub mod advisor;
pub mod cache;
pub mod health;
pub mod ident;
pub mod insight;
pub mod latency;
pub mod query;
