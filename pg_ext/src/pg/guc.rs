//! GUC helpers beyond pgrx's registry.

use pgrx::pg_sys;
use std::ffi::CStr;

/// Makes `SET pitstop.typo = …` an error instead of silently creating a placeholder.
pub fn reserve_prefix(prefix: &'static CStr) {
    // SAFETY: called from _PG_init with a static NUL-terminated string; both functions only
    // read it and walk the GUC table of this process.
    #[cfg(not(any(feature = "pg13", feature = "pg14")))]
    unsafe {
        pg_sys::MarkGUCPrefixReserved(prefix.as_ptr())
    };
    #[cfg(any(feature = "pg13", feature = "pg14"))]
    unsafe {
        pg_sys::EmitWarningsOnPlaceholders(prefix.as_ptr())
    };
}
