//! The planner's view of a hypothetical index: the IndexOptInfo plancat.c would build for a
//! real one, on the index's table or on one of its partitions.

use super::HypoIndex;
use crate::pg::list::pointers;
use pgrx::pg_sys;
use pitstop_core::advisor::size::AccessMethod;
use std::ffi::c_int;

/// Builds the planner's view of a hypothetical index on `rel`, mirroring plancat.c.
///
/// # Safety
/// Called from get_relation_info with the planner's structures for the index's table.
pub(super) unsafe fn index_opt_info(
    hypo: &HypoIndex,
    rel: *mut pg_sys::RelOptInfo,
    relation: pg_sys::Oid,
    attnums: &[i16],
) -> Result<Option<*mut pg_sys::IndexOptInfo>, String> {
    // SAFETY: within the function's `# Safety` contract, which its callers uphold.
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
        let estimate = index.size_estimate(covered, f64::from((*rel).pages));
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
pub(super) unsafe fn partition_attnums(
    hypo: &HypoIndex,
    relation: pg_sys::Oid,
) -> Option<Vec<i16>> {
    // SAFETY: within the function's `# Safety` contract, which its callers uphold.
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
