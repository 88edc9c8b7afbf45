//! The current statement's start time: a field read, cheap enough for every statement's
//! ExecutorEnd (the clock itself is read once per statement by Postgres anyway).

use pgrx::pg_sys;

/// When the current top-level statement started, as a TimestampTz (µs since 2000-01-01 UTC).
pub fn statement_start() -> i64 {
    // SAFETY: reads a backend-local timestamp set at statement start; no shared state.
    unsafe { pg_sys::GetCurrentStatementStartTimestamp() }
}
