//! Range table entries that name a relation.

use pgrx::pg_sys;

/// The relation (and its relkind) that a range table entry reads: a table, or a view, which
/// the rewriter turns into a subquery that keeps the view's OID and relkind from PostgreSQL 16
/// on. (15 leaves the view in the range table as a relation entry of its own; the subquery
/// entry it made may keep a stale OID with relkind 0, which is not a relation read.)
///
/// # Safety
/// `rte` is a valid range table entry.
pub unsafe fn relation(
    rte: *const pg_sys::RangeTblEntry,
) -> Option<(pg_sys::Oid, std::ffi::c_char)> {
    // SAFETY: the caller's contract.
    unsafe {
        match (*rte).rtekind {
            pg_sys::RTEKind::RTE_RELATION => Some(((*rte).relid, (*rte).relkind)),
            pg_sys::RTEKind::RTE_SUBQUERY
                if (*rte).relid != pg_sys::Oid::INVALID
                    && (*rte).relkind as u8 == pg_sys::RELKIND_VIEW =>
            {
                Some(((*rte).relid, (*rte).relkind))
            }
            _ => None,
        }
    }
}
