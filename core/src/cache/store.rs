//! The result cache's shared memory: relation version counters, an entry table split into
//! partitions (each behind its own reader/writer lock, so readers of different keys never
//! wait on each other and readers of one key share), and a pool of fixed-size chunks that
//! hold each entry's key and result. Memory pressure evicts by CLOCK: a hit sets the entry's
//! reference bit, the hand clears it once and evicts on the second pass.
//!
//! The policy over memory and locks that are the caller's (`Memory`, `Locks`): the
//! extension maps the layout in shared memory and locks with LWLocks (`pg/cache_store.rs`,
//! `pg/lwlock.rs`); the unit tests below keep it on the heap behind std locks.

use super::{Bypass, Counter, COUNTERS};
use std::collections::TryReserveError;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

pub const PARTITIONS: usize = 64;
pub const VERSION_SLOTS: usize = 8192;
pub const MAX_DEPS: usize = 24;
pub const CHUNK_SIZE: usize = 1024;
const CHUNK_DATA: usize = CHUNK_SIZE - 8;
const NO_CHUNK: u32 = u32::MAX;
const MAGIC: u64 = 0x7069_7473_746f_7043; // "pitstopC"

/// Locks over the store: one reader/writer lock per partition and one lock for the chunk
/// free list. Lock order: a partition before the free list.
pub trait Locks {
    type Guard<'a>
    where
        Self: 'a;
    fn shared(&self, partition: usize) -> Self::Guard<'_>;
    fn exclusive(&self, partition: usize) -> Self::Guard<'_>;
    fn try_exclusive(&self, partition: usize) -> Option<Self::Guard<'_>>;
    fn free_list(&self) -> Self::Guard<'_>;
}

/// One relation an entry read, and the version it had before the entry's snapshot.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dep {
    pub relid: u32,
    pub slot: u32,
    pub version: u64,
}

/// The memory the store lives in, laid out by `layout`: the header, the version and
/// in-flight counters (VERSION_SLOTS each), the entries' key hashes, the entries and the
/// chunks. The closures' `&mut` accessors are called only under the discipline the fields
/// describe (an entry under its partition's exclusive lock; a chunk by the one process that
/// took it off the free list, or under the free-list lock), which is what makes handing them
/// out sound over shared memory.
pub trait Memory {
    fn header(&self) -> &Header;
    fn versions(&self) -> &[AtomicU64];
    fn in_flight(&self) -> &[AtomicU64];
    /// Every entry's key hash, partition after partition.
    fn hashes(&self) -> &[AtomicU64];
    fn entry<R>(&self, index: usize, f: impl FnOnce(&Entry) -> R) -> R;
    fn entry_mut<R>(&self, index: usize, f: impl FnOnce(&mut Entry) -> R) -> R;
    fn chunk<R>(&self, index: u32, f: impl FnOnce(&Chunk) -> R) -> R;
    fn chunk_mut<R>(&self, index: u32, f: impl FnOnce(&mut Chunk) -> R) -> R;
}

/// The store's header. All-zero bytes are a valid (uninitialised) header.
#[repr(C)]
#[derive(Default)]
pub struct Header {
    magic: AtomicU64,
    entries_per_partition: AtomicU32,
    chunks: AtomicU32,
    epoch: AtomicU64,
    /// Commits whose writes nobody can attribute (COMMIT PREPARED) under way.
    global_in_flight: AtomicU32,
    clock_hand: AtomicU32,
    /// Head of the free chunk list; under the free-list lock.
    free_head: AtomicU32,
    free_chunks: AtomicU32,
    counters: [AtomicU64; COUNTERS],
    bypasses: [AtomicU64; 32],
}

/// One cached result's metadata. All-zero bytes are a free entry.
#[repr(C)]
#[derive(Default)]
pub struct Entry {
    /// 1 when the entry holds a result; changed only under the partition's exclusive lock.
    live: u32,
    key_len: u32,
    key_hash: u64,
    payload_len: u32,
    first_chunk: u32,
    dbid: u32,
    roleid: u32,
    created: i64,
    expires: i64,
    epoch: u64,
    ndeps: u32,
    deps: [Dep; MAX_DEPS],
    hits: AtomicU64,
    referenced: AtomicU32,
}

/// A piece of an entry's key and result. All-zero bytes are a valid chunk.
#[repr(C)]
pub struct Chunk {
    next: u32,
    len: u32,
    data: [u8; CHUNK_DATA],
}

impl Default for Chunk {
    fn default() -> Self {
        Chunk { next: 0, len: 0, data: [0; CHUNK_DATA] }
    }
}

/// Byte offsets of the parts of a region (see `Memory`).
pub struct Layout {
    pub entries: usize,
    pub versions_at: usize,
    /// Each entry's key hash (0 = empty), contiguous so a lookup scans a few cache lines
    /// instead of every entry of its partition.
    pub hashes_at: usize,
    pub entries_at: usize,
    pub chunks_at: usize,
    pub end: usize,
}

/// Where everything lives in a store with `chunks` chunks (one entry per two chunks).
pub fn layout(chunks: usize) -> Layout {
    let entries = (chunks / 2).max(PARTITIONS * 4) / PARTITIONS * PARTITIONS;
    let versions_at = size_of::<Header>().next_multiple_of(64);
    // Per slot: the version (u64) and the number of commits writing it under way (u64).
    let hashes_at = (versions_at + VERSION_SLOTS * 16).next_multiple_of(64);
    let entries_at = (hashes_at + entries * 8).next_multiple_of(64);
    let chunks_at = (entries_at + entries * size_of::<Entry>()).next_multiple_of(64);
    Layout {
        entries,
        versions_at,
        hashes_at,
        entries_at,
        chunks_at,
        end: chunks_at + chunks * size_of::<Chunk>(),
    }
}

/// The number of chunks that fit in `bytes` of shared memory.
pub fn chunks_for(bytes: usize) -> usize {
    let mut chunks = bytes / CHUNK_SIZE;
    while chunks > 8 && layout(chunks).end > bytes {
        chunks -= chunks / 64 + 1;
    }
    chunks.max(8)
}

pub fn region_size(chunks: usize) -> usize {
    layout(chunks).end
}

/// What a new entry is stored with.
pub struct NewEntry<'a> {
    pub key_hash: u64,
    pub key: &'a [u8],
    pub result: &'a [u8],
    pub dbid: u32,
    pub roleid: u32,
    pub created: i64,
    pub expires: i64,
    pub epoch: u64,
    pub deps: &'a [Dep],
}

/// A copy of one entry's metadata (for `pitstop.cache_entries`).
#[derive(Clone, Debug)]
pub struct EntryInfo {
    pub key: Vec<u8>,
    pub dbid: u32,
    pub roleid: u32,
    pub bytes: usize,
    pub hits: u64,
    pub created: i64,
    pub expires: i64,
    pub deps: Vec<u32>,
    pub fresh: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    Hit,
    Miss,
    /// Found but out of date (a relation it read moved, or it expired).
    Stale,
}

#[derive(Debug, PartialEq, Eq)]
pub enum StoreError {
    TooLarge,
    TooManyRelations,
    Full,
}

pub struct Store<M> {
    memory: M,
}

impl<M: Memory> Store<M> {
    pub fn new(memory: M) -> Store<M> {
        Store { memory }
    }

    /// Lays out an empty store of `chunks` chunks in zeroed memory nobody else uses yet.
    pub fn initialise(&self, chunks: usize) {
        let header = self.header();
        header.chunks.store(chunks as u32, Ordering::Relaxed);
        header
            .entries_per_partition
            .store((layout(chunks).entries / PARTITIONS) as u32, Ordering::Relaxed);
        for i in 0..chunks {
            let next = if i + 1 < chunks { (i + 1) as u32 } else { NO_CHUNK };
            self.memory.chunk_mut(i as u32, |chunk| chunk.next = next);
        }
        header.free_head.store(0, Ordering::Relaxed);
        header.free_chunks.store(chunks as u32, Ordering::Relaxed);
        header.magic.store(MAGIC, Ordering::Release);
    }

    fn header(&self) -> &Header {
        self.memory.header()
    }

    fn chunk_count(&self) -> u32 {
        self.header().chunks.load(Ordering::Relaxed)
    }

    pub fn entries_per_partition(&self) -> usize {
        self.header().entries_per_partition.load(Ordering::Relaxed) as usize
    }

    fn versions(&self) -> &[AtomicU64] {
        self.memory.versions()
    }

    fn in_flight(&self) -> &[AtomicU64] {
        self.memory.in_flight()
    }

    /// Key hashes of one partition's entries (read under its lock, written under its
    /// exclusive lock; atomics so that readers and the writer never race on a torn value).
    fn hashes(&self, partition: usize) -> &[AtomicU64] {
        let per = self.entries_per_partition();
        &self.memory.hashes()[partition * per..(partition + 1) * per]
    }

    pub fn is_initialised(&self) -> bool {
        self.header().magic.load(Ordering::Acquire) == MAGIC
    }

    // ---- versions --------------------------------------------------------------------

    pub fn version_slot(dbid: u32, relid: u32) -> u32 {
        let mixed = (u64::from(dbid) << 32 | u64::from(relid)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (mixed >> 40) as u32 % VERSION_SLOTS as u32
    }

    pub fn version(&self, slot: u32) -> u64 {
        self.versions()[slot as usize].load(Ordering::SeqCst)
    }

    /// Every version counter at once: read before a fill's snapshot is taken.
    pub fn versions_snapshot(&self) -> Vec<u64> {
        self.versions().iter().map(|v| v.load(Ordering::SeqCst)).collect()
    }

    pub fn bump(&self, slot: u32) {
        self.versions()[slot as usize].fetch_add(1, Ordering::SeqCst);
    }

    /// A commit that wrote this slot's relations is about to become visible: until
    /// `commit_finished`, no entry depending on the slot is served. Without this, a reader
    /// could hit an old entry between the moment the commit is visible and the bump.
    pub fn commit_starting(&self, slot: u32) {
        self.in_flight()[slot as usize].fetch_add(1, Ordering::SeqCst);
    }

    /// The commit is visible (`committed`: bump the version first) or was abandoned.
    pub fn commit_finished(&self, slot: u32, committed: bool) {
        if committed {
            self.bump(slot);
        }
        self.in_flight()[slot as usize].fetch_sub(1, Ordering::SeqCst);
    }

    /// The same for a commit whose writes are unknown (all entries wait, then go stale).
    pub fn global_commit_starting(&self) {
        self.header().global_in_flight.fetch_add(1, Ordering::SeqCst);
    }

    pub fn global_commit_finished(&self) {
        self.bump_epoch();
        self.header().global_in_flight.fetch_sub(1, Ordering::SeqCst);
    }

    pub fn epoch(&self) -> u64 {
        self.header().epoch.load(Ordering::SeqCst)
    }

    /// Makes every entry stale at once.
    pub fn bump_epoch(&self) {
        self.header().epoch.fetch_add(1, Ordering::SeqCst);
    }

    // ---- counters --------------------------------------------------------------------

    pub fn count(&self, counter: Counter) {
        self.header().counters[counter as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn counter(&self, counter: Counter) -> u64 {
        self.header().counters[counter as usize].load(Ordering::Relaxed)
    }

    pub fn count_bypass(&self, reason: Bypass) {
        self.header().bypasses[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn bypasses(&self, reason: Bypass) -> u64 {
        self.header().bypasses[reason as usize].load(Ordering::Relaxed)
    }

    pub fn capacity_bytes(&self) -> usize {
        self.chunk_count() as usize * CHUNK_DATA
    }

    pub fn used_bytes(&self) -> usize {
        (self.chunk_count() - self.header().free_chunks.load(Ordering::Relaxed)) as usize
            * CHUNK_DATA
    }

    // ---- entries ---------------------------------------------------------------------

    fn partition_of(hash: u64) -> usize {
        (hash % PARTITIONS as u64) as usize
    }

    /// Hash 0 marks an empty entry.
    fn stored_hash(hash: u64) -> u64 {
        hash.max(1)
    }

    /// Entries of the partition whose key hash is `hash`.
    fn candidates(&self, partition: usize, hash: u64) -> impl Iterator<Item = usize> + '_ {
        let start = partition * self.entries_per_partition();
        let wanted = Self::stored_hash(hash);
        self.hashes(partition)
            .iter()
            .enumerate()
            .filter(move |(_, h)| h.load(Ordering::Relaxed) == wanted)
            .map(move |(i, _)| start + i)
    }

    fn set_hash(&self, index: usize, hash: u64) {
        let per = self.entries_per_partition();
        self.hashes(index / per)[index % per].store(hash, Ordering::Relaxed);
    }

    fn partition_range(&self, partition: usize) -> std::ops::Range<usize> {
        let per = self.entries_per_partition();
        partition * per..(partition + 1) * per
    }

    /// Copies `len` bytes of an entry's chunk chain starting at byte `from`; fails (copying
    /// nothing) when `out` cannot grow by `len`.
    fn read_chain(
        &self,
        first: u32,
        from: usize,
        len: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), TryReserveError> {
        out.try_reserve_exact(len)?;
        let mut chunk = first;
        let mut skipped = 0;
        let mut remaining = len;
        while chunk != NO_CHUNK && remaining > 0 {
            chunk = self.memory.chunk(chunk, |c| {
                let data = &c.data[..c.len as usize];
                if skipped + data.len() <= from {
                    skipped += data.len();
                } else {
                    let start = from.saturating_sub(skipped);
                    let take = (data.len() - start).min(remaining);
                    out.extend_from_slice(&data[start..start + take]);
                    remaining -= take;
                    skipped += data.len();
                }
                c.next
            });
        }
        Ok(())
    }

    fn key_matches(&self, entry: &Entry, hash: u64, key: &[u8]) -> bool {
        if entry.live != 1 || entry.key_hash != hash || entry.key_len as usize != key.len() {
            return false;
        }
        // Compared chunk by chunk, without copying.
        let mut chunk = entry.first_chunk;
        let mut rest = key;
        while !rest.is_empty() {
            if chunk == NO_CHUNK {
                return false;
            }
            let (same, len, next) = self.memory.chunk(chunk, |c| {
                let data = &c.data[..(c.len as usize).min(rest.len())];
                (rest.starts_with(data), data.len(), c.next)
            });
            if !same {
                return false;
            }
            rest = &rest[len..];
            chunk = next;
        }
        true
    }

    /// Servable: not expired, no commit under way on what it read, nothing it read moved.
    /// In-flight counters are read before versions, and writers bump before they decrement.
    fn fresh(&self, entry: &Entry, now: i64) -> bool {
        let deps = &entry.deps[..entry.ndeps as usize];
        (entry.expires == 0 || now < entry.expires)
            && self.header().global_in_flight.load(Ordering::SeqCst) == 0
            && deps.iter().all(|d| self.in_flight()[d.slot as usize].load(Ordering::SeqCst) == 0)
            && entry.epoch == self.epoch()
            && deps.iter().all(|d| self.version(d.slot) == d.version)
    }

    /// Looks `key` up; on a hit copies the result into `out` and returns the relations the
    /// entry read (for the caller's own-write check). Fails, with the lock released, when
    /// `out` cannot grow to the result's size.
    pub fn lookup<L: Locks>(
        &self,
        locks: &L,
        hash: u64,
        key: &[u8],
        now: i64,
        out: &mut Vec<u8>,
    ) -> Result<(Lookup, Vec<u32>), TryReserveError> {
        let partition = Self::partition_of(hash);
        let _guard = locks.shared(partition);
        for index in self.candidates(partition, hash) {
            let (matches, fresh) = self.memory.entry(index, |entry| {
                let matches = self.key_matches(entry, hash, key);
                (matches, matches && self.fresh(entry, now))
            });
            if !matches {
                continue;
            }
            if !fresh {
                return Ok((Lookup::Stale, Vec::new()));
            }
            return self.memory.entry(index, |entry| {
                self.read_chain(
                    entry.first_chunk,
                    entry.key_len as usize,
                    entry.payload_len as usize - entry.key_len as usize,
                    out,
                )?;
                entry.hits.fetch_add(1, Ordering::Relaxed);
                entry.referenced.store(1, Ordering::Relaxed);
                let reads = entry.deps[..entry.ndeps as usize].iter().map(|d| d.relid).collect();
                Ok((Lookup::Hit, reads))
            });
        }
        Ok((Lookup::Miss, Vec::new()))
    }

    /// The largest payload (key and result) an entry can have.
    pub fn max_payload(&self) -> usize {
        self.chunk_count() as usize / 4 * CHUNK_DATA
    }

    /// Takes `count` chunks off the free list, evicting entries (CLOCK) while it is short.
    fn allocate<L: Locks>(&self, locks: &L, count: usize) -> Result<Vec<u32>, StoreError> {
        let total = self.chunk_count() as usize;
        if count > total / 4 {
            return Err(StoreError::TooLarge);
        }
        let entries = PARTITIONS * self.entries_per_partition();
        let mut steps = 0;
        loop {
            {
                let _guard = locks.free_list();
                let header = self.header();
                if header.free_chunks.load(Ordering::Relaxed) as usize >= count {
                    let mut taken = Vec::with_capacity(count);
                    let mut head = header.free_head.load(Ordering::Relaxed);
                    for _ in 0..count {
                        taken.push(head);
                        head = self.memory.chunk(head, |c| c.next);
                    }
                    header.free_head.store(head, Ordering::Relaxed);
                    header.free_chunks.fetch_sub(count as u32, Ordering::Relaxed);
                    return Ok(taken);
                }
            }
            // Two full turns of the hand clear every reference bit and evict what is left.
            if steps > 2 * entries {
                return Err(StoreError::Full);
            }
            let index = self.header().clock_hand.fetch_add(1, Ordering::Relaxed) as usize % entries;
            steps += 1;
            let Some(_guard) = locks.try_exclusive(index / self.entries_per_partition()) else {
                continue;
            };
            // Live and not referenced since the hand last passed (the bit cleared on the way).
            let evict = self.memory.entry(index, |entry| {
                entry.live == 1 && entry.referenced.swap(0, Ordering::Relaxed) != 1
            });
            if !evict {
                continue;
            }
            self.remove(locks, index);
            self.count(Counter::Evictions);
        }
    }

    /// Returns an entry's chunks to the free list. Caller holds the partition exclusively.
    fn remove<L: Locks>(&self, locks: &L, index: usize) {
        let first = self.memory.entry_mut(index, |entry| {
            entry.live = 0;
            entry.first_chunk
        });
        self.set_hash(index, 0);
        let mut last = first;
        let mut count = 1;
        loop {
            let next = self.memory.chunk(last, |c| c.next);
            if next == NO_CHUNK {
                break;
            }
            last = next;
            count += 1;
        }
        let _guard = locks.free_list();
        let header = self.header();
        let head = header.free_head.load(Ordering::Relaxed);
        self.memory.chunk_mut(last, |c| c.next = head);
        header.free_head.store(first, Ordering::Relaxed);
        header.free_chunks.fetch_add(count, Ordering::Relaxed);
    }

    /// Stores an entry, replacing one with the same key; evicts under pressure.
    pub fn insert<L: Locks>(
        &self,
        locks: &L,
        new: &NewEntry<'_>,
        now: i64,
    ) -> Result<(), StoreError> {
        if new.deps.len() > MAX_DEPS {
            return Err(StoreError::TooManyRelations);
        }
        let payload_len = new.key.len() + new.result.len();
        let chunks = self.allocate(locks, payload_len.div_ceil(CHUNK_DATA).max(1))?;
        // The chunks are ours alone until the entry is published below.
        let mut bytes = new.key.iter().chain(new.result.iter()).copied();
        for (i, index) in chunks.iter().enumerate() {
            self.memory.chunk_mut(*index, |chunk| {
                let mut len = 0;
                for (slot, byte) in chunk.data.iter_mut().zip(bytes.by_ref()) {
                    *slot = byte;
                    len += 1;
                }
                chunk.len = len as u32;
                chunk.next = chunks.get(i + 1).copied().unwrap_or(NO_CHUNK);
            });
        }

        let partition = Self::partition_of(new.key_hash);
        let _guard = locks.exclusive(partition);
        let range = self.partition_range(partition);
        let m = &self.memory;
        let same = self
            .candidates(partition, new.key_hash)
            .find(|i| m.entry(*i, |e| self.key_matches(e, new.key_hash, new.key)));
        let target = same
            .or_else(|| range.clone().find(|i| m.entry(*i, |e| e.live != 1)))
            .or_else(|| range.clone().find(|i| m.entry(*i, |e| !self.fresh(e, now))))
            .or_else(|| {
                range
                    .clone()
                    .find(|i| m.entry(*i, |e| e.referenced.swap(0, Ordering::Relaxed) == 0))
            })
            .unwrap_or(range.start);
        if m.entry(target, |e| e.live == 1) {
            if same != Some(target) {
                self.count(Counter::Evictions);
            }
            self.remove(locks, target);
        }
        m.entry_mut(target, |entry| Self::fill(entry, new, payload_len, chunks[0]));
        self.set_hash(target, Self::stored_hash(new.key_hash));
        self.count(Counter::Fills);
        Ok(())
    }

    fn fill(entry: &mut Entry, new: &NewEntry<'_>, payload_len: usize, first_chunk: u32) {
        entry.key_len = new.key.len() as u32;
        entry.key_hash = new.key_hash;
        entry.payload_len = payload_len as u32;
        entry.first_chunk = first_chunk;
        entry.dbid = new.dbid;
        entry.roleid = new.roleid;
        entry.created = new.created;
        entry.expires = new.expires;
        entry.epoch = new.epoch;
        entry.ndeps = new.deps.len() as u32;
        entry.deps[..new.deps.len()].copy_from_slice(new.deps);
        entry.hits.store(0, Ordering::Relaxed);
        entry.referenced.store(0, Ordering::Relaxed);
        entry.live = 1;
    }

    /// Removes every entry; returns how many there were.
    pub fn clear<L: Locks>(&self, locks: &L) -> usize {
        let mut removed = 0;
        for partition in 0..PARTITIONS {
            let _guard = locks.exclusive(partition);
            for index in self.partition_range(partition) {
                if self.memory.entry(index, |e| e.live == 1) {
                    self.remove(locks, index);
                    removed += 1;
                }
            }
        }
        removed
    }

    /// How many entries hold a result (fresh or not).
    pub fn live_entries<L: Locks>(&self, locks: &L) -> usize {
        (0..PARTITIONS)
            .map(|partition| {
                let _guard = locks.shared(partition);
                self.partition_range(partition)
                    .filter(|i| self.memory.entry(*i, |e| e.live == 1))
                    .count()
            })
            .sum()
    }

    /// A copy of every live entry's metadata and key; fails when memory runs out.
    pub fn entries<L: Locks>(
        &self,
        locks: &L,
        now: i64,
    ) -> Result<Vec<EntryInfo>, TryReserveError> {
        let mut out = Vec::new();
        for partition in 0..PARTITIONS {
            let _guard = locks.shared(partition);
            for index in self.partition_range(partition) {
                self.memory.entry(index, |entry| self.copy_entry(entry, now, &mut out))?;
            }
        }
        Ok(out)
    }

    /// Appends a live entry's metadata and key to `out`.
    fn copy_entry(
        &self,
        entry: &Entry,
        now: i64,
        out: &mut Vec<EntryInfo>,
    ) -> Result<(), TryReserveError> {
        if entry.live != 1 {
            return Ok(());
        }
        let mut key = Vec::new();
        self.read_chain(entry.first_chunk, 0, entry.key_len as usize, &mut key)?;
        out.try_reserve(1)?;
        out.push(EntryInfo {
            key,
            dbid: entry.dbid,
            roleid: entry.roleid,
            bytes: entry.payload_len as usize,
            hits: entry.hits.load(Ordering::Relaxed),
            created: entry.created,
            expires: entry.expires,
            deps: entry.deps[..entry.ndeps as usize].iter().map(|d| d.relid).collect(),
            fresh: self.fresh(entry, now),
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Mutex, MutexGuard, RwLock};

    /// Std locks standing in for LWLocks.
    struct TestLocks {
        partitions: Vec<RwLock<()>>,
        free: Mutex<()>,
    }

    #[allow(dead_code)]
    enum Guard<'a> {
        Read(std::sync::RwLockReadGuard<'a, ()>),
        Write(std::sync::RwLockWriteGuard<'a, ()>),
        Free(MutexGuard<'a, ()>),
    }

    impl Locks for TestLocks {
        type Guard<'a> = Guard<'a>;
        fn shared(&self, p: usize) -> Guard<'_> {
            Guard::Read(self.partitions[p].read().unwrap())
        }
        fn exclusive(&self, p: usize) -> Guard<'_> {
            Guard::Write(self.partitions[p].write().unwrap())
        }
        fn try_exclusive(&self, p: usize) -> Option<Guard<'_>> {
            self.partitions[p].try_write().ok().map(Guard::Write)
        }
        fn free_list(&self) -> Guard<'_> {
            Guard::Free(self.free.lock().unwrap())
        }
    }

    /// Heap memory standing in for the shared-memory region; per-entry and per-chunk locks
    /// in place of the discipline the real memory relies on.
    struct HeapMemory {
        header: Header,
        versions: Vec<AtomicU64>,
        in_flight: Vec<AtomicU64>,
        hashes: Vec<AtomicU64>,
        entries: Vec<RwLock<Entry>>,
        chunks: Vec<RwLock<Chunk>>,
    }

    impl HeapMemory {
        fn new(chunks: usize) -> Self {
            let atomics = |n: usize| (0..n).map(|_| AtomicU64::new(0)).collect::<Vec<_>>();
            let entries = layout(chunks).entries;
            HeapMemory {
                header: Header::default(),
                versions: atomics(VERSION_SLOTS),
                in_flight: atomics(VERSION_SLOTS),
                hashes: atomics(entries),
                entries: (0..entries).map(|_| RwLock::default()).collect(),
                chunks: (0..chunks).map(|_| RwLock::default()).collect(),
            }
        }
    }

    impl Memory for HeapMemory {
        fn header(&self) -> &Header {
            &self.header
        }
        fn versions(&self) -> &[AtomicU64] {
            &self.versions
        }
        fn in_flight(&self) -> &[AtomicU64] {
            &self.in_flight
        }
        fn hashes(&self) -> &[AtomicU64] {
            &self.hashes
        }
        fn entry<R>(&self, index: usize, f: impl FnOnce(&Entry) -> R) -> R {
            f(&self.entries[index].read().unwrap())
        }
        fn entry_mut<R>(&self, index: usize, f: impl FnOnce(&mut Entry) -> R) -> R {
            f(&mut self.entries[index].write().unwrap())
        }
        fn chunk<R>(&self, index: u32, f: impl FnOnce(&Chunk) -> R) -> R {
            f(&self.chunks[index as usize].read().unwrap())
        }
        fn chunk_mut<R>(&self, index: u32, f: impl FnOnce(&mut Chunk) -> R) -> R {
            f(&mut self.chunks[index as usize].write().unwrap())
        }
    }

    type TestStore = Store<HeapMemory>;

    struct Fixture {
        store: TestStore,
        locks: TestLocks,
    }

    fn fixture(bytes: usize) -> Fixture {
        let chunks = chunks_for(bytes);
        let store = Store::new(HeapMemory::new(chunks));
        store.initialise(chunks);
        let locks = TestLocks {
            partitions: (0..PARTITIONS).map(|_| RwLock::new(())).collect(),
            free: Mutex::new(()),
        };
        Fixture { store, locks }
    }

    fn entry<'a>(key: &'a [u8], result: &'a [u8], deps: &'a [Dep], epoch: u64) -> NewEntry<'a> {
        NewEntry {
            key_hash: hash(key),
            key,
            result,
            dbid: 1,
            roleid: 10,
            created: 0,
            expires: 0,
            epoch,
            deps,
        }
    }

    fn hash(key: &[u8]) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        h.finish()
    }

    /// A store holding entry `q` (`rows`) that read relation 16384: its version slot and
    /// the entry's dependency on it.
    fn one_dependent_entry() -> (Fixture, u32, [Dep; 1]) {
        let f = fixture(1 << 20);
        let slot = TestStore::version_slot(1, 16384);
        let deps = [Dep { relid: 16384, slot, version: f.store.version(slot) }];
        f.store.insert(&f.locks, &entry(b"q", b"rows", &deps, f.store.epoch()), 0).unwrap();
        (f, slot, deps)
    }

    fn get(f: &Fixture, key: &[u8]) -> (Lookup, Vec<u8>) {
        let mut out = Vec::new();
        let (found, _) = f.store.lookup(&f.locks, hash(key), key, 1, &mut out).unwrap();
        (found, out)
    }

    #[test]
    fn stores_and_finds_results_across_chunks() {
        let f = fixture(1 << 20);
        let big: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        f.store.insert(&f.locks, &entry(b"q1", &big, &[], 0), 0).unwrap();
        assert_eq!(get(&f, b"q1"), (Lookup::Hit, big));
        assert_eq!(get(&f, b"q2").0, Lookup::Miss);
        assert_eq!(f.store.counter(Counter::Fills), 1);
    }

    #[test]
    fn a_moved_version_or_epoch_makes_entries_stale() {
        let (f, slot, deps) = one_dependent_entry();
        assert_eq!(get(&f, b"q").0, Lookup::Hit);
        f.store.bump(slot);
        assert_eq!(get(&f, b"q").0, Lookup::Stale);
        f.store
            .insert(
                &f.locks,
                &entry(b"q", b"new", &[Dep { version: f.store.version(slot), ..deps[0] }], 0),
                0,
            )
            .unwrap();
        assert_eq!(
            get(&f, b"q"),
            (Lookup::Hit, b"new".to_vec()),
            "the refill replaced the stale entry"
        );
        f.store.bump_epoch();
        assert_eq!(get(&f, b"q").0, Lookup::Stale);
    }

    #[test]
    fn no_entry_is_served_while_a_commit_on_its_relations_is_under_way() {
        let (f, slot, _) = one_dependent_entry();
        f.store.commit_starting(slot);
        assert_eq!(get(&f, b"q").0, Lookup::Stale);
        f.store.commit_finished(slot, false);
        assert_eq!(get(&f, b"q").0, Lookup::Hit, "an abandoned commit changes nothing");
        f.store.commit_starting(slot);
        f.store.commit_finished(slot, true);
        assert_eq!(get(&f, b"q").0, Lookup::Stale);
        f.store.insert(&f.locks, &entry(b"p", b"rows", &[], f.store.epoch()), 0).unwrap();
        f.store.global_commit_starting();
        assert_eq!(get(&f, b"p").0, Lookup::Stale);
        f.store.global_commit_finished();
        assert_eq!(get(&f, b"p").0, Lookup::Stale, "the epoch moved");
    }

    #[test]
    fn entries_expire() {
        let f = fixture(1 << 20);
        let mut e = entry(b"q", b"rows", &[], 0);
        e.expires = 1;
        f.store.insert(&f.locks, &e, 0).unwrap();
        assert_eq!(get(&f, b"q").0, Lookup::Stale, "lookups run at time 1");
    }

    #[test]
    fn keys_with_the_same_hash_are_told_apart() {
        let f = fixture(1 << 20);
        let mut a = entry(b"key-a", b"A", &[], 0);
        let mut b = entry(b"key-b", b"B", &[], 0);
        a.key_hash = 7;
        b.key_hash = 7;
        f.store.insert(&f.locks, &a, 0).unwrap();
        f.store.insert(&f.locks, &b, 0).unwrap();
        let mut out = Vec::new();
        assert_eq!(f.store.lookup(&f.locks, 7, b"key-a", 1, &mut out).unwrap().0, Lookup::Hit);
        assert_eq!(out, b"A");
        out.clear();
        assert_eq!(f.store.lookup(&f.locks, 7, b"key-b", 1, &mut out).unwrap().0, Lookup::Hit);
        assert_eq!(out, b"B");
    }

    #[test]
    fn filling_past_the_size_evicts_and_never_exceeds_it() {
        let f = fixture(1 << 20);
        let capacity = f.store.capacity_bytes();
        let result = vec![7u8; 3000];
        for i in 0..2000u32 {
            let key = format!("query {i}");
            f.store.insert(&f.locks, &entry(key.as_bytes(), &result, &[], 0), 0).unwrap();
            assert!(f.store.used_bytes() <= capacity);
        }
        assert!(f.store.counter(Counter::Evictions) > 1000);
        let live = f.store.entries(&f.locks, 1).unwrap().len();
        assert_eq!(live, f.store.live_entries(&f.locks));
        assert!(live > 0 && live * 3000 <= capacity, "{live} entries");
        assert_eq!(get(&f, b"query 1999").0, Lookup::Hit, "the newest survives");
        assert_eq!(
            f.store.insert(&f.locks, &entry(b"huge", &vec![0; capacity], &[], 0), 0),
            Err(StoreError::TooLarge)
        );
    }

    #[test]
    fn clock_keeps_recently_hit_entries() {
        let f = fixture(1 << 20);
        let result = vec![1u8; 3000];
        f.store.insert(&f.locks, &entry(b"hot", &result, &[], 0), 0).unwrap();
        for i in 0..500u32 {
            assert_eq!(get(&f, b"hot").0, Lookup::Hit, "evicted after {i} inserts");
            let key = format!("cold {i}");
            f.store.insert(&f.locks, &entry(key.as_bytes(), &result, &[], 0), 0).unwrap();
        }
    }

    #[test]
    fn clear_frees_everything() {
        let f = fixture(1 << 20);
        for i in 0..50u32 {
            let key = format!("q{i}");
            f.store.insert(&f.locks, &entry(key.as_bytes(), b"x", &[], 0), 0).unwrap();
        }
        assert_eq!(f.store.clear(&f.locks), 50);
        assert_eq!(f.store.used_bytes(), 0);
        assert_eq!(get(&f, b"q3").0, Lookup::Miss);
    }

    #[test]
    fn concurrent_readers_and_writers_never_see_a_torn_result() {
        let f = std::sync::Arc::new(fixture(512 * 1024));
        let threads: Vec<_> = (0..4u8)
            .map(|t| {
                let f = f.clone();
                std::thread::spawn(move || {
                    for i in 0..3000u32 {
                        let key = format!("k{}", i % 40);
                        if t % 2 == 0 {
                            let value = vec![(i % 251) as u8; 1500 + (i as usize % 700)];
                            let _ =
                                f.store.insert(&f.locks, &entry(key.as_bytes(), &value, &[], 0), 0);
                        } else {
                            let (found, out) = get(&f, key.as_bytes());
                            if found == Lookup::Hit {
                                assert!(out.iter().all(|b| *b == out[0]), "torn result");
                                assert!(out.len() >= 1500);
                            }
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }
}
