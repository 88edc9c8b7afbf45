//! Running planner work as the role a statement belongs to, the way ANALYZE evaluates a table
//! owner's index expressions: `SetUserIdAndSecContext(role, SECURITY_RESTRICTED_OPERATION)`.
//! Constant folding and selectivity estimation call functions; whatever they call then runs
//! with that role's rights, and cannot change the session (no SET ROLE, no temporary objects).
//! Only a caller who already has that role's rights (itself, a role it may SET ROLE to, or
//! any role for a superuser) acts as it: the caller's session (settings, temporary objects)
//! is then nothing the caller could not use as that role anyway. Another role's statement is
//! planned with that role's own default search_path, the caller's temporary schema last.

use crate::pg::{backend, syscache};
use pgrx::pg_sys;
use std::ffi::CString;

/// The role planner work runs as, with the search_path it runs under.
pub struct ActingRole {
    pub oid: pg_sys::Oid,
    /// The role's default search_path; None for the caller, who keeps the session's own.
    search_path: Option<CString>,
}

/// Why a statement's role may not be acted as.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The role was dropped after pg_stat_statements recorded the statement.
    Dropped,
    /// The caller may not act as it (see `may_act_as`).
    NotPermitted,
}

impl ActingRole {
    /// The caller itself: its statements run as they would in its own session.
    pub fn caller() -> Self {
        ActingRole { oid: backend::current_user(), search_path: None }
    }

    /// `role`, when the caller may act as it; `default_search_path` is the role's own (from
    /// `ALTER ROLE … SET`/`ALTER DATABASE … SET`, else the built-in default).
    pub fn of(
        role: pg_sys::Oid,
        default_search_path: impl FnOnce() -> String,
    ) -> Result<Self, Refusal> {
        if role == backend::current_user() {
            return Ok(ActingRole::caller());
        }
        if !exists(role) {
            return Err(Refusal::Dropped);
        }
        if !may_act_as(role) {
            return Err(Refusal::NotPermitted);
        }
        // Temporary objects last: the caller's, which another role's statement never meant.
        let path = format!("{}, pg_temp", default_search_path());
        let search_path =
            CString::new(path).unwrap_or_else(|_| c"\"$user\", public, pg_temp".into());
        Ok(ActingRole { oid: role, search_path: Some(search_path) })
    }

    /// Runs `f` as this role in a restricted security context. Call only inside a
    /// subtransaction that is rolled back afterwards: the search_path set here is undone by
    /// that rollback (and so are the user id and security context, if `f` raises an ERROR).
    pub fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        let _restore = Restore::switch_to(self);
        f()
    }
}

/// Whether the caller may plan a statement as `role`: it is the caller, the caller may SET ROLE
/// to it, or the caller is a superuser. Reading all statistics (pg_read_all_stats) is not
/// enough: acting as a role runs its functions with its rights, at a moment and in a session
/// the caller chooses.
pub fn may_act_as(role: pg_sys::Oid) -> bool {
    let me = backend::current_user();
    // SAFETY: role membership lookups in the catalog caches.
    unsafe { role == me || pg_sys::superuser_arg(me) || can_set_role(me, role) }
}

#[cfg(feature = "pg15")]
unsafe fn can_set_role(member: pg_sys::Oid, role: pg_sys::Oid) -> bool {
    // SAFETY: catalog lookup; before PostgreSQL 16 membership is what SET ROLE requires.
    unsafe { pg_sys::is_member_of_role(member, role) }
}

#[cfg(not(feature = "pg15"))]
unsafe fn can_set_role(member: pg_sys::Oid, role: pg_sys::Oid) -> bool {
    // SAFETY: catalog lookup of the SET option of the membership chain.
    unsafe { pg_sys::member_can_set_role(member, role) }
}

fn exists(role: pg_sys::Oid) -> bool {
    // SAFETY: a syscache probe that keeps nothing of the row; no row for a role that does not
    // exist.
    unsafe { syscache::with_row(pg_sys::SysCacheIdentifier::AUTHOID, role, |_| ()) }.is_some()
}

/// Puts the caller's user id and security context back, also when `f` unwinds with an ERROR.
struct Restore {
    user: pg_sys::Oid,
    context: std::ffi::c_int,
}

impl Restore {
    fn switch_to(role: &ActingRole) -> Self {
        let (mut user, mut context) = (pg_sys::Oid::INVALID, 0);
        // SAFETY: backend-local state, read and set the way ANALYZE and REFRESH MATERIALIZED
        // VIEW do; `Drop` sets it back.
        unsafe {
            pg_sys::GetUserIdAndSecContext(&mut user, &mut context);
            pg_sys::SetUserIdAndSecContext(
                role.oid,
                context | pg_sys::SECURITY_RESTRICTED_OPERATION as std::ffi::c_int,
            );
        }
        if let Some(search_path) = &role.search_path {
            set_search_path(search_path);
        }
        Restore { user, context }
    }
}

impl Drop for Restore {
    fn drop(&mut self) {
        // SAFETY: puts back exactly what `switch_to` read.
        unsafe { pg_sys::SetUserIdAndSecContext(self.user, self.context) }
    }
}

fn set_search_path(value: &CString) {
    // SAFETY: a GUC assignment at SET level inside the caller's subtransaction, whose rollback
    // restores the previous value; an invalid value raises an ERROR like SET would.
    unsafe {
        pg_sys::set_config_option(
            c"search_path".as_ptr(),
            value.as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SET,
            true,
            0,
            false,
        );
    }
}
