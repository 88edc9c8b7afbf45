//! Reading Postgres `List`s of pointers.

use pgrx::pg_sys;

/// The pointer elements of a List (empty for NIL).
///
/// # Safety
/// `list` must be NIL or a valid pointer List (not an int/oid list).
pub unsafe fn pointers<T>(list: *const pg_sys::List) -> Vec<*mut T> {
    if list.is_null() {
        return Vec::new();
    }
    // SAFETY: PG13+ Lists store `length` cells contiguously in `elements`.
    unsafe { (0..(*list).length as usize).map(|i| (*(*list).elements.add(i)).ptr_value.cast()).collect() }
}
