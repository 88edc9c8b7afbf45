//! One catalog row through the syscache.

use pgrx::pg_sys;

/// What `read` makes of the row of syscache `cache` whose key is `key`; None when there is
/// no such row. The row is pinned while `read` runs and released after.
///
/// # Safety
/// Inside a transaction; `read` must not keep the tuple.
pub unsafe fn with_row<T>(
    cache: pg_sys::SysCacheIdentifier::Type,
    key: pg_sys::Oid,
    read: impl FnOnce(pg_sys::HeapTuple) -> T,
) -> Option<T> {
    // SAFETY: the caller's contract; a non-NULL tuple stays valid until ReleaseSysCache.
    unsafe {
        let tuple = pg_sys::SearchSysCache1(cache as i32, pg_sys::Datum::from(key));
        if tuple.is_null() {
            return None;
        }
        /// Releases the row also when `read` panics (a caught panic is not an ERROR, so
        /// nothing else would release it before the transaction ends).
        struct Pinned(pg_sys::HeapTuple);
        impl Drop for Pinned {
            fn drop(&mut self) {
                // SAFETY: the tuple SearchSysCache1 returned, released exactly once.
                unsafe { pg_sys::ReleaseSysCache(self.0) };
            }
        }
        let pinned = Pinned(tuple);
        Some(read(pinned.0))
    }
}
