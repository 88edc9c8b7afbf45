//! GUC helpers beyond pgrx's registry.

use pgrx::pg_sys;
use std::ffi::CStr;

/// Makes `SET pitstop.typo = …` an error instead of silently creating a placeholder.
pub fn reserve_prefix(prefix: &'static CStr) {
    // SAFETY: called from _PG_init with a static NUL-terminated string, which the function
    // only reads while walking the GUC table of this process.
    unsafe { pg_sys::MarkGUCPrefixReserved(prefix.as_ptr()) };
}

/// The settings that change a query's answer or how it prints (cache key rule 2): read
/// straight from the variables the GUC machinery assigns, because `GetConfigOption` costs
/// hundreds of instructions per name and a cache hit needs all of them.
pub struct OutputSettings {
    pub search_path: &'static [u8],
    /// TimeZone, default_text_search_config, lc_monetary, lc_numeric, lc_time,
    /// timezone_abbreviations (how literals and parameters such as '… IST' are read).
    pub names: [&'static [u8]; 6],
    /// As little-endian i32s: DateStyle (style and order), IntervalStyle,
    /// extra_float_digits, bytea_output, standard_conforming_strings, xmloption, and
    /// transform_null_equals (`x = NULL` parsed as `x IS NULL`), array_nulls (`'{NULL}'`),
    /// xmlbinary (bytea in XML), row_security (row_security_active()),
    /// quote_all_identifiers (quote_ident(), regclass output), gin_fuzzy_search_limit (a GIN
    /// scan returns at most about that many rows).
    pub numbers: [u8; 52],
}

impl OutputSettings {
    /// Everything above as the key's list of settings.
    pub fn key_parts(&self) -> [&[u8]; 8] {
        let [n0, n1, n2, n3, n4, n5] = self.names;
        [self.search_path, n0, n1, n2, n3, n4, n5, &self.numbers]
    }
}

// Not in pgrx's bindings (their headers are not included); exported by the server binary.
extern "C" {
    static bytea_output: std::ffi::c_int;
    static xmloption: std::ffi::c_int;
    static xmlbinary: std::ffi::c_int;
    static locale_monetary: *mut std::ffi::c_char;
    static locale_numeric: *mut std::ffi::c_char;
    static locale_time: *mut std::ffi::c_char;
}

/// The address of a built-in string setting's variable, found once in the GUC table (the
/// variable itself is private to guc.c); 0 when there is none.
fn string_variable(name: &CStr) -> usize {
    // SAFETY: reads this backend's GUC table; built-in entries and their variables live for
    // the whole process.
    unsafe {
        #[cfg(feature = "pg15")]
        let found = {
            let table = pg_sys::get_guc_variables();
            let count = usize::try_from(pg_sys::GetNumConfigOptions()).unwrap_or(0);
            (0..count).map(|i| *table.add(i)).find(|g| {
                !g.is_null()
                    && CStr::from_ptr((**g).name).to_bytes().eq_ignore_ascii_case(name.to_bytes())
            })
        };
        #[cfg(not(feature = "pg15"))]
        let found =
            Some(pg_sys::find_option(name.as_ptr(), false, true, pgrx::PgLogLevel::ERROR as i32))
                .filter(|g| !g.is_null());
        match found {
            Some(g) if (*g).vartype == pg_sys::config_type::PGC_STRING => {
                (*(g as *mut pg_sys::config_string)).variable as usize
            }
            _ => 0,
        }
    }
}

static TIMEZONE_ABBREVIATIONS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

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

/// The session's search_path setting, as written.
pub fn search_path() -> String {
    // SAFETY: a plain read of this backend's GUC variable, copied at once.
    String::from_utf8_lossy(unsafe { guc_string(pg_sys::namespace_search_path) }).into_owned()
}

pub fn output_settings() -> OutputSettings {
    // SAFETY: plain reads of this backend's GUC variables. String values are owned by the
    // GUC machinery and freed only when a SET/RESET replaces them; the cache uses the
    // borrowed bytes to build its key before any of the caller's SQL runs (which is where a
    // SET could happen), so they are never read after a change. session_timezone is set at
    // backend start; pg_get_timezone_name returns a pointer into it. The
    // timezone_abbreviations address is of guc.c's static variable, found by string_variable.
    unsafe {
        let timezone = if pg_sys::session_timezone.is_null() {
            b"" as &[u8]
        } else {
            guc_string(pg_sys::pg_get_timezone_name(pg_sys::session_timezone))
        };
        let abbreviations =
            *TIMEZONE_ABBREVIATIONS.get_or_init(|| string_variable(c"timezone_abbreviations"));
        let abbreviations = if abbreviations == 0 {
            b"" as &[u8]
        } else {
            guc_string(*(abbreviations as *const *const std::ffi::c_char))
        };
        let mut numbers = [0u8; 52];
        let values = [
            pg_sys::DateStyle,
            pg_sys::DateOrder,
            pg_sys::IntervalStyle,
            pg_sys::extra_float_digits,
            bytea_output,
            i32::from(pg_sys::standard_conforming_strings),
            xmloption,
            i32::from(pg_sys::Transform_null_equals),
            i32::from(pg_sys::Array_nulls),
            xmlbinary,
            i32::from(pg_sys::row_security),
            i32::from(pg_sys::quote_all_identifiers),
            pg_sys::GinFuzzySearchLimit,
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
                abbreviations,
            ],
            numbers,
        }
    }
}

/// Runs `f` with search_path = pg_catalog, as a function's `SET search_path` clause would, and
/// with dates, intervals and floats printed as pg_dump prints them: SQL that `f` deparses then
/// names the schema of everything outside pg_catalog and spells its constants so that they
/// read back the same under whatever settings the session that runs it later has (a date
/// printed under `DateStyle = 'SQL, DMY'` is another date under MDY).
pub fn with_portable_deparse<R>(f: impl FnOnce() -> R) -> R {
    with_settings(
        &[
            (c"search_path", c"pg_catalog"),
            (c"DateStyle", c"ISO, MDY"),
            (c"IntervalStyle", c"postgres"),
            (c"extra_float_digits", c"3"),
        ],
        f,
    )
}

/// Runs `f` with search_path = pg_catalog, pg_temp, as the SQL functions' `SET search_path`
/// clause does: pitstop's own SQL then resolves every function, operator and type in
/// pg_catalog, never in a schema another role can create in, where an overload that matches
/// better (a `public.quote_ident(name)`) would run with the caller's rights.
pub fn with_pinned_search_path<R>(f: impl FnOnce() -> R) -> R {
    with_settings(&[(c"search_path", c"pg_catalog, pg_temp")], f)
}

fn with_settings<R>(settings: &[(&std::ffi::CStr, &std::ffi::CStr)], f: impl FnOnce() -> R) -> R {
    /// Puts the settings back when `f` unwinds (an ERROR is a panic on its way out): a caller
    /// that catches it without a subtransaction would otherwise keep them.
    struct Level(std::ffi::c_int);
    impl Drop for Level {
        fn drop(&mut self) {
            if std::thread::panicking() {
                // SAFETY: the level opened below, closed once; pgrx has flushed the error
                // state before unwinding, and AtEOXact_GUC also closes any level `f` left open.
                unsafe { pg_sys::AtEOXact_GUC(false, self.0) };
            }
        }
    }
    // SAFETY: a GUC nest level opened and closed around `f` as fmgr_security_definer does.
    unsafe {
        let level = Level(pg_sys::NewGUCNestLevel());
        let level_number = level.0;
        for (name, value) in settings {
            pg_sys::set_config_option(
                name.as_ptr(),
                value.as_ptr(),
                pg_sys::GucContext::PGC_USERSET,
                pg_sys::GucSource::PGC_S_SESSION,
                pg_sys::GucAction::GUC_ACTION_SAVE,
                true,
                0,
                false,
            );
        }
        let result = f();
        std::mem::forget(level);
        pg_sys::AtEOXact_GUC(true, level_number);
        result
    }
}
