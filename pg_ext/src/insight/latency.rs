//! Per-statement latency histograms in one shared-memory table, keyed like
//! pg_stat_statements by (dbid, userid, queryid); the histogram maths are
//! `pitstop_core::latency`.
//!
//! The table never makes a statement wait: a key may live in the NEIGHBOURS slots after its
//! hash; each slot has a try-lock, and a writer that finds its slot held counts a missed
//! sample and moves on. A new key takes a free slot of its neighbourhood, else evicts the one
//! of them whose last call is oldest (least recently used). Two backends adding the same new
//! key at once may each take a slot: readers merge rows with equal keys.
//! No Postgres calls here, so the logic is unit-tested on ordinary heap memory.

use crate::pg::try_lock::TryLock;
use pitstop_core::latency::{Histogram, Key};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Slots a key may occupy, starting at its hash.
pub const NEIGHBOURS: usize = 8;

/// Counters beside the table, shown by `pitstop.latency_stats()`.
#[derive(Default)]
#[repr(C)]
pub struct Counters {
    /// Entries evicted to make room for a new statement.
    pub evictions: AtomicU64,
    /// Samples dropped because the slot was being read or written at that moment.
    pub missed: AtomicU64,
    /// Top-level statements without a queryid (compute_query_id off), not recorded.
    pub no_queryid: AtomicU64,
}

#[repr(C)]
pub struct TableHeader {
    /// TimestampTz of the last reset (or server start).
    reset_at: AtomicU64,
    pub counters: Counters,
}

impl TableHeader {
    /// A header whose table was last reset at `now`.
    pub fn new(now: i64) -> TableHeader {
        TableHeader { reset_at: AtomicU64::new(now as u64), counters: Counters::default() }
    }
}

#[repr(C)]
struct Entry {
    key: Key,
    /// TimestampTz of the first call recorded in this histogram.
    since: i64,
    hist: Histogram,
}

#[repr(C)]
pub struct Slot {
    /// The key's tag, 0 = free; written only under the lock, read without it to find a key.
    tag: AtomicU64,
    /// TimestampTz of the last call, the eviction order; read without the lock as a hint.
    last_used: AtomicI64,
    entry: TryLock<Entry>,
}

impl Slot {
    /// A free slot.
    pub fn free() -> Slot {
        Slot {
            tag: AtomicU64::new(0),
            last_used: AtomicI64::new(0),
            entry: TryLock::new(Entry {
                key: Key::default(),
                since: 0,
                hist: Histogram::default(),
            }),
        }
    }
}

/// One statement's histogram copied out of shared memory.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub key: Key,
    pub since: i64,
    pub hist: Histogram,
}

#[derive(Debug, PartialEq, Eq)]
pub enum RecordOutcome {
    Recorded,
    /// Recorded into a slot taken from another statement.
    RecordedEvicting,
    Missed,
}

pub struct Table<'a> {
    header: &'a TableHeader,
    slots: &'a [Slot],
}

impl<'a> Table<'a> {
    /// A table over its header and slots (shared memory: `shmem::SlotRegion`).
    pub fn new(header: &'a TableHeader, slots: &'a [Slot]) -> Table<'a> {
        Table { header, slots }
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    pub fn counters(&self) -> &Counters {
        &self.header.counters
    }

    pub fn reset_at(&self) -> i64 {
        self.header.reset_at.load(Ordering::Relaxed) as i64
    }

    fn neighbourhood(&self, tag: u64) -> impl Iterator<Item = &'a Slot> + 'a {
        let n = self.slots.len();
        let start = (tag % n as u64) as usize;
        let slots = self.slots;
        (0..NEIGHBOURS.min(n)).map(move |k| &slots[(start + k) % n])
    }

    /// Adds one duration (µs) of `key`, run at `now`; never blocks.
    pub fn record(&self, key: Key, us: f64, now: i64) -> RecordOutcome {
        let outcome = self.try_record(key, us, now);
        let c = &self.header.counters;
        // No shared counter for the common case: one written by every statement would bounce
        // its cache line between all cores.
        match outcome {
            RecordOutcome::Missed => c.missed.fetch_add(1, Ordering::Relaxed),
            RecordOutcome::RecordedEvicting => c.evictions.fetch_add(1, Ordering::Relaxed),
            RecordOutcome::Recorded => 0,
        };
        outcome
    }

    fn try_record(&self, key: Key, us: f64, now: i64) -> RecordOutcome {
        let tag = key.tag();
        for slot in self.neighbourhood(tag) {
            if slot.tag.load(Ordering::Acquire) != tag {
                continue;
            }
            let Some(mut guard) = slot.entry.try_lock() else { return RecordOutcome::Missed };
            let entry = guard.entry();
            // The tag may have changed before we locked, or another key shares it.
            if slot.tag.load(Ordering::Relaxed) == tag && entry.key == key {
                entry.hist.record(us);
                slot.last_used.store(now, Ordering::Relaxed);
                return RecordOutcome::Recorded;
            }
        }
        // A new key: a free slot, else the least recently used one, of its neighbourhood.
        // Chosen from the unlocked tags and times (a stale read only picks a worse victim).
        let victim = self
            .neighbourhood(tag)
            .min_by_key(|slot| {
                if slot.tag.load(Ordering::Relaxed) == 0 {
                    i64::MIN
                } else {
                    slot.last_used.load(Ordering::Relaxed)
                }
            })
            .expect("a table has at least one slot");
        let Some(mut guard) = victim.entry.try_lock() else { return RecordOutcome::Missed };
        let old_tag = victim.tag.load(Ordering::Relaxed);
        let entry = guard.entry();
        victim.last_used.store(now, Ordering::Relaxed);
        // Another backend added this same key here since we looked.
        if old_tag == tag && entry.key == key {
            entry.hist.record(us);
            return RecordOutcome::Recorded;
        }
        entry.key = key;
        entry.since = now;
        entry.hist = Histogram::default();
        entry.hist.record(us);
        victim.tag.store(tag, Ordering::Release);
        if old_tag != 0 {
            RecordOutcome::RecordedEvicting
        } else {
            RecordOutcome::Recorded
        }
    }

    /// Copies every statement out, rows of the same key merged, ordered by key.
    pub fn snapshot(&self) -> Vec<Row> {
        let mut rows: std::collections::BTreeMap<Key, Row> = std::collections::BTreeMap::new();
        for slot in self.slots {
            if slot.tag.load(Ordering::Acquire) == 0 {
                continue;
            }
            let Some(mut guard) = slot.entry.lock_spinning() else { continue };
            if slot.tag.load(Ordering::Relaxed) == 0 {
                continue;
            }
            let entry = guard.entry();
            let (key, since, hist) = (entry.key, entry.since, entry.hist);
            drop(guard);
            rows.entry(key)
                .and_modify(|row| {
                    row.hist.merge(&hist);
                    row.since = row.since.min(since);
                })
                .or_insert(Row { key, since, hist });
        }
        rows.into_values().collect()
    }

    /// Empties every slot and zeroes the counters; returns the number of entries removed.
    pub fn reset(&self, now: i64) -> u64 {
        let mut removed = 0;
        for slot in self.slots {
            if let Some(_guard) = slot.entry.lock_spinning() {
                if slot.tag.swap(0, Ordering::Release) != 0 {
                    removed += 1;
                }
            }
        }
        let c = &self.header.counters;
        for counter in [&c.evictions, &c.missed, &c.no_queryid] {
            counter.store(0, Ordering::Relaxed);
        }
        self.header.reset_at.store(now as u64, Ordering::Relaxed);
        removed
    }

    /// Slots holding a statement.
    pub fn used(&self) -> usize {
        self.slots.iter().filter(|s| s.tag.load(Ordering::Relaxed) != 0).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table on heap memory, standing in for the shared-memory region.
    struct HeapTable {
        header: TableHeader,
        slots: Vec<Slot>,
    }

    impl HeapTable {
        fn new(capacity: usize) -> Self {
            HeapTable {
                header: TableHeader::new(0),
                slots: (0..capacity).map(|_| Slot::free()).collect(),
            }
        }
        fn table(&self) -> Table<'_> {
            Table::new(&self.header, &self.slots)
        }
    }

    fn key(q: i64) -> Key {
        Key { dbid: 5, userid: 10, queryid: q }
    }

    #[test]
    fn records_per_key_and_reads_back_merged() {
        let heap = HeapTable::new(64);
        let t = heap.table();
        for i in 0..10 {
            t.record(key(1), 1000.0 * (i + 1) as f64, 100 + i);
            t.record(key(2), 50.0, 100 + i);
        }
        let rows = t.snapshot();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].key, key(1));
        assert_eq!(rows[0].hist.calls, 10);
        assert_eq!(rows[0].since, 100);
        assert_eq!(rows[0].hist.max_us, 10_000.0);
        assert_eq!(t.used(), 2);
    }

    #[test]
    fn a_full_neighbourhood_evicts_its_least_recently_used_statement() {
        // One neighbourhood covers the whole table of NEIGHBOURS slots.
        let heap = HeapTable::new(NEIGHBOURS);
        let t = heap.table();
        for q in 0..NEIGHBOURS as i64 {
            assert_eq!(t.record(key(q), 100.0, 10 + q), RecordOutcome::Recorded);
        }
        // key(0) is used again: key(1) is now the least recently used.
        t.record(key(0), 100.0, 100);
        assert_eq!(t.record(key(99), 100.0, 101), RecordOutcome::RecordedEvicting);
        let keys: Vec<i64> = t.snapshot().iter().map(|r| r.key.queryid).collect();
        assert!(keys.contains(&0) && keys.contains(&99) && !keys.contains(&1), "{keys:?}");
        assert_eq!(t.counters().evictions.load(Ordering::Relaxed), 1);
        assert_eq!(t.used(), NEIGHBOURS);
    }

    #[test]
    fn more_statements_than_slots_keep_the_table_full_and_count_evictions() {
        let heap = HeapTable::new(10);
        let t = heap.table();
        for q in 0..100 {
            t.record(key(q), 100.0, q);
        }
        let evictions = t.counters().evictions.load(Ordering::Relaxed);
        assert!(t.used() <= 10);
        assert_eq!(evictions as usize + t.used(), 100);
    }

    #[test]
    fn a_held_slot_costs_a_missed_sample_not_a_wait() {
        let heap = HeapTable::new(NEIGHBOURS);
        let t = heap.table();
        t.record(key(1), 100.0, 1);
        let _held: Vec<_> = t.slots.iter().map(|s| s.entry.try_lock().unwrap()).collect();
        assert_eq!(t.record(key(1), 100.0, 2), RecordOutcome::Missed);
        assert_eq!(t.record(key(2), 100.0, 2), RecordOutcome::Missed);
        assert_eq!(t.counters().missed.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn reset_empties_the_table() {
        let heap = HeapTable::new(16);
        let t = heap.table();
        t.record(key(1), 100.0, 1);
        t.record(key(2), 100.0, 1);
        assert_eq!(t.reset(42), 2);
        assert!(t.snapshot().is_empty());
        assert_eq!(t.reset_at(), 42);
        t.record(key(1), 100.0, 50);
        assert_eq!(t.snapshot()[0].hist.calls, 1);
    }

    #[test]
    fn concurrent_writers_lose_nothing_but_counted_misses() {
        let heap = HeapTable::new(32);
        std::thread::scope(|s| {
            for w in 0..4 {
                let heap = &heap;
                s.spawn(move || {
                    let t = heap.table();
                    for i in 0..5000 {
                        t.record(key(i % 5), 100.0 + w as f64, i);
                    }
                });
            }
            let heap = &heap;
            s.spawn(move || {
                for _ in 0..200 {
                    heap.table().snapshot();
                }
            });
        });
        let t = heap.table();
        let calls: u64 = t.snapshot().iter().map(|r| r.hist.calls).sum();
        let c = t.counters();
        assert_eq!(c.evictions.load(Ordering::Relaxed), 0);
        assert_eq!(calls + c.missed.load(Ordering::Relaxed), 20_000);
    }
}
