//! Planning a workload statement natively, the way the server would plan it, without running
//! it or touching the caller's session: no PREPARE, no EXPLAIN through SPI. `$n` parameters
//! get a generic plan (their types are inferred as PREPARE would). The hypothetical indexes
//! the planner sees are exactly the ones passed in.

use crate::pg::hypo_index::{self, HypoIndex};
use crate::pg::list::pointers;
use crate::pg::role::ActingRole;
use crate::pg::{parse, scan, subxact, timeout};
use pgrx::pg_sys;
use pgrx::pg_sys::ffi::pg_guard_ffi_boundary;
use pgrx::prelude::*;
use pitstop_core::advisor::normalized;
use pitstop_core::advisor::usage::{TableUsage, TableWrite, WriteKind};
use std::cell::RefCell;
use std::collections::HashMap;
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
pub fn plan(
    sql: &str,
    role: &ActingRole,
    indexes: &[&HypoIndex],
    collect_usage: bool,
) -> Result<PlannedQuery, String> {
    plan_with(sql, &[], role, indexes, collect_usage)
}

/// `plan` with parameter types given (0: inferred as PREPARE would).
fn plan_with(
    sql: &str,
    param_types: &[u32],
    role: &ActingRole,
    indexes: &[&HypoIndex],
    collect_usage: bool,
) -> Result<PlannedQuery, String> {
    ensure_installed();
    let c_sql = crate::pg::parse::c_text(sql)
        .ok_or_else(|| "the statement contains a NUL byte".to_string())?;
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
        timeout::with_statement_timeout(limit, || {
            role.run(|| {
                // SAFETY: parse, analysis and planning allocate in `scratch`; we read the plans'
                // costs before leaving it and keep nothing that points into it.
                unsafe {
                    let caller = pg_sys::MemoryContextSwitchTo(scratch);
                    let planned = plan_in_current_context(&c_sql, param_types);
                    pg_sys::MemoryContextSwitchTo(caller);
                    Ok::<Planned, String>(planned)
                }
            })
        })
    });
    // SAFETY: nothing refers to the scratch context any more.
    unsafe { pg_sys::MemoryContextDelete(scratch) };
    let usage = collecting.map(Collecting::finish).unwrap_or_default();
    match outcome {
        Ok(Ok(Planned { total_cost, rows, write, used_indexes })) => {
            Ok(PlannedQuery { total_cost, rows, usage, write, used_indexes })
        }
        Ok(Err(message)) => Err(message),
        Err(error) => Err(subxact::message(&error)),
    }
}

/// A workload statement made plannable: typed literals over parameters turned into casts,
/// and the parameter types analysis settled on.
#[derive(Clone)]
struct Plannable {
    sql: String,
    param_types: Vec<u32>,
}

/// Statement text, role and search_path → what `plannable` found.
type PlannableCache = HashMap<(String, pg_sys::Oid, String), Result<Plannable, String>>;

thread_local! {
    /// Per transaction (its start time), statement text, role and search_path (the same
    /// text names other tables under another): the advisor plans each statement many times
    /// while it weighs candidates; the types are found once.
    static PLANNABLE: RefCell<(pg_sys::TimestampTz, PlannableCache)> = RefCell::new((0, HashMap::new()));
}

/// Plans a statement as pg_stat_statements recorded it (`date $1 - interval $2 day`,
/// `between $1 and $2 + $3`): see `pitstop_core::advisor::normalized`. Otherwise as `plan`.
pub fn plan_workload(
    sql: &str,
    role: &ActingRole,
    indexes: &[&HypoIndex],
    collect_usage: bool,
) -> Result<PlannedQuery, String> {
    // SAFETY: reads the current transaction's start time.
    let transaction = unsafe { pg_sys::GetCurrentTransactionStartTimestamp() };
    let key = (sql.to_string(), role.oid, crate::pg::guc::search_path());
    let cached = PLANNABLE.with(|c| {
        let mut cache = c.borrow_mut();
        if cache.0 != transaction || cache.1.len() > 10_000 {
            *cache = (transaction, HashMap::new());
        }
        cache.1.get(&key).cloned()
    });
    let plannable = match cached {
        Some(found) => found,
        None => {
            let found = plannable(sql, role);
            PLANNABLE.with(|c| c.borrow_mut().1.insert(key, found.clone()));
            found
        }
    }?;
    plan_with(&plannable.sql, &plannable.param_types, role, indexes, collect_usage)
}

/// Rewrites `sql`'s typed literals over parameters and finds its parameter types, as `role`,
/// in a rolled-back subtransaction and a scratch memory context.
fn plannable(sql: &str, role: &ActingRole) -> Result<Plannable, String> {
    // SAFETY: a child of the current context, deleted below on every path.
    let scratch = unsafe {
        pg_sys::AllocSetContextCreateInternal(
            pg_sys::CurrentMemoryContext,
            c"pitstop advisor typing".as_ptr(),
            0,
            8 * 1024,
            8 * 1024 * 1024,
        )
    };
    let outcome = subxact::try_rolled_back(|| {
        // SAFETY: switched back below; nothing allocated in `scratch` is kept.
        let caller = unsafe { pg_sys::MemoryContextSwitchTo(scratch) };
        let found = (|| {
            let (sql, tokens) = scanned(sql)?;
            let (text, tokens) = match normalized::cast_typed_literals(&sql, &tokens) {
                Some(text) => {
                    let tokens = scan::tokens(&text)?;
                    (text, tokens)
                }
                None => (sql, tokens),
            };
            if !tokens.iter().any(|t| matches!(t.kind, normalized::Kind::Param(_))) {
                return Ok(Plannable { sql: text, param_types: Vec::new() });
            }
            let limit = crate::gucs::advisor_plan_timeout_ms();
            let types = timeout::with_statement_timeout(limit, || {
                role.run(|| normalized::infer_parameter_types(&text, &tokens, analyse))
            })?;
            Ok(Plannable { sql: text, param_types: types })
        })();
        // SAFETY: back to the context the subtransaction runs in.
        unsafe { pg_sys::MemoryContextSwitchTo(caller) };
        found
    });
    // SAFETY: nothing refers to the scratch context any more.
    unsafe { pg_sys::MemoryContextDelete(scratch) };
    match outcome {
        Ok(found) => found,
        Err(error) => Err(subxact::message(&error)),
    }
}

/// Parameters glued to the next word that `scanned` separates in one statement: each costs a
/// scan of the whole text again.
const MAX_SEPARATED: usize = 64;

/// The tokens of `sql`, and the text they are of: a parameter glued to the next word
/// (`'e5'and`, which pg_stat_statements records as `$1and` and PostgreSQL 15+'s scanner
/// refuses as trailing junk) is separated where the scanner reports it, and the text scanned
/// again, up to MAX_SEPARATED times. Any other scanner error is the statement's reason.
fn scanned(sql: &str) -> Result<(String, Vec<normalized::Token>), String> {
    let mut text = sql.to_string();
    for separated in 0.. {
        pgrx::check_for_interrupts!();
        let (outcome, spot) = with_error_spot(|| scan::tokens(&text));
        let error = match outcome {
            Ok(tokens) => return tokens.map(|tokens| (text, tokens)),
            Err(error) => error,
        };
        let at = byte_offset(&text, spot.position);
        match at.and_then(|at| normalized::separate_parameter(&text, at)) {
            Some(fixed) if separated < MAX_SEPARATED => text = fixed,
            _ => return Err(subxact::message(&error)),
        }
    }
    unreachable!("the loop returns")
}

/// The byte offset of a 1-based character position (an errposition), if it is in `text`.
fn byte_offset(text: &str, position: std::ffi::c_int) -> Option<usize> {
    let position = usize::try_from(position).ok().filter(|p| *p > 0)?;
    text.char_indices().nth(position - 1).map(|(b, _)| b)
}

/// Runs `f` in a rolled-back subtransaction, noting where an error it raises was reported.
#[allow(clippy::result_large_err)]
fn with_error_spot<R>(f: impl FnOnce() -> R) -> (Result<R, pg_sys::panic::CaughtError>, ErrorSpot) {
    let mut spot = ErrorSpot::default();
    // SAFETY: a read of the backend's error context stack.
    let previous = unsafe { pg_sys::error_context_stack };
    let mut callback = pg_sys::ErrorContextCallback {
        previous,
        callback: Some(record_error_spot),
        arg: (&raw mut spot).cast(),
    };
    let pop = PopErrorContext(callback.previous);
    // SAFETY: the callback's frame lives on this stack until `pop` restores the stack, when
    // this function returns or an error (a cancel try_rolled_back raises again) unwinds it.
    unsafe { pg_sys::error_context_stack = &raw mut callback };
    let outcome = subxact::try_rolled_back(f);
    drop(pop);
    (outcome, spot)
}

/// Where the last error raised while analysing was (errposition, a 1-based character
/// index) and its SQLSTATE: an error context callback sees them before the error unwinds.
#[derive(Default)]
struct ErrorSpot {
    code: std::ffi::c_int,
    position: std::ffi::c_int,
}

#[pg_guard]
unsafe extern "C-unwind" fn record_error_spot(arg: *mut std::ffi::c_void) {
    // SAFETY: `arg` is the ErrorSpot pushed with this callback, alive while it is on the
    // stack; geterrcode/geterrposition read the error being raised and cannot fail.
    unsafe {
        let spot = arg as *mut ErrorSpot;
        (*spot).code = pg_sys::geterrcode();
        (*spot).position = pg_sys::geterrposition();
    }
}

/// Puts back the error context stack it holds when dropped: a callback pushed on the stack
/// must be gone before its frame is, also when an error unwinds through that frame.
struct PopErrorContext(*mut pg_sys::ErrorContextCallback);

impl Drop for PopErrorContext {
    fn drop(&mut self) {
        // SAFETY: the stack as it was before our push; its entries belong to live callers.
        unsafe { pg_sys::error_context_stack = self.0 };
    }
}

/// The five-character SQLSTATE of a packed error code.
fn sqlstate(code: std::ffi::c_int) -> String {
    (0..5).map(|i| (((code >> (6 * i)) & 0x3F) as u8 + b'0') as char).collect()
}

/// One analysis attempt of `text` with parameter types `preset` (0: to infer), as PREPARE
/// would analyse it, rolled back: the types of every parameter, or why it failed and where.
fn analyse(text: &str, preset: &[u32]) -> Result<Vec<u32>, normalized::Failure> {
    let failure = |code: String, position: Option<usize>, message: String, types: Vec<u32>| {
        normalized::Failure { code, position, message, types }
    };
    let Some(c_text) = crate::pg::parse::c_text(text) else {
        return Err(failure(
            "22021".into(),
            None,
            "the statement contains a NUL byte".into(),
            Vec::new(),
        ));
    };
    let mut param_types: *mut pg_sys::Oid = std::ptr::null_mut();
    let mut param_count: std::ffi::c_int = 0;
    let (outcome, spot) = with_error_spot(|| {
        // SAFETY: inside a transaction; the tree and the types array are allocated in the
        // current (scratch) context, which outlives the subtransaction; the array is read
        // after an error too, since analysis writes the types it has found into it.
        unsafe {
            let (raw, types, count) = raw_statement(&c_text, preset);
            param_types = types;
            param_count = count;
            pg_sys::pg_analyze_and_rewrite_varparams(
                raw,
                c_text.as_ptr(),
                &mut param_types,
                &mut param_count,
                std::ptr::null_mut(),
            );
        }
    });
    let types: Vec<u32> = if param_types.is_null() {
        Vec::new()
    } else {
        // SAFETY: `param_count` entries, kept in step with the array by analysis.
        (0..param_count.max(0) as usize)
            .map(|i| unsafe { (*param_types.add(i)).to_u32() })
            .collect()
    };
    match outcome {
        Ok(()) => Ok(types),
        Err(error) => {
            let position = byte_offset(text, spot.position);
            Err(failure(sqlstate(spot.code), position, subxact::message(&error), types))
        }
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
unsafe fn plan_in_current_context(sql: &CString, preset: &[u32]) -> Planned {
    // SAFETY: within the function's `# Safety` contract, which its callers uphold.
    unsafe {
        let (raw, mut param_types, mut param_count) = raw_statement(sql, preset);
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
            check_permissions(planned);
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

/// Raises "permission denied for table …" where executing `planned` would: the planner
/// reads column statistics whatever the role may read, and a cost or an advice built on
/// them would show a role without SELECT what the table holds.
///
/// # Safety
/// `planned` is a plan just made in this transaction.
unsafe fn check_permissions(planned: *mut pg_sys::PlannedStmt) {
    // SAFETY: the caller's contract; the range table (and 16+'s permission infos) are the
    // plan's flattened ones, every subquery's included, as InitPlan checks them.
    unsafe {
        #[cfg(feature = "pg15")]
        pg_sys::ExecCheckRTPerms((*planned).rtable, true);
        #[cfg(not(feature = "pg15"))]
        pg_sys::ExecCheckPermissions((*planned).rtable, (*planned).permInfos, true);
    }
}

/// The statement's raw parse tree (a PREPARE unwrapped to the statement it prepares) and its
/// parameter types for varparams analysis: `preset` (0: to infer), then the PREPARE's
/// declared types over them, in a palloc'd array analysis may grow.
///
/// # Safety
/// Inside a transaction; the tree and array live in the current memory context.
unsafe fn raw_statement(
    sql: &CString,
    preset: &[u32],
) -> (*mut pg_sys::RawStmt, *mut pg_sys::Oid, std::ffi::c_int) {
    // SAFETY: within the function's `# Safety` contract, which its callers uphold.
    unsafe {
        let raw = pointers::<pg_sys::RawStmt>(pg_sys::raw_parser(
            sql.as_ptr(),
            pg_sys::RawParseMode::RAW_PARSE_DEFAULT,
        ))[0];
        let mut declared = Vec::new();
        if (*(*raw).stmt).type_ == pg_sys::NodeTag::T_PrepareStmt {
            let prepare = (*raw).stmt as *mut pg_sys::PrepareStmt;
            declared = pointers::<pg_sys::TypeName>((*prepare).argtypes);
            (*raw).stmt = (*prepare).query;
        }
        let count = preset.len().max(declared.len());
        let param_types: *mut pg_sys::Oid =
            pg_sys::palloc0(count.max(1) * size_of::<pg_sys::Oid>()).cast();
        for (i, oid) in preset.iter().enumerate() {
            *param_types.add(i) = pg_sys::Oid::from(*oid);
        }
        for (i, type_name) in declared.iter().enumerate() {
            *param_types.add(i) = pg_sys::typenameTypeId(std::ptr::null_mut(), *type_name);
        }
        (raw, param_types, count as std::ffi::c_int)
    }
}

/// Adds the indexes that index, index-only and bitmap index scans in this plan tree use.
///
/// # Safety
/// `plan` is NULL or a node of a finished plan tree.
unsafe fn scanned_indexes(plan: *mut pg_sys::Plan, out: &mut Vec<pg_sys::Oid>) {
    // SAFETY: within the function's `# Safety` contract, which its callers uphold.
    unsafe {
        if plan.is_null() {
            return;
        }
        let index = match (*plan).type_ {
            pg_sys::NodeTag::T_IndexScan => Some((*(plan as *mut pg_sys::IndexScan)).indexid),
            pg_sys::NodeTag::T_IndexOnlyScan => {
                Some((*(plan as *mut pg_sys::IndexOnlyScan)).indexid)
            }
            pg_sys::NodeTag::T_BitmapIndexScan => {
                Some((*(plan as *mut pg_sys::BitmapIndexScan)).indexid)
            }
            _ => None,
        };
        if let Some(index) = index.filter(|i| !out.contains(i)) {
            out.push(index);
        }
        let children: Vec<*mut pg_sys::Plan> = match (*plan).type_ {
            pg_sys::NodeTag::T_Append => pointers((*(plan as *mut pg_sys::Append)).appendplans),
            pg_sys::NodeTag::T_MergeAppend => {
                pointers((*(plan as *mut pg_sys::MergeAppend)).mergeplans)
            }
            pg_sys::NodeTag::T_BitmapAnd => {
                pointers((*(plan as *mut pg_sys::BitmapAnd)).bitmapplans)
            }
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
    // SAFETY: within the function's `# Safety` contract, which its callers uphold.
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
        Some(TableWrite {
            relid: (*rte).relid.to_u32(),
            kind,
            updated_columns,
            estimated_rows: rows,
        })
    }
}

/// The columns an UPDATE assigns, from the range table entry (before PostgreSQL 16) or its
/// permission info (since).
///
/// # Safety
/// `rte` is an entry of `query`'s range table.
#[cfg(feature = "pg15")]
unsafe fn updated_cols(
    _query: *mut pg_sys::Query,
    rte: *mut pg_sys::RangeTblEntry,
) -> Option<*mut pg_sys::Bitmapset> {
    // SAFETY: the caller's contract.
    unsafe { Some((*rte).updatedCols) }
}

#[cfg(not(feature = "pg15"))]
unsafe fn updated_cols(
    query: *mut pg_sys::Query,
    rte: *mut pg_sys::RangeTblEntry,
) -> Option<*mut pg_sys::Bitmapset> {
    // SAFETY: the caller's contract; a result relation always has permission info.
    unsafe {
        let index = usize::try_from((*rte).perminfoindex).ok()?.checked_sub(1)?;
        let info = *pointers::<pg_sys::RTEPermissionInfo>((*query).rteperminfos).get(index)?;
        Some((*info).updatedCols)
    }
}
