//! Where writes that the executor does not see are noticed: utility statements (COPY FROM,
//! and any DDL through the relcache invalidations it causes in this backend), transaction
//! ends, and COMMIT PREPARED. Events go to one set of plain Rust callbacks.

use crate::pg::utility::{utility_hook, UtilityCall};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::ffi::CStr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransactionEnd {
    /// About to commit: not yet visible to other snapshots.
    Committing,
    /// Committed and visible to new snapshots.
    Committed,
    /// Rolled back, or prepared (its writes become visible only at COMMIT PREPARED).
    NotCommitted,
}

pub struct WriteEvents {
    /// Whether the transaction has anything for `transaction_ended` (cheap, cannot fail).
    pub active: fn() -> bool,
    /// A relation was written (or changed definition) in the current transaction.
    pub relation_written: fn(pg_sys::Oid),
    /// The current transaction changed definitions whose effects cannot be attributed.
    pub definitions_written: fn(),
    pub transaction_ended: fn(TransactionEnd),
    /// A prepared transaction is committing (true) or done committing (false): its writes
    /// cannot be attributed.
    pub prepared_commit: fn(starting: bool),
    /// Any relation or function definition may have changed (cached analyses are void).
    pub definitions_changed: fn(),
}

static mut EVENTS: Option<WriteEvents> = None;
static mut PREV_PROCESS_UTILITY: pg_sys::ProcessUtility_hook_type = None;
/// Depth of utility statements running in this backend: relcache invalidations seen then
/// come from this backend's own DDL.
static UTILITY_DEPTH: AtomicU32 = AtomicU32::new(0);

fn events() -> Option<&'static WriteEvents> {
    // SAFETY: written once in _PG_init before any callback can run.
    unsafe { (&raw const EVENTS).as_ref().and_then(Option::as_ref) }
}

/// Installs the utility hook and the transaction and cache callbacks. Call from _PG_init at
/// preload: callbacks registered in the postmaster are inherited by every backend.
pub fn install(events: WriteEvents) {
    // SAFETY: _PG_init runs single-threaded before any query; the previous utility hook is
    // saved and chained; callbacks are registered the documented way.
    unsafe {
        EVENTS = Some(events);
        PREV_PROCESS_UTILITY = pg_sys::ProcessUtility_hook;
        pg_sys::ProcessUtility_hook = Some(process_utility);
        pg_sys::RegisterXactCallback(Some(on_xact_event), std::ptr::null_mut());
        pg_sys::CacheRegisterRelcacheCallback(
            Some(on_relcache_invalidation),
            pg_sys::Datum::from(0),
        );
        // Function volatility, subscription membership, (temporary) types and operators and
        // the casts to json decide cacheability.
        for cache in [
            pg_sys::SysCacheIdentifier::PROCOID,
            pg_sys::SysCacheIdentifier::CASTSOURCETARGET,
            pg_sys::SysCacheIdentifier::TYPEOID,
            pg_sys::SysCacheIdentifier::OPEROID,
            pg_sys::SysCacheIdentifier::SUBSCRIPTIONRELMAP,
            pg_sys::SysCacheIdentifier::RELNAMENSP,
        ] {
            pg_sys::CacheRegisterSyscacheCallback(
                cache as i32,
                Some(on_syscache_invalidation),
                pg_sys::Datum::from(0),
            );
        }
    }
}

struct UtilityDepth;

impl UtilityDepth {
    fn enter() -> Self {
        UTILITY_DEPTH.fetch_add(1, Ordering::Relaxed);
        UtilityDepth
    }
}

impl Drop for UtilityDepth {
    fn drop(&mut self) {
        UTILITY_DEPTH.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a utility statement writes that no relcache invalidation reports.
enum UtilityWrite {
    None,
    CopyFrom(*mut pg_sys::RangeVar),
    CommitPrepared,
    /// It may change what a query means or who may run it (functions, views, grants, role
    /// membership, schemas, a table that now shadows another on the search_path…).
    Definitions,
}

/// # Safety
/// `node` is the utility statement being run.
unsafe fn utility_write(node: *mut pg_sys::Node) -> UtilityWrite {
    // SAFETY: within the function's `# Safety` contract, which its callers uphold.
    unsafe {
        match (*node).type_ {
            pg_sys::NodeTag::T_CopyStmt => {
                let copy = node as *mut pg_sys::CopyStmt;
                if (*copy).is_from && !(*copy).relation.is_null() {
                    UtilityWrite::CopyFrom((*copy).relation)
                } else {
                    UtilityWrite::None
                }
            }
            // EXPLAIN ANALYZE runs CREATE TABLE AS, SELECT INTO and CREATE MATERIALIZED
            // VIEW itself, without passing them through ProcessUtility.
            pg_sys::NodeTag::T_ExplainStmt if explain_creates(node as *mut pg_sys::ExplainStmt) => {
                UtilityWrite::Definitions
            }
            pg_sys::NodeTag::T_TransactionStmt => {
                let stmt = node as *mut pg_sys::TransactionStmt;
                if (*stmt).kind == pg_sys::TransactionStmtKind::TRANS_STMT_COMMIT_PREPARED {
                    UtilityWrite::CommitPrepared
                } else {
                    UtilityWrite::None
                }
            }
            // Statements that change no definition, privilege or name resolution (the data
            // they write, if any, goes through the executor or is reported above).
            pg_sys::NodeTag::T_VariableSetStmt
            | pg_sys::NodeTag::T_VariableShowStmt
            | pg_sys::NodeTag::T_ExplainStmt
            | pg_sys::NodeTag::T_PrepareStmt
            | pg_sys::NodeTag::T_ExecuteStmt
            | pg_sys::NodeTag::T_DeallocateStmt
            | pg_sys::NodeTag::T_DeclareCursorStmt
            | pg_sys::NodeTag::T_FetchStmt
            | pg_sys::NodeTag::T_ClosePortalStmt
            | pg_sys::NodeTag::T_ListenStmt
            | pg_sys::NodeTag::T_UnlistenStmt
            | pg_sys::NodeTag::T_NotifyStmt
            | pg_sys::NodeTag::T_LockStmt
            | pg_sys::NodeTag::T_VacuumStmt
            | pg_sys::NodeTag::T_CheckPointStmt
            | pg_sys::NodeTag::T_DiscardStmt
            | pg_sys::NodeTag::T_CallStmt
            | pg_sys::NodeTag::T_DoStmt
            | pg_sys::NodeTag::T_ConstraintsSetStmt
            | pg_sys::NodeTag::T_IndexStmt
            | pg_sys::NodeTag::T_ReindexStmt
            | pg_sys::NodeTag::T_ClusterStmt
            | pg_sys::NodeTag::T_TruncateStmt
            | pg_sys::NodeTag::T_RefreshMatViewStmt => UtilityWrite::None,
            _ => UtilityWrite::Definitions,
        }
    }
}

/// Whether an EXPLAIN runs a statement that creates a relation: ANALYZE (with any value) of
/// a utility statement other than DECLARE CURSOR or EXECUTE (whose queries go through the
/// executor and its write tracking).
///
/// # Safety
/// `explain` is the EXPLAIN statement being run.
unsafe fn explain_creates(explain: *mut pg_sys::ExplainStmt) -> bool {
    // SAFETY: the caller's contract; the options are DefElems, the query an analysed Query.
    unsafe {
        let analyze = crate::pg::list::pointers::<pg_sys::DefElem>((*explain).options)
            .iter()
            .any(|option| CStr::from_ptr((**option).defname).to_bytes() == b"analyze");
        let query = (*explain).query;
        if !analyze || query.is_null() {
            return false;
        }
        if (*query).type_ != pg_sys::NodeTag::T_Query {
            return true;
        }
        let query = query as *mut pg_sys::Query;
        if (*query).commandType != pg_sys::CmdType::CMD_UTILITY || (*query).utilityStmt.is_null() {
            return false;
        }
        !matches!(
            (*(*query).utilityStmt).type_,
            pg_sys::NodeTag::T_DeclareCursorStmt | pg_sys::NodeTag::T_ExecuteStmt
        )
    }
}

/// Whether a utility statement is transaction control other than COMMIT PREPARED (BEGIN,
/// COMMIT, SAVEPOINT, …): most utility statements of an OLTP workload. They write nothing
/// and cause no relcache invalidation while they run (the commit itself happens after the
/// hook returns and is seen by the transaction callback).
///
/// # Safety
/// `node` is the utility statement being run.
unsafe fn is_plain_transaction_control(node: *mut pg_sys::Node) -> bool {
    // SAFETY: within the function's `# Safety` contract, which its callers uphold.
    unsafe {
        (*node).type_ == pg_sys::NodeTag::T_TransactionStmt
            && (*(node as *mut pg_sys::TransactionStmt)).kind
                != pg_sys::TransactionStmtKind::TRANS_STMT_COMMIT_PREPARED
    }
}

utility_hook!(process_utility => process_utility_entry);

/// Transaction control goes straight on, unguarded (this frame is a plain old frame);
/// everything else through the tracked path.
unsafe fn process_utility_entry(call: UtilityCall) {
    // SAFETY: the statement being run; chaining with our own arguments.
    unsafe {
        if is_plain_transaction_control(call.statement()) {
            call.chain_unguarded(PREV_PROCESS_UTILITY)
        } else {
            process_tracked_utility(call)
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn process_tracked_utility(call: UtilityCall) {
    // SAFETY: the statement being run.
    let write = unsafe { utility_write(call.statement()) };
    let events = events();
    /// Ends the COMMIT PREPARED window whether it succeeded or raised an ERROR (a FATAL
    /// skips this: the exit callback ends it then).
    struct PreparedCommit;
    impl Drop for PreparedCommit {
        fn drop(&mut self) {
            close_prepared_commit();
        }
    }
    let _prepared = match (&write, events) {
        (UtilityWrite::CommitPrepared, Some(events)) => {
            open_prepared_commit(events);
            Some(PreparedCommit)
        }
        _ => None,
    };
    // COPY FROM's target is written from its first row on, and triggers or volatile
    // defaults that run during the COPY may fill the cache: it counts before the COPY runs.
    if let (UtilityWrite::CopyFrom(relation), Some(events)) = (&write, events) {
        // SAFETY: name lookup without a lock; COPY takes its own right after.
        let relid = unsafe {
            pg_sys::RangeVarGetRelidExtended(
                *relation,
                pg_sys::NoLock as i32,
                pg_sys::RVROption::RVR_MISSING_OK,
                None,
                std::ptr::null_mut(),
            )
        };
        if relid != pg_sys::Oid::INVALID {
            (events.relation_written)(relid);
        }
    }
    {
        let _depth = UtilityDepth::enter();
        // SAFETY: chaining with our own arguments.
        unsafe { call.chain(PREV_PROCESS_UTILITY) }
    }
    if let (UtilityWrite::Definitions, Some(events)) = (write, events) {
        (events.definitions_written)();
    }
}

/// Whether this backend holds the COMMIT PREPARED mark, and whether its exit callback is
/// registered (once per backend: the postmaster's callbacks are not inherited).
static PREPARED_COMMIT_OPEN: AtomicBool = AtomicBool::new(false);
static EXIT_CALLBACK_REGISTERED: AtomicBool = AtomicBool::new(false);

fn open_prepared_commit(events: &WriteEvents) {
    if !EXIT_CALLBACK_REGISTERED.swap(true, Ordering::Relaxed) {
        // SAFETY: registers a callback of the documented type for this backend's exit.
        unsafe {
            pg_sys::before_shmem_exit(Some(close_prepared_commit_at_exit), pg_sys::Datum::from(0))
        };
    }
    (events.prepared_commit)(true);
    PREPARED_COMMIT_OPEN.store(true, Ordering::Relaxed);
}

/// Ends the COMMIT PREPARED mark if this backend holds it; at most once per mark.
fn close_prepared_commit() {
    if PREPARED_COMMIT_OPEN.swap(false, Ordering::Relaxed) {
        if let Some(events) = events() {
            (events.prepared_commit)(false);
        }
    }
}

/// A FATAL inside COMMIT PREPARED (the backend is terminated while it runs) exits without
/// unwinding; a mark left behind would keep the whole cache from serving until a restart.
#[pg_guard]
unsafe extern "C-unwind" fn close_prepared_commit_at_exit(
    _code: std::ffi::c_int,
    _arg: pg_sys::Datum,
) {
    close_prepared_commit();
}

/// Called for every transaction event of every transaction, so the common case (a
/// transaction that wrote nothing) returns before entering the guarded part: reading a
/// thread-local flag cannot fail or unwind.
unsafe extern "C-unwind" fn on_xact_event(
    event: pg_sys::XactEvent::Type,
    arg: *mut std::ffi::c_void,
) {
    let Some(events) = events() else { return };
    if (events.active)() {
        // SAFETY: forwarding the callback's own arguments.
        unsafe { on_active_xact_event(event, arg) };
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn on_active_xact_event(
    event: pg_sys::XactEvent::Type,
    _arg: *mut std::ffi::c_void,
) {
    let Some(events) = events() else { return };
    match event {
        pg_sys::XactEvent::XACT_EVENT_PRE_COMMIT => {
            (events.transaction_ended)(TransactionEnd::Committing)
        }
        // Called after ProcArrayEndTransaction: new snapshots already see the commit.
        pg_sys::XactEvent::XACT_EVENT_COMMIT => {
            (events.transaction_ended)(TransactionEnd::Committed)
        }
        pg_sys::XactEvent::XACT_EVENT_ABORT | pg_sys::XactEvent::XACT_EVENT_PREPARE => {
            (events.transaction_ended)(TransactionEnd::NotCommitted)
        }
        _ => {}
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn on_relcache_invalidation(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    let Some(events) = events() else { return };
    (events.definitions_changed)();
    // Only while this backend runs a utility statement is the invalidation its own DDL
    // (TRUNCATE, ALTER TABLE, REFRESH MATERIALIZED VIEW, …) rather than another backend's.
    if relid != pg_sys::Oid::INVALID && UTILITY_DEPTH.load(Ordering::Relaxed) > 0 {
        (events.relation_written)(relid);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn on_syscache_invalidation(_arg: pg_sys::Datum, _cache: i32, _hash: u32) {
    if let Some(events) = events() {
        (events.definitions_changed)();
    }
}
