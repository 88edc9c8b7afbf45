//! ExecutorStart/Run/Finish/End hooks, chained to whatever was installed before us.
//! They track the nesting level and hand each finished statement to one observer through
//! the safe `FinishedQuery` view. A hook never makes a query fail because of pitstop: the
//! observers run under `catch_unwind` and their Postgres errors are caught by their callers
//! (see `FinishedQuery::plan_json`).
//!
//! Every statement runs these hooks, so they take no pgrx guard: each is a plain old frame
//! (see `unguarded`) that chains to the next hook directly, and an ERROR below it unwinds
//! straight past it to Postgres' handler, as it would past pg_stat_statements' hooks.

use crate::pg::list::cells;
use crate::pg::unguarded;
use pgrx::pg_sys;
use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU32, Ordering};

/// What the observer wants measured for a statement about to start.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Measure {
    Nothing,
    /// Total execution time only (as pg_stat_statements does).
    Duration,
    /// Per-node rows, timing and buffers too, so the plan can be shown with actuals.
    DurationAndActuals,
}

pub struct Observer {
    pub at_start: fn(nesting_level: u32) -> Measure,
    /// Runs for every timed statement, so it must be cheap and must not raise an ERROR;
    /// anything that could fail (EXPLAIN) goes through `subxact::shielded`.
    pub at_end: fn(&FinishedQuery),
}

static mut OBSERVER: Option<Observer> = None;
/// A second statement observer that only needs durations (latency histograms): it gets the
/// statement timed when it `wants` it, and sees every timed statement at its end.
#[derive(Clone, Copy)]
pub struct TimingObserver {
    pub wants: fn(nesting_level: u32) -> bool,
    pub at_end: fn(&FinishedQuery),
}

static mut TIMING_OBSERVER: Option<TimingObserver> = None;
/// Told at ExecutorStart about the relations a statement uses (see `observe_relations`).
#[derive(Clone, Copy)]
pub struct RelationObserver {
    /// Whether every relation is wanted right now, read-only statements' too.
    pub wants_reads: fn() -> bool,
    pub relation: fn(relid: pg_sys::Oid, writes: bool),
    /// Reporting a statement's relations failed: whatever it writes is unknown.
    pub unattributed: fn(),
}

static mut RELATION_OBSERVER: Option<RelationObserver> = None;
static INSTALLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// Executor calls (ExecutorRun/Finish) in progress. Raised and lowered around the chained
/// call with no guard, so an ERROR skips the lowering; the (sub)transaction callbacks put it
/// back when the subtransaction that was current aborts or the transaction ends.
static NESTING_LEVEL: AtomicU32 = AtomicU32::new(0);

thread_local! {
    /// The nesting level at the start of each open subtransaction, innermost last.
    static LEVEL_AT_SUBXACT_START: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

static mut PREV_START: pg_sys::ExecutorStart_hook_type = None;
static mut PREV_RUN: pg_sys::ExecutorRun_hook_type = None;
static mut PREV_FINISH: pg_sys::ExecutorFinish_hook_type = None;
static mut PREV_END: pg_sys::ExecutorEnd_hook_type = None;

/// Installs the four hooks (once) with the statement observer. Call from _PG_init.
pub fn install(observer: Observer) {
    // SAFETY: _PG_init runs single-threaded before any query.
    unsafe { OBSERVER = Some(observer) };
    install_hooks();
}

/// Installs the hooks (once) with the relation observer, told about every plain relation in
/// a writing statement's range table (views expanded, partitions the planner kept) and, while
/// `wants_reads`, in every statement's. Call from _PG_init.
pub fn observe_relations(observer: RelationObserver) {
    // SAFETY: _PG_init runs single-threaded before any query.
    unsafe { RELATION_OBSERVER = Some(observer) };
    install_hooks();
}

/// Installs the hooks (once) with the timing observer. Call from _PG_init.
pub fn observe_timing(observer: TimingObserver) {
    // SAFETY: _PG_init runs single-threaded before any query.
    unsafe { TIMING_OBSERVER = Some(observer) };
    install_hooks();
}

fn timing_observer() -> Option<TimingObserver> {
    // SAFETY: written once in _PG_init before any hook can run; read-only afterwards.
    unsafe { TIMING_OBSERVER }
}

fn install_hooks() {
    if INSTALLED.swap(true, Ordering::Relaxed) {
        return;
    }
    // SAFETY: _PG_init runs single-threaded before any query; the previous hook pointers are
    // saved and called from ours, the chaining contract of Postgres hooks.
    unsafe {
        PREV_START = pg_sys::ExecutorStart_hook;
        pg_sys::ExecutorStart_hook = Some(executor_start);
        PREV_RUN = pg_sys::ExecutorRun_hook;
        pg_sys::ExecutorRun_hook = Some(executor_run);
        PREV_FINISH = pg_sys::ExecutorFinish_hook;
        pg_sys::ExecutorFinish_hook = Some(executor_finish);
        PREV_END = pg_sys::ExecutorEnd_hook;
        pg_sys::ExecutorEnd_hook = Some(executor_end);
        pg_sys::RegisterXactCallback(Some(restore_nesting_level), std::ptr::null_mut());
        pg_sys::RegisterSubXactCallback(Some(restore_nesting_level_sub), std::ptr::null_mut());
    }
}

/// No executor call spans the end of a transaction: an ERROR unwound them all, and a
/// procedure's COMMIT or ROLLBACK runs outside any (transaction control is refused inside a
/// query). Resetting at every end also recovers from an ERROR that something caught without
/// a subtransaction. Plain reads and writes of backend-local values: nothing here can fail.
unsafe extern "C-unwind" fn restore_nesting_level(
    event: pg_sys::XactEvent::Type,
    _arg: *mut std::ffi::c_void,
) {
    use pg_sys::XactEvent::*;
    if matches!(
        event,
        XACT_EVENT_ABORT
            | XACT_EVENT_COMMIT
            | XACT_EVENT_PREPARE
            | XACT_EVENT_PARALLEL_ABORT
            | XACT_EVENT_PARALLEL_COMMIT
    ) {
        NESTING_LEVEL.store(0, Ordering::Relaxed);
        let _ = LEVEL_AT_SUBXACT_START
            .try_with(|levels| levels.try_borrow_mut().map(|mut l| l.clear()));
    }
}

/// A subtransaction that aborts (PL/pgSQL's EXCEPTION block catching an ERROR from a nested
/// query, ROLLBACK TO SAVEPOINT) returns to the level it started at.
unsafe extern "C-unwind" fn restore_nesting_level_sub(
    event: pg_sys::SubXactEvent::Type,
    _my: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    let _ = LEVEL_AT_SUBXACT_START.try_with(|levels| {
        let Ok(mut levels) = levels.try_borrow_mut() else { return };
        match event {
            pg_sys::SubXactEvent::SUBXACT_EVENT_START_SUB => {
                levels.push(NESTING_LEVEL.load(Ordering::Relaxed))
            }
            pg_sys::SubXactEvent::SUBXACT_EVENT_COMMIT_SUB => {
                levels.pop();
            }
            pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB => {
                if let Some(level) = levels.pop() {
                    NESTING_LEVEL.store(level, Ordering::Relaxed);
                }
            }
            _ => {}
        }
    });
}

fn observer() -> Option<&'static Observer> {
    // SAFETY: written once in _PG_init before any hook can run; read-only afterwards.
    unsafe { (&raw const OBSERVER).as_ref().and_then(Option::as_ref) }
}

/// Runs `f` one executor level deeper. Without a guard: an ERROR inside leaves the level
/// raised until the end of the (sub)transaction restores it.
fn one_level_deeper(f: impl FnOnce()) {
    NESTING_LEVEL.fetch_add(1, Ordering::Relaxed);
    f();
    // Saturating, should a reset at transaction end ever come in between.
    let _ = NESTING_LEVEL
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |level| Some(level.saturating_sub(1)));
}

fn is_parallel_worker() -> bool {
    // SAFETY: a plain int set at backend start; >= 0 only in parallel workers.
    unsafe { pg_sys::ParallelWorkerNumber >= 0 }
}

/// What to do for a starting statement: tell the relation observer and ask the statement
/// observer what to measure. A panic in either only costs the observing (and, for the
/// relations, makes the statement's writes count as unattributed).
fn observe_start(query_desc: *mut pg_sys::QueryDesc) -> Measure {
    if catch_unwind(AssertUnwindSafe(|| report_relations(query_desc))).is_err() {
        // SAFETY: written once in _PG_init before any hook can run.
        if let Some(observer) = unsafe { RELATION_OBSERVER } {
            let _ = catch_unwind(observer.unattributed);
        }
    }
    catch_unwind(measure_for_start).unwrap_or(Measure::Nothing)
}

unsafe extern "C-unwind" fn executor_start(query_desc: *mut pg_sys::QueryDesc, eflags: i32) {
    let measure = observe_start(query_desc);
    // SAFETY: the executor hands us a valid QueryDesc; instrument options must be set before
    // the plan state is built, i.e. before the standard ExecutorStart. Chaining with our own
    // arguments from a plain old frame (nothing to drop).
    unsafe {
        if measure == Measure::DurationAndActuals {
            (*query_desc).instrument_options |= pg_sys::InstrumentOption::INSTRUMENT_ALL as i32;
        }
        match PREV_START {
            Some(prev) => prev(query_desc, eflags),
            None => unguarded::standard_ExecutorStart(query_desc, eflags),
        }
        if measure != Measure::Nothing {
            ensure_total_time(query_desc);
        }
    }
}

/// Reports the statement's relations to the relation observer. Runs before the standard
/// ExecutorStart so a statement that fails part-way still counts as writing (conservative).
fn report_relations(query_desc: *mut pg_sys::QueryDesc) {
    // SAFETY: written once in _PG_init before any hook can run.
    let Some(observer) = (unsafe { RELATION_OBSERVER }) else { return };
    if is_parallel_worker() {
        return;
    }
    let writes_mask =
        (pg_sys::ACL_INSERT | pg_sys::ACL_UPDATE | pg_sys::ACL_DELETE) as pg_sys::AclMode;
    // SAFETY: the QueryDesc handed to ExecutorStart holds a valid PlannedStmt whose rtable is
    // a List of RangeTblEntry and whose resultRelations index into it (from 1).
    unsafe {
        let planned = (*query_desc).plannedstmt;
        let writing =
            (*planned).commandType != pg_sys::CmdType::CMD_SELECT || (*planned).hasModifyingCTE;
        // The common case, a plain read with nobody collecting reads, costs one check.
        if !writing && !(observer.wants_reads)() {
            return;
        }
        // Result relations include the inheritance children an UPDATE/DELETE on a parent
        // writes, whose own range table entries carry no permissions. A few (the usual case)
        // are each reported once, as the range table comes to them; the many of a generic
        // plan's partitioned target are reported first, and again from the range table
        // (harmless: reports only add), rather than matching every entry against them all.
        let rtable = cells((*planned).rtable);
        let results = cells((*planned).resultRelations);
        let few = results.len() <= 8;
        if !few {
            for result in results {
                let rte =
                    rtable[result.int_value as usize - 1].ptr_value as *mut pg_sys::RangeTblEntry;
                (observer.relation)((*rte).relid, true);
            }
        }
        for (index, cell) in rtable.iter().enumerate() {
            let rte = cell.ptr_value as *mut pg_sys::RangeTblEntry;
            if few && results.iter().any(|r| r.int_value as usize == index + 1) {
                (observer.relation)((*rte).relid, true);
                continue;
            }
            let Some((relid, _)) = crate::pg::range_table::relation(rte) else { continue };
            #[cfg(feature = "pg15")]
            let writes = (*rte).requiredPerms & writes_mask != 0;
            #[cfg(not(feature = "pg15"))]
            let writes = (*rte).perminfoindex > 0 && {
                let info = cells((*planned).permInfos)[(*rte).perminfoindex as usize - 1].ptr_value
                    as *mut pg_sys::RTEPermissionInfo;
                (*info).requiredPerms & writes_mask != 0
            };
            (observer.relation)(relid, writes);
        }
    }
}

fn measure_for_start() -> Measure {
    if is_parallel_worker() {
        return Measure::Nothing;
    }
    let level = NESTING_LEVEL.load(Ordering::Relaxed);
    match observer().map_or(Measure::Nothing, |o| (o.at_start)(level)) {
        Measure::Nothing if timing_observer().is_some_and(|t| (t.wants)(level)) => {
            Measure::Duration
        }
        measure => measure,
    }
}

/// Gives the statement a total-time instrument unless another extension already did.
///
/// # Safety
/// `query_desc` has been started; called from a plain old frame (InstrAlloc may raise).
unsafe fn ensure_total_time(query_desc: *mut pg_sys::QueryDesc) {
    // SAFETY: after ExecutorStart the QueryDesc has a live estate; allocating in its query
    // context ties the instrument's lifetime to the statement, as pg_stat_statements does.
    unsafe {
        if (*query_desc).totaltime.is_null() {
            let old = pg_sys::MemoryContextSwitchTo((*(*query_desc).estate).es_query_cxt);
            (*query_desc).totaltime =
                unguarded::InstrAlloc(1, pg_sys::InstrumentOption::INSTRUMENT_TIMER as i32, false);
            pg_sys::MemoryContextSwitchTo(old);
        }
    }
}

#[cfg(not(feature = "pg18"))]
unsafe extern "C-unwind" fn executor_run(
    query_desc: *mut pg_sys::QueryDesc,
    direction: pg_sys::ScanDirection::Type,
    count: u64,
    execute_once: bool,
) {
    // SAFETY: chaining with the arguments we were given, from plain old frames.
    one_level_deeper(|| unsafe {
        match PREV_RUN {
            Some(prev) => prev(query_desc, direction, count, execute_once),
            None => unguarded::standard_ExecutorRun(query_desc, direction, count, execute_once),
        }
    });
}

#[cfg(feature = "pg18")]
unsafe extern "C-unwind" fn executor_run(
    query_desc: *mut pg_sys::QueryDesc,
    direction: pg_sys::ScanDirection::Type,
    count: u64,
) {
    // SAFETY: chaining with the arguments we were given, from plain old frames.
    one_level_deeper(|| unsafe {
        match PREV_RUN {
            Some(prev) => prev(query_desc, direction, count),
            None => unguarded::standard_ExecutorRun(query_desc, direction, count),
        }
    });
}

unsafe extern "C-unwind" fn executor_finish(query_desc: *mut pg_sys::QueryDesc) {
    // SAFETY: chaining with the arguments we were given, from plain old frames.
    one_level_deeper(|| unsafe {
        match PREV_FINISH {
            Some(prev) => prev(query_desc),
            None => unguarded::standard_ExecutorFinish(query_desc),
        }
    });
}

unsafe extern "C-unwind" fn executor_end(query_desc: *mut pg_sys::QueryDesc) {
    // SAFETY: the QueryDesc is valid until the standard ExecutorEnd below frees its estate;
    // the statement has finished, so its total-time instrument is stopped and InstrEndLoop
    // (idempotent: a second call returns early) only folds the counter into `total`.
    unsafe {
        let instr = (*query_desc).totaltime;
        let timed = !instr.is_null() && !is_parallel_worker();
        if timed && (observer().is_some() || timing_observer().is_some()) {
            unguarded::InstrEndLoop(instr);
            observe_end(query_desc);
        }
        match PREV_END {
            Some(prev) => prev(query_desc),
            None => unguarded::standard_ExecutorEnd(query_desc),
        }
    }
}

/// Hands a finished statement to the observer; a panic only costs the observing. A function
/// of its own so that `executor_end`'s frame holds no `catch_unwind` (it stays a plain old
/// frame for the chained call).
fn observe_end(query_desc: *mut pg_sys::QueryDesc) {
    let finished =
        FinishedQuery { desc: query_desc, nesting_level: NESTING_LEVEL.load(Ordering::Relaxed) };
    if let Some(timing) = timing_observer() {
        let _ = catch_unwind(AssertUnwindSafe(|| (timing.at_end)(&finished)));
    }
    if let Some(observer) = observer() {
        let _ = catch_unwind(AssertUnwindSafe(|| (observer.at_end)(&finished)));
    }
}

/// A statement whose execution just finished, still holding its plan state.
pub struct FinishedQuery {
    desc: *mut pg_sys::QueryDesc,
    pub nesting_level: u32,
}

impl FinishedQuery {
    /// Execution time (ExecutorRun + ExecutorFinish) in milliseconds.
    pub fn duration_ms(&self) -> f64 {
        // SAFETY: totaltime is non-null and its loop ended (by the hook, before constructing
        // us); it is owned by the statement.
        unsafe { (*(*self.desc).totaltime).total * 1000.0 }
    }

    /// Rows returned or affected.
    pub fn rows(&self) -> u64 {
        // SAFETY: the estate lives until the standard ExecutorEnd.
        unsafe { (*(*self.desc).estate).es_processed }
    }

    pub fn queryid(&self) -> i64 {
        // SAFETY: plannedstmt is always set on a started QueryDesc.
        let id = unsafe { (*(*self.desc).plannedstmt).queryId };
        // uint64 before PostgreSQL 18, int64 since; pg_stat_statements shows it as bigint.
        #[allow(clippy::unnecessary_cast)]
        let id = id as i64;
        id
    }

    /// Whether per-node actuals were collected for this statement.
    pub fn has_actuals(&self) -> bool {
        // SAFETY: plain field read of a valid QueryDesc.
        let opts = unsafe { (*self.desc).instrument_options };
        opts & pg_sys::InstrumentOption::INSTRUMENT_TIMER as i32 != 0
    }

    /// This statement's text, cut out of a possibly multi-statement source string.
    pub fn statement_text(&self) -> String {
        // SAFETY: sourceText is a NUL-terminated string owned by the portal (or NULL);
        // stmt_location/stmt_len are byte offsets into it set by the parser.
        let (source, location, len) = unsafe {
            let text = (*self.desc).sourceText;
            if text.is_null() {
                return String::new();
            }
            let stmt = (*self.desc).plannedstmt;
            (std::ffi::CStr::from_ptr(text).to_bytes(), (*stmt).stmt_location, (*stmt).stmt_len)
        };
        statement_slice(source, location, len)
    }

    /// The plan as EXPLAIN (FORMAT JSON) would print it, or None when producing it failed
    /// (the error is swallowed: the statement itself has already succeeded).
    pub fn plan_json(&self) -> Option<String> {
        crate::pg::explain::plan_json_of(self.desc, self.has_actuals())
    }
}

/// Cuts one statement out of a source string given parser offsets (location -1 = unknown,
/// len 0 = to the end), trimming whitespace and a trailing semicolon.
pub fn statement_slice(source: &[u8], location: i32, len: i32) -> String {
    let start = usize::try_from(location).unwrap_or(0).min(source.len());
    let end = if len > 0 { (start + len as usize).min(source.len()) } else { source.len() };
    let text = String::from_utf8_lossy(&source[start..end]);
    text.trim().trim_end_matches(';').trim_end().to_string()
}
