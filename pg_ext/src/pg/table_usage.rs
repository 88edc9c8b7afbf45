//! Reads what a query asks of one base relation out of the planner's structures, at the
//! moment `set_rel_pathlist_hook` runs: restriction clauses are distributed and their
//! selectivities known, equivalence classes hold the join keys, and `query_pathkeys` the
//! wanted ordering.

use crate::pg::list::pointers;
use pgrx::pg_sys;
use pitstop_core::advisor::usage::{ColumnFilter, Restriction, SortKey, TableUsage};
use std::collections::BTreeMap;
use std::ffi::{c_int, c_void, CStr};

// utils/pg_locale.h has no pgrx binding.
#[cfg(not(feature = "pg18"))]
unsafe extern "C-unwind" {
    fn lc_collate_is_c(collation: pg_sys::Oid) -> bool;
}

#[cfg(feature = "pg18")]
unsafe extern "C-unwind" {
    fn pg_newlocale_from_collation(collation: pg_sys::Oid) -> *const LocaleHead;
}

/// The leading fields of PostgreSQL 18's `struct pg_locale_struct`.
#[cfg(feature = "pg18")]
#[repr(C)]
struct LocaleHead {
    provider: std::ffi::c_char,
    deterministic: bool,
    collate_is_c: bool,
}

/// Whether `collation` sorts bytewise (LIKE 'abc%' can then use a plain btree).
///
/// # Safety
/// In a transaction (catalog lookups); may raise an ERROR for an unknown collation.
unsafe fn collate_is_c(collation: pg_sys::Oid) -> bool {
    // SAFETY: the caller's contract; PostgreSQL 18 removed lc_collate_is_c in favour of the
    // locale's flag, and errors on an invalid OID where 17 answered false.
    unsafe {
        #[cfg(not(feature = "pg18"))]
        return lc_collate_is_c(collation);
        #[cfg(feature = "pg18")]
        return collation != pg_sys::InvalidOid
            && (*pg_newlocale_from_collation(collation)).collate_is_c;
    }
}

const BTREE_EQUAL: c_int = 3;
#[cfg(not(feature = "pg18"))]
const BTREE_GREATER: c_int = 5;

fn text(s: *const std::ffi::c_char) -> String {
    if s.is_null() {
        String::new()
    } else {
        // SAFETY: callers pass NUL-terminated strings from the catalog or the deparser.
        unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned()
    }
}

/// Whether deparsed SQL is one identifier (a column name, quoted or not).
fn is_identifier(sql: &str) -> bool {
    let quoted = sql.len() >= 2 && sql.starts_with('"') && sql.ends_with('"');
    quoted || (!sql.is_empty() && sql.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '$'))
}

/// The plain column of relation `varno` that `node` is (under binary-compatible casts).
///
/// # Safety
/// `node` must be a valid expression node or NULL.
unsafe fn column_of(node: *mut pg_sys::Node, varno: u32) -> Option<*mut pg_sys::Var> {
    // SAFETY: within the function's `# Safety` contract, which its callers uphold.
    unsafe {
        let mut node = node;
        while !node.is_null() && (*node).type_ == pg_sys::NodeTag::T_RelabelType {
            node = (*(node as *mut pg_sys::RelabelType)).arg.cast();
        }
        if node.is_null() || (*node).type_ != pg_sys::NodeTag::T_Var {
            return None;
        }
        let var = node as *mut pg_sys::Var;
        ((*var).varno as u32 == varno && (*var).varlevelsup == 0 && (*var).varattno > 0)
            .then_some(var)
    }
}

/// A column of this rel, or an immutable expression of its columns, that an index key can be.
struct Key {
    /// The column, or the first column the expression reads.
    attnum: i16,
    type_oid: pg_sys::Oid,
    collation: pg_sys::Oid,
    /// The expression as SQL over the bare table; None for a plain column.
    expression: Option<String>,
    /// The expression has `$n` parameters where its constants were: no index can hold it.
    parameters: bool,
}

/// Btree strategy of `opno` for the type's default operator family (0 when none).
///
/// # Safety
/// Catalog lookups only.
unsafe fn btree_strategy(opno: pg_sys::Oid, type_oid: pg_sys::Oid) -> c_int {
    // SAFETY: within the function's `# Safety` contract, which its callers uphold.
    unsafe {
        let opclass = pg_sys::GetDefaultOpClass(type_oid, pg_sys::BTREE_AM_OID);
        if opclass == pg_sys::Oid::INVALID {
            return 0;
        }
        pg_sys::get_op_opfamily_strategy(opno, pg_sys::get_opclass_family(opclass))
    }
}

struct Collector {
    root: *mut pg_sys::PlannerInfo,
    rel: *mut pg_sys::RelOptInfo,
    varno: u32,
    relid: pg_sys::Oid,
    names: BTreeMap<i16, String>,
    /// Expressions that would be keys but for their `$n` parameters.
    parameterized: Vec<String>,
}

impl Collector {
    /// `node` as an index key: a plain column of this rel, or an expression that reads only
    /// this rel's plain columns and is immutable (an index can only hold those).
    ///
    /// # Safety
    /// `node` must be a valid expression node or NULL.
    unsafe fn key_of(&mut self, node: *mut pg_sys::Node) -> Option<Key> {
        // SAFETY: within the function's `# Safety` contract, which its callers uphold.
        unsafe {
            if let Some(var) = column_of(node, self.varno) {
                self.remember((*var).varattno);
                return Some(Key {
                    attnum: (*var).varattno,
                    type_oid: (*var).vartype,
                    collation: (*var).varcollid,
                    expression: None,
                    parameters: false,
                });
            }
            if node.is_null()
                || (*node).type_ == pg_sys::NodeTag::T_Const
                || (*node).type_ == pg_sys::NodeTag::T_Param
            {
                return None;
            }
            let varnos = pg_sys::pull_varnos(self.root, node);
            if pg_sys::bms_membership(varnos) != pg_sys::BMS_Membership::BMS_SINGLETON
                || !pg_sys::bms_is_member(self.varno as c_int, varnos)
                || pg_sys::contain_mutable_functions(node)
                || pg_sys::contain_subplans(node)
                || pg_sys::contain_agg_clause(node)
                || pg_sys::contain_window_function(node)
            {
                return None;
            }
            // Only plain columns of this level (no whole-row or system columns, no outer
            // references).
            let vars = pointers::<pg_sys::Var>(pg_sys::pull_var_clause(
                node,
                pg_sys::PVC_INCLUDE_PLACEHOLDERS as c_int,
            ));
            if vars.is_empty()
                || vars.iter().any(|v| {
                    (**v).xpr.type_ != pg_sys::NodeTag::T_Var
                        || (**v).varlevelsup != 0
                        || (**v).varattno <= 0
                })
            {
                return None;
            }
            // `$n` parameters (pg_stat_statements' stand-ins for constants) leave a key that
            // only the constants make (`substr(email, $1, $2)`); a subquery's or an outer
            // query's value (PARAM_EXEC) is none an index can hold either.
            let Params { external: parameters, other } = params_in(node);
            if other {
                return None;
            }
            let attnum = (*vars[0]).varattno;
            self.remember(attnum);
            let expression = self.deparse(node)?;
            Some(Key {
                attnum,
                type_oid: pg_sys::exprType(node),
                collation: pg_sys::exprCollation(node),
                expression: Some(expression),
                parameters,
            })
        }
    }

    /// Notes an expression that is no key for its parameters (once), and gives no key.
    fn parameterized(&mut self, key: Key) -> Option<Key> {
        if !key.parameters {
            return Some(key);
        }
        let expression = key.expression.unwrap_or_default();
        if !self.parameterized.contains(&expression) {
            self.parameterized.push(expression);
        }
        None
    }

    fn remember(&mut self, attnum: i16) {
        if let std::collections::btree_map::Entry::Vacant(slot) = self.names.entry(attnum) {
            // SAFETY: catalog lookup of an existing column (missing_ok returns NULL).
            slot.insert(text(unsafe { pg_sys::get_attname(self.relid, attnum, true) }));
        }
    }

    /// One restriction clause as a column filter, if it has an index-usable shape.
    ///
    /// # Safety
    /// `rinfo` is one of the rel's restriction clauses.
    unsafe fn filter(&mut self, rinfo: *mut pg_sys::RestrictInfo) -> Option<ColumnFilter> {
        // SAFETY: within the function's `# Safety` contract, which its callers uphold.
        unsafe {
            let clause = (*rinfo).clause as *mut pg_sys::Node;
            let selectivity = pg_sys::clause_selectivity(
                self.root,
                rinfo.cast(),
                0,
                pg_sys::JoinType::JOIN_INNER,
                std::ptr::null_mut(),
            );
            let (key, restriction, literal, opclass) = match (*clause).type_ {
                pg_sys::NodeTag::T_OpExpr => {
                    let op = clause as *mut pg_sys::OpExpr;
                    let args = pointers::<pg_sys::Node>((*op).args);
                    if args.len() != 2 {
                        return None;
                    }
                    let (key, other, opno) = match (self.key_of(args[0]), self.key_of(args[1])) {
                        (Some(k), None) => (k, args[1], (*op).opno),
                        (None, Some(k)) => (k, args[0], pg_sys::get_commutator((*op).opno)),
                        _ => return None,
                    };
                    if pg_sys::contain_var_clause(other)
                        || pg_sys::contain_volatile_functions(other)
                    {
                        return None;
                    }
                    let literal = (*other).type_ == pg_sys::NodeTag::T_Const;
                    match btree_strategy(opno, key.type_oid) {
                        BTREE_EQUAL => (key, Restriction::Equality, literal, None),
                        s if s > 0 => (key, Restriction::Range, false, None),
                        _ => {
                            let opclass =
                                like_prefix_opclass(opno, key.type_oid, key.collation, other)?;
                            (key, Restriction::LikePrefix, false, opclass)
                        }
                    }
                }
                pg_sys::NodeTag::T_ScalarArrayOpExpr => {
                    let op = clause as *mut pg_sys::ScalarArrayOpExpr;
                    let args = pointers::<pg_sys::Node>((*op).args);
                    if !(*op).useOr || args.len() != 2 || pg_sys::contain_var_clause(args[1]) {
                        return None;
                    }
                    let key = self.key_of(args[0])?;
                    if btree_strategy((*op).opno, key.type_oid) != BTREE_EQUAL {
                        return None;
                    }
                    (key, Restriction::Equality, false, None)
                }
                pg_sys::NodeTag::T_NullTest => {
                    let test = clause as *mut pg_sys::NullTest;
                    if (*test).nulltesttype != pg_sys::NullTestType::IS_NULL {
                        return None;
                    }
                    (self.key_of((*test).arg.cast())?, Restriction::Equality, false, None)
                }
                _ => return None,
            };
            let key = self.parameterized(key)?;
            Some(ColumnFilter {
                attnum: key.attnum,
                restriction,
                selectivity,
                literal_predicate: if literal { self.deparse(clause) } else { None },
                opclass,
                expression: key.expression,
            })
        }
    }

    /// `clause` as SQL over the bare table (for an index predicate).
    ///
    /// # Safety
    /// `clause` is a restriction clause of this rel.
    unsafe fn deparse(&self, clause: *mut pg_sys::Node) -> Option<String> {
        // SAFETY: within the function's `# Safety` contract, which its callers uphold.
        unsafe {
            let copy = pg_sys::copyObjectImpl(clause.cast()) as *mut pg_sys::Node;
            if self.varno != 1 {
                pg_sys::ChangeVarNodes(copy, self.varno as c_int, 1, 0);
            }
            let context = pg_sys::deparse_context_for(pg_sys::get_rel_name(self.relid), self.relid);
            // Under pg_catalog alone: the role's own functions come out schema-qualified, so the
            // DDL the DBA runs later calls what the statement called, whatever the DBA's path;
            // and constants as pg_dump writes them, whatever the DBA's DateStyle.
            let sql = crate::pg::guc::with_portable_deparse(|| {
                let plain = text(pg_sys::deparse_expression(copy, context, false, false));
                // An implicit cast of a column (`y = 2000.5` compares `y::numeric`) prints as
                // the bare column, and an index on that would be the column's: show the cast.
                if is_identifier(&plain) {
                    text(pg_sys::deparse_expression(copy, context, false, true))
                } else {
                    plain
                }
            });
            (!sql.is_empty()).then_some(sql)
        }
    }

    /// The column (or else the immutable expression) of this rel among an equivalence
    /// class's members.
    ///
    /// # Safety
    /// `class` is one of the planner's equivalence classes.
    unsafe fn member_key(&mut self, class: *mut pg_sys::EquivalenceClass) -> Option<Key> {
        // SAFETY: within the function's `# Safety` contract, which its callers uphold.
        unsafe {
            let members: Vec<_> = pointers::<pg_sys::EquivalenceMember>((*class).ec_members)
                .into_iter()
                .filter(|m| {
                    !(**m).em_is_child
                        && pg_sys::bms_membership((**m).em_relids)
                            == pg_sys::BMS_Membership::BMS_SINGLETON
                        && pg_sys::bms_is_member(self.varno as c_int, (**m).em_relids)
                })
                .collect();
            if let Some(var) =
                members.iter().find_map(|m| column_of((**m).em_expr.cast(), self.varno))
            {
                return self.key_of(var.cast());
            }
            members.iter().find_map(|m| self.key_of((**m).em_expr.cast()))
        }
    }

    /// Columns equated with other relations' columns: equivalence classes without a
    /// constant, and merge-joinable join clauses outside them (outer joins).
    ///
    /// # Safety
    /// Planner structures of the current planning.
    unsafe fn join_keys(&mut self) -> (Vec<i16>, Vec<(i16, String)>) {
        // SAFETY: within the function's `# Safety` contract, which its callers uphold.
        unsafe {
            let mut columns = Vec::new();
            let mut expressions = Vec::new();
            for class in pointers::<pg_sys::EquivalenceClass>((*self.root).eq_classes) {
                if (*class).ec_has_const {
                    continue;
                }
                let others = pointers::<pg_sys::EquivalenceMember>((*class).ec_members)
                    .into_iter()
                    .any(|m| {
                        !(*m).em_is_const
                            && !pg_sys::bms_is_member(self.varno as c_int, (*m).em_relids)
                    });
                if !others {
                    continue;
                }
                match self.member_key(class).and_then(|key| self.parameterized(key)) {
                    Some(Key { attnum, expression: None, .. }) => columns.push(attnum),
                    Some(Key { attnum, expression: Some(e), .. }) => expressions.push((attnum, e)),
                    None => {}
                }
            }
            for rinfo in pointers::<pg_sys::RestrictInfo>((*self.rel).joininfo) {
                let clause = (*rinfo).clause as *mut pg_sys::Node;
                if (*clause).type_ != pg_sys::NodeTag::T_OpExpr {
                    continue;
                }
                let op = clause as *mut pg_sys::OpExpr;
                let args = pointers::<pg_sys::Node>((*op).args);
                if args.len() != 2 {
                    continue;
                }
                let var = column_of(args[0], self.varno).or_else(|| column_of(args[1], self.varno));
                if let Some(var) = var {
                    if btree_strategy((*op).opno, (*var).vartype) == BTREE_EQUAL {
                        columns.push((*var).varattno);
                    }
                }
            }
            let mut seen = std::collections::BTreeSet::new();
            columns.retain(|a| seen.insert(*a));
            let mut seen_expressions = std::collections::BTreeSet::new();
            expressions.retain(|(_, e)| seen_expressions.insert(e.clone()));
            for attnum in &columns {
                self.remember(*attnum);
            }
            (columns, expressions)
        }
    }

    /// The leading pathkeys of the wanted ordering that this rel's columns provide.
    ///
    /// # Safety
    /// Planner structures of the current planning.
    unsafe fn order_by(&mut self) -> Vec<SortKey> {
        // SAFETY: within the function's `# Safety` contract, which its callers uphold.
        unsafe {
            let mut keys = Vec::new();
            for pathkey in pointers::<pg_sys::PathKey>((*self.root).query_pathkeys) {
                let key = self.member_key((*pathkey).pk_eclass);
                let Some(key) = key.and_then(|key| self.parameterized(key)) else { break };
                keys.push(SortKey {
                    attnum: key.attnum,
                    descending: descending(pathkey),
                    nulls_first: (*pathkey).pk_nulls_first,
                    expression: key.expression,
                });
            }
            keys
        }
    }

    /// Every plain column the query reads from this rel, or None when it reads more.
    ///
    /// # Safety
    /// Planner structures of the current planning.
    unsafe fn needed_columns(&mut self) -> Option<Vec<i16>> {
        // SAFETY: within the function's `# Safety` contract, which its callers uphold.
        unsafe {
            let mut attnos: *mut pg_sys::Bitmapset = std::ptr::null_mut();
            pg_sys::pull_varattnos((*(*self.rel).reltarget).exprs.cast(), self.varno, &mut attnos);
            for rinfo in pointers::<pg_sys::RestrictInfo>((*self.rel).baserestrictinfo) {
                pg_sys::pull_varattnos((*rinfo).clause.cast(), self.varno, &mut attnos);
            }
            let mut columns = Vec::new();
            let mut member = -1;
            loop {
                member = pg_sys::bms_next_member(attnos, member);
                if member < 0 {
                    break;
                }
                let attnum = member + pg_sys::FirstLowInvalidHeapAttributeNumber;
                if attnum <= 0 {
                    return None;
                }
                columns.push(attnum as i16);
            }
            for attnum in &columns {
                self.remember(*attnum);
            }
            Some(columns)
        }
    }
}

/// For `col LIKE 'prefix%'`: the operator class a btree needs to serve it (None = the
/// default one, under the C collation). Other non-btree operators give no filter.
///
/// # Safety
/// Catalog lookups; `pattern` is a valid node.
unsafe fn like_prefix_opclass(
    opno: pg_sys::Oid,
    type_oid: pg_sys::Oid,
    collation: pg_sys::Oid,
    pattern: *mut pg_sys::Node,
) -> Option<Option<String>> {
    // SAFETY: within the function's `# Safety` contract, which its callers uphold.
    unsafe {
        if text(pg_sys::get_opname(opno)) != "~~" || (*pattern).type_ != pg_sys::NodeTag::T_Const {
            return None;
        }
        let constant = pattern as *mut pg_sys::Const;
        if (*constant).constisnull {
            return None;
        }
        let value = text(pg_sys::text_to_cstring((*constant).constvalue.cast_mut_ptr()));
        if value.starts_with('%') || value.starts_with('_') || value.is_empty() {
            return None;
        }
        if pgrx::pg_sys::ffi::pg_guard_ffi_boundary(|| collate_is_c(collation)) {
            return Some(None);
        }
        match type_oid {
            pg_sys::TEXTOID => Some(Some("text_pattern_ops".into())),
            pg_sys::VARCHAROID => Some(Some("varchar_pattern_ops".into())),
            pg_sys::BPCHAROID => Some(Some("bpchar_pattern_ops".into())),
            _ => None,
        }
    }
}

/// What the query asks of `rel`, a plain table, materialized view or partitioned table (its
/// partitions are not collected: an index on the parent is built on each of them).
///
/// # Safety
/// Arguments of `set_rel_pathlist_hook` for a base relation.
pub unsafe fn collect(
    root: *mut pg_sys::PlannerInfo,
    rel: *mut pg_sys::RelOptInfo,
    rti: pg_sys::Index,
    rte: *mut pg_sys::RangeTblEntry,
) -> Option<TableUsage> {
    // SAFETY: within the function's `# Safety` contract, which its callers uphold.
    unsafe {
        let relkind = (*rte).relkind as u8;
        if (*rte).rtekind != pg_sys::RTEKind::RTE_RELATION
            || (*rel).reloptkind != pg_sys::RelOptKind::RELOPT_BASEREL
            || (relkind != pg_sys::RELKIND_RELATION
                && relkind != pg_sys::RELKIND_MATVIEW
                && relkind != pg_sys::RELKIND_PARTITIONED_TABLE)
        {
            return None;
        }
        let partitioned = relkind == pg_sys::RELKIND_PARTITIONED_TABLE;
        let relid = (*rte).relid;
        let mut collector = Collector {
            root,
            rel,
            varno: rti,
            relid,
            names: BTreeMap::new(),
            parameterized: Vec::new(),
        };
        let filters = pointers::<pg_sys::RestrictInfo>((*rel).baserestrictinfo)
            .into_iter()
            .filter_map(|rinfo| collector.filter(rinfo))
            .collect();
        let (join_columns, join_expressions) = collector.join_keys();
        let order_by = collector.order_by();
        let needed_columns = collector.needed_columns();
        let table = text(pg_sys::quote_qualified_identifier(
            pg_sys::get_namespace_name(pg_sys::get_rel_namespace(relid)),
            pg_sys::get_rel_name(relid),
        ));
        Some(TableUsage {
            relid: relid.to_u32(),
            table,
            table_rows: if partitioned { partition_rows(root, rti) } else { (*rel).tuples },
            rows_kept: (*rel).rows,
            filters,
            join_columns,
            order_by,
            needed_columns,
            column_names: collector.names,
            join_expressions,
            partitioned,
            parameterized: collector.parameterized,
        })
    }
}

/// The kinds of Params an expression holds.
#[derive(Default)]
struct Params {
    /// `$n`, a parameter of the statement.
    external: bool,
    /// Any other (a subquery's or an outer query's value), or the walk could not finish.
    other: bool,
}

/// The Params in `node`, walked one level per call of `expression_tree_walker`, so that no
/// call of pgrx's guarded walker runs inside another (an ERROR would then abort the backend).
///
/// # Safety
/// `node` is a valid expression node of the current planning.
unsafe fn params_in(node: *mut pg_sys::Node) -> Params {
    // SAFETY: the caller's contract; `push_child` gets the Vec it expects and runs nothing
    // that can raise an ERROR.
    unsafe {
        let mut found = Params::default();
        let mut pending: Vec<*mut pg_sys::Node> = vec![node];
        while let Some(node) = pending.pop() {
            if (*node).type_ == pg_sys::NodeTag::T_Param {
                if (*(node as *mut pg_sys::Param)).paramkind == pg_sys::ParamKind::PARAM_EXTERN {
                    found.external = true;
                } else {
                    found.other = true;
                }
                continue;
            }
            let context = &mut pending as *mut Vec<*mut pg_sys::Node> as *mut c_void;
            if pg_sys::expression_tree_walker(node, Some(push_child), context) {
                found.other = true;
                break;
            }
        }
        found
    }
}

/// `expression_tree_walker`'s callback for `params_in`: keeps each child for the next round
/// instead of descending into it; stops the walk when the Vec cannot grow.
unsafe extern "C-unwind" fn push_child(node: *mut pg_sys::Node, context: *mut c_void) -> bool {
    // SAFETY: `context` is the Vec `params_in` passes, not otherwise borrowed during the walk.
    let pending = unsafe { &mut *(context as *mut Vec<*mut pg_sys::Node>) };
    if node.is_null() {
        return false;
    }
    if pending.try_reserve(1).is_err() {
        return true;
    }
    pending.push(node);
    false
}

/// Whether a pathkey sorts descending.
///
/// # Safety
/// `pathkey` is a valid PathKey.
unsafe fn descending(pathkey: *const pg_sys::PathKey) -> bool {
    // SAFETY: the caller's contract; PostgreSQL 18 names the direction by comparison type.
    unsafe {
        #[cfg(not(feature = "pg18"))]
        return (*pathkey).pk_strategy == BTREE_GREATER;
        #[cfg(feature = "pg18")]
        return (*pathkey).pk_cmptype == pg_sys::CompareType::COMPARE_GT;
    }
}

/// Rows in the partitions the planner kept for the partitioned table at `rti` (its own
/// `tuples` counts only the rows its scan returns; so does a partition that is itself
/// partitioned, whose rows are counted from its own partitions).
///
/// # Safety
/// Planner structures of the current planning, after the partitions' sizes were set.
unsafe fn partition_rows(root: *mut pg_sys::PlannerInfo, rti: pg_sys::Index) -> f64 {
    // SAFETY: within the function's `# Safety` contract, which its callers uphold; the
    // append_rel_list forms a tree, so the recursion ends at the leaves.
    unsafe {
        pointers::<pg_sys::AppendRelInfo>((*root).append_rel_list)
            .into_iter()
            .filter(|info| (**info).parent_relid == rti)
            .map(|info| {
                let child_rti = (*info).child_relid;
                let child = *(*root).simple_rel_array.add(child_rti as usize);
                let rte = *(*root).simple_rte_array.add(child_rti as usize);
                if child.is_null() {
                    0.0
                } else if !rte.is_null()
                    && (*rte).relkind as u8 == pg_sys::RELKIND_PARTITIONED_TABLE
                {
                    partition_rows(root, child_rti)
                } else {
                    (*child).tuples.max(0.0)
                }
            })
            .sum()
    }
}
