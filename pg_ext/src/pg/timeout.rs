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
    fn get_timeout_indicator(id: c_int, reset_indicator: bool) -> bool;
}

thread_local! {
    /// The deadline of the timer armed by the innermost `with_statement_timeout` running now.
    static ARMED: Cell<Option<pg_sys::TimestampTz>> = const { Cell::new(None) };
    /// Whether the timer of a `with_statement_timeout` that an error just left had run out.
    static RAN_OUT: Cell<bool> = const { Cell::new(false) };
}

/// Whether a query cancel (57014) caught now was caused by a timer armed here — the one
/// running, past its deadline, or the one the error just left — and not by the user or the
/// session's statement_timeout, which must end the statement. Forgets the latter.
pub fn cancel_was_ours() -> bool {
    let running_ran_out = ARMED.get().is_some_and(|at| crate::pg::backend::now() >= at);
    RAN_OUT.replace(false) || running_ran_out
}

/// Forgets what an earlier error left: a catcher calls it before running its code.
pub fn forget_ran_out() {
    RAN_OUT.set(false);
}

/// Restores the outer statement's timer when dropped, also when `f` raised an ERROR.
struct Restore {
    outer_finish: Option<pg_sys::TimestampTz>,
    outer_armed: Option<pg_sys::TimestampTz>,
    ours_finish: pg_sys::TimestampTz,
}

impl Drop for Restore {
    fn drop(&mut self) {
        ARMED.set(self.outer_armed);
        if std::thread::panicking() {
            RAN_OUT.set(crate::pg::backend::now() >= self.ours_finish);
        }
        // SAFETY: timeout.c functions on the backend's own timer table; they raise ERROR only
        // on invalid ids, and ours is valid. QueryCancelPending is the backend's own flag.
        unsafe {
            pg_guard_ffi_boundary(|| disable_timeout(STATEMENT_TIMEOUT, true));
            if pg_guard_ffi_boundary(|| get_timeout_indicator(STATEMENT_TIMEOUT, true)) {
                // Our timer fired after `f`'s last check for interrupts: the cancel it left
                // pending was meant for work that is over, not for what runs next.
                std::ptr::write_volatile(&raw mut pg_sys::QueryCancelPending, 0);
            }
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
    let _restore =
        Restore { outer_finish, outer_armed: ARMED.replace(Some(ours_finish)), ours_finish };
    // SAFETY: as in Restore::drop.
    unsafe { pg_guard_ffi_boundary(|| enable_timeout_after(STATEMENT_TIMEOUT, timeout_ms)) };
    f()
}
