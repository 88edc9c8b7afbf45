//! Which failed maintenance statements are tried again, and when: conflicts that a later
//! attempt may not meet (lock_timeout, deadlock, serialization failure, object in use) are
//! retried up to `maintenance.retries` times, waiting `maintenance.retry_delay` doubling each
//! time (with jitter, capped at 8x). Anything else — a statement_timeout, a missing table, a
//! lost connection — would fail the same way again and is not retried.

use crate::backoff::Backoff;
use std::time::Duration;

/// SQLSTATEs worth another attempt.
const RETRYABLE: &[&str] = &[
    "55P03", // lock_not_available: lock_timeout
    "40P01", // deadlock_detected
    "40001", // serialization_failure
    "55006", // object_in_use
];

pub fn retryable(sqlstate: Option<&str>) -> bool {
    sqlstate.is_some_and(|code| RETRYABLE.contains(&code))
}

/// The retries left for one action.
pub struct Retry {
    left: u32,
    backoff: Backoff,
}

impl Retry {
    pub fn new(retries: u32, delay: Duration) -> Retry {
        Retry { left: retries, backoff: Backoff::new(delay, delay.saturating_mul(8)) }
    }

    /// After a failed attempt with `sqlstate`: how long to wait before the next attempt, or
    /// None when the action has failed for good.
    pub fn after_failure(&mut self, sqlstate: Option<&str>) -> Option<Duration> {
        if self.left == 0 || !retryable(sqlstate) {
            return None;
        }
        self.left -= 1;
        Some(self.backoff.next_delay())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_timeouts_are_retried_up_to_the_limit_with_growing_delays() {
        let base = Duration::from_millis(100);
        let mut retry = Retry::new(3, base);
        let delays: Vec<Duration> =
            std::iter::from_fn(|| retry.after_failure(Some("55P03"))).collect();
        assert_eq!(delays.len(), 3, "3 retries: 4 attempts in all");
        for (i, d) in delays.iter().enumerate() {
            let full = base * 2u32.pow(i as u32);
            assert!(
                *d >= full / 2 && *d <= full,
                "retry {i}: {d:?} outside [{:?}, {full:?}]",
                full / 2
            );
        }
        assert_eq!(retry.after_failure(Some("55P03")), None);
    }

    #[test]
    fn delays_are_capped() {
        let mut retry = Retry::new(10, Duration::from_secs(1));
        let last = std::iter::from_fn(|| retry.after_failure(Some("40P01"))).last().unwrap();
        assert!(last <= Duration::from_secs(8), "{last:?}");
    }

    #[test]
    fn only_conflicts_are_retried() {
        assert!(retryable(Some("55P03")) && retryable(Some("40P01")) && retryable(Some("40001")));
        for code in [Some("57014"), Some("42P01"), Some("42501"), Some("25001"), None] {
            assert!(!retryable(code), "{code:?}");
            assert_eq!(Retry::new(5, Duration::from_millis(1)).after_failure(code), None);
        }
        assert_eq!(
            Retry::new(0, Duration::from_millis(1)).after_failure(Some("55P03")),
            None,
            "retries = 0: one attempt"
        );
    }
}
