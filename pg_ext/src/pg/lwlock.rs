//! The cache store's locks as Postgres LWLocks from a named tranche: shared/exclusive per
//! partition, plus one for the chunk free list. An ERROR while one is held releases it twice
//! over: the guard on unwind, then LWLockReleaseAll at abort finds nothing left.

use pgrx::pg_sys;
use pitstop_core::cache::store::Locks;

pub struct LwLocks {
    locks: *mut pg_sys::LWLockPadded,
    free_list: usize,
}

pub struct LwGuard(*mut pg_sys::LWLock);

impl Drop for LwGuard {
    fn drop(&mut self) {
        // SAFETY: the guard exists only while this backend holds the lock.
        unsafe { pg_sys::LWLockRelease(self.0) };
    }
}

impl LwLocks {
    /// The tranche's locks: `partitions` partition locks then the free-list lock.
    ///
    /// # Safety
    /// The tranche was requested at preload with `partitions + 1` locks and shared memory is
    /// initialised (we are in a backend).
    pub unsafe fn attach(tranche: &std::ffi::CStr, partitions: usize) -> LwLocks {
        // SAFETY: the caller's contract.
        let locks = unsafe { pg_sys::GetNamedLWLockTranche(tranche.as_ptr()) };
        LwLocks { locks, free_list: partitions }
    }

    fn lock(&self, index: usize) -> *mut pg_sys::LWLock {
        // SAFETY: index <= partitions, inside the tranche.
        unsafe { &raw mut (*self.locks.add(index)).lock }
    }

    fn acquire(&self, index: usize, mode: pg_sys::LWLockMode::Type) -> LwGuard {
        let lock = self.lock(index);
        // SAFETY: a valid LWLock of our tranche; released by the guard.
        unsafe { pg_sys::LWLockAcquire(lock, mode) };
        LwGuard(lock)
    }
}

impl Locks for LwLocks {
    type Guard<'a> = LwGuard;

    fn shared(&self, partition: usize) -> LwGuard {
        self.acquire(partition, pg_sys::LWLockMode::LW_SHARED)
    }

    fn exclusive(&self, partition: usize) -> LwGuard {
        self.acquire(partition, pg_sys::LWLockMode::LW_EXCLUSIVE)
    }

    fn try_exclusive(&self, partition: usize) -> Option<LwGuard> {
        let lock = self.lock(partition);
        // SAFETY: as in acquire; only a successful acquisition yields a guard.
        unsafe { pg_sys::LWLockConditionalAcquire(lock, pg_sys::LWLockMode::LW_EXCLUSIVE) }
            .then_some(LwGuard(lock))
    }

    fn free_list(&self) -> LwGuard {
        self.acquire(self.free_list, pg_sys::LWLockMode::LW_EXCLUSIVE)
    }
}
