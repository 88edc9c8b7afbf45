//! Facts about the current backend: who, where, when.

use pgrx::pg_sys;

pub fn current_user() -> pg_sys::Oid {
    // SAFETY: GetUserId only reads backend-local state set at login.
    unsafe { pg_sys::GetUserId() }
}

pub fn current_database() -> pg_sys::Oid {
    // SAFETY: MyDatabaseId is set once at backend start.
    unsafe { pg_sys::MyDatabaseId }
}

/// Now, as a Postgres TimestampTz (µs since 2000-01-01 UTC).
pub fn now() -> i64 {
    // SAFETY: reads the clock; no shared state.
    unsafe { pg_sys::GetCurrentTimestamp() }
}

/// Members of pg_read_all_stats (and superusers) may read every user's statements.
pub fn can_read_all_stats() -> bool {
    // SAFETY: catalog lookup of role membership for the current user; may raise ERROR only
    // on catalog corruption, like any catalog read.
    unsafe {
        pg_sys::has_privs_of_role(current_user(), pg_sys::Oid::from(pg_sys::ROLE_PG_READ_ALL_STATS))
    }
}
