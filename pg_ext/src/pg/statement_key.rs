//! What the latency histograms read at every statement's end: the user and the statement's
//! start time. Called without pgrx's guard (~140 instructions each, see `unguarded`): neither
//! function can raise an ERROR (a plain read of backend-local state; GetUserId's only check
//! is an Assert, absent from production builds), so nothing can unwind through the caller.

use pgrx::pg_sys;

unsafe extern "C-unwind" {
    fn GetUserId() -> pg_sys::Oid;
    fn GetCurrentStatementStartTimestamp() -> pg_sys::TimestampTz;
}

/// The current user, as pg_stat_statements keys it (GetUserId at ExecutorEnd).
pub fn user_id() -> u32 {
    // SAFETY: reads backend-local state set at login / SET ROLE; raises no ERROR.
    unsafe { GetUserId() }.to_u32()
}

/// When the current top-level statement started, as a TimestampTz (µs since 2000-01-01 UTC).
pub fn statement_start() -> i64 {
    // SAFETY: reads a backend-local timestamp set at statement start; raises no ERROR.
    unsafe { GetCurrentStatementStartTimestamp() }
}
