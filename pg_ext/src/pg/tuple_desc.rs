//! Attributes of a tuple descriptor, wherever the running major keeps them.

use pgrx::pg_sys;

/// Attribute `i` (0-based) of `desc`, as the server's `TupleDescAttr`: PostgreSQL 18 stores the
/// full attributes after an array of compact ones (an inline function, not exported).
///
/// # Safety
/// `desc` is a valid tuple descriptor and `i < natts`.
pub unsafe fn attribute(desc: pg_sys::TupleDesc, i: usize) -> *mut pg_sys::FormData_pg_attribute {
    // SAFETY: the caller's contract; both layouts are the server's own.
    unsafe {
        #[cfg(not(feature = "pg18"))]
        let first = (*desc).attrs.as_mut_ptr();
        #[cfg(feature = "pg18")]
        let first = (*desc)
            .compact_attrs
            .as_mut_ptr()
            .add((*desc).natts as usize)
            .cast::<pg_sys::FormData_pg_attribute>();
        first.add(i)
    }
}

/// All attributes of `desc`, dropped ones included.
///
/// # Safety
/// `desc` is a valid tuple descriptor that outlives the slice.
pub unsafe fn attributes<'a>(desc: pg_sys::TupleDesc) -> &'a [pg_sys::FormData_pg_attribute] {
    // SAFETY: the caller's contract: natts attributes stored contiguously from the first.
    unsafe { std::slice::from_raw_parts(attribute(desc, 0), (*desc).natts.max(0) as usize) }
}
