//! The bounded ring of captured slow statements, laid out in one shared-memory region.
//!
//! Writers never wait: each claims a slot by a global sequence number and takes the slot's
//! try-lock; if a reader happens to hold it, the writer moves on to the next slot and, after a
//! few attempts, drops the capture and counts it. Readers hold one slot at a time for a copy.
//! No Postgres calls here, so the logic is unit-tested on ordinary heap memory.

use crate::pg::try_lock::TryLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes of statement text kept per entry (cut on a character boundary).
pub const TEXT_MAX: usize = 4096;
/// Bytes of JSON plan kept per entry; a larger plan is not stored (counted, size reported).
pub const PLAN_MAX: usize = 32 * 1024;
/// Slots a writer tries before it gives up on a capture.
const WRITE_ATTEMPTS: u64 = 4;

/// What we know about a captured statement besides its text and plan.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[repr(C)]
pub struct EntryMeta {
    pub queryid: i64,
    pub userid: u32,
    pub dbid: u32,
    /// Postgres TimestampTz (µs since 2000-01-01) at which execution started.
    pub start_time: i64,
    pub duration_ms: f64,
    pub rows: u64,
    pub nesting_level: u32,
    /// The plan carries actual rows/timing (pitstop.capture_analyze was on).
    pub analyzed: bool,
    /// Size of the full JSON plan, also when it was too large to keep.
    pub plan_bytes: u32,
}

/// A captured statement copied out of shared memory.
#[derive(Clone, Debug, PartialEq)]
pub struct Captured {
    pub seq: u64,
    pub meta: EntryMeta,
    pub query: String,
    pub query_truncated: bool,
    pub plan: Option<String>,
}

/// Counters kept beside the ring, shown by `pitstop.slow_query_stats()`.
#[derive(Default)]
#[repr(C)]
pub struct Counters {
    pub captured: AtomicU64,
    /// Capture failed (e.g. EXPLAIN raised an error); the statement itself succeeded.
    pub failed: AtomicU64,
    /// Every slot tried was being read at that moment.
    pub dropped_busy: AtomicU64,
    /// The plan exceeded PLAN_MAX and was left out of the entry.
    pub plans_too_large: AtomicU64,
}

#[repr(C)]
pub struct RingHeader {
    next_seq: AtomicU64,
    pub counters: Counters,
}

impl RingHeader {
    pub fn new(_capacity: usize) -> RingHeader {
        RingHeader { next_seq: AtomicU64::new(0), counters: Counters::default() }
    }
}

#[repr(C)]
pub struct StoredEntry {
    /// 0 = empty slot; otherwise the capture's sequence number (starts at 1).
    seq: u64,
    meta: EntryMeta,
    text_len: u32,
    text_truncated: bool,
    plan_len: u32,
    has_plan: bool,
    text: [u8; TEXT_MAX],
    plan: [u8; PLAN_MAX],
}

/// One entry behind its try-lock.
pub type Slot = TryLock<StoredEntry>;

/// A free slot (seq 0).
pub fn empty_slot() -> Slot {
    TryLock::new(StoredEntry {
        seq: 0,
        meta: EntryMeta::default(),
        text_len: 0,
        text_truncated: false,
        plan_len: 0,
        has_plan: false,
        text: [0; TEXT_MAX],
        plan: [0; PLAN_MAX],
    })
}

/// What happened to one capture attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum RecordOutcome {
    Stored { seq: u64, plan_kept: bool },
    DroppedBusy,
}

pub struct Ring<'a> {
    header: &'a RingHeader,
    slots: &'a [Slot],
}

impl<'a> Ring<'a> {
    /// A ring over its header and slots (shared memory: `shmem::SlotRegion`).
    pub fn new(header: &'a RingHeader, slots: &'a [Slot]) -> Ring<'a> {
        Ring { header, slots }
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    pub fn counters(&self) -> &Counters {
        &self.header.counters
    }

    /// Stores one capture; never blocks.
    pub fn record(&self, meta: EntryMeta, query: &str, plan: Option<&str>) -> RecordOutcome {
        for _ in 0..WRITE_ATTEMPTS {
            let seq = self.header.next_seq.fetch_add(1, Ordering::Relaxed) + 1;
            let slot = &self.slots[(seq % self.slots.len() as u64) as usize];
            let Some(mut guard) = slot.try_lock() else { continue };
            let entry = guard.entry();
            // A writer delayed between claiming `seq` and locking must not overwrite a newer
            // capture that wrapped around to the same slot.
            if entry.seq > seq {
                continue;
            }
            let (text, text_truncated) = truncate_on_char_boundary(query, TEXT_MAX);
            entry.text[..text.len()].copy_from_slice(text.as_bytes());
            entry.text_len = text.len() as u32;
            entry.text_truncated = text_truncated;
            let plan_kept = match plan {
                Some(p) if p.len() <= PLAN_MAX => {
                    entry.plan[..p.len()].copy_from_slice(p.as_bytes());
                    entry.plan_len = p.len() as u32;
                    true
                }
                _ => {
                    entry.plan_len = 0;
                    false
                }
            };
            entry.has_plan = plan_kept;
            entry.meta = EntryMeta {
                plan_bytes: plan.map_or(0, |p| p.len().min(u32::MAX as usize) as u32),
                ..meta
            };
            entry.seq = seq;
            drop(guard);
            self.header.counters.captured.fetch_add(1, Ordering::Relaxed);
            if plan.is_some() && !plan_kept {
                self.header.counters.plans_too_large.fetch_add(1, Ordering::Relaxed);
            }
            return RecordOutcome::Stored { seq, plan_kept };
        }
        self.header.counters.dropped_busy.fetch_add(1, Ordering::Relaxed);
        RecordOutcome::DroppedBusy
    }

    /// Copies every stored entry out, oldest first.
    pub fn snapshot(&self) -> Vec<Captured> {
        let mut out = Vec::new();
        for slot in self.slots {
            let Some(mut guard) = slot.lock_spinning() else { continue };
            let entry = guard.entry();
            if entry.seq == 0 {
                continue;
            }
            out.push(Captured {
                seq: entry.seq,
                meta: entry.meta,
                query: String::from_utf8_lossy(&entry.text[..entry.text_len as usize]).into_owned(),
                query_truncated: entry.text_truncated,
                plan: entry.has_plan.then(|| {
                    String::from_utf8_lossy(&entry.plan[..entry.plan_len as usize]).into_owned()
                }),
            });
        }
        out.sort_by_key(|c| c.seq);
        out
    }

    /// Empties every slot and zeroes the counters. Returns the number of entries removed.
    pub fn reset(&self) -> u64 {
        let mut removed = 0;
        for slot in self.slots {
            if let Some(mut guard) = slot.lock_spinning() {
                let entry = guard.entry();
                if entry.seq != 0 {
                    removed += 1;
                }
                entry.seq = 0;
            }
        }
        let c = &self.header.counters;
        for counter in [&c.captured, &c.failed, &c.dropped_busy, &c.plans_too_large] {
            counter.store(0, Ordering::Relaxed);
        }
        removed
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub fn truncate_on_char_boundary(s: &str, max: usize) -> (&str, bool) {
    if s.len() <= max {
        return (s, false);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    (&s[..end], true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ring on heap memory, standing in for the shared-memory region.
    struct HeapRing {
        header: RingHeader,
        slots: Vec<Slot>,
    }

    impl HeapRing {
        fn new(capacity: usize) -> Self {
            HeapRing {
                header: RingHeader::new(capacity),
                slots: (0..capacity).map(|_| empty_slot()).collect(),
            }
        }
        fn ring(&self) -> Ring<'_> {
            Ring::new(&self.header, &self.slots)
        }
    }

    fn meta(ms: f64) -> EntryMeta {
        EntryMeta { queryid: 7, duration_ms: ms, rows: 3, ..Default::default() }
    }

    #[test]
    fn stores_and_returns_entries_oldest_first() {
        let heap = HeapRing::new(10);
        let ring = heap.ring();
        ring.record(meta(1.0), "select 1", Some("{\"Plan\":{}}"));
        ring.record(meta(2.0), "select 2", None);
        let got = ring.snapshot();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].query, "select 1");
        assert_eq!(got[0].plan.as_deref(), Some("{\"Plan\":{}}"));
        assert_eq!(got[1].meta.duration_ms, 2.0);
        assert_eq!(got[1].plan, None);
        assert_eq!(ring.counters().captured.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn keeps_only_the_newest_capacity_entries() {
        let heap = HeapRing::new(10);
        let ring = heap.ring();
        for i in 0..25 {
            ring.record(meta(i as f64), &format!("q{i}"), None);
        }
        let got = ring.snapshot();
        assert_eq!(got.len(), 10);
        assert_eq!(got.first().unwrap().query, "q15");
        assert_eq!(got.last().unwrap().query, "q24");
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary() {
        let heap = HeapRing::new(10);
        let ring = heap.ring();
        let text = "é".repeat(TEXT_MAX); // 2 bytes each
        ring.record(meta(1.0), &text, None);
        let got = &ring.snapshot()[0];
        assert!(got.query_truncated);
        assert!(got.query.len() <= TEXT_MAX);
        assert!(got.query.chars().all(|c| c == 'é'));
    }

    #[test]
    fn oversized_plan_is_left_out_and_counted() {
        let heap = HeapRing::new(10);
        let ring = heap.ring();
        let plan = "x".repeat(PLAN_MAX + 1);
        assert_eq!(
            ring.record(meta(1.0), "q", Some(&plan)),
            RecordOutcome::Stored { seq: 1, plan_kept: false }
        );
        let got = &ring.snapshot()[0];
        assert_eq!(got.plan, None);
        assert_eq!(got.meta.plan_bytes as usize, PLAN_MAX + 1);
        assert_eq!(ring.counters().plans_too_large.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn writer_skips_a_held_slot_instead_of_waiting() {
        let heap = HeapRing::new(10);
        let ring = heap.ring();
        let _held: Vec<_> = ring.slots.iter().map(|s| s.try_lock().unwrap()).collect();
        assert_eq!(ring.record(meta(1.0), "q", None), RecordOutcome::DroppedBusy);
        assert_eq!(ring.counters().dropped_busy.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn reset_empties_the_ring() {
        let heap = HeapRing::new(10);
        let ring = heap.ring();
        ring.record(meta(1.0), "q", None);
        ring.record(meta(1.0), "q", None);
        assert_eq!(ring.reset(), 2);
        assert!(ring.snapshot().is_empty());
        assert_eq!(ring.counters().captured.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn concurrent_writers_and_readers_never_tear_an_entry() {
        let heap = HeapRing::new(16);
        std::thread::scope(|s| {
            for w in 0..4 {
                let heap = &heap;
                s.spawn(move || {
                    let ring = heap.ring();
                    for i in 0..2000 {
                        let text = format!("w{w}-{i}-").repeat(1 + i % 50);
                        ring.record(meta(i as f64), &text, Some(&text));
                    }
                });
            }
            let heap = &heap;
            s.spawn(move || {
                let ring = heap.ring();
                for _ in 0..200 {
                    for c in ring.snapshot() {
                        // text and plan were written together: a torn entry would differ.
                        assert_eq!(Some(c.query.clone()), c.plan);
                        let unit = c.query.split_inclusive('-').take(2).collect::<String>();
                        assert!(c.query.chars().count() % unit.chars().count() == 0);
                    }
                }
            });
        });
        let ring = heap.ring();
        let c = ring.counters();
        assert_eq!(
            c.captured.load(Ordering::Relaxed) + c.dropped_busy.load(Ordering::Relaxed),
            8000
        );
    }
}
