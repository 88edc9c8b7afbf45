//! Hypothetical indexes: CREATE INDEX statements resolved against the catalog but never built,
//! kept in this backend's memory and offered to the planner through `get_relation_info_hook`
//! while a plain EXPLAIN (or the advisor) plans. Nothing is written to the catalog, so they
//! work on a standby, stay invisible to other sessions and vanish with the session.
//!
//! Planning with them is scoped: only the outermost planner call of a plain EXPLAIN (no
//! ANALYZE, not EXPLAIN EXECUTE) sees them, so no plan that uses one can ever be executed or
//! cached.

use crate::advisor::size::AccessMethod;
use crate::error::PitstopError;
use crate::pg::list::pointers;
use pgrx::pg_sys;
use pgrx::pg_sys::ffi::pg_guard_ffi_boundary;
use pgrx::prelude::*;
use pgrx::PgTryBuilder;
use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr, CString};
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

/// What a hypothetical index is, as plain data (copied out of the registry freely).
#[derive(Clone, Debug)]
pub struct HypoDescription {
    pub oid: pg_sys::Oid,
    pub name: String,
    pub relid: pg_sys::Oid,
    pub am: AccessMethod,
    pub am_name: String,
    /// Key columns come first, then INCLUDE columns.
    pub key_columns: usize,
    /// Per column: table attribute number, 0 for an expression.
    pub attnums: Vec<i16>,
    /// Per column: a display name (column name or deparsed expression).
    pub column_names: Vec<String>,
    /// Per column: the type of the indexed value and its typmod.
    pub column_types: Vec<(pg_sys::Oid, i32)>,
    pub descending: Vec<bool>,
    pub nulls_first: Vec<bool>,
    pub unique: bool,
    pub predicate_sql: Option<String>,
    /// Share of the table's rows a partial index covers (1 for a full index); estimated by
    /// the planner when the index is created (it cannot be computed inside the hook).
    pub covered_fraction: f64,
    /// Size inputs, filled in from pg_stats after parsing.
    pub column_widths: Vec<f64>,
    pub key_ndistinct: Vec<Option<f64>>,
}

/// One hypothetical index: its description plus the resolved catalog objects and expression
/// trees the planner needs.
pub struct HypoIndex {
    pub desc: HypoDescription,
    am_oid: pg_sys::Oid,
    collations: Vec<pg_sys::Oid>,
    opfamilies: Vec<pg_sys::Oid>,
    opcintypes: Vec<pg_sys::Oid>,
    /// Owns the expression and predicate trees below (freed with the index).
    memory: pg_sys::MemoryContext,
    /// Index expressions (varno 1), in column order of the zero attnums.
    expressions: *mut pg_sys::List,
    /// Implicit-AND predicate list (varno 1); NIL for a full index.
    predicate: *mut pg_sys::List,
}

impl Drop for HypoIndex {
    fn drop(&mut self) {
        // Null until parsing succeeded: until then `parse_create_index` owns the context.
        if !self.memory.is_null() {
            // SAFETY: `memory` was created for this index alone and nothing else points into
            // it once the index leaves the registry.
            unsafe { pg_sys::MemoryContextDelete(self.memory) };
        }
    }
}

thread_local! {
    static REGISTRY: RefCell<Vec<HypoIndex>> = const { RefCell::new(Vec::new()) };
    static HIDDEN: RefCell<Vec<pg_sys::Oid>> = const { RefCell::new(Vec::new()) };
    /// While the advisor plans: the indexes it offers instead of the session's registry.
    static OFFERED: RefCell<Option<Vec<*const HypoIndex>>> = const { RefCell::new(None) };
}

/// Planning in this backend sees exactly `indexes` as hypothetical indexes (and not the
/// session's own) until the guard is dropped. The guard borrows the indexes, so they outlive
/// every planner call that can see them.
pub struct Offer<'a> {
    previous: Option<Vec<*const HypoIndex>>,
    _scope: Scope,
    _indexes: std::marker::PhantomData<&'a HypoIndex>,
}

pub fn offer_only<'a>(indexes: &[&'a HypoIndex]) -> Offer<'a> {
    ensure_installed();
    let pointers = indexes.iter().map(|i| *i as *const HypoIndex).collect();
    let previous = OFFERED.with(|o| o.replace(Some(pointers)));
    Offer { previous, _scope: Scope::enter(), _indexes: std::marker::PhantomData }
}

impl Drop for Offer<'_> {
    fn drop(&mut self) {
        let previous = self.previous.take();
        OFFERED.with(|o| *o.borrow_mut() = previous);
    }
}

/// Calls `f` for each hypothetical index on one of `relids` the planner should see now.
fn for_each_offered(relids: &[pg_sys::Oid], mut f: impl FnMut(&HypoIndex)) {
    let offered = OFFERED.with(|o| o.borrow().clone());
    match offered {
        Some(pointers) => {
            for pointer in pointers {
                // SAFETY: `offer_only` stored pointers to indexes borrowed for the lifetime
                // of its guard, and the guard is alive while OFFERED is set.
                let index = unsafe { &*pointer };
                if relids.contains(&index.desc.relid) {
                    f(index);
                }
            }
        }
        None => with_registry(|registry| {
            registry.iter().filter(|h| relids.contains(&h.desc.relid)).for_each(f)
        }),
    }
}

/// Runs `f` with the registry. `f` must not run SQL (planning would re-enter it).
fn with_registry<R>(f: impl FnOnce(&mut Vec<HypoIndex>) -> R) -> R {
    REGISTRY.with(|r| f(&mut r.borrow_mut()))
}

pub fn hide(index: pg_sys::Oid) -> bool {
    ensure_installed();
    HIDDEN.with(|h| {
        let mut h = h.borrow_mut();
        let added = !h.contains(&index);
        if added {
            h.push(index);
        }
        added
    })
}

pub fn unhide(index: pg_sys::Oid) -> bool {
    HIDDEN.with(|h| {
        let mut h = h.borrow_mut();
        let before = h.len();
        h.retain(|o| *o != index);
        before != h.len()
    })
}

pub fn hidden() -> Vec<pg_sys::Oid> {
    HIDDEN.with(|h| h.borrow().clone())
}

// ---------------------------------------------------------------------------------------
// Parsing CREATE INDEX

// `transformIndexStmt` (parser/parse_utilcmd.h) and `get_partition_ancestors`
// (catalog/partition.h) have no pgrx binding.
unsafe extern "C-unwind" {
    fn transformIndexStmt(
        relid: pg_sys::Oid,
        stmt: *mut pg_sys::IndexStmt,
        query: *const c_char,
    ) -> *mut pg_sys::IndexStmt;
    fn get_partition_ancestors(relid: pg_sys::Oid) -> *mut pg_sys::List;
}

const ACCESS_SHARE_LOCK: i32 = 1;

fn cstr(s: *const c_char) -> Option<String> {
    // SAFETY: callers pass NULL or NUL-terminated strings from parse trees / catalogs.
    (!s.is_null()).then(|| unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned())
}

/// Resolves a CREATE INDEX statement into a hypothetical index (not yet registered).
/// Errors from Postgres itself (syntax, unknown table, unknown operator class) propagate as
/// Postgres ERRORs with their own SQLSTATE.
pub fn parse_create_index(ddl: &str) -> Result<HypoIndex, PitstopError> {
    let c_ddl = crate::pg::parse::c_text(ddl).ok_or(PitstopError::NotCreateIndex)?;
    // SAFETY: every pointer below comes from the parser/catalog functions called here and is
    // used while the memory context that holds it is alive. The new context is a child of
    // the caller's context until the index is complete, so an ERROR part-way frees it.
    unsafe {
        let memory = pg_sys::AllocSetContextCreateInternal(
            pg_sys::CurrentMemoryContext,
            c"pitstop hypothetical index".as_ptr(),
            0,
            1024,
            8 * 1024,
        );
        let caller = pg_sys::MemoryContextSwitchTo(memory);
        let result = PgTryBuilder::new(std::panic::AssertUnwindSafe(|| resolve(&c_ddl)))
            .catch_others(|e| {
                pg_sys::MemoryContextSwitchTo(caller);
                e.rethrow()
            })
            .catch_rust_panic(|e| {
                pg_sys::MemoryContextSwitchTo(caller);
                e.rethrow()
            })
            .execute();
        pg_sys::MemoryContextSwitchTo(caller);
        match result {
            Ok(mut index) => {
                pg_sys::MemoryContextSetParent(memory, pg_sys::TopMemoryContext);
                index.memory = memory;
                Ok(index)
            }
            Err(e) => {
                pg_sys::MemoryContextDelete(memory);
                Err(e)
            }
        }
    }
}

/// # Safety
/// Runs in the index's own memory context (the current one); see `parse_create_index`.
unsafe fn resolve(c_ddl: &CStr) -> Result<HypoIndex, PitstopError> {
    unsafe {
        let statements = pointers::<pg_sys::RawStmt>(pg_sys::raw_parser(
            c_ddl.as_ptr(),
            pg_sys::RawParseMode::RAW_PARSE_DEFAULT,
        ));
        if statements.len() != 1 {
            return Err(PitstopError::NotOneStatement(statements.len()));
        }
        let node = (*statements[0]).stmt;
        if (*node).type_ != pg_sys::NodeTag::T_IndexStmt {
            return Err(PitstopError::NotCreateIndex);
        }
        let raw = node as *mut pg_sys::IndexStmt;
        let relid = pg_sys::RangeVarGetRelidExtended(
            (*raw).relation,
            ACCESS_SHARE_LOCK,
            0,
            None,
            std::ptr::null_mut(),
        );
        let relkind = pg_sys::get_rel_relkind(relid) as u8;
        if relkind != pg_sys::RELKIND_RELATION
            && relkind != pg_sys::RELKIND_MATVIEW
            && relkind != pg_sys::RELKIND_PARTITIONED_TABLE
        {
            return Err(PitstopError::UnsupportedRelation(
                cstr(pg_sys::get_rel_name(relid)).unwrap_or_default(),
            ));
        }
        let table = cstr(pg_sys::get_rel_name(relid)).unwrap_or_default();
        let stmt = pg_guard_ffi_boundary(|| transformIndexStmt(relid, raw, c_ddl.as_ptr()));

        let am_name = cstr((*stmt).accessMethod).unwrap_or_else(|| "btree".to_string());
        let am = AccessMethod::from_name(&am_name)
            .ok_or_else(|| PitstopError::UnsupportedAccessMethod(am_name.clone()))?;
        let c_am = CString::new(am_name.clone()).unwrap_or_default();
        let am_oid = pg_sys::get_am_oid(c_am.as_ptr(), false);
        let routine = pg_sys::GetIndexAmRoutineByAmId(am_oid, false);

        let keys = pointers::<pg_sys::IndexElem>((*stmt).indexParams);
        let includes = pointers::<pg_sys::IndexElem>((*stmt).indexIncludingParams);
        let lacks = |feature: &'static str| PitstopError::AccessMethodLacks {
            am: am_name.clone(),
            feature,
        };
        if keys.len() > 1 && !(*routine).amcanmulticol {
            return Err(lacks("multi-column indexes"));
        }
        if !includes.is_empty() && !(*routine).amcaninclude {
            return Err(lacks("INCLUDE columns"));
        }
        if (*stmt).unique && !(*routine).amcanunique {
            return Err(lacks("unique indexes"));
        }

        let deparse_cxt = pg_sys::deparse_context_for((*(*stmt).relation).relname, relid);
        let mut index = HypoIndex {
            desc: HypoDescription {
                oid: pg_sys::Oid::INVALID,
                name: String::new(),
                relid,
                am,
                am_name: am_name.clone(),
                key_columns: keys.len(),
                attnums: Vec::new(),
                column_names: Vec::new(),
                column_types: Vec::new(),
                descending: Vec::new(),
                nulls_first: Vec::new(),
                unique: (*stmt).unique,
                predicate_sql: None,
                covered_fraction: 1.0,
                column_widths: Vec::new(),
                key_ndistinct: Vec::new(),
            },
            am_oid,
            collations: Vec::new(),
            opfamilies: Vec::new(),
            opcintypes: Vec::new(),
            memory: std::ptr::null_mut(),
            expressions: std::ptr::null_mut(),
            predicate: std::ptr::null_mut(),
        };
        for (position, elem) in keys.iter().chain(includes.iter()).enumerate() {
            let is_key = position < keys.len();
            let (attnum, type_oid, typmod, mut collation, display) =
                if let Some(name) = cstr((**elem).name) {
                    let c_name = CString::new(name.clone()).unwrap_or_default();
                    let attnum = pg_sys::get_attnum(relid, c_name.as_ptr());
                    if attnum <= 0 {
                        return Err(PitstopError::UndefinedColumn {
                            column: name,
                            table: table.clone(),
                        });
                    }
                    let (mut t, mut m, mut c) = (pg_sys::Oid::INVALID, 0, pg_sys::Oid::INVALID);
                    pg_sys::get_atttypetypmodcoll(relid, attnum, &mut t, &mut m, &mut c);
                    (attnum, t, m, c, name)
                } else {
                    let expr = (**elem).expr;
                    let expr = pg_sys::eval_const_expressions(std::ptr::null_mut(), expr);
                    pg_sys::fix_opfuncids(expr);
                    index.expressions = pg_sys::lappend(index.expressions, expr.cast());
                    let text = cstr(pg_sys::deparse_expression(expr, deparse_cxt, false, false))
                        .unwrap_or_default();
                    (
                        0,
                        pg_sys::exprType(expr),
                        pg_sys::exprTypmod(expr),
                        pg_sys::exprCollation(expr),
                        text,
                    )
                };
            index.desc.attnums.push(attnum);
            index.desc.column_names.push(display);
            index.desc.column_types.push((type_oid, typmod));
            if !is_key {
                continue;
            }
            if !(**elem).collation.is_null() {
                collation = pg_sys::get_collation_oid((**elem).collation, false);
            }
            let opclass = pg_sys::ResolveOpClass((**elem).opclass, type_oid, c_am.as_ptr(), am_oid);
            index.collations.push(collation);
            index.opfamilies.push(pg_sys::get_opclass_family(opclass));
            index.opcintypes.push(pg_sys::get_opclass_input_type(opclass));
            let descending = (**elem).ordering == pg_sys::SortByDir::SORTBY_DESC;
            let nulls_first = match (**elem).nulls_ordering {
                pg_sys::SortByNulls::SORTBY_NULLS_FIRST => true,
                pg_sys::SortByNulls::SORTBY_NULLS_LAST => false,
                _ => descending,
            };
            let ordered = (**elem).ordering != pg_sys::SortByDir::SORTBY_DEFAULT
                || (**elem).nulls_ordering != pg_sys::SortByNulls::SORTBY_NULLS_DEFAULT;
            if ordered && !(*routine).amcanorder {
                return Err(lacks("ASC/DESC/NULLS options"));
            }
            index.desc.descending.push(descending);
            index.desc.nulls_first.push(nulls_first);
        }
        if !(*stmt).whereClause.is_null() {
            let clause = pg_sys::eval_const_expressions(std::ptr::null_mut(), (*stmt).whereClause);
            let clause = pg_sys::canonicalize_qual(clause.cast(), false);
            index.desc.predicate_sql =
                cstr(pg_sys::deparse_expression(clause.cast(), deparse_cxt, false, false));
            index.predicate = pg_sys::make_ands_implicit(clause);
            pg_sys::fix_opfuncids(index.predicate.cast());
        }
        index.desc.name =
            cstr((*stmt).idxname).unwrap_or_else(|| default_name(&table, &index.desc.column_names));
        Ok(index)
    }
}

/// `<table>_<columns>_hypo`, like Postgres' own default names with a marker.
fn default_name(table: &str, columns: &[String]) -> String {
    let cols: Vec<String> = columns
        .iter()
        .map(|c| c.chars().filter(|ch| ch.is_alphanumeric() || *ch == '_').collect())
        .collect();
    format!("{table}_{}_hypo", cols.join("_"))
}

/// An OID no relation uses, counting down from the top of the OID space.
pub fn unused_oid(taken: &[pg_sys::Oid]) -> pg_sys::Oid {
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX - 1);
    loop {
        let candidate = pg_sys::Oid::from(NEXT.fetch_sub(1, Ordering::Relaxed));
        // SAFETY: catalog lookup by OID; returns '\0' when no relation has it.
        let used = unsafe { pg_sys::get_rel_relkind(candidate) } != 0;
        if !used && !taken.contains(&candidate) {
            return candidate;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Planner integration

static PLANNER_DEPTH: AtomicI32 = AtomicI32::new(0);
/// Planner depth at which hypothetical planning was switched on; -1 when off.
static SCOPE_DEPTH: AtomicI32 = AtomicI32::new(-1);

static mut PREV_GET_RELATION_INFO: pg_sys::get_relation_info_hook_type = None;
static mut PREV_EXPLAIN_INDEX_NAME: pg_sys::explain_get_index_name_hook_type = None;
static mut PREV_PLANNER: pg_sys::planner_hook_type = None;
static mut PREV_PROCESS_UTILITY: pg_sys::ProcessUtility_hook_type = None;

pub(crate) struct Scope(i32);

impl Scope {
    fn enter() -> Self {
        Scope(SCOPE_DEPTH.swap(PLANNER_DEPTH.load(Ordering::Relaxed), Ordering::Relaxed))
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        SCOPE_DEPTH.store(self.0, Ordering::Relaxed);
    }
}

pub(crate) fn planning_hypothetically() -> bool {
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
pub fn ensure_installed() {
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

/// Builds the planner's view of a hypothetical index on `rel`, mirroring plancat.c.
///
/// # Safety
/// Called from get_relation_info with the planner's structures for the index's table.
unsafe fn index_opt_info(
    hypo: &HypoIndex,
    rel: *mut pg_sys::RelOptInfo,
    relation: pg_sys::Oid,
    attnums: &[i16],
) -> Result<Option<*mut pg_sys::IndexOptInfo>, String> {
    unsafe {
        let index = &hypo.desc;
        let ncolumns = attnums.len();
        let nkeys = index.key_columns;
        let info = pg_sys::palloc0(std::mem::size_of::<pg_sys::IndexOptInfo>())
            as *mut pg_sys::IndexOptInfo;
        (*info).type_ = pg_sys::NodeTag::T_IndexOptInfo;
        (*info).indexoid = index.oid;
        (*info).reltablespace = (*rel).reltablespace;
        (*info).rel = rel;
        (*info).ncolumns = ncolumns as c_int;
        (*info).nkeycolumns = nkeys as c_int;
        let alloc = |n: usize, size: usize| pg_sys::palloc0((n.max(1)) * size);
        (*info).indexkeys = alloc(ncolumns, size_of::<c_int>()).cast();
        (*info).canreturn = alloc(ncolumns, size_of::<bool>()).cast();
        (*info).indexcollations = alloc(nkeys, size_of::<pg_sys::Oid>()).cast();
        (*info).opfamily = alloc(nkeys, size_of::<pg_sys::Oid>()).cast();
        (*info).opcintype = alloc(nkeys, size_of::<pg_sys::Oid>()).cast();
        for (i, attnum) in attnums.iter().enumerate() {
            *(*info).indexkeys.add(i) = c_int::from(*attnum);
            // btree can return every column (index-only scans); hash and brin none.
            *(*info).canreturn.add(i) = index.am == AccessMethod::Btree;
        }
        for i in 0..nkeys {
            *(*info).indexcollations.add(i) = hypo.collations[i];
            *(*info).opfamily.add(i) = hypo.opfamilies[i];
            *(*info).opcintype.add(i) = hypo.opcintypes[i];
        }
        let routine = pg_sys::GetIndexAmRoutineByAmId(hypo.am_oid, false);
        (*info).relam = hypo.am_oid;
        (*info).amcanorderbyop = (*routine).amcanorderbyop;
        (*info).amoptionalkey = (*routine).amoptionalkey;
        (*info).amsearcharray = (*routine).amsearcharray;
        (*info).amsearchnulls = (*routine).amsearchnulls;
        (*info).amhasgettuple = (*routine).amgettuple.is_some();
        (*info).amhasgetbitmap = (*routine).amgetbitmap.is_some();
        (*info).amcanparallel = (*routine).amcanparallel;
        (*info).amcanmarkpos = (*routine).ammarkpos.is_some() && (*routine).amrestrpos.is_some();
        // Before PostgreSQL 16 the field is declared without a prototype: same pointer, other type.
        #[cfg(feature = "pg15")]
        {
            (*info).amcostestimate = std::mem::transmute::<
                pg_sys::amcostestimate_function,
                Option<unsafe extern "C-unwind" fn()>,
            >((*routine).amcostestimate);
        }
        #[cfg(not(feature = "pg15"))]
        {
            (*info).amcostestimate = (*routine).amcostestimate;
        }
        if (*routine).amcanorder {
            (*info).sortopfamily = (*info).opfamily;
            (*info).reverse_sort = alloc(nkeys, size_of::<bool>()).cast();
            (*info).nulls_first = alloc(nkeys, size_of::<bool>()).cast();
            for i in 0..nkeys {
                *(*info).reverse_sort.add(i) = index.descending[i];
                *(*info).nulls_first.add(i) = index.nulls_first[i];
            }
        }
        let varno = (*rel).relid as c_int;
        let relocate = |list: *mut pg_sys::List| -> *mut pg_sys::List {
            if list.is_null() {
                return list;
            }
            let copy = pg_sys::copyObjectImpl(list.cast()) as *mut pg_sys::List;
            if varno != 1 {
                pg_sys::ChangeVarNodes(copy.cast(), 1, varno, 0);
            }
            copy
        };
        (*info).indexprs = relocate(hypo.expressions);
        (*info).indpred = relocate(hypo.predicate);
        let mut expressions = pointers::<pg_sys::Expr>((*info).indexprs).into_iter();
        let mut tlist: *mut pg_sys::List = std::ptr::null_mut();
        for (i, attnum) in attnums.iter().enumerate() {
            let expr: *mut pg_sys::Expr = if *attnum != 0 {
                let (mut t, mut m, mut c) = (pg_sys::Oid::INVALID, 0, pg_sys::Oid::INVALID);
                pg_sys::get_atttypetypmodcoll(relation, *attnum, &mut t, &mut m, &mut c);
                // A dropped column reads as type 0, a retyped one as another type: the
                // resolved operator classes no longer fit.
                if t != index.column_types[i].0 {
                    return Err(format!(
                        "column \"{}\" was dropped or changed type",
                        index.column_names[i]
                    ));
                }
                pg_sys::makeVar(varno, *attnum, t, m, c, 0).cast()
            } else {
                match expressions.next() {
                    Some(expr) => expr,
                    None => return Ok(None),
                }
            };
            let entry = pg_sys::makeTargetEntry(expr, (i + 1) as i16, std::ptr::null_mut(), false);
            tlist = pg_sys::lappend(tlist, entry.cast());
        }
        (*info).indextlist = tlist;
        (*info).predOK = false;
        (*info).unique = index.unique;
        (*info).immediate = true;
        (*info).hypothetical = true;

        let covered = ((*rel).tuples * index.covered_fraction).max(1.0).min((*rel).tuples.max(1.0));
        let estimate = crate::advisor::hypo::estimate_size(index, covered, f64::from((*rel).pages));
        (*info).tuples = covered;
        (*info).pages = estimate.pages as pg_sys::BlockNumber;
        (*info).tree_height = estimate.tree_height;
        Ok(Some(info))
    }
}

/// The index's column numbers on `relation`: its own table's, or on a partition the same
/// columns found by name (a partition may order its columns differently). None when a
/// column is missing, or when expressions or a predicate read a column numbered
/// differently (their trees are not rewritten; that partition is planned without it).
///
/// # Safety
/// Catalog lookups, in a transaction.
unsafe fn partition_attnums(hypo: &HypoIndex, relation: pg_sys::Oid) -> Option<Vec<i16>> {
    unsafe {
        let parent = hypo.desc.relid;
        if parent == relation {
            return Some(hypo.desc.attnums.clone());
        }
        let map = |attnum: i16| -> Option<i16> {
            let name = pg_sys::get_attname(parent, attnum, true);
            if name.is_null() {
                return None;
            }
            let mapped = pg_sys::get_attnum(relation, name);
            (mapped > 0).then_some(mapped)
        };
        let mut referenced: *mut pg_sys::Bitmapset = std::ptr::null_mut();
        pg_sys::pull_varattnos(hypo.expressions.cast(), 1, &mut referenced);
        pg_sys::pull_varattnos(hypo.predicate.cast(), 1, &mut referenced);
        let mut member = -1;
        loop {
            member = pg_sys::bms_next_member(referenced, member);
            if member < 0 {
                break;
            }
            let attnum = (member + pg_sys::FirstLowInvalidHeapAttributeNumber) as i16;
            if map(attnum) != Some(attnum) {
                return None;
            }
        }
        hypo.desc.attnums.iter().map(|a| if *a == 0 { Some(0) } else { map(*a) }).collect()
    }
}

/// The average width Postgres assumes for a value of this type (no statistics needed).
pub fn type_width(type_oid: pg_sys::Oid, typmod: i32) -> f64 {
    // SAFETY: a syscache lookup of the type; returns a default for unknown types.
    f64::from(unsafe { pg_sys::get_typavgwidth(type_oid, typmod) })
}

/// Whether `relid` is a partitioned table.
pub fn is_partitioned(relid: pg_sys::Oid) -> bool {
    // SAFETY: catalog lookup by OID; '\0' when no relation has it.
    unsafe { pg_sys::get_rel_relkind(relid) as u8 == pg_sys::RELKIND_PARTITIONED_TABLE }
}

/// Registers a parsed index under a fresh OID; errors if the name is taken.
pub fn register(mut index: HypoIndex) -> Result<pg_sys::Oid, PitstopError> {
    ensure_installed();
    with_registry(|r| {
        if r.iter().any(|h| h.desc.name == index.desc.name) {
            return Err(PitstopError::DuplicateHypoIndex(index.desc.name.clone()));
        }
        let taken: Vec<_> = r.iter().map(|h| h.desc.oid).collect();
        index.desc.oid = unused_oid(&taken);
        let oid = index.desc.oid;
        r.push(index);
        Ok(oid)
    })
}

/// Copies of every registered description.
pub fn descriptions() -> Vec<HypoDescription> {
    with_registry(|r| r.iter().map(|h| h.desc.clone()).collect())
}

/// Removes one index; false when there is none with that OID.
pub fn remove(oid: pg_sys::Oid) -> bool {
    with_registry(|r| r.iter().position(|h| h.desc.oid == oid).map(|pos| r.remove(pos))).is_some()
}

/// Removes every index; returns how many there were.
pub fn clear() -> usize {
    with_registry(|r| std::mem::take(r).len())
}
