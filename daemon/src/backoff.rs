//! Capped exponential backoff with jitter, for reconnecting to Postgres and Redis.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff { initial, max: max.max(initial), attempt: 0 }
    }

    /// The delay before the next attempt: `initial * 2^attempt`, capped at `max`, then
    /// scaled by a random factor in [0.5, 1.0] so that many daemons do not retry in step.
    pub fn next_delay(&mut self) -> Duration {
        let factor = 0.5 + rand::random::<f64>() * 0.5;
        self.next_with(factor)
    }

    fn next_with(&mut self, jitter: f64) -> Duration {
        let exp = self.initial.saturating_mul(1u32 << self.attempt.min(20));
        self.attempt = self.attempt.saturating_add(1);
        exp.min(self.max).mul_f64(jitter.clamp(0.0, 1.0))
    }

    /// How many attempts failed since the last success.
    pub fn failures(&self) -> u32 {
        self.attempt
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_until_the_cap() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let delays: Vec<u128> = (0..6).map(|_| b.next_with(1.0).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.failures(), 6);
        b.reset();
        assert_eq!(b.next_with(1.0), Duration::from_millis(100));
    }

    #[test]
    fn jitter_stays_within_half_to_full() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
        for attempt in 0..40u32 {
            let cap = Duration::from_millis(100)
                .saturating_mul(1u32 << attempt.min(20))
                .min(Duration::from_secs(30));
            let d = b.next_delay();
            assert!(
                d >= cap / 2 && d <= cap,
                "attempt {attempt}: {d:?} outside [{:?}, {cap:?}]",
                cap / 2
            );
        }
    }

    #[test]
    fn never_overflows() {
        let mut b = Backoff::new(Duration::from_secs(3600), Duration::from_secs(7200));
        for _ in 0..100 {
            assert!(b.next_with(1.0) <= Duration::from_secs(7200));
        }
    }
}
