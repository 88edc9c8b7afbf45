//! The transaction's and the server's state as the result cache needs it.

use pgrx::pg_sys;

/// The transaction runs at REPEATABLE READ or SERIALIZABLE (one snapshot for all its
/// statements).
pub fn repeatable_read_or_stricter() -> bool {
    // SAFETY: a plain read of a backend global.
    unsafe { pg_sys::XactIsoLevel >= pg_sys::XACT_REPEATABLE_READ as i32 }
}

/// The server is a standby replaying WAL (or still recovering).
pub fn recovery_in_progress() -> bool {
    // SAFETY: RecoveryInProgress reads shared state under its own spinlock and never raises.
    unsafe { pg_sys::RecoveryInProgress() }
}
