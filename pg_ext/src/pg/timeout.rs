//! A statement timeout around work done inside a function. `SET statement_timeout` only arms
//! the timer for the next top-level statement, so we arm Postgres' STATEMENT_TIMEOUT timer
//! ourselves and put back whatever timer the outer statement had.

use pgrx::pg_sys;
use pgrx::pg_sys::ffi::pg_guard_ffi_boundary;
use std::cell::Cell;
use std::ffi::c_int;

/// `TimeoutId::STATEMENT_TIMEOUT` in utils/timeout.h (stable since 9.3; pgrx has no binding).
const STATEMENT_TIMEOUT: c_int = 3;

unsafe extern "C-unwind" {
    fn enable_timeout_after(id: c_int, delay_ms: c_int);
    fn enable_timeout_at(id: c_int, fin_time: pg_sys::TimestampTz);
    fn disable_timeout(id: c_int, keep_indicator: bool);
    fn get_timeout_active(id: c_int) -> bool;
    fn get_timeout_finish_time(id: c_int) -> pg_sys::TimestampTz;
}

thread_local! {
    /// Whether the timer `with_statement_timeout` last armed had run out when its `f` ended:
    /// a query cancel then was ours, not the user's or the outer statement's.
    static OURS_RAN_OUT: Cell<bool> = const { Cell::new(false) };
}

/// Whether the last timer armed here had run out, forgetting it: code that catches a query
/// cancel (57014) asks this to tell its own timeout from a cancel it must pass on.
pub fn take_ours_ran_out() -> bool {
    OURS_RAN_OUT.replace(false)
}

/// Restores the outer statement's timer when dropped, also when `f` raised an ERROR.
struct Restore {
    outer_finish: Option<pg_sys::TimestampTz>,
    ours_finish: pg_sys::TimestampTz,
}

impl Drop for Restore {
    fn drop(&mut self) {
        OURS_RAN_OUT.set(crate::pg::backend::now() >= self.ours_finish);
        // SAFETY: timeout.c functions on the backend's own timer table; they raise ERROR only
        // on invalid ids, and ours is valid.
        unsafe {
            // keep_indicator: if our timer fired just as `f` finished, the pending cancel is
            // still reported as a statement timeout, not as a user cancel.
            pg_guard_ffi_boundary(|| disable_timeout(STATEMENT_TIMEOUT, true));
            if let Some(at) = self.outer_finish {
                pg_guard_ffi_boundary(|| enable_timeout_at(STATEMENT_TIMEOUT, at));
            }
        }
    }
}

/// Runs `f`, cancelling it with "canceling statement due to statement timeout" (57014) after
/// `timeout_ms` (0 = no extra limit). An outer timeout that fires sooner stays in force.
pub fn with_statement_timeout<R>(timeout_ms: i32, f: impl FnOnce() -> R) -> R {
    if timeout_ms <= 0 {
        return f();
    }
    // SAFETY: as in Restore::drop.
    let outer_finish = unsafe {
        pg_guard_ffi_boundary(|| get_timeout_active(STATEMENT_TIMEOUT))
            .then(|| pg_guard_ffi_boundary(|| get_timeout_finish_time(STATEMENT_TIMEOUT)))
    };
    let ours_finish = crate::pg::backend::now() + i64::from(timeout_ms) * 1000;
    if outer_finish.is_some_and(|outer| outer <= ours_finish) {
        return f();
    }
    let _restore = Restore { outer_finish, ours_finish };
    // SAFETY: as in Restore::drop.
    unsafe { pg_guard_ffi_boundary(|| enable_timeout_after(STATEMENT_TIMEOUT, timeout_ms)) };
    f()
}
