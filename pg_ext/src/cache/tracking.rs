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
    /// Relations written by the current transaction (a few, so a Vec beats a set).
    static WRITTEN: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
    /// Version slots marked as having a commit under way (between pre-commit and commit).
    static PENDING: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
    /// Relations read while a cache fill runs its query; None when no fill runs.
    static FILL_READS: RefCell<Option<BTreeSet<u32>>> = const { RefCell::new(None) };
    /// The current transaction ran DDL whose effects cannot be attributed to relations.
    static WROTE_DEFINITIONS: Cell<bool> = const { Cell::new(false) };
    /// Whether this backend holds the global "commit under way" mark.
    static GLOBAL_PENDING: Cell<bool> = const { Cell::new(false) };
    /// Anything for the transaction's end to do (a write, DDL, a mark): false for the read-only
    /// transactions that are most of a workload, which then cost nothing at commit.
    static ACTIVE: Cell<bool> = const { Cell::new(false) };
    /// True while a cache fill runs (its reads are collected).
    static COLLECTING: Cell<bool> = const { Cell::new(false) };
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

pub fn active() -> bool {
    ACTIVE.try_with(Cell::get).unwrap_or(false)
}

pub fn collecting() -> bool {
    COLLECTING.try_with(Cell::get).unwrap_or(false)
}

pub fn relation_written(relid: pg_sys::Oid) {
    ACTIVE.with(|a| a.set(true));
    WRITTEN.with(|w| {
        if let Ok(mut written) = w.try_borrow_mut() {
            if !written.contains(&relid.to_u32()) {
                written.push(relid.to_u32());
            }
        }
    });
}

/// Runs at pre-commit, commit and abort of a transaction that wrote something. Buffers are
/// cleared, not freed: this runs for every writing transaction.
pub fn transaction_ended(end: TransactionEnd) {
    let Some((store, _)) = attached() else { return };
    let dbid = backend::current_database().to_u32();
    WRITTEN.with(|written| {
        PENDING.with(|pending| {
            let (Ok(mut written), Ok(mut pending)) = (written.try_borrow_mut(), pending.try_borrow_mut()) else { return };
            match end {
                TransactionEnd::Committing => {
                    if WROTE_DEFINITIONS.with(Cell::get) && !GLOBAL_PENDING.with(|g| g.replace(true)) {
                        store.global_commit_starting();
                    }
                    for relid in written.iter() {
                        let slot = Store::version_slot(dbid, *relid);
                        if !pending.contains(&slot) {
                            store.commit_starting(slot);
                            pending.push(slot);
                        }
                    }
                }
                TransactionEnd::Committed => {
                    ACTIVE.with(|a| a.set(false));
                    finish_global(&store);
                    // Written after pre-commit (ON COMMIT actions): bumped without the mark.
                    for relid in written.iter() {
                        let slot = Store::version_slot(dbid, *relid);
                        if !pending.contains(&slot) {
                            store.bump(slot);
                        }
                    }
                    for slot in pending.iter() {
                        store.commit_finished(*slot, true);
                        store.count(Counter::Invalidations);
                    }
                    written.clear();
                    pending.clear();
                }
                TransactionEnd::NotCommitted => {
                    ACTIVE.with(|a| a.set(false));
                    finish_global(&store);
                    for slot in pending.iter() {
                        store.commit_finished(*slot, false);
                    }
                    written.clear();
                    pending.clear();
                }
            }
        })
    });
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
    ACTIVE.with(|a| a.set(true));
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
            COLLECTING.with(|c| c.set(false));
            FILL_READS.with(|r| *r.borrow_mut() = None);
        }
    }
    FILL_READS.with(|r| *r.borrow_mut() = Some(BTreeSet::new()));
    COLLECTING.with(|c| c.set(true));
    let guard = Collect;
    let value = f();
    let reads = FILL_READS.with(|r| r.borrow_mut().take()).unwrap_or_default();
    drop(guard);
    (value, reads)
}
