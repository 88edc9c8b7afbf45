//! What this backend's transaction wrote, and what a cache fill read: the backend-local half
//! of invalidation. Versions are bumped when the transaction commits (after it is visible),
//! never before; rolled-back and prepared transactions bump nothing here (COMMIT PREPARED
//! bumps the global epoch, since nobody can say what it wrote).

use crate::cache::attached;
use crate::cache::store::{Counter, Store};
use crate::pg::backend;
use crate::pg::write_tracking::TransactionEnd;
use pgrx::pg_sys;
use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;

thread_local! {
    /// Relations written by the current transaction.
    static WRITTEN: RefCell<BTreeSet<u32>> = const { RefCell::new(BTreeSet::new()) };
    /// Relations read while a cache fill runs its query; None when no fill runs.
    static FILL_READS: RefCell<Option<BTreeSet<u32>>> = const { RefCell::new(None) };
    /// Bumped whenever a relation or function definition may have changed.
    static DEFINITIONS: Cell<u64> = const { Cell::new(0) };
}

/// Executor hook callback: every relation a starting statement uses.
pub fn relation_touched(relid: pg_sys::Oid, writes: bool) {
    if writes {
        relation_written(relid);
    }
    FILL_READS.with(|f| {
        if let Ok(mut reads) = f.try_borrow_mut() {
            if let Some(reads) = reads.as_mut() {
                reads.insert(relid.to_u32());
            }
        }
    });
}

pub fn relation_written(relid: pg_sys::Oid) {
    WRITTEN.with(|w| {
        if let Ok(mut written) = w.try_borrow_mut() {
            written.insert(relid.to_u32());
        }
    });
}

pub fn transaction_ended(end: TransactionEnd) {
    let written = WRITTEN.with(|w| w.try_borrow_mut().map(|mut w| std::mem::take(&mut *w)).unwrap_or_default());
    if end != TransactionEnd::Committed || written.is_empty() {
        return;
    }
    let Some((store, _)) = attached() else { return };
    let dbid = backend::current_database().to_u32();
    for relid in written {
        store.bump(Store::version_slot(dbid, relid));
        store.count(Counter::Invalidations);
    }
}

pub fn prepared_committed() {
    if let Some((store, _)) = attached() {
        store.bump_epoch();
        store.count(Counter::Invalidations);
    }
}

pub fn definitions_changed() {
    DEFINITIONS.with(|d| d.set(d.get().wrapping_add(1)));
}

/// A counter that moves whenever cached analyses may be out of date.
pub fn definitions_generation() -> u64 {
    DEFINITIONS.with(Cell::get)
}

/// Whether this transaction wrote any of `relids` (its own writes are not committed yet).
pub fn wrote_any(relids: &[u32]) -> bool {
    WRITTEN.with(|w| w.try_borrow().map(|w| relids.iter().any(|r| w.contains(r))).unwrap_or(true))
}

/// Collects the relations read while `f` runs (the cache fill's query).
pub fn collecting_reads<R>(f: impl FnOnce() -> R) -> (R, BTreeSet<u32>) {
    struct Collect;
    impl Drop for Collect {
        fn drop(&mut self) {
            FILL_READS.with(|r| *r.borrow_mut() = None);
        }
    }
    FILL_READS.with(|r| *r.borrow_mut() = Some(BTreeSet::new()));
    let guard = Collect;
    let value = f();
    let reads = FILL_READS.with(|r| r.borrow_mut().take()).unwrap_or_default();
    drop(guard);
    (value, reads)
}
