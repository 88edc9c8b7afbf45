//! Planning a workload statement natively, the way the server would plan it, without running
//! it or touching the caller's session: no PREPARE, no EXPLAIN through SPI. `$n` parameters
//! get a generic plan (their types are inferred as PREPARE would). The hypothetical indexes
//! the planner sees are exactly the ones passed in.

use crate::advisor::usage::{TableUsage, TableWrite, WriteKind};
use crate::pg::hypo_index::{self, HypoIndex};
use crate::pg::list::pointers;
use crate::pg::role::ActingRole;
use crate::pg::{parse, subxact, timeout};
use pgrx::pg_sys;
use pgrx::pg_sys::ffi::pg_guard_ffi_boundary;
use pgrx::prelude::*;
use std::cell::RefCell;
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, Ordering};

pub struct PlannedQuery {
    /// Estimated total cost of the statement's plan(s), in planner cost units.
    pub total_cost: f64,
    /// Rows the top plan node of its (last) plan is estimated to return.
    pub rows: f64,
    /// What the statement asks of each base table (only when collected).
    pub usage: Vec<TableUsage>,
    /// The table it writes, for INSERT/UPDATE/DELETE/MERGE.
    pub write: Option<TableWrite>,
    /// Indexes (real or hypothetical) the chosen plan scans.
    pub used_indexes: Vec<pg_sys::Oid>,
}

thread_local! {
    static COLLECTED: RefCell<Option<Vec<TableUsage>>> = const { RefCell::new(None) };
}

static mut PREV_SET_REL_PATHLIST: pg_sys::set_rel_pathlist_hook_type = None;
static INSTALLED: AtomicBool = AtomicBool::new(false);

fn ensure_installed() {
    if INSTALLED.swap(true, Ordering::Relaxed) {
        return;
    }
    // SAFETY: backends are single-threaded and no planning is under way here (we are called
    // from a SQL function's execution); the previous hook is saved and chained.
    unsafe {
        PREV_SET_REL_PATHLIST = pg_sys::set_rel_pathlist_hook;
        pg_sys::set_rel_pathlist_hook = Some(set_rel_pathlist);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn set_rel_pathlist(
    root: *mut pg_sys::PlannerInfo,
    rel: *mut pg_sys::RelOptInfo,
    rti: pg_sys::Index,
    rte: *mut pg_sys::RangeTblEntry,
) {
    // SAFETY: chaining with our own arguments.
    unsafe {
        if let Some(prev) = PREV_SET_REL_PATHLIST {
            pg_guard_ffi_boundary(|| prev(root, rel, rti, rte));
        }
    }
    let collecting = COLLECTED.with(|c| c.borrow().is_some());
    if !collecting || !hypo_index::planning_hypothetically() {
        return;
    }
    // SAFETY: the hook's arguments describe a base relation being planned; collection only
    // reads planner structures and the catalog. It runs only while the advisor plans.
    if let Some(usage) = unsafe { crate::pg::table_usage::collect(root, rel, rti, rte) } {
        COLLECTED.with(|c| c.borrow_mut().as_mut().map(|v| v.push(usage)));
    }
}

struct Collecting;

impl Collecting {
    fn start(on: bool) -> Option<Self> {
        on.then(|| {
            COLLECTED.with(|c| *c.borrow_mut() = Some(Vec::new()));
            Collecting
        })
    }

    fn finish(self) -> Vec<TableUsage> {
        COLLECTED.with(|c| c.borrow_mut().take()).unwrap_or_default()
    }
}

impl Drop for Collecting {
    fn drop(&mut self) {
        COLLECTED.with(|c| *c.borrow_mut() = None);
    }
}

/// Plans `sql` (one SELECT/INSERT/UPDATE/DELETE/MERGE) as `role`, in a restricted security
/// context, with `indexes` as the only hypothetical indexes. Planning runs in a subtransaction
/// that is always rolled back (locks taken by parse analysis are released) and in a memory
/// context freed afterwards; an error (syntax, unknown table, privileges, undeterminable `$n`
/// type) comes back as its message.
pub fn plan(sql: &str, role: &ActingRole, indexes: &[&HypoIndex], collect_usage: bool) -> Result<PlannedQuery, String> {
    ensure_installed();
    let c_sql = crate::pg::parse::c_text(sql).ok_or_else(|| "the statement contains a NUL byte".to_string())?;
    let _offer = hypo_index::offer_only(indexes);
    let collecting = Collecting::start(collect_usage);
    // SAFETY: a child of the current context, deleted below on every path (the subtransaction
    // restores the current context before returning).
    let scratch = unsafe {
        pg_sys::AllocSetContextCreateInternal(
            pg_sys::CurrentMemoryContext,
            c"pitstop advisor planning".as_ptr(),
            0,
            8 * 1024,
            8 * 1024 * 1024,
        )
    };
    let outcome = subxact::try_rolled_back(|| {
        parse::single_workload_statement(sql).map_err(|e| e.to_string())?;
        // Constant folding and selectivity estimation run functions: as the statement's role,
        // and for a bounded time (a slow function must not hold the whole advice up).
        let limit = crate::gucs::advisor_plan_timeout_ms();
        timeout::with_statement_timeout(limit, || role.run(|| {
            // SAFETY: parse, analysis and planning allocate in `scratch`; we read the plans'
            // costs before leaving it and keep nothing that points into it.
            unsafe {
                let caller = pg_sys::MemoryContextSwitchTo(scratch);
                let planned = plan_in_current_context(&c_sql);
                pg_sys::MemoryContextSwitchTo(caller);
                Ok::<Planned, String>(planned)
            }
        }))
    });
    // SAFETY: nothing refers to the scratch context any more.
    unsafe { pg_sys::MemoryContextDelete(scratch) };
    let usage = collecting.map(Collecting::finish).unwrap_or_default();
    match outcome {
        Ok(Ok(Planned { total_cost, rows, write, used_indexes })) => Ok(PlannedQuery { total_cost, rows, usage, write, used_indexes }),
        Ok(Err(message)) => Err(message),
        Err(error) => Err(subxact::message(&error)),
    }
}

/// What planning found, before the usage collected by the hook is added.
struct Planned {
    total_cost: f64,
    rows: f64,
    write: Option<TableWrite>,
    used_indexes: Vec<pg_sys::Oid>,
}

/// Plans the statement (a PREPARE is planned as the statement it prepares, with its declared
/// parameter types, which is how pg_stat_statements shows prepared statements run by psql);
/// returns its total cost and what it writes.
///
/// # Safety
/// Inside a transaction with an active snapshot (a SQL function's execution).
unsafe fn plan_in_current_context(sql: &CString) -> Planned {
    unsafe {
        let raw = pointers::<pg_sys::RawStmt>(pg_sys::raw_parser(sql.as_ptr(), pg_sys::RawParseMode::RAW_PARSE_DEFAULT))[0];
        let mut param_types: *mut pg_sys::Oid = std::ptr::null_mut();
        let mut param_count: std::ffi::c_int = 0;
        if (*(*raw).stmt).type_ == pg_sys::NodeTag::T_PrepareStmt {
            let prepare = (*raw).stmt as *mut pg_sys::PrepareStmt;
            let declared = pointers::<pg_sys::TypeName>((*prepare).argtypes);
            param_count = declared.len() as std::ffi::c_int;
            param_types = pg_sys::palloc0(declared.len().max(1) * size_of::<pg_sys::Oid>()).cast();
            for (i, type_name) in declared.iter().enumerate() {
                *param_types.add(i) = pg_sys::typenameTypeId(std::ptr::null_mut(), *type_name);
            }
            (*raw).stmt = (*prepare).query;
        }
        let queries = pg_sys::pg_analyze_and_rewrite_varparams(
            raw,
            sql.as_ptr(),
            &mut param_types,
            &mut param_count,
            std::ptr::null_mut(),
        );
        let mut cost = 0.0;
        let mut rows = 0.0;
        let mut write = None;
        let mut used = Vec::new();
        for query in pointers::<pg_sys::Query>(queries) {
            if (*query).commandType == pg_sys::CmdType::CMD_UTILITY {
                continue;
            }
            // No bound parameters: `$n` stay Params and the plan is generic.
            let planned = pg_sys::pg_plan_query(
                query,
                sql.as_ptr(),
                pg_sys::CURSOR_OPT_PARALLEL_OK as std::ffi::c_int,
                std::ptr::null_mut(),
            );
            cost += (*(*planned).planTree).total_cost;
            rows = (*(*planned).planTree).plan_rows;
            scanned_indexes((*planned).planTree, &mut used);
            for subplan in pointers::<pg_sys::Plan>((*planned).subplans) {
                scanned_indexes(subplan, &mut used);
            }
            if (*query).canSetTag && write.is_none() {
                // ModifyTable estimates 0 rows without RETURNING; the rows it writes are the
                // ones its input produces.
                let top = (*planned).planTree;
                let input = if (*top).lefttree.is_null() { top } else { (*top).lefttree };
                write = table_write(query, (*input).plan_rows);
            }
        }
        Planned { total_cost: cost, rows, write, used_indexes: used }
    }
}

/// Adds the indexes that index, index-only and bitmap index scans in this plan tree use.
///
/// # Safety
/// `plan` is NULL or a node of a finished plan tree.
unsafe fn scanned_indexes(plan: *mut pg_sys::Plan, out: &mut Vec<pg_sys::Oid>) {
    unsafe {
        if plan.is_null() {
            return;
        }
        let index = match (*plan).type_ {
            pg_sys::NodeTag::T_IndexScan => Some((*(plan as *mut pg_sys::IndexScan)).indexid),
            pg_sys::NodeTag::T_IndexOnlyScan => Some((*(plan as *mut pg_sys::IndexOnlyScan)).indexid),
            pg_sys::NodeTag::T_BitmapIndexScan => Some((*(plan as *mut pg_sys::BitmapIndexScan)).indexid),
            _ => None,
        };
        if let Some(index) = index.filter(|i| !out.contains(i)) {
            out.push(index);
        }
        let children: Vec<*mut pg_sys::Plan> = match (*plan).type_ {
            pg_sys::NodeTag::T_Append => pointers((*(plan as *mut pg_sys::Append)).appendplans),
            pg_sys::NodeTag::T_MergeAppend => pointers((*(plan as *mut pg_sys::MergeAppend)).mergeplans),
            pg_sys::NodeTag::T_BitmapAnd => pointers((*(plan as *mut pg_sys::BitmapAnd)).bitmapplans),
            pg_sys::NodeTag::T_BitmapOr => pointers((*(plan as *mut pg_sys::BitmapOr)).bitmapplans),
            pg_sys::NodeTag::T_SubqueryScan => vec![(*(plan as *mut pg_sys::SubqueryScan)).subplan],
            _ => Vec::new(),
        };
        for child in children.into_iter().chain([(*plan).lefttree, (*plan).righttree]) {
            scanned_indexes(child, out);
        }
    }
}

/// The result relation of a data-modifying query.
///
/// # Safety
/// `query` is an analysed, rewritten Query.
unsafe fn table_write(query: *mut pg_sys::Query, rows: f64) -> Option<TableWrite> {
    unsafe {
        let kind = match (*query).commandType {
            pg_sys::CmdType::CMD_INSERT => WriteKind::Insert,
            pg_sys::CmdType::CMD_UPDATE => WriteKind::Update,
            pg_sys::CmdType::CMD_DELETE => WriteKind::Delete,
            pg_sys::CmdType::CMD_MERGE => WriteKind::Merge,
            _ => return None,
        };
        let index = usize::try_from((*query).resultRelation).ok()?.checked_sub(1)?;
        let rte = *pointers::<pg_sys::RangeTblEntry>((*query).rtable).get(index)?;
        let updated = updated_cols(query, rte)?;
        let mut updated_columns = Vec::new();
        let mut member = -1;
        loop {
            member = pg_sys::bms_next_member(updated, member);
            if member < 0 {
                break;
            }
            updated_columns.push((member + pg_sys::FirstLowInvalidHeapAttributeNumber) as i16);
        }
        Some(TableWrite { relid: (*rte).relid.to_u32(), kind, updated_columns, estimated_rows: rows })
    }
}

/// The columns an UPDATE assigns, from the range table entry (before PostgreSQL 16) or its
/// permission info (since).
///
/// # Safety
/// `rte` is an entry of `query`'s range table.
#[cfg(feature = "pg15")]
unsafe fn updated_cols(_query: *mut pg_sys::Query, rte: *mut pg_sys::RangeTblEntry) -> Option<*mut pg_sys::Bitmapset> {
    // SAFETY: the caller's contract.
    unsafe { Some((*rte).updatedCols) }
}

#[cfg(not(feature = "pg15"))]
unsafe fn updated_cols(query: *mut pg_sys::Query, rte: *mut pg_sys::RangeTblEntry) -> Option<*mut pg_sys::Bitmapset> {
    // SAFETY: the caller's contract; a result relation always has permission info.
    unsafe {
        let index = usize::try_from((*rte).perminfoindex).ok()?.checked_sub(1)?;
        let info = *pointers::<pg_sys::RTEPermissionInfo>((*query).rteperminfos).get(index)?;
        Some((*info).updatedCols)
    }
}
