//! The backend-local lists: hypothetical indexes created in this session, real indexes
//! hidden in it, and while the advisor plans, the indexes it offers instead.

use super::hooks::{ensure_installed, Scope};
use super::{HypoDescription, HypoIndex};
use crate::error::PitstopError;
use pgrx::pg_sys;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU32, Ordering};

thread_local! {
    static REGISTRY: RefCell<Vec<HypoIndex>> = const { RefCell::new(Vec::new()) };
    static HIDDEN: RefCell<Vec<pg_sys::Oid>> = const { RefCell::new(Vec::new()) };
    /// While the advisor plans: the indexes it offers instead of the session's registry.
    static OFFERED: RefCell<Option<Vec<*const HypoIndex>>> = const { RefCell::new(None) };
}

/// Planning in this backend sees exactly `indexes` as hypothetical indexes (and not the
/// session's own) until the guard is dropped. The guard borrows the indexes, so they outlive
/// every planner call that can see them.
pub struct Offer<'a> {
    previous: Option<Vec<*const HypoIndex>>,
    _scope: Scope,
    _indexes: std::marker::PhantomData<&'a HypoIndex>,
}

pub fn offer_only<'a>(indexes: &[&'a HypoIndex]) -> Offer<'a> {
    ensure_installed();
    let pointers = indexes.iter().map(|i| *i as *const HypoIndex).collect();
    let previous = OFFERED.with(|o| o.replace(Some(pointers)));
    Offer { previous, _scope: Scope::enter(), _indexes: std::marker::PhantomData }
}

impl Drop for Offer<'_> {
    fn drop(&mut self) {
        let previous = self.previous.take();
        OFFERED.with(|o| *o.borrow_mut() = previous);
    }
}

/// Calls `f` for each hypothetical index on one of `relids` the planner should see now.
pub(super) fn for_each_offered(relids: &[pg_sys::Oid], mut f: impl FnMut(&HypoIndex)) {
    let offered = OFFERED.with(|o| o.borrow().clone());
    match offered {
        Some(pointers) => {
            for pointer in pointers {
                // SAFETY: `offer_only` stored pointers to indexes borrowed for the lifetime
                // of its guard, and the guard is alive while OFFERED is set.
                let index = unsafe { &*pointer };
                if relids.contains(&index.desc.relid) {
                    f(index);
                }
            }
        }
        None => with_registry(|registry| {
            registry.iter().filter(|h| relids.contains(&h.desc.relid)).for_each(f)
        }),
    }
}

/// Runs `f` with the registry. `f` must not run SQL (planning would re-enter it).
pub(super) fn with_registry<R>(f: impl FnOnce(&mut Vec<HypoIndex>) -> R) -> R {
    REGISTRY.with(|r| f(&mut r.borrow_mut()))
}

pub fn hide(index: pg_sys::Oid) -> bool {
    ensure_installed();
    HIDDEN.with(|h| {
        let mut h = h.borrow_mut();
        let added = !h.contains(&index);
        if added {
            h.push(index);
        }
        added
    })
}

pub fn unhide(index: pg_sys::Oid) -> bool {
    HIDDEN.with(|h| {
        let mut h = h.borrow_mut();
        let before = h.len();
        h.retain(|o| *o != index);
        before != h.len()
    })
}

pub fn hidden() -> Vec<pg_sys::Oid> {
    HIDDEN.with(|h| h.borrow().clone())
}

/// An OID no relation uses, counting down from the top of the OID space.
pub fn unused_oid(taken: &[pg_sys::Oid]) -> pg_sys::Oid {
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX - 1);
    loop {
        let candidate = pg_sys::Oid::from(NEXT.fetch_sub(1, Ordering::Relaxed));
        // SAFETY: catalog lookup by OID; returns '\0' when no relation has it.
        let used = unsafe { pg_sys::get_rel_relkind(candidate) } != 0;
        if !used && !taken.contains(&candidate) {
            return candidate;
        }
    }
}

/// Registers a parsed index under a fresh OID; errors if the name is taken.
pub fn register(mut index: HypoIndex) -> Result<pg_sys::Oid, PitstopError> {
    ensure_installed();
    with_registry(|r| {
        if r.iter().any(|h| h.desc.name == index.desc.name) {
            return Err(PitstopError::DuplicateHypoIndex(index.desc.name.clone()));
        }
        let taken: Vec<_> = r.iter().map(|h| h.desc.oid).collect();
        index.desc.oid = unused_oid(&taken);
        let oid = index.desc.oid;
        r.push(index);
        Ok(oid)
    })
}

/// Copies of every registered description.
pub fn descriptions() -> Vec<HypoDescription> {
    with_registry(|r| r.iter().map(|h| h.desc.clone()).collect())
}

/// Removes one index; false when there is none with that OID.
pub fn remove(oid: pg_sys::Oid) -> bool {
    with_registry(|r| r.iter().position(|h| h.desc.oid == oid).map(|pos| r.remove(pos))).is_some()
}

/// Removes every index; returns how many there were.
pub fn clear() -> usize {
    with_registry(|r| std::mem::take(r).len())
}
