//! Shared-memory regions whose size is only known at server start (from a GUC), which
//! pgrx's fixed-size `PgLwLock<T>` cannot express. Regions are requested in the
//! shmem_request hook (PG15+; directly in _PG_init before that) and attached in the
//! shmem_startup hook, both chained to any previous hook.

use pgrx::pg_sys;
use pgrx::pg_sys::ffi::pg_guard_ffi_boundary;
use pgrx::prelude::*;
use std::ffi::CStr;
use std::sync::Mutex;

/// One named region: how big it is and what to do with it once mapped.
pub struct Region {
    pub name: &'static CStr,
    pub size: fn() -> usize,
    /// Receives the region's base address (cache-line aligned) and whether this call
    /// created it (then its contents are garbage and must be initialised).
    pub attach: fn(base: *mut u8, created: bool),
    /// A named LWLock tranche of this many locks to request with the region (0: none).
    pub lwlocks: (&'static CStr, usize),
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
