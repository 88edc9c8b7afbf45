//! Chaining a ProcessUtility hook: both of pitstop's utility hooks (hypothetical indexes,
//! write tracking) pass the statement on the same way.

use crate::pg::unguarded;
use pgrx::pg_sys;
use pgrx::pg_sys::ffi::pg_guard_ffi_boundary;
use std::ffi::c_char;

/// The arguments of one ProcessUtility call, as a hook received them.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct UtilityCall {
    pub pstmt: *mut pg_sys::PlannedStmt,
    pub query_string: *const c_char,
    pub read_only_tree: bool,
    pub context: pg_sys::ProcessUtilityContext::Type,
    pub params: pg_sys::ParamListInfo,
    pub query_env: *mut pg_sys::QueryEnvironment,
    pub dest: *mut pg_sys::DestReceiver,
    pub qc: *mut pg_sys::QueryCompletion,
}

/// Declares a ProcessUtility hook `$name` that packs its arguments into a `UtilityCall` and
/// hands them to `$body` (an `unsafe fn(UtilityCall)`), so each hook states only what it does.
macro_rules! utility_hook {
    ($name:ident => $body:path) => {
        #[allow(clippy::too_many_arguments)]
        unsafe extern "C-unwind" fn $name(
            pstmt: *mut pgrx::pg_sys::PlannedStmt,
            query_string: *const std::ffi::c_char,
            read_only_tree: bool,
            context: pgrx::pg_sys::ProcessUtilityContext::Type,
            params: pgrx::pg_sys::ParamListInfo,
            query_env: *mut pgrx::pg_sys::QueryEnvironment,
            dest: *mut pgrx::pg_sys::DestReceiver,
            qc: *mut pgrx::pg_sys::QueryCompletion,
        ) {
            let call = $crate::pg::utility::UtilityCall {
                pstmt,
                query_string,
                read_only_tree,
                context,
                params,
                query_env,
                dest,
                qc,
            };
            // SAFETY: Postgres calls the hook with valid arguments; `$body` has the same contract.
            unsafe { $body(call) }
        }
    };
}
pub(crate) use utility_hook;

impl UtilityCall {
    /// The statement being run.
    pub fn statement(&self) -> *mut pg_sys::Node {
        // SAFETY: a ProcessUtility call always carries a valid PlannedStmt.
        unsafe { (*self.pstmt).utilityStmt }
    }

    /// Runs the statement through the hook installed before ours (`previous`), or the
    /// standard one, under a pgrx guard: an ERROR comes back as a Rust panic, so the caller's
    /// destructors run.
    ///
    /// # Safety
    /// These are the arguments the calling hook received; `previous` is the hook pointer it
    /// saved when it was installed.
    pub unsafe fn chain(self, previous: pg_sys::ProcessUtility_hook_type) {
        // SAFETY: the caller's contract; the closure's frame owns nothing to drop.
        unsafe { pg_guard_ffi_boundary(|| self.chain_unguarded(previous)) }
    }

    /// The same without a guard, for hooks that are plain old frames (see `unguarded`).
    ///
    /// # Safety
    /// As `chain`, and the caller has no destructor pending across the call.
    pub unsafe fn chain_unguarded(self, previous: pg_sys::ProcessUtility_hook_type) {
        let c = self;
        // SAFETY: the caller's contract.
        unsafe {
            let next = previous.unwrap_or(unguarded::standard_ProcessUtility);
            next(
                c.pstmt,
                c.query_string,
                c.read_only_tree,
                c.context,
                c.params,
                c.query_env,
                c.dest,
                c.qc,
            )
        }
    }
}
