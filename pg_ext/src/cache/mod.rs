//! The result cache inside Postgres: `pitstop.cached`, `cached_json`, its statistics and
//! management functions, and the invalidation that keeps it transactionally correct.

pub mod engine;
pub mod key;
pub mod sql;
pub mod store;
pub mod tracking;

use crate::gucs;
use crate::pg::lwlock::LwLocks;
use crate::pg::{executor, shmem, write_tracking};
use std::sync::atomic::{AtomicPtr, Ordering};

const TRANCHE: &std::ffi::CStr = c"pitstop result cache";

/// Base of the store's shared memory; re-set on every attach (also after a crash restart).
static STORE_BASE: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());

fn chunks() -> usize {
    store::chunks_for(gucs::cache_size_bytes())
}

/// Requests shared memory and installs the write tracking (preload only).
pub fn init() {
    shmem::install(vec![shmem::Region {
        name: c"pitstop result cache",
        size: || store::region_size(chunks()),
        attach: |base, created| {
            // SAFETY: `base` is the region sized for `chunks()` (fixed at server start),
            // 64-byte aligned by ShmemInitStruct; when created nobody else uses it yet.
            let _ = unsafe { store::Store::from_raw(base, chunks(), created) };
            STORE_BASE.store(base, Ordering::Release);
        },
        lwlocks: (TRANCHE, store::PARTITIONS + 1),
    }]);
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

/// The store and its locks, when pitstop was preloaded. Resolved once per backend: a backend
/// never outlives the shared memory it was forked with.
pub fn attached() -> Option<(store::Store, &'static LwLocks)> {
    thread_local! {
        static ATTACHED: std::cell::OnceCell<Option<(usize, usize, &'static LwLocks)>> = const { std::cell::OnceCell::new() };
    }
    let (base, chunks, locks) = ATTACHED.with(|a| {
        *a.get_or_init(|| {
            let base = STORE_BASE.load(Ordering::Acquire);
            if base.is_null() {
                return None;
            }
            let chunks = chunks();
            // SAFETY: the region was initialised by `attach` for `chunks()`.
            if !unsafe { store::Store::from_raw(base, chunks, false) }.is_initialised() {
                return None;
            }
            // SAFETY: the tranche was requested with the region; backends attach after shared
            // memory initialisation. Leaked once: the locks live as long as the process.
            let locks: &'static LwLocks =
                Box::leak(Box::new(unsafe { LwLocks::attach(TRANCHE, store::PARTITIONS) }));
            Some((base as usize, chunks, locks))
        })
    })?;
    // SAFETY: as above; `base` is the initialised region.
    Some((unsafe { store::Store::from_raw(base as *mut u8, chunks, false) }, locks))
}
