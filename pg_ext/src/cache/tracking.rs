//! What this backend's transaction wrote, and what a cache fill read: the backend-local half
//! of invalidation. At pre-commit the written relations are marked "commit under way" (no
//! entry reading them is served); once the commit is visible their versions are bumped and
//! the mark removed. Rolled-back and prepared transactions bump nothing here; COMMIT
//! PREPARED does the same with a global mark and epoch, since nobody can say what it wrote.

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
    /// Version slots marked as having a commit under way (between pre-commit and commit).
    static PENDING: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
    /// Relations read while a cache fill runs its query; None when no fill runs.
    static FILL_READS: RefCell<Option<BTreeSet<u32>>> = const { RefCell::new(None) };
    /// The current transaction ran DDL whose effects cannot be attributed to relations.
    static WROTE_DEFINITIONS: Cell<bool> = const { Cell::new(false) };
    /// Whether this backend holds the global "commit under way" mark.
    static GLOBAL_PENDING: Cell<bool> = const { Cell::new(false) };
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

/// Slots this backend marked as "commit under way" at pre-commit.
fn take_pending() -> Vec<u32> {
    PENDING.with(|p| p.try_borrow_mut().map(|mut p| std::mem::take(&mut *p)).unwrap_or_default())
}

pub fn transaction_ended(end: TransactionEnd) {
    let Some((store, _)) = attached() else { return };
    let dbid = backend::current_database().to_u32();
    let slots = |relids: BTreeSet<u32>| -> BTreeSet<u32> { relids.into_iter().map(|r| Store::version_slot(dbid, r)).collect() };
    match end {
        TransactionEnd::Committing => {
            if WROTE_DEFINITIONS.with(Cell::get) && !GLOBAL_PENDING.with(|g| g.replace(true)) {
                store.global_commit_starting();
            }
            let written = WRITTEN.with(|w| w.try_borrow().map(|w| w.clone()).unwrap_or_default());
            let slots: Vec<u32> = slots(written).into_iter().collect();
            for slot in &slots {
                store.commit_starting(*slot);
            }
            PENDING.with(|p| {
                if let Ok(mut p) = p.try_borrow_mut() {
                    p.extend(slots);
                }
            });
        }
        TransactionEnd::Committed => {
            finish_global(&store);
            let pending = take_pending();
            let written = WRITTEN.with(|w| w.try_borrow_mut().map(|mut w| std::mem::take(&mut *w)).unwrap_or_default());
            // Written after pre-commit (ON COMMIT actions): bumped without the in-flight mark.
            for slot in slots(written) {
                if !pending.contains(&slot) {
                    store.bump(slot);
                }
            }
            for slot in pending {
                store.commit_finished(slot, true);
                store.count(Counter::Invalidations);
            }
        }
        TransactionEnd::NotCommitted => {
            finish_global(&store);
            WRITTEN.with(|w| w.try_borrow_mut().map(|mut w| w.clear()).ok());
            for slot in take_pending() {
                store.commit_finished(slot, false);
            }
        }
    }
}

/// Ends the transaction's global mark, if it holds one (the epoch moves either way:
/// harmless after a rollback).
fn finish_global(store: &Store) {
    WROTE_DEFINITIONS.with(|w| w.set(false));
    if GLOBAL_PENDING.with(|g| g.replace(false)) {
        store.global_commit_finished();
        store.count(Counter::Invalidations);
    }
}

/// DDL in this transaction: until it ends nothing is served from the cache to it, and at
/// commit every entry goes stale.
pub fn definitions_written() {
    WROTE_DEFINITIONS.with(|w| w.set(true));
}

pub fn wrote_definitions() -> bool {
    WROTE_DEFINITIONS.with(Cell::get)
}

pub fn prepared_commit(starting: bool) {
    let Some((store, _)) = attached() else { return };
    if starting {
        store.global_commit_starting();
    } else {
        store.global_commit_finished();
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
