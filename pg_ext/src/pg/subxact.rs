//! Running code inside a subtransaction, the way PL/pgSQL runs an EXCEPTION block: rolled
//! back always (what the code wrote is undone) or on error only, and an error inside reaches
//! the caller after the rollback, raised again or as a value. A query cancel is never kept as
//! a value unless a timeout of our own caused it: the user's cancel and the session's
//! statement_timeout always end the statement. And `shielded`, for what runs after a
//! statement succeeded (the cache's fill, a capture's EXPLAIN): an error becomes `None`.

use crate::pg::timeout;
use pgrx::pg_sys;
use pgrx::PgTryBuilder;
use std::panic::AssertUnwindSafe;

pub fn rolled_back<R>(f: impl FnOnce() -> R) -> R {
    try_rolled_back(f).unwrap_or_else(|error| error.rethrow())
}

/// Like `rolled_back`, but an error inside comes back as a value after the rollback, so the
/// caller can go on (the advisor skips a query that fails to plan). A query cancel is raised
/// again unless `timeout::with_statement_timeout`'s own timer caused it.
// pgrx's CaughtError is large, but it is what callers rethrow, on an error path only.
#[allow(clippy::result_large_err)]
pub fn try_rolled_back<R>(f: impl FnOnce() -> R) -> Result<R, pg_sys::panic::CaughtError> {
    in_subtransaction(f, false)
}

/// Like `try_rolled_back`, but what `f` wrote is kept when it succeeds (PL/pgSQL's EXCEPTION
/// block): an error undoes only `f`'s work and comes back as a value.
#[allow(clippy::result_large_err)]
pub fn try_kept<R>(f: impl FnOnce() -> R) -> Result<R, pg_sys::panic::CaughtError> {
    in_subtransaction(f, true)
}

#[allow(clippy::result_large_err)]
fn in_subtransaction<R>(
    f: impl FnOnce() -> R,
    keep_on_success: bool,
) -> Result<R, pg_sys::panic::CaughtError> {
    // A mark left by an earlier timeout must not excuse a cancel inside this one.
    timeout::forget_ran_out();
    // SAFETY: reads the backend's error context stack, put back below as PG_CATCH does.
    let error_context = unsafe { pg_sys::error_context_stack };
    // SAFETY: we are inside a transaction (SQL functions always are). The memory context and
    // resource owner are saved and restored around the subtransaction exactly as PL/pgSQL's
    // exec_stmt_block does, so the caller continues in the state it left.
    let (context, owner) = unsafe {
        let saved = (pg_sys::CurrentMemoryContext, pg_sys::CurrentResourceOwner);
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(saved.0);
        saved
    };
    let outcome = PgTryBuilder::new(AssertUnwindSafe(|| Ok(f())))
        .catch_others(Err)
        .catch_rust_panic(Err)
        .execute();
    // SAFETY: the subtransaction begun above is still the current one (`f` cannot leave a
    // nested one open: internal subtransactions are closed by their own code paths).
    unsafe {
        if keep_on_success && outcome.is_ok() {
            pg_sys::ReleaseCurrentSubTransaction();
        } else {
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
        }
        pg_sys::MemoryContextSwitchTo(context);
        pg_sys::CurrentResourceOwner = owner;
        pg_sys::error_context_stack = error_context;
    }
    match outcome {
        Err(error) if is_query_cancel(&error) && !timeout::cancel_was_ours() => error.rethrow(),
        outcome => outcome,
    }
}

/// Whether a caught error is a query cancel (57014): the user's, or a statement timeout's.
pub fn is_query_cancel(error: &pg_sys::panic::CaughtError) -> bool {
    match error {
        pg_sys::panic::CaughtError::PostgresError(e)
        | pg_sys::panic::CaughtError::ErrorReport(e) => {
            e.sql_error_code() == pg_sys::errcodes::PgSqlErrorCode::ERRCODE_QUERY_CANCELED
        }
        pg_sys::panic::CaughtError::RustPanic { .. } => false,
    }
}

/// The message of a caught error, for reports that continue past it.
pub fn message(error: &pg_sys::panic::CaughtError) -> String {
    match error {
        pg_sys::panic::CaughtError::PostgresError(e)
        | pg_sys::panic::CaughtError::ErrorReport(e)
        | pg_sys::panic::CaughtError::RustPanic { ereport: e, .. } => e.message().to_string(),
    }
}

/// Runs `f`, turning any ERROR or panic inside it into `None`: used after a statement has
/// already succeeded, which must not fail because of what we do next. There is no
/// subtransaction to clean up after an error, so `f` must not run SQL or take locks (use
/// `try_rolled_back`). A query cancel is raised again, as in a subtransaction: the user's
/// cancel and the session's statement_timeout end the statement.
// pgrx's CaughtError is large, but only an error path carries it.
#[allow(clippy::result_large_err)]
pub fn shielded<R>(f: impl FnOnce() -> R) -> Option<R> {
    timeout::forget_ran_out();
    // SAFETY: reading the current context pointer, restored below.
    let context = unsafe { pg_sys::CurrentMemoryContext };
    let result = pgrx::PgTryBuilder::new(std::panic::AssertUnwindSafe(|| Ok(f())))
        .catch_others(Err)
        .catch_rust_panic(Err)
        .execute();
    // SAFETY: the caller's context is alive; a caught error may have left us elsewhere.
    unsafe { pg_sys::MemoryContextSwitchTo(context) };
    match result {
        Ok(value) => Some(value),
        Err(error) if is_query_cancel(&error) && !timeout::cancel_was_ours() => error.rethrow(),
        Err(_) => None,
    }
}
