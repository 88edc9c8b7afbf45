//! The result cache's store in shared memory: the region laid out by
//! `pitstop_core::cache::store::layout`, its LWLock tranche, and the `Memory` the store's
//! policy (in pitstop-core) reads and writes through.

use crate::pg::lwlock::LwLocks;
use crate::pg::shmem;
use pitstop_core::cache::store::{
    layout, Chunk, Entry, Header, Memory, Store, PARTITIONS, VERSION_SLOTS,
};
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

const NAME: &std::ffi::CStr = c"pitstop result cache";

/// Base of the store's shared memory; re-set on every attach (also after a crash restart).
static BASE: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());

/// The store over shared memory.
pub type SharedStore = Store<SharedMemory>;

/// The region of a store of `chunks` chunks, mapped at `base`.
#[derive(Clone, Copy)]
pub struct SharedMemory {
    base: *mut u8,
    entries: usize,
    hashes_at: usize,
    versions_at: usize,
    entries_at: usize,
    chunks_at: usize,
}

// SAFETY: the region is shared memory designed for concurrent use: every field is atomic or
// changed only under the locks the store's policy takes (see `Memory`).
unsafe impl Send for SharedMemory {}
// SAFETY: as above.
unsafe impl Sync for SharedMemory {}

impl SharedMemory {
    fn at(base: *mut u8, chunks: usize) -> SharedMemory {
        let l = layout(chunks);
        SharedMemory {
            base,
            entries: l.entries,
            hashes_at: l.hashes_at,
            versions_at: l.versions_at,
            entries_at: l.entries_at,
            chunks_at: l.chunks_at,
        }
    }

    fn atomics(&self, at: usize, len: usize) -> &[AtomicU64] {
        // SAFETY: `len` u64 counters at their 64-byte aligned offset inside the region
        // (`layout`); zeroed bytes are valid atomics and they are only used atomically.
        unsafe { std::slice::from_raw_parts(self.base.add(at).cast::<AtomicU64>(), len) }
    }

    fn entry_ptr(&self, index: usize) -> *mut Entry {
        debug_assert!(index < self.entries);
        // SAFETY: index < entries, inside the entry table.
        unsafe { self.base.add(self.entries_at).cast::<Entry>().add(index) }
    }

    fn chunk_ptr(&self, index: u32) -> *mut Chunk {
        // SAFETY: the store only names chunks below its chunk count, inside the chunk pool.
        unsafe { self.base.add(self.chunks_at).cast::<Chunk>().add(index as usize) }
    }
}

impl Memory for SharedMemory {
    fn header(&self) -> &Header {
        // SAFETY: the header sits at the start of the region; all its fields are atomics.
        unsafe { &*self.base.cast::<Header>() }
    }

    fn versions(&self) -> &[AtomicU64] {
        self.atomics(self.versions_at, VERSION_SLOTS)
    }

    fn in_flight(&self) -> &[AtomicU64] {
        self.atomics(self.versions_at + VERSION_SLOTS * 8, VERSION_SLOTS)
    }

    fn hashes(&self) -> &[AtomicU64] {
        self.atomics(self.hashes_at, self.entries)
    }

    fn entry<R>(&self, index: usize, f: impl FnOnce(&Entry) -> R) -> R {
        // SAFETY: the store reads an entry only under its partition's lock (shared or
        // exclusive), so no writer changes its plain fields meanwhile.
        f(unsafe { &*self.entry_ptr(index) })
    }

    fn entry_mut<R>(&self, index: usize, f: impl FnOnce(&mut Entry) -> R) -> R {
        // SAFETY: the store writes an entry only under its partition's exclusive lock.
        f(unsafe { &mut *self.entry_ptr(index) })
    }

    fn chunk<R>(&self, index: u32, f: impl FnOnce(&Chunk) -> R) -> R {
        // SAFETY: a chunk is read while the entry owning it is locked, or by its owner, or
        // under the free-list lock: never while it is written.
        f(unsafe { &*self.chunk_ptr(index) })
    }

    fn chunk_mut<R>(&self, index: u32, f: impl FnOnce(&mut Chunk) -> R) -> R {
        // SAFETY: a chunk is written only by the one process that took it off the free list
        // (before its entry is published) or under the free-list lock.
        f(unsafe { &mut *self.chunk_ptr(index) })
    }
}

/// Requests the store's region and its LWLocks (preload only); `chunks` is fixed at server
/// start.
pub fn install(chunks: fn() -> usize) {
    shmem::install(vec![shmem::Region {
        name: NAME,
        size: Box::new(move || layout(chunks()).end),
        attach: Box::new(move |base, created| {
            if created {
                let chunks = chunks();
                // SAFETY: `base` is the fresh region of `layout(chunks).end` bytes that nobody
                // else sees yet (shmem startup); all-zero bytes are valid for every part.
                unsafe { std::ptr::write_bytes(base, 0, layout(chunks).end) };
                Store::new(SharedMemory::at(base, chunks)).initialise(chunks);
            }
            BASE.store(base, Ordering::Release);
        }),
        lwlocks: (NAME, PARTITIONS + 1),
    }]);
}

/// The store and its locks, when pitstop was preloaded. Resolved once per backend: a backend
/// never outlives the shared memory it was forked with.
pub fn attached(chunks: fn() -> usize) -> Option<(SharedStore, &'static LwLocks)> {
    thread_local! {
        static ATTACHED: std::cell::OnceCell<Option<(SharedMemory, &'static LwLocks)>> =
            const { std::cell::OnceCell::new() };
    }
    let (memory, locks) = ATTACHED.with(|a| {
        *a.get_or_init(|| {
            let base = BASE.load(Ordering::Acquire);
            if base.is_null() {
                return None;
            }
            let memory = SharedMemory::at(base, chunks());
            if !Store::new(memory).is_initialised() {
                return None;
            }
            // SAFETY: the tranche was requested with the region; backends attach after shared
            // memory initialisation. Leaked once: the locks live as long as the process.
            let locks: &'static LwLocks =
                Box::leak(Box::new(unsafe { LwLocks::attach(NAME, PARTITIONS) }));
            Some((memory, locks))
        })
    })?;
    Some((Store::new(memory), locks))
}
