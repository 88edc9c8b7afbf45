//! The only home of `unsafe` and `pg_sys`: small safe functions over Postgres internals,
//! each unsafe block saying why it is sound. Both rules are checked: `unsafe_code` is denied
//! in the rest of the crate (lib.rs), and an unsafe block or impl here without its `SAFETY:`
//! comment is a clippy error.

#![deny(clippy::undocumented_unsafe_blocks)]

pub mod backend;
pub mod cache_store;
pub mod cacheability;
pub mod cached_fn;
pub mod executor;
pub mod explain;
pub mod guc;
pub mod hypo_index;
pub mod list;
pub mod lwlock;
pub mod parse;
pub mod planning;
pub mod range_table;
pub mod result_set;
pub mod role;
pub mod scan;
pub mod shmem;
pub mod spi;
pub mod statement_key;
pub mod subxact;
pub mod syscache;
pub mod table_usage;
pub mod timeout;
pub mod try_lock;
pub mod tuple_desc;
pub mod unguarded;
pub mod utility;
pub mod write_tracking;
pub mod xact;
