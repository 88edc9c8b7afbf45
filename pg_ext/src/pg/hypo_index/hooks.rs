//! Planner integration: the hooks installed on first use, the scope in which planning sees
//! hypothetical indexes (the outermost planner call of a plain EXPLAIN, or the advisor's
//! `offer_only`), and get_relation_info, which adds them to (and hides indexes from) the
//! planner's view of a table.

use super::cstr;
use super::index_info::{index_opt_info, partition_attnums};
use super::registry::{for_each_offered, hidden, with_registry};
use crate::pg::list::pointers;
use pgrx::pg_sys;
use pgrx::pg_sys::ffi::pg_guard_ffi_boundary;
use pgrx::prelude::*;
use pgrx::PgTryBuilder;
use std::ffi::{c_char, c_int, CString};
use std::sync::atomic::{AtomicI32, Ordering};

// `get_partition_ancestors` (catalog/partition.h) has no pgrx binding.
unsafe extern "C-unwind" {
    fn get_partition_ancestors(relid: pg_sys::Oid) -> *mut pg_sys::List;
}

static PLANNER_DEPTH: AtomicI32 = AtomicI32::new(0);
/// Planner depth at which hypothetical planning was switched on; -1 when off.
static SCOPE_DEPTH: AtomicI32 = AtomicI32::new(-1);

static mut PREV_GET_RELATION_INFO: pg_sys::get_relation_info_hook_type = None;
static mut PREV_EXPLAIN_INDEX_NAME: pg_sys::explain_get_index_name_hook_type = None;
static mut PREV_PLANNER: pg_sys::planner_hook_type = None;
static mut PREV_PROCESS_UTILITY: pg_sys::ProcessUtility_hook_type = None;

pub(super) struct Scope(i32);

impl Scope {
    pub(super) fn enter() -> Self {
        Scope(SCOPE_DEPTH.swap(PLANNER_DEPTH.load(Ordering::Relaxed), Ordering::Relaxed))
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        SCOPE_DEPTH.store(self.0, Ordering::Relaxed);
    }
}

pub fn planning_hypothetically() -> bool {
    let scope = SCOPE_DEPTH.load(Ordering::Relaxed);
    scope >= 0 && PLANNER_DEPTH.load(Ordering::Relaxed) == scope + 1
}

struct Depth;

impl Depth {
    fn enter() -> Self {
        PLANNER_DEPTH.fetch_add(1, Ordering::Relaxed);
        Depth
    }
}

impl Drop for Depth {
    fn drop(&mut self) {
        PLANNER_DEPTH.fetch_sub(1, Ordering::Relaxed);
    }
}

static INSTALLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Installs the planner-side hooks the first time this backend creates a hypothetical index
/// or hides one, so sessions that never use them pay nothing for them (no preload needed:
/// everything here is backend-local).
pub(super) fn ensure_installed() {
    if INSTALLED.swap(true, Ordering::Relaxed) {
        return;
    }
    // SAFETY: backends are single-threaded; we run between statements' planning (inside the
    // executor of the calling SQL function, at planner depth 0), save whatever hooks are
    // installed now and chain to them.
    unsafe {
        PREV_GET_RELATION_INFO = pg_sys::get_relation_info_hook;
        pg_sys::get_relation_info_hook = Some(get_relation_info);
        PREV_EXPLAIN_INDEX_NAME = pg_sys::explain_get_index_name_hook;
        pg_sys::explain_get_index_name_hook = Some(explain_index_name);
        PREV_PLANNER = pg_sys::planner_hook;
        pg_sys::planner_hook = Some(planner);
        PREV_PROCESS_UTILITY = pg_sys::ProcessUtility_hook;
        pg_sys::ProcessUtility_hook = Some(process_utility);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn planner(
    parse: *mut pg_sys::Query,
    query_string: *const c_char,
    cursor_options: c_int,
    bound_params: pg_sys::ParamListInfo,
) -> *mut pg_sys::PlannedStmt {
    let _depth = Depth::enter();
    // SAFETY: chaining with our own arguments.
    unsafe {
        match PREV_PLANNER {
            Some(prev) => {
                pg_guard_ffi_boundary(|| prev(parse, query_string, cursor_options, bound_params))
            }
            None => pg_sys::standard_planner(parse, query_string, cursor_options, bound_params),
        }
    }
}

/// A plain EXPLAIN: no ANALYZE option, of a query (not of EXECUTE, whose plan is cached).
///
/// # Safety
/// `node` must be a valid parse node or NULL.
unsafe fn is_plain_explain(node: *mut pg_sys::Node) -> bool {
    // SAFETY: within the function's `# Safety` contract, which its callers uphold.
    unsafe {
        if node.is_null() || (*node).type_ != pg_sys::NodeTag::T_ExplainStmt {
            return false;
        }
        let explain = node as *mut pg_sys::ExplainStmt;
        // After parse analysis the explained statement is a Query; EXECUTE (whose plan would be
        // cached) and every other utility statement come as CMD_UTILITY and are refused.
        let query = (*explain).query as *mut pg_sys::Query;
        if query.is_null()
            || (*query).type_ != pg_sys::NodeTag::T_Query
            || (*query).commandType == pg_sys::CmdType::CMD_UTILITY
        {
            return false;
        }
        !pointers::<pg_sys::DefElem>((*explain).options).into_iter().any(|opt| {
            cstr((*opt).defname).as_deref() == Some("analyze") && pg_sys::defGetBoolean(opt)
        })
    }
}

fn anything_hypothetical() -> bool {
    with_registry(|r| !r.is_empty()) || !hidden().is_empty()
}

crate::pg::utility::utility_hook!(process_utility => process_utility_guarded);

#[pg_guard]
unsafe extern "C-unwind" fn process_utility_guarded(call: crate::pg::utility::UtilityCall) {
    // SAFETY: the statement being run.
    let plain_explain = unsafe { is_plain_explain(call.statement()) };
    let _scope = (plain_explain && anything_hypothetical()).then(Scope::enter);
    // SAFETY: chaining with our own arguments.
    unsafe { call.chain(PREV_PROCESS_UTILITY) }
}

#[pg_guard]
unsafe extern "C-unwind" fn explain_index_name(index: pg_sys::Oid) -> *const c_char {
    let name =
        with_registry(|r| r.iter().find(|h| h.desc.oid == index).map(|h| h.desc.name.clone()));
    match name {
        Some(name) => {
            let c_name = CString::new(name).unwrap_or_default();
            // SAFETY: pstrdup copies into the current (EXPLAIN's) memory context.
            unsafe { pg_sys::pstrdup(c_name.as_ptr()) }
        }
        // SAFETY: chaining to the previous hook, if any.
        None => unsafe {
            match PREV_EXPLAIN_INDEX_NAME {
                Some(prev) => pg_guard_ffi_boundary(|| prev(index)),
                None => std::ptr::null(),
            }
        },
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn get_relation_info(
    root: *mut pg_sys::PlannerInfo,
    relation: pg_sys::Oid,
    inhparent: bool,
    rel: *mut pg_sys::RelOptInfo,
) {
    // SAFETY: chaining with our own arguments.
    unsafe {
        if let Some(prev) = PREV_GET_RELATION_INFO {
            pg_guard_ffi_boundary(|| prev(root, relation, inhparent, rel));
        }
    }
    if inhparent || !planning_hypothetically() {
        return;
    }
    let hidden = hidden();
    // SAFETY: `rel` is the planner's RelOptInfo for `relation`; its indexlist holds
    // IndexOptInfo pointers. We only rebuild the list and prepend nodes we allocate in the
    // planner's memory context, as plancat.c does.
    unsafe {
        if !hidden.is_empty() {
            let mut kept: *mut pg_sys::List = std::ptr::null_mut();
            for info in pointers::<pg_sys::IndexOptInfo>((*rel).indexlist) {
                if !hidden.contains(&(*info).indexoid) {
                    kept = pg_sys::lappend(kept, info.cast());
                }
            }
            (*rel).indexlist = kept;
        }
        // An index on a partitioned table is one index on each of its partitions.
        let mut relids = vec![relation];
        if pg_sys::get_rel_relispartition(relation) {
            let ancestors = pg_guard_ffi_boundary(|| get_partition_ancestors(relation));
            relids.extend(crate::pg::list::cells(ancestors).iter().map(|cell| cell.oid_value));
        }
        for_each_offered(&relids, |index| {
            // A hypothetical index that no longer fits the table (a column was dropped
            // since) is skipped rather than failing the EXPLAIN.
            let context = pg_sys::CurrentMemoryContext;
            let built =
                PgTryBuilder::new(std::panic::AssertUnwindSafe(|| {
                    match partition_attnums(index, relation) {
                        Some(attnums) => index_opt_info(index, rel, relation, &attnums),
                        None => Ok(None),
                    }
                }))
                // A cancel is the user's or a timeout's: it ends the statement, as it
                // would have without the hypothetical index.
                .catch_others(|e| {
                    if crate::pg::subxact::is_query_cancel(&e) {
                        e.rethrow()
                    } else {
                        Err(crate::pg::subxact::message(&e))
                    }
                })
                .catch_rust_panic(|e| Err(crate::pg::subxact::message(&e)))
                .execute();
            pg_sys::MemoryContextSwitchTo(context);
            let built = built.unwrap_or_else(|message| {
                pgrx::warning!(
                    "pitstop: hypothetical index \"{}\" skipped: {message}",
                    index.desc.name
                );
                None
            });
            if let Some(info) = built {
                (*rel).indexlist = pg_sys::lcons(info.cast(), (*rel).indexlist);
            }
        });
    }
}
