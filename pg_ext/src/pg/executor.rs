//! ExecutorStart/Run/Finish/End hooks, chained to whatever was installed before us.
//! They track the nesting level and hand each finished statement to one observer through
//! the safe `FinishedQuery` view. A hook never makes a query fail because of pitstop: the
//! observer's errors are caught by its caller (see `FinishedQuery::plan_json`).

use pgrx::pg_sys;
use pgrx::pg_sys::ffi::pg_guard_ffi_boundary;
use pgrx::prelude::*;
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
    /// anything that could fail (EXPLAIN) goes through `shielded`.
    pub at_end: fn(&FinishedQuery),
}

static mut OBSERVER: Option<Observer> = None;
/// Told at ExecutorStart about the relations a statement uses (see `observe_relations`).
#[derive(Clone, Copy)]
pub struct RelationObserver {
    /// Whether every relation is wanted right now, read-only statements' too.
    pub wants_reads: fn() -> bool,
    pub relation: fn(relid: pg_sys::Oid, writes: bool),
}

static mut RELATION_OBSERVER: Option<RelationObserver> = None;
static INSTALLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static NESTING_LEVEL: AtomicU32 = AtomicU32::new(0);

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
    }
}

fn observer() -> Option<&'static Observer> {
    // SAFETY: written once in _PG_init before any hook can run; read-only afterwards.
    unsafe { (*(&raw const OBSERVER)).as_ref() }
}

/// Increments the nesting level for the duration of a nested executor call; the decrement
/// also runs when the call raises an ERROR (pgrx unwinds through this frame).
struct NestingGuard;

impl NestingGuard {
    fn enter() -> Self {
        NESTING_LEVEL.fetch_add(1, Ordering::Relaxed);
        NestingGuard
    }
}

impl Drop for NestingGuard {
    fn drop(&mut self) {
        NESTING_LEVEL.fetch_sub(1, Ordering::Relaxed);
    }
}

fn is_parallel_worker() -> bool {
    // SAFETY: a plain int set at backend start; >= 0 only in parallel workers.
    unsafe { pg_sys::ParallelWorkerNumber >= 0 }
}

#[cfg(not(feature = "pg18"))]
#[pg_guard]
unsafe extern "C-unwind" fn executor_start(query_desc: *mut pg_sys::QueryDesc, eflags: i32) {
    report_relations(query_desc);
    let measure = measure_for_start();
    if measure == Measure::DurationAndActuals {
        // SAFETY: the executor hands us a valid QueryDesc; options must be set before the
        // plan state is built, i.e. before the standard ExecutorStart.
        unsafe { (*query_desc).instrument_options |= pg_sys::InstrumentOption::INSTRUMENT_ALL as i32 };
    }
    // SAFETY: chaining to the previous hook or the standard implementation with our arguments.
    unsafe {
        match PREV_START {
            Some(prev) => pg_guard_ffi_boundary(|| prev(query_desc, eflags)),
            None => pg_sys::standard_ExecutorStart(query_desc, eflags),
        }
    }
    if measure != Measure::Nothing {
        ensure_total_time(query_desc);
    }
}

#[cfg(feature = "pg18")]
#[pg_guard]
unsafe extern "C-unwind" fn executor_start(query_desc: *mut pg_sys::QueryDesc, eflags: i32) -> bool {
    report_relations(query_desc);
    let measure = measure_for_start();
    if measure == Measure::DurationAndActuals {
        // SAFETY: see the pre-18 variant.
        unsafe { (*query_desc).instrument_options |= pg_sys::InstrumentOption::INSTRUMENT_ALL as i32 };
    }
    // SAFETY: see the pre-18 variant.
    let plan_valid = unsafe {
        match PREV_START {
            Some(prev) => pg_guard_ffi_boundary(|| prev(query_desc, eflags)),
            None => pg_sys::standard_ExecutorStart(query_desc, eflags),
        }
    };
    if plan_valid && measure != Measure::Nothing {
        ensure_total_time(query_desc);
    }
    plan_valid
}

/// Reports the statement's relations to the relation observer. Runs before the standard
/// ExecutorStart so a statement that fails part-way still counts as writing (conservative).
fn report_relations(query_desc: *mut pg_sys::QueryDesc) {
    // SAFETY: written once in _PG_init before any hook can run.
    let Some(observer) = (unsafe { *(&raw const RELATION_OBSERVER) }) else { return };
    if is_parallel_worker() {
        return;
    }
    let writes_mask = (pg_sys::ACL_INSERT | pg_sys::ACL_UPDATE | pg_sys::ACL_DELETE) as pg_sys::AclMode;
    // SAFETY: the QueryDesc handed to ExecutorStart holds a valid PlannedStmt whose rtable is
    // a List of RangeTblEntry and whose resultRelations index into it (from 1).
    unsafe {
        let planned = (*query_desc).plannedstmt;
        let writing = (*planned).commandType != pg_sys::CmdType::CMD_SELECT || (*planned).hasModifyingCTE;
        // The common case, a plain read with nobody collecting reads, costs one check.
        if !writing && !(observer.wants_reads)() {
            return;
        }
        let rtable = (*planned).rtable;
        // Result relations include the inheritance children an UPDATE/DELETE on a parent
        // writes, whose own range table entries carry no permissions.
        let results = (*planned).resultRelations;
        for index in 0..pg_sys::list_length(results) {
            let rte = pg_sys::list_nth(rtable, pg_sys::list_nth_int(results, index) - 1) as *mut pg_sys::RangeTblEntry;
            (observer.relation)((*rte).relid, true);
        }
        for index in 0..pg_sys::list_length(rtable) {
            let rte = pg_sys::list_nth(rtable, index) as *mut pg_sys::RangeTblEntry;
            if (*rte).rtekind != pg_sys::RTEKind::RTE_RELATION {
                continue;
            }
            #[cfg(any(feature = "pg13", feature = "pg14", feature = "pg15"))]
            let writes = (*rte).requiredPerms & writes_mask != 0;
            #[cfg(not(any(feature = "pg13", feature = "pg14", feature = "pg15")))]
            let writes = (*rte).perminfoindex > 0 && {
                let info = pg_sys::list_nth((*planned).permInfos, (*rte).perminfoindex as i32 - 1)
                    as *mut pg_sys::RTEPermissionInfo;
                (*info).requiredPerms & writes_mask != 0
            };
            (observer.relation)((*rte).relid, writes);
        }
    }
}

fn measure_for_start() -> Measure {
    if is_parallel_worker() {
        return Measure::Nothing;
    }
    observer().map_or(Measure::Nothing, |o| (o.at_start)(NESTING_LEVEL.load(Ordering::Relaxed)))
}

/// Gives the statement a total-time instrument unless another extension already did.
fn ensure_total_time(query_desc: *mut pg_sys::QueryDesc) {
    // SAFETY: after ExecutorStart the QueryDesc has a live estate; allocating in its query
    // context ties the instrument's lifetime to the statement, as pg_stat_statements does.
    unsafe {
        if (*query_desc).totaltime.is_null() {
            let old = pg_sys::MemoryContextSwitchTo((*(*query_desc).estate).es_query_cxt);
            (*query_desc).totaltime =
                pg_sys::InstrAlloc(1, pg_sys::InstrumentOption::INSTRUMENT_TIMER as i32, false);
            pg_sys::MemoryContextSwitchTo(old);
        }
    }
}

#[cfg(not(feature = "pg18"))]
#[pg_guard]
unsafe extern "C-unwind" fn executor_run(
    query_desc: *mut pg_sys::QueryDesc,
    direction: pg_sys::ScanDirection::Type,
    count: u64,
    execute_once: bool,
) {
    let _nested = NestingGuard::enter();
    // SAFETY: chaining with the arguments we were given.
    unsafe {
        match PREV_RUN {
            Some(prev) => pg_guard_ffi_boundary(|| prev(query_desc, direction, count, execute_once)),
            None => pg_sys::standard_ExecutorRun(query_desc, direction, count, execute_once),
        }
    }
}

#[cfg(feature = "pg18")]
#[pg_guard]
unsafe extern "C-unwind" fn executor_run(
    query_desc: *mut pg_sys::QueryDesc,
    direction: pg_sys::ScanDirection::Type,
    count: u64,
) {
    let _nested = NestingGuard::enter();
    // SAFETY: chaining with the arguments we were given.
    unsafe {
        match PREV_RUN {
            Some(prev) => pg_guard_ffi_boundary(|| prev(query_desc, direction, count)),
            None => pg_sys::standard_ExecutorRun(query_desc, direction, count),
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn executor_finish(query_desc: *mut pg_sys::QueryDesc) {
    let _nested = NestingGuard::enter();
    // SAFETY: chaining with the arguments we were given.
    unsafe {
        match PREV_FINISH {
            Some(prev) => pg_guard_ffi_boundary(|| prev(query_desc)),
            None => pg_sys::standard_ExecutorFinish(query_desc),
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn executor_end(query_desc: *mut pg_sys::QueryDesc) {
    // SAFETY: the QueryDesc is valid until the standard ExecutorEnd below frees its estate.
    let timed = unsafe { !(*query_desc).totaltime.is_null() };
    if timed && !is_parallel_worker() {
        if let Some(observer) = observer() {
            let finished = FinishedQuery {
                desc: query_desc,
                nesting_level: NESTING_LEVEL.load(Ordering::Relaxed),
            };
            (observer.at_end)(&finished);
        }
    }
    // SAFETY: chaining with the arguments we were given.
    unsafe {
        match PREV_END {
            Some(prev) => pg_guard_ffi_boundary(|| prev(query_desc)),
            None => pg_sys::standard_ExecutorEnd(query_desc),
        }
    }
}

/// Runs `f`, turning any ERROR or panic inside it into `None`: used after a statement has
/// already succeeded, which must not fail because of what we do next.
pub fn shielded<R>(f: impl FnOnce() -> R) -> Option<R> {
    // SAFETY: reading the current context pointer, restored below.
    let context = unsafe { pg_sys::CurrentMemoryContext };
    let result = pgrx::PgTryBuilder::new(std::panic::AssertUnwindSafe(|| Some(f())))
        .catch_others(|_| None)
        .catch_rust_panic(|_| None)
        .execute();
    // SAFETY: the caller's context is alive; a caught error may have left us elsewhere.
    unsafe { pg_sys::MemoryContextSwitchTo(context) };
    result
}

/// A statement whose execution just finished, still holding its plan state.
pub struct FinishedQuery {
    desc: *mut pg_sys::QueryDesc,
    pub nesting_level: u32,
}

impl FinishedQuery {
    /// Execution time (ExecutorRun + ExecutorFinish) in milliseconds.
    pub fn duration_ms(&self) -> f64 {
        // SAFETY: totaltime is non-null (checked before constructing us) and owned by the
        // statement; InstrEndLoop is idempotent (a second call returns early), so other
        // extensions reading it after us see the same total.
        unsafe {
            let instr = (*self.desc).totaltime;
            pg_sys::InstrEndLoop(instr);
            (*instr).total * 1000.0
        }
    }

    /// Rows returned or affected.
    pub fn rows(&self) -> u64 {
        // SAFETY: the estate lives until the standard ExecutorEnd.
        unsafe { (*(*self.desc).estate).es_processed }
    }

    pub fn queryid(&self) -> i64 {
        // SAFETY: plannedstmt is always set on a started QueryDesc.
        unsafe { (*(*self.desc).plannedstmt).queryId as i64 }
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
            (
                std::ffi::CStr::from_ptr(text).to_bytes(),
                (*stmt).stmt_location,
                (*stmt).stmt_len,
            )
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
