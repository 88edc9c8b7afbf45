//! Shared-memory regions whose size is only known at server start (from a GUC), which
//! pgrx's fixed-size `PgLwLock<T>` cannot express. Regions are requested in the
//! shmem_request hook (PG15+; directly in _PG_init before that) and attached in the
//! shmem_startup hook, both chained to any previous hook.

use pgrx::pg_sys;
use pgrx::pg_sys::ffi::pg_guard_ffi_boundary;
use pgrx::prelude::*;
use std::ffi::CStr;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::Mutex;

/// One named region: how big it is and what to do with it once mapped.
pub struct Region {
    pub name: &'static CStr,
    pub size: Box<dyn Fn() -> usize + Send>,
    /// Receives the region's base address (cache-line aligned) and whether this call
    /// created it (then its contents are garbage and must be initialised).
    pub attach: Box<dyn Fn(*mut u8, bool) + Send>,
    /// A named LWLock tranche of this many locks to request with the region (0: none).
    pub lwlocks: (&'static CStr, usize),
}

/// A region laid out as one `H` then `capacity()` × `S` (a header and its slots), built by
/// `header` and `slot` when the region is created and then shared as plain references: the
/// slow-query ring and the latency table, whose types synchronise themselves (atomics and
/// `TryLock`s). The capacity comes from a GUC fixed at server start.
pub struct SlotRegion<H: 'static, S: 'static> {
    name: &'static CStr,
    capacity: fn() -> usize,
    header: fn(usize) -> H,
    slot: fn() -> S,
    /// Replaced on every attach: after a crash restart the postmaster maps a new segment.
    base: AtomicPtr<u8>,
    /// `capacity()` as the region was made with (read on every statement: no GUC lookup).
    slots: AtomicUsize,
}

impl<H: Sync, S: Sync> SlotRegion<H, S> {
    pub const fn new(
        name: &'static CStr,
        capacity: fn() -> usize,
        header: fn(usize) -> H,
        slot: fn() -> S,
    ) -> Self {
        SlotRegion {
            name,
            capacity,
            header,
            slot,
            base: AtomicPtr::new(std::ptr::null_mut()),
            slots: AtomicUsize::new(0),
        }
    }

    fn slots_offset() -> usize {
        size_of::<H>().next_multiple_of(align_of::<S>())
    }

    fn size(capacity: usize) -> usize {
        Self::slots_offset() + capacity * size_of::<S>()
    }

    /// Requests the region (preload only; see `install`).
    pub fn install(&'static self) {
        // ShmemInitStruct aligns to a cache line; the types must not ask for more.
        assert!(align_of::<H>() <= 64 && align_of::<S>() <= 64);
        install(vec![Region {
            name: self.name,
            size: Box::new(|| Self::size((self.capacity)())),
            attach: Box::new(|base, created| self.attach(base, created)),
            lwlocks: (c"", 0),
        }]);
    }

    fn attach(&self, base: *mut u8, created: bool) {
        let capacity = (self.capacity)();
        if created {
            // SAFETY: `base` is a fresh region of `size(capacity)` bytes, cache-line aligned
            // (enough for H and S, asserted in `install`), that nothing else sees yet (shmem
            // startup under AddinShmemInitLock): the header and each slot are written in place
            // without reading or dropping the garbage there.
            unsafe {
                base.cast::<H>().write((self.header)(capacity));
                let slots = base.add(Self::slots_offset()).cast::<S>();
                for i in 0..capacity {
                    slots.add(i).write((self.slot)());
                }
            }
        }
        self.slots.store(capacity, Ordering::Relaxed);
        self.base.store(base, Ordering::Release);
    }

    /// Whether the region is mapped (pitstop was preloaded), without touching it.
    pub fn is_attached(&self) -> bool {
        !self.base.load(Ordering::Relaxed).is_null()
    }

    /// The header and the slots, when the region is mapped.
    pub fn get(&self) -> Option<(&'static H, &'static [S])> {
        let base = self.base.load(Ordering::Acquire);
        if base.is_null() {
            return None;
        }
        let capacity = self.slots.load(Ordering::Relaxed);
        // SAFETY: a non-null base was initialised by `attach` with a header and `capacity`
        // slots (stored before the base, with release ordering), stays mapped for the life of
        // the process, and H and S are Sync: shared references are all anyone gets.
        unsafe {
            let header = &*base.cast::<H>();
            let slots =
                std::slice::from_raw_parts(base.add(Self::slots_offset()).cast::<S>(), capacity);
            Some((header, slots))
        }
    }
}

static REGIONS: Mutex<Vec<Region>> = Mutex::new(Vec::new());

static mut PREV_SHMEM_STARTUP: pg_sys::shmem_startup_hook_type = None;
static mut PREV_SHMEM_REQUEST: pg_sys::shmem_request_hook_type = None;

/// True while the postmaster loads `shared_preload_libraries`, the only time shared memory
/// can be requested.
pub fn loading_at_preload() -> bool {
    // SAFETY: a plain bool set by the postmaster before loading preload libraries.
    unsafe { pg_sys::process_shared_preload_libraries_in_progress }
}

static INSTALLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Registers the regions and installs the hooks (once, whoever calls first). Call from
/// _PG_init, at preload.
pub fn install(regions: Vec<Region>) {
    REGIONS.lock().unwrap_or_else(|e| e.into_inner()).extend(regions);
    if INSTALLED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    // SAFETY: _PG_init runs single-threaded in the postmaster; saving and replacing the hook
    // pointers is the documented way to chain hooks.
    unsafe {
        PREV_SHMEM_REQUEST = pg_sys::shmem_request_hook;
        pg_sys::shmem_request_hook = Some(on_shmem_request);
        PREV_SHMEM_STARTUP = pg_sys::shmem_startup_hook;
        pg_sys::shmem_startup_hook = Some(on_shmem_startup);
    }
}

fn request_space() {
    for region in REGIONS.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        // SAFETY: called in the postmaster while shared memory may still be requested.
        unsafe { pg_sys::RequestAddinShmemSpace((region.size)()) };
        let (tranche, count) = region.lwlocks;
        if count > 0 {
            // SAFETY: as above; the name is a static C string.
            unsafe { pg_sys::RequestNamedLWLockTranche(tranche.as_ptr(), count as i32) };
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn on_shmem_request() {
    // SAFETY: the saved pointer is either None or a valid hook installed before ours.
    unsafe {
        if let Some(prev) = PREV_SHMEM_REQUEST {
            pg_guard_ffi_boundary(|| prev());
        }
    }
    request_space();
}

#[pg_guard]
unsafe extern "C-unwind" fn on_shmem_startup() {
    // SAFETY: as above for the previous hook.
    unsafe {
        if let Some(prev) = PREV_SHMEM_STARTUP {
            pg_guard_ffi_boundary(|| prev());
        }
    }
    // SAFETY: AddinShmemInitLock (MainLWLockArray[21]) serialises ShmemInitStruct among
    // processes attaching at once, as every contrib module does; ShmemInitStruct returns a
    // region of exactly the requested size (or raises ERROR when space is missing).
    unsafe {
        let addin_shmem_init_lock = &raw mut (*pg_sys::MainLWLockArray.add(21)).lock;
        pg_sys::LWLockAcquire(addin_shmem_init_lock, pg_sys::LWLockMode::LW_EXCLUSIVE);
        for region in REGIONS.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let mut found = false;
            let base = pg_sys::ShmemInitStruct(region.name.as_ptr(), (region.size)(), &mut found);
            (region.attach)(base.cast(), !found);
        }
        pg_sys::LWLockRelease(addin_shmem_init_lock);
    }
}
