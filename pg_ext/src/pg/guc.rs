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

/// The settings that change a query's answer or how it prints (cache key rule 2): read
/// straight from the variables the GUC machinery assigns, because `GetConfigOption` costs
/// hundreds of instructions per name and a cache hit needs all of them.
pub struct OutputSettings {
    pub search_path: &'static [u8],
    /// TimeZone, default_text_search_config, lc_monetary, lc_numeric, lc_time.
    pub names: [&'static [u8]; 5],
    /// DateStyle (style and order), IntervalStyle, extra_float_digits, bytea_output,
    /// standard_conforming_strings, xmloption, as little-endian i32s.
    pub numbers: [u8; 28],
}

// Not in pgrx's bindings (their headers are not included); exported by the server binary.
extern "C" {
    static bytea_output: std::ffi::c_int;
    static xmloption: std::ffi::c_int;
    static locale_monetary: *mut std::ffi::c_char;
    static locale_numeric: *mut std::ffi::c_char;
    static locale_time: *mut std::ffi::c_char;
}

/// A GUC string variable's bytes ("" when unset).
///
/// # Safety
/// `value` is NULL or a NUL-terminated string that stays valid while the setting does.
unsafe fn guc_string(value: *const std::ffi::c_char) -> &'static [u8] {
    if value.is_null() {
        b""
    } else {
        // SAFETY: per this function's contract.
        unsafe { CStr::from_ptr(value).to_bytes() }
    }
}

pub fn output_settings() -> OutputSettings {
    // SAFETY: plain reads of this backend's GUC variables. String values are owned by the
    // GUC machinery and freed only when a SET/RESET replaces them; the cache uses the
    // borrowed bytes to build its key before any of the caller's SQL runs (which is where a
    // SET could happen), so they are never read after a change. session_timezone is set at
    // backend start; pg_get_timezone_name returns a pointer into it.
    unsafe {
        let timezone = if pg_sys::session_timezone.is_null() {
            b"" as &[u8]
        } else {
            guc_string(pg_sys::pg_get_timezone_name(pg_sys::session_timezone))
        };
        let mut numbers = [0u8; 28];
        let values = [
            pg_sys::DateStyle,
            pg_sys::DateOrder,
            pg_sys::IntervalStyle,
            pg_sys::extra_float_digits,
            bytea_output,
            i32::from(pg_sys::standard_conforming_strings),
            xmloption,
        ];
        for (chunk, value) in numbers.chunks_exact_mut(4).zip(values) {
            chunk.copy_from_slice(&value.to_le_bytes());
        }
        OutputSettings {
            search_path: guc_string(pg_sys::namespace_search_path),
            names: [
                timezone,
                guc_string(pg_sys::TSCurrentConfig),
                guc_string(locale_monetary),
                guc_string(locale_numeric),
                guc_string(locale_time),
            ],
            numbers,
        }
    }
}
