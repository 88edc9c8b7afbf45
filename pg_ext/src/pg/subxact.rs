//! Running code inside a subtransaction that is always rolled back, the way PL/pgSQL runs an
//! EXCEPTION block: whatever the code wrote is undone, and an error inside still reaches the
//! caller after the rollback.

use pgrx::pg_sys;
use pgrx::PgTryBuilder;
use std::panic::AssertUnwindSafe;

pub fn rolled_back<R>(f: impl FnOnce() -> R) -> R {
    try_rolled_back(f).unwrap_or_else(|error| error.rethrow())
}

/// Like `rolled_back`, but an error inside comes back as a value after the rollback, so the
/// caller can go on (the advisor skips a query that fails to plan).
pub fn try_rolled_back<R>(f: impl FnOnce() -> R) -> Result<R, pg_sys::panic::CaughtError> {
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
        pg_sys::RollbackAndReleaseCurrentSubTransaction();
        pg_sys::MemoryContextSwitchTo(context);
        pg_sys::CurrentResourceOwner = owner;
    }
    outcome
}

/// The message of a caught error, for reports that continue past it.
pub fn message(error: &pg_sys::panic::CaughtError) -> String {
    match error {
        pg_sys::panic::CaughtError::PostgresError(e)
        | pg_sys::panic::CaughtError::ErrorReport(e)
        | pg_sys::panic::CaughtError::RustPanic { ereport: e, .. } => e.message().to_string(),
    }
}
