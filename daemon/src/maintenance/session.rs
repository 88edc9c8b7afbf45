//! The session a maintenance run uses, and the warnings the server sends on it. VACUUM and
//! ANALYZE do not fail on a table they may not process: they skip it with a WARNING and
//! report success, so an action is only known to have done its work once the warnings of its
//! statement have been looked at. tokio-postgres hands notices to whoever drives the
//! connection (`AsyncMessage::Notice`), so the connection is driven here and its warnings kept.

use std::sync::Mutex;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_postgres::error::{DbError, Severity};
use tokio_postgres::{Client, Connection};
use tracing::debug;

/// Warnings kept between two `take`s; more are dropped (a run reads them after every action).
const KEPT: usize = 1024;

/// SQLSTATEs of the warnings with which VACUUM and ANALYZE skip a relation: no privilege
/// (PostgreSQL may send 42501) and lock not available (SKIP_LOCKED).
const SKIP_CODES: &[&str] = &["42501", "55P03"];

pub struct Session {
    pub client: Client,
    warnings: Mutex<mpsc::Receiver<DbError>>,
}

impl Session {
    /// Wraps `client` and drives its `connection` in a task of its own, which ends when the
    /// client is dropped or the connection fails.
    pub fn new<S, T>(client: Client, connection: Connection<S, T>) -> Session
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(KEPT);
        tokio::spawn(async move {
            let keep = |notice: DbError| {
                if notice.parsed_severity() == Some(Severity::Warning) {
                    let _ = tx.try_send(notice);
                }
            };
            if let Err(e) = crate::db::drive_with_notices(connection, keep).await {
                debug!("maintenance: connection closed: {e}");
            }
        });
        Session { client, warnings: Mutex::new(rx) }
    }

    /// The warnings received since the last call. A statement's warnings precede its result on
    /// the wire and the connection task forwards them before it delivers that result, so once
    /// a statement has returned, its warnings are here.
    pub fn take_warnings(&self) -> Vec<DbError> {
        let mut rx = self.warnings.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        std::iter::from_fn(|| rx.try_recv().ok()).collect()
    }
}

/// Whether `warning` is VACUUM or ANALYZE saying it skipped a relation: "skipping "t" --- only
/// table or database owner can vacuum it" (PostgreSQL 15), "permission denied to vacuum "t",
/// skipping it" (16 and later), "skipping vacuum of "t" --- lock not available" (55P03). The
/// permission messages carry no SQLSTATE of their own, so they are recognised by their
/// English text (lc_messages other than English: only the SQLSTATEs are recognised).
pub fn is_skip(code: &str, message: &str) -> bool {
    SKIP_CODES.contains(&code)
        || message.starts_with("skipping ")
        || message.ends_with(", skipping it")
}

#[cfg(test)]
mod tests {
    use super::is_skip;

    #[test]
    fn skip_warnings_are_recognised_and_other_warnings_are_not() {
        assert!(is_skip("01000", "skipping \"t\" --- only table or database owner can vacuum it"));
        assert!(is_skip("01000", "skipping \"t\" --- only table or database owner can analyze it"));
        assert!(is_skip("01000", "permission denied to vacuum \"t\", skipping it"));
        assert!(is_skip("55P03", "skipping vacuum of \"t\" --- lock not available"));
        assert!(is_skip("42501", "ignorer « t » --- seul le propriétaire peut le traiter"));
        assert!(!is_skip("01000", "oldest xmin is far in the past"));
        assert!(!is_skip(
            "01000",
            "database \"postgres\" must be vacuumed within 10000000 transactions"
        ));
    }
}
