//! The result cache inside Postgres: `pitstop.cached`, `cached_json`, its statistics and
//! management functions, and the invalidation that keeps it transactionally correct.

pub mod engine;
pub mod sql;
pub mod tracking;

use crate::gucs;
use crate::pg::cache_store::{self, SharedStore};
use crate::pg::lwlock::LwLocks;
use crate::pg::{executor, write_tracking};
pub use pitstop_core::cache::{key, store, Bypass, Counter};

/// The store in shared memory.
pub type Store = SharedStore;

fn chunks() -> usize {
    store::chunks_for(gucs::cache_size_bytes())
}

/// Requests shared memory and installs the write tracking (preload only).
pub fn init() {
    cache_store::install(chunks);
    executor::observe_relations(executor::RelationObserver {
        wants_reads: tracking::collecting,
        relation: tracking::relation_touched,
        unattributed: tracking::definitions_written,
    });
    write_tracking::install(write_tracking::WriteEvents {
        active: tracking::active,
        relation_written: tracking::relation_written,
        definitions_written: tracking::definitions_written,
        transaction_ended: tracking::transaction_ended,
        prepared_commit: tracking::prepared_commit,
        definitions_changed: tracking::definitions_changed,
    });
}

/// The store and its locks, when pitstop was preloaded.
pub fn attached() -> Option<(Store, &'static LwLocks)> {
    cache_store::attached(chunks)
}
