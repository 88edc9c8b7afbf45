//! A value in shared memory behind a one-word try-lock: writers on the statement path take
//! it or give up (never wait); readers spin a bounded while. The safe cell the slow-query
//! ring and the latency table are made of (see `shmem::SlotRegion`).

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU32, Ordering};

/// Spins a reader or a reset waits for a writer's copy to finish before skipping a cell.
const READ_SPINS: u32 = 100_000;

#[repr(C)]
pub struct TryLock<T> {
    /// 0 = free, 1 = held; acquire/release ordering makes `value` a mutex-protected value.
    lock: AtomicU32,
    value: UnsafeCell<T>,
}

// SAFETY: `value` is only touched while `lock` is held (see Guard), so concurrent access
// from several processes/threads never races; `T: Send` because a guard hands it to whichever
// thread holds the lock.
unsafe impl<T: Send> Sync for TryLock<T> {}

pub struct Guard<'a, T>(&'a TryLock<T>);

impl<T> TryLock<T> {
    pub const fn new(value: T) -> TryLock<T> {
        TryLock { lock: AtomicU32::new(0), value: UnsafeCell::new(value) }
    }

    pub fn try_lock(&self) -> Option<Guard<'_, T>> {
        self.lock
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| Guard(self))
    }

    /// For readers: spins a bounded while, then gives up (None).
    pub fn lock_spinning(&self) -> Option<Guard<'_, T>> {
        for _ in 0..READ_SPINS {
            if let Some(guard) = self.try_lock() {
                return Some(guard);
            }
            std::hint::spin_loop();
        }
        None
    }
}

impl<T> Guard<'_, T> {
    pub fn entry(&mut self) -> &mut T {
        // SAFETY: holding the lock gives exclusive access to the value.
        unsafe { &mut *self.0.value.get() }
    }
}

impl<T> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        self.0.lock.store(0, Ordering::Release);
    }
}
