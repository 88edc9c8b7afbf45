//! Reading Postgres `List`s in place (pgrx's list functions are guarded calls, too dear for
//! the per-statement hooks).

use pgrx::pg_sys;

/// The cells of a List (empty for NIL).
///
/// # Safety
/// `list` must be NIL or a valid List that outlives the returned slice and is not changed
/// meanwhile.
pub unsafe fn cells<'a>(list: *const pg_sys::List) -> &'a [pg_sys::ListCell] {
    if list.is_null() {
        return &[];
    }
    // SAFETY: PG13+ Lists store `length` cells contiguously in `elements`.
    unsafe { std::slice::from_raw_parts((*list).elements, (*list).length as usize) }
}

/// The pointer elements of a List (empty for NIL).
///
/// # Safety
/// `list` must be NIL or a valid pointer List (not an int/oid list).
pub unsafe fn pointers<T>(list: *const pg_sys::List) -> Vec<*mut T> {
    // SAFETY: the caller's contract; pointer Lists keep their elements in `ptr_value`.
    unsafe { cells(list).iter().map(|cell| cell.ptr_value.cast()).collect() }
}
