//! Cacheability of a statement, decided on its analysed and rewritten query tree (views
//! expanded): rules 1 and 3 of the result cache's correctness rules. Also infers the types
//! of its `$n` parameters, as PREPARE would.

use crate::cache::store::Bypass;
use crate::error::PitstopError;
use crate::pg::list::pointers;
use pgrx::pg_sys;
use std::ffi::{c_void, CStr, CString};

pub struct Analysis {
    pub param_types: Vec<pg_sys::Oid>,
    /// Why the statement cannot be cached, if it cannot.
    pub bypass: Option<Bypass>,
}

/// Built-in STABLE functions whose result changes without any table write: the clock,
/// settings outside the cache key, statistics and catalog lookups.
fn unstable_builtin(name: &str) -> bool {
    matches!(name, "now" | "transaction_timestamp" | "statement_timestamp" | "current_setting" | "age")
        || ["pg_", "has_", "txid_", "to_reg", "current_"].iter().any(|p| name.starts_with(p))
}

struct Walk {
    bypass: Option<Bypass>,
    relations: Vec<pg_sys::Oid>,
}

impl Walk {
    fn found(&mut self, reason: Bypass) -> bool {
        self.bypass.get_or_insert(reason);
        true
    }
}

unsafe extern "C-unwind" fn function_check(funcid: pg_sys::Oid, context: *mut c_void) -> bool {
    // SAFETY: `context` is the Walk passed to check_functions_in_node below.
    unsafe {
        let walk = &mut *(context as *mut Walk);
        match pg_sys::func_volatile(funcid) as u8 {
            b'v' => walk.found(Bypass::VolatileFunction),
            b's' => {
                let name = pg_sys::get_func_name(funcid);
                let name = if name.is_null() { String::new() } else { CStr::from_ptr(name).to_string_lossy().into_owned() };
                if funcid.to_u32() >= pg_sys::FirstNormalObjectId || unstable_builtin(&name) {
                    walk.found(Bypass::StableFunction)
                } else {
                    false
                }
            }
            _ => false,
        }
    }
}

/// Why a read of this relation cannot be cached, if it cannot: the one place that decides,
/// for the relations the analysed query names and for every relation a fill actually read.
/// The rules apply to the relation and to its partition ancestors; of the relations
/// inheriting from it, a temporary one (any session's) is enough: another session's is
/// invisible to this one, so the same query reads other rows in each. `relkind` is looked up
/// when not given.
pub fn relation_bypass(relid: pg_sys::Oid, relkind: Option<std::ffi::c_char>) -> Option<Bypass> {
    // SAFETY (both closures): catalog lookups by OID; get_rel_relkind returns 0 for a
    // relation that does not exist, which is checked before anything that needs it.
    let kind = |relid| unsafe { pg_sys::get_rel_relkind(relid) } as u8;
    let temporary = |relid| unsafe { pg_sys::get_rel_persistence(relid) } as u8 == pg_sys::RELPERSISTENCE_TEMP;
    let rules = |relid: pg_sys::Oid, relkind: u8| -> Option<Bypass> {
        if relid.to_u32() < pg_sys::FirstNormalObjectId {
            return Some(Bypass::SystemCatalog);
        }
        match relkind {
            // Dropped meanwhile: nothing can be said about it.
            0 => return Some(Bypass::InternalError),
            pg_sys::RELKIND_FOREIGN_TABLE => return Some(Bypass::ForeignTable),
            // nextval() and setval() change a sequence without the executor.
            pg_sys::RELKIND_SEQUENCE => return Some(Bypass::Sequence),
            _ => {}
        }
        if temporary(relid) {
            return Some(Bypass::TemporaryTable);
        }
        // SAFETY: as above.
        let rls = unsafe { pg_sys::check_enable_rls(relid, pg_sys::Oid::INVALID, true) };
        (rls != pg_sys::CheckEnableRlsResult::RLS_NONE as i32).then_some(Bypass::RowLevelSecurity)
    };
    use crate::pg::result_set::{ancestors, inheritors};
    rules(relid, relkind.map_or_else(|| kind(relid), |k| k as u8))
        .or_else(|| ancestors(relid).into_iter().find_map(|r| rules(r, kind(r))))
        .or_else(|| inheritors(relid).into_iter().any(|r| kind(r) != 0 && temporary(r)).then_some(Bypass::TemporaryTable))
}

unsafe extern "C-unwind" fn walker(node: *mut pg_sys::Node, context: *mut c_void) -> bool {
    // SAFETY: called by the tree walkers with nodes of an analysed query and our Walk.
    unsafe {
        if node.is_null() {
            return false;
        }
        let walk = &mut *(context as *mut Walk);
        match (*node).type_ {
            pg_sys::NodeTag::T_Query => {
                let query = node as *mut pg_sys::Query;
                if !(*query).rowMarks.is_null() || (*query).hasForUpdate {
                    return walk.found(Bypass::ForUpdate);
                }
                return pg_sys::query_tree_walker(query, Some(walker), context, pg_sys::QTW_EXAMINE_RTES_BEFORE as i32);
            }
            pg_sys::NodeTag::T_RangeTblEntry => {
                let rte = node as *mut pg_sys::RangeTblEntry;
                if (*rte).rtekind == pg_sys::RTEKind::RTE_RELATION {
                    if let Some(reason) = relation_bypass((*rte).relid, Some((*rte).relkind)) {
                        return walk.found(reason);
                    }
                    walk.relations.push((*rte).relid);
                }
                return false;
            }
            pg_sys::NodeTag::T_SQLValueFunction => {
                // CURRENT_DATE, CURRENT_TIMESTAMP, LOCALTIME…: the clock. CURRENT_USER and
                // CURRENT_SCHEMA are in the key (role, search_path).
                let op = (*(node as *mut pg_sys::SQLValueFunction)).op;
                if op <= pg_sys::SQLValueFunctionOp::SVFOP_LOCALTIMESTAMP_N {
                    return walk.found(Bypass::StableFunction);
                }
            }
            pg_sys::NodeTag::T_NextValueExpr => return walk.found(Bypass::VolatileFunction),
            _ => {}
        }
        if pg_sys::check_functions_in_node(node, Some(function_check), context) {
            return true;
        }
        pg_sys::expression_tree_walker(node, Some(walker), context)
    }
}

/// `sql` must be exactly one SELECT (by its parse tree; analysis checks the rest).
pub fn require_select(sql: &str) -> Result<(), PitstopError> {
    let kind = crate::pg::parse::single_explainable_statement(sql)?;
    if kind != crate::pg::parse::StatementKind::Select {
        return Err(PitstopError::NotReadOnly(format!("{kind:?}").to_uppercase()));
    }
    Ok(())
}

/// Parses and analyses `sql`: it must be one plain read-only SELECT. Syntax and name errors
/// are Postgres' own ERRORs; anything else that is not a SELECT is a PitstopError.
pub fn analyze(sql: &str) -> Result<Analysis, PitstopError> {
    require_select(sql)?;
    let c_sql = CString::new(sql).map_err(|_| PitstopError::NotOneStatement(0))?;
    // SAFETY: parse analysis of one statement in the current memory context, as PREPARE
    // does; the trees are only read, by the walkers above.
    unsafe {
        let raw = pointers::<pg_sys::RawStmt>(pg_sys::raw_parser(c_sql.as_ptr(), pg_sys::RawParseMode::RAW_PARSE_DEFAULT))[0];
        let mut param_types: *mut pg_sys::Oid = std::ptr::null_mut();
        let mut param_count: std::ffi::c_int = 0;
        let queries = pointers::<pg_sys::Query>(pg_sys::pg_analyze_and_rewrite_varparams(
            raw,
            c_sql.as_ptr(),
            &mut param_types,
            &mut param_count,
            std::ptr::null_mut(),
        ));
        let mut walk = Walk { bypass: None, relations: Vec::new() };
        for query in &queries {
            if (**query).commandType != pg_sys::CmdType::CMD_SELECT || (**query).hasModifyingCTE {
                return Err(PitstopError::NotReadOnly("data-modifying".into()));
            }
            if !(**query).utilityStmt.is_null() {
                return Err(PitstopError::NotReadOnly("utility".into()));
            }
            walker(*query as *mut pg_sys::Node, &mut walk as *mut Walk as *mut c_void);
        }
        let param_types = (0..param_count.max(0) as usize).map(|i| *param_types.add(i)).collect();
        if walk.bypass.is_none() && replicated_into(&walk.relations) {
            walk.bypass = Some(Bypass::Subscriber);
        }
        Ok(Analysis { param_types, bypass: walk.bypass })
    }
}

/// Whether logical replication applies changes to any of these relations, to a partition
/// ancestor of one (rows routed down into it) or to anything inheriting from one: its apply
/// worker writes without the executor hooks, so versions would not move. Used for the
/// analysed query's relations and for every relation a fill read.
pub fn replicated_into(relations: &[pg_sys::Oid]) -> bool {
    if relations.is_empty() {
        return false;
    }
    use crate::pg::result_set::{ancestors, inheritors};
    let mut family: Vec<pg_sys::Oid> = relations.iter().flat_map(|r| [vec![*r], ancestors(*r), inheritors(*r)].concat()).collect();
    family.sort_by_key(|o| o.to_u32());
    family.dedup();
    pgrx::Spi::connect(|client| {
        crate::pg::spi::select_one::<bool>(
            client,
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_subscription_rel WHERE srrelid = ANY ($1))",
            &[family.into()],
        )
    })
    .unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::unstable_builtin;

    #[test]
    fn clock_settings_and_catalog_functions_are_unstable() {
        for name in ["now", "current_setting", "pg_stat_get_live_tuples", "has_table_privilege", "to_regclass"] {
            assert!(unstable_builtin(name), "{name}");
        }
        for name in ["to_char", "date_trunc", "timestamptz_pl_interval", "lower"] {
            assert!(!unstable_builtin(name), "{name}");
        }
    }
}
