//! What this backend's transaction wrote, and what a cache fill read: the backend-local half
//! of invalidation. At pre-commit the written relations are marked "commit under way" (no
//! entry reading them is served); once the commit is visible their versions are bumped and
//! the mark removed. Rolled-back and prepared transactions bump nothing here; COMMIT
//! PREPARED does the same with a global mark and epoch, since nobody can say what it wrote.

use crate::cache::attached;
use crate::cache::{Counter, Store};
use crate::pg::backend;
use crate::pg::write_tracking::TransactionEnd;
use pgrx::pg_sys;
use std::cell::RefCell;
use std::collections::BTreeSet;

/// The backend's tracking state, in one thread-local so that a statement pays one TLS lookup
/// per event rather than one per field (they are `__tls_get_addr` calls in a shared library).
#[derive(Default)]
struct State {
    /// Relations written by the current transaction (a few, so a Vec beats a set).
    written: Vec<u32>,
    /// Version slots marked as having a commit under way (between pre-commit and commit).
    pending: Vec<u32>,
    /// Relations read while a cache fill runs its query; None when no fill runs.
    fill_reads: Option<BTreeSet<u32>>,
    /// The current transaction ran DDL whose effects cannot be attributed to relations.
    wrote_definitions: bool,
    /// Whether this backend holds the global "commit under way" mark.
    global_pending: bool,
    /// Anything for the transaction's end to do (a write, DDL, a mark): false for the read-only
    /// transactions that are most of a workload, which then cost nothing at commit.
    active: bool,
    /// Bumped whenever a relation or function definition may have changed.
    definitions: u64,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

/// Runs `f` on the state; None if it is already borrowed (a callback re-entered) or gone
/// (the thread is exiting).
fn with_state<R>(f: impl FnOnce(&mut State) -> R) -> Option<R> {
    STATE.try_with(|s| s.try_borrow_mut().ok().map(|mut s| f(&mut s))).ok().flatten()
}

/// Executor hook callback: every relation a starting statement uses.
pub fn relation_touched(relid: pg_sys::Oid, writes: bool) {
    with_state(|s| {
        if writes {
            s.record_write(relid.to_u32());
        }
        if let Some(reads) = s.fill_reads.as_mut() {
            reads.insert(relid.to_u32());
        }
    });
}

pub fn active() -> bool {
    with_state(|s| s.active).unwrap_or(false)
}

/// True while a cache fill runs (its reads are collected).
pub fn collecting() -> bool {
    with_state(|s| s.fill_reads.is_some()).unwrap_or(false)
}

pub fn relation_written(relid: pg_sys::Oid) {
    with_state(|s| s.record_write(relid.to_u32()));
}

impl State {
    fn record_write(&mut self, relid: u32) {
        self.active = true;
        if !self.written.contains(&relid) {
            self.written.push(relid);
        }
    }

    /// Ends the transaction's global mark, if it holds one (the epoch moves either way:
    /// harmless after a rollback).
    fn finish_global(&mut self, store: &Store) {
        self.wrote_definitions = false;
        if std::mem::take(&mut self.global_pending) {
            store.global_commit_finished();
            store.count(Counter::Invalidations);
        }
    }
}

/// Runs at pre-commit, commit and abort of a transaction that wrote something. Buffers are
/// cleared, not freed: this runs for every writing transaction.
pub fn transaction_ended(end: TransactionEnd) {
    let Some((store, _)) = attached() else { return };
    let dbid = backend::current_database().to_u32();
    with_state(|s| match end {
        TransactionEnd::Committing => {
            if s.wrote_definitions && !std::mem::replace(&mut s.global_pending, true) {
                store.global_commit_starting();
            }
            for relid in &s.written {
                let slot = Store::version_slot(dbid, *relid);
                if !s.pending.contains(&slot) {
                    store.commit_starting(slot);
                    s.pending.push(slot);
                }
            }
        }
        TransactionEnd::Committed => {
            s.active = false;
            s.finish_global(&store);
            // Written after pre-commit (ON COMMIT actions): bumped without the mark.
            for relid in &s.written {
                let slot = Store::version_slot(dbid, *relid);
                if !s.pending.contains(&slot) {
                    store.bump(slot);
                }
            }
            for slot in &s.pending {
                store.commit_finished(*slot, true);
                store.count(Counter::Invalidations);
            }
            s.written.clear();
            s.pending.clear();
        }
        TransactionEnd::NotCommitted => {
            s.active = false;
            s.finish_global(&store);
            for slot in &s.pending {
                store.commit_finished(*slot, false);
            }
            s.written.clear();
            s.pending.clear();
        }
    });
}

/// DDL in this transaction, or a write nobody could attribute to relations: until it ends
/// nothing is served from the cache to it, and at commit every entry goes stale.
pub fn definitions_written() {
    with_state(|s| {
        s.active = true;
        s.wrote_definitions = true;
    });
}

pub fn wrote_definitions() -> bool {
    // Unknown (re-entered) counts as written: the caller then bypasses the cache.
    with_state(|s| s.wrote_definitions).unwrap_or(true)
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
    with_state(|s| s.definitions = s.definitions.wrapping_add(1));
}

/// A counter that moves whenever cached analyses may be out of date; None when unknown
/// (then nothing remembered may be used).
pub fn definitions_generation() -> Option<u64> {
    with_state(|s| s.definitions)
}

/// Whether this transaction wrote any of `relids` (its own writes are not committed yet).
pub fn wrote_any(relids: &[u32]) -> bool {
    with_state(|s| relids.iter().any(|r| s.written.contains(r))).unwrap_or(true)
}

/// A cache hit on an entry that read `relids`: whether this transaction wrote one of them
/// (then the entry must not be served). While a fill runs, the entry's relations become
/// reads of that fill, whose result is built on the entry's: `pitstop.cached` called inside
/// a function the fill's query runs (declared IMMUTABLE, so the query is cacheable). The
/// fill's entry then depends on them at the versions the fill read before its snapshot: the
/// hit entry was fresh, so its versions are the current ones, no older than the fill's; if
/// one moved since, the fill's entry is stale from the start. One state access: every hit.
pub fn serving(relids: &[u32]) -> bool {
    with_state(|s| {
        if let Some(reads) = s.fill_reads.as_mut() {
            reads.extend(relids);
        }
        relids.iter().any(|r| s.written.contains(r))
    })
    .unwrap_or(true)
}

/// Collects the relations read while `f` runs (the cache fill's query); None when they
/// could not be collected (then the result must not be stored).
pub fn collecting_reads<R>(f: impl FnOnce() -> R) -> (R, Option<BTreeSet<u32>>) {
    /// Puts back the enclosing fill's set (None outside a fill) with what this one read
    /// added, also when `f` raises an ERROR. (A fill inside a fill: `pitstop.cached` called
    /// from a function the outer fill's query runs.)
    struct Restore(Option<BTreeSet<u32>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let outer = self.0.take();
            with_state(|s| {
                let inner = s.fill_reads.take();
                s.fill_reads = outer.map(|mut o| {
                    o.extend(inner.into_iter().flatten());
                    o
                });
            });
        }
    }
    let Some(outer) = with_state(|s| s.fill_reads.replace(BTreeSet::new())) else {
        return (f(), None);
    };
    let restore = Restore(outer);
    let value = f();
    let reads = with_state(|s| s.fill_reads.clone()).flatten();
    drop(restore);
    (value, reads)
}
