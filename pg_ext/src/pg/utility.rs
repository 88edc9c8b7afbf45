//! Chaining a ProcessUtility hook: both of pitstop's utility hooks (hypothetical indexes,
//! write tracking) pass the statement on the same way.

use pgrx::pg_sys;
use pgrx::pg_sys::ffi::pg_guard_ffi_boundary;
use std::ffi::c_char;

/// Runs the utility statement through the hook installed before ours, or the standard one.
///
/// # Safety
/// The arguments are those the calling ProcessUtility hook received; `previous` is the hook
/// pointer it saved when it was installed.
#[allow(clippy::too_many_arguments)]
pub unsafe fn call_previous(
    previous: pg_sys::ProcessUtility_hook_type,
    pstmt: *mut pg_sys::PlannedStmt,
    query_string: *const c_char,
    read_only_tree: bool,
    context: pg_sys::ProcessUtilityContext::Type,
    params: pg_sys::ParamListInfo,
    query_env: *mut pg_sys::QueryEnvironment,
    dest: *mut pg_sys::DestReceiver,
    qc: *mut pg_sys::QueryCompletion,
) {
    // SAFETY: the caller's contract.
    unsafe {
        match previous {
            Some(prev) => pg_guard_ffi_boundary(|| {
                prev(pstmt, query_string, read_only_tree, context, params, query_env, dest, qc)
            }),
            None => pg_sys::standard_ProcessUtility(
                pstmt, query_string, read_only_tree, context, params, query_env, dest, qc,
            ),
        }
    }
}
