//! Latency histograms of statements: the maths of `pitstop.query_latency` (the extension
//! keeps one per statement in shared memory, `insight/latency.rs`).
//!
//! The histogram is DDSketch-style: bucket `i` counts durations in (MIN·γ^(i-1), MIN·γ^i],
//! γ = (1+α)/(1-α), and a quantile is read as the bucket's point 2·MIN·γ^i/(γ+1), within α
//! (2 %) of every duration in it. Durations below MIN (10 µs) or above MAX (1 h) are counted
//! apart. Histograms of the same statement add bucket by bucket (mergeable).

/// Relative accuracy of a quantile (bucket width).
pub const ALPHA: f64 = 0.02;
/// Smallest duration kept in buckets, in µs.
pub const MIN_US: f64 = 10.0;
/// Largest duration kept in buckets, in µs (one hour).
pub const MAX_US: f64 = 3_600_000_000.0;
/// Buckets from MIN_US to MAX_US: indexes 0 ..= ceil(ln(MAX/MIN) / ln γ) = 493, checked by a test.
pub const BUCKETS: usize = 494;

#[inline]
pub fn gamma() -> f64 {
    (1.0 + ALPHA) / (1.0 - ALPHA)
}

/// The top of each bucket (µs, inclusive): MIN·γ^i, computed when compiling so that recording
/// a duration (every statement) costs a few comparisons instead of a logarithm.
const UPPER: [f64; BUCKETS] = {
    let g = (1.0 + ALPHA) / (1.0 - ALPHA);
    let mut upper = [0.0; BUCKETS];
    let mut top = MIN_US;
    let mut i = 0;
    while i < BUCKETS {
        upper[i] = top;
        top *= g;
        i += 1;
    }
    upper
};

/// Buckets per doubling of a duration, 1 / log2 γ.
const BUCKETS_PER_OCTAVE: f64 = 17.326_368_776_892_767;

/// The bucket of a duration in µs, or None when it is outside [MIN_US, MAX_US]: the first
/// whose top is at or above it.
#[inline]
pub fn bucket_of(us: f64) -> Option<usize> {
    if !(MIN_US..=MAX_US).contains(&us) {
        return None;
    }
    // A first guess from the float's exponent and mantissa: log2 x ≈ e + (m - 1), off by
    // less than 0.09 (under two buckets), then the table decides.
    let bits = (us / MIN_US).to_bits();
    let exponent = ((bits >> 52) as i64 - 1023) as f64;
    let mantissa = f64::from_bits((bits & ((1 << 52) - 1)) | (1023 << 52));
    let mut i = (((exponent + mantissa - 1.0) * BUCKETS_PER_OCTAVE) as usize).min(BUCKETS - 1);
    while i > 0 && us <= UPPER[i - 1] {
        i -= 1;
    }
    while us > UPPER[i] && i < BUCKETS - 1 {
        i += 1;
    }
    Some(i)
}

/// The value a bucket stands for (µs), within ALPHA of every duration it counts.
pub fn bucket_value(i: usize) -> f64 {
    let g = gamma();
    2.0 * MIN_US * g.powi(i as i32) / (g + 1.0)
}

#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct Histogram {
    pub calls: u64,
    /// Durations shorter than MIN_US.
    pub below: u64,
    /// Durations longer than MAX_US.
    pub above: u64,
    /// Longest duration seen, µs (exact).
    pub max_us: f64,
    pub buckets: [u64; BUCKETS],
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { calls: 0, below: 0, above: 0, max_us: 0.0, buckets: [0; BUCKETS] }
    }
}

impl Histogram {
    #[inline]
    pub fn record(&mut self, us: f64) {
        let us = if us.is_finite() && us > 0.0 { us } else { 0.0 };
        self.calls += 1;
        if us > self.max_us {
            self.max_us = us;
        }
        match bucket_of(us) {
            Some(i) => self.buckets[i] += 1,
            None if us < MIN_US => self.below += 1,
            None => self.above += 1,
        }
    }

    pub fn merge(&mut self, other: &Histogram) {
        self.calls += other.calls;
        self.below += other.below;
        self.above += other.above;
        self.max_us = self.max_us.max(other.max_us);
        for (a, b) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *a += b;
        }
    }

    /// The q-quantile (0..=1) in µs by nearest rank, as HdrHistogram (`pitstop bench`) reads
    /// it: the smallest duration with at least ceil(q·calls) calls at or below it (at least
    /// one), within ALPHA; below the range it is MIN_US (an upper bound), above it the max.
    /// The last rank is the exact maximum, and no quantile exceeds it. None without calls.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.calls == 0 {
            return None;
        }
        // 0-based rank of the nearest-rank sample.
        let rank = ((q.clamp(0.0, 1.0) * self.calls as f64).ceil() as u64).clamp(1, self.calls) - 1;
        if rank == self.calls - 1 {
            return Some(self.max_us);
        }
        let mut seen = self.below;
        if rank < seen {
            return Some(MIN_US.min(self.max_us));
        }
        for (i, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if rank < seen {
                return Some(bucket_value(i).min(self.max_us));
            }
        }
        Some(self.max_us)
    }

    /// What was added after `earlier`, an older copy of the same statement's histogram
    /// (bucket by bucket). The window's exact maximum is not known: it is bounded by the top
    /// of its highest non-empty bucket (the overall maximum when that is lower).
    pub fn since(&self, earlier: &Histogram) -> Histogram {
        let mut d = *self;
        d.calls = self.calls.saturating_sub(earlier.calls);
        d.below = self.below.saturating_sub(earlier.below);
        d.above = self.above.saturating_sub(earlier.above);
        for (a, b) in d.buckets.iter_mut().zip(earlier.buckets.iter()) {
            *a = a.saturating_sub(*b);
        }
        if d.above == 0 {
            let top = match d.buckets.iter().rposition(|&n| n > 0) {
                Some(i) => UPPER[i],
                None if d.below > 0 => MIN_US,
                None => 0.0,
            };
            d.max_us = self.max_us.min(top);
        }
        d
    }

    /// A histogram as the snapshot job stores it (`query_snapshots.latency`: calls, max_ms,
    /// below, above, and the sparse `buckets` with their `counts`); None when malformed.
    pub fn from_snapshot(json: &serde_json::Value) -> Option<Histogram> {
        let count = |k: &str| json.get(k)?.as_u64();
        let mut h = Histogram {
            calls: count("calls")?,
            below: count("below")?,
            above: count("above")?,
            max_us: json.get("max_ms")?.as_f64()? * 1000.0,
            ..Histogram::default()
        };
        let buckets = json.get("buckets")?.as_array()?;
        let counts = json.get("counts")?.as_array()?;
        if buckets.len() != counts.len() {
            return None;
        }
        for (i, n) in buckets.iter().zip(counts) {
            *h.buckets.get_mut(usize::try_from(i.as_u64()?).ok()?)? += n.as_u64()?;
        }
        Some(h)
    }

    /// Non-empty buckets as (index, count).
    pub fn sparse(&self) -> Vec<(usize, u64)> {
        self.buckets.iter().enumerate().filter(|(_, &n)| n > 0).map(|(i, &n)| (i, n)).collect()
    }
}

/// The key pg_stat_statements uses (without its toplevel flag: only top-level statements
/// are recorded).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(C)]
pub struct Key {
    pub dbid: u32,
    pub userid: u32,
    pub queryid: i64,
}

impl Key {
    /// Non-zero hash (0 marks a free slot's tag).
    #[inline]
    pub fn tag(&self) -> u64 {
        // splitmix64 finaliser over the three fields.
        let mut z = (self.queryid as u64)
            ^ ((u64::from(self.dbid) << 32) | u64::from(self.userid)).rotate_left(17);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        z.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_is_the_later_histogram_minus_the_earlier_one() {
        let mut earlier = Histogram::default();
        for _ in 0..100 {
            earlier.record(50_000.0);
        }
        let mut later = earlier;
        for _ in 0..100 {
            later.record(1_000.0);
        }
        let window = later.since(&earlier);
        assert_eq!(window.calls, 100);
        // The earlier 50 ms calls are not the window's maximum, even for its last rank.
        // (The top of a bucket is within γ - 1 ≈ 4.1 % of what it holds.)
        assert!(
            window.quantile(1.0).unwrap() <= 1_000.0 * gamma(),
            "{}",
            window.quantile(1.0).unwrap()
        );
        let mut one = later;
        one.record(2_000.0);
        let single = one.since(&later);
        assert_eq!(single.calls, 1);
        let p95 = single.quantile(0.95).unwrap();
        assert!(
            p95 >= 2_000.0 && p95 <= 2_000.0 * gamma(),
            "a one-call window's p95 is that call: {p95}"
        );
        let p95 = window.quantile(0.95).unwrap();
        assert!((p95 - 1_000.0).abs() / 1_000.0 <= ALPHA, "{p95}");
        // Without the subtraction the slow earlier calls dominate the tail.
        assert!(later.quantile(0.95).unwrap() > 40_000.0);
    }

    #[test]
    fn snapshot_json_reads_back_the_same_histogram() {
        let mut h = Histogram::default();
        for us in [5.0, 120.0, 120.5, 9_000.0, 4_000_000_000.0] {
            h.record(us);
        }
        let sparse = h.sparse();
        let json = serde_json::json!({
            "calls": h.calls, "since": "2026-12-05T00:00:00Z", "max_ms": h.max_us / 1000.0,
            "below": h.below, "above": h.above,
            "buckets": sparse.iter().map(|&(i, _)| i).collect::<Vec<_>>(),
            "counts": sparse.iter().map(|&(_, n)| n).collect::<Vec<_>>(),
        });
        assert_eq!(Histogram::from_snapshot(&json), Some(h));
        for bad in [
            serde_json::json!({"calls": 1}),
            serde_json::json!({"calls": 1, "below": 0, "above": 0, "max_ms": 1.0, "buckets": [1, 2], "counts": [1]}),
            serde_json::json!({"calls": 1, "below": 0, "above": 0, "max_ms": 1.0, "buckets": [BUCKETS], "counts": [1]}),
            serde_json::json!({"calls": -1, "below": 0, "above": 0, "max_ms": 1.0, "buckets": [], "counts": []}),
        ] {
            assert_eq!(Histogram::from_snapshot(&bad), None, "{bad}");
        }
    }

    #[test]
    fn buckets_cover_ten_microseconds_to_an_hour() {
        assert_eq!(bucket_of(MIN_US), Some(0));
        let last = ((MAX_US / MIN_US).ln() / gamma().ln()).ceil() as usize;
        assert_eq!(last, BUCKETS - 1, "BUCKETS must be ceil(ln(MAX/MIN)/ln γ) + 1");
        assert_eq!(bucket_of(MAX_US), Some(BUCKETS - 1));
        assert_eq!(bucket_of(9.99), None);
        assert_eq!(bucket_of(MAX_US * 1.001), None);
    }

    #[test]
    fn the_bucket_is_the_logarithm_s_except_at_a_rounding_of_a_boundary() {
        assert!((BUCKETS_PER_OCTAVE - 1.0 / gamma().log2()).abs() < 1e-9);
        let by_log = |us: f64| ((us / MIN_US).ln() / gamma().ln()).ceil().max(0.0) as usize;
        let mut values: Vec<f64> = (0..=28).map(|e| MIN_US * 2f64.powi(e)).collect();
        let mut us = MIN_US;
        while us <= MAX_US {
            values.extend([us, us * (1.0 + 1e-9), us * (1.0 - 1e-9)]);
            us *= 1.000_37;
        }
        for (i, top) in UPPER.iter().enumerate().filter(|(_, top)| **top <= MAX_US) {
            assert_eq!(bucket_of(*top), Some(i), "the top of bucket {i}");
            values.extend([top * (1.0 + 1e-9), top * (1.0 - 1e-9)]);
        }
        for us in values.into_iter().filter(|us| (MIN_US..=MAX_US).contains(us)) {
            let i = bucket_of(us).unwrap();
            assert!(us <= UPPER[i] && (i == 0 || us > UPPER[i - 1]), "{us} µs in bucket {i}");
            let near_a_top = UPPER.iter().any(|t| (us - t).abs() <= t * 1e-12);
            if !near_a_top {
                assert_eq!(i, by_log(us).min(BUCKETS - 1), "{us} µs");
            }
        }
    }

    #[test]
    fn every_value_in_range_is_read_back_within_two_percent() {
        let mut us = MIN_US;
        while us <= MAX_US {
            let v = bucket_value(bucket_of(us).unwrap());
            assert!((v - us).abs() / us <= ALPHA + 1e-9, "{us} µs read as {v}");
            us *= 1.0007;
        }
    }

    #[test]
    fn quantiles_of_a_known_distribution_are_within_the_bound() {
        // 20 × 10 ms, 5 × 50 ms, 1 × 200 ms: the accuracy test's workload.
        let mut h = Histogram::default();
        let mut exact = Vec::new();
        for (n, ms) in [(20, 10.0), (5, 50.0), (1, 200.0)] {
            for k in 0..n {
                let us = ms * 1000.0 + k as f64 * 13.0;
                h.record(us);
                exact.push(us);
            }
        }
        exact.sort_by(f64::total_cmp);
        for q in [0.0, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
            let want = exact[((q * exact.len() as f64).ceil() as usize).max(1) - 1];
            let got = h.quantile(q).unwrap();
            assert!((got - want).abs() / want <= ALPHA, "q{q}: {got} vs {want}");
        }
        assert_eq!(h.quantile(1.0), Some(200_000.0));
        assert_eq!(h.max_us, 200_000.0);
        assert_eq!(Histogram::default().quantile(0.5), None);
    }

    #[test]
    fn percentiles_are_nearest_rank_like_hdrhistogram() {
        // The smallest value with at least ceil(q·n) values at or below it.
        let ms = |h: &Histogram, q: f64| h.quantile(q).unwrap() / 1000.0;
        let near = |got: f64, want: f64| (got - want).abs() / want <= ALPHA;
        let mut h = Histogram::default();
        for ms in 1..=20 {
            h.record(ms as f64 * 1000.0);
        }
        for (q, want) in [(0.0, 1.0), (0.5, 10.0), (0.9, 18.0), (0.95, 19.0), (0.99, 20.0)] {
            assert!(near(ms(&h, q), want), "q{q} of 20: {} ms, want {want}", ms(&h, q));
        }
        assert_eq!(h.quantile(1.0), Some(20_000.0));
        // 1..44 ms (issue 17's 44 calls): p95 is the 42nd value; rank floor(q·(n-1)) read the
        // 41st, one sample below what `pitstop bench` reported.
        for ms in 21..=44 {
            h.record(ms as f64 * 1000.0);
        }
        for (q, want) in [(0.5, 22.0), (0.95, 42.0), (0.99, 44.0)] {
            assert!(near(ms(&h, q), want), "q{q} of 44: {} ms, want {want}", ms(&h, q));
        }
    }

    #[test]
    fn out_of_range_durations_are_counted_apart() {
        let mut h = Histogram::default();
        h.record(3.0);
        h.record(0.0);
        h.record(MAX_US * 2.0);
        assert_eq!((h.calls, h.below, h.above), (3, 2, 1));
        assert_eq!(h.quantile(0.0), Some(MIN_US));
        assert_eq!(h.quantile(1.0), Some(MAX_US * 2.0));
        assert!(h.sparse().is_empty());
    }

    #[test]
    fn merged_histograms_equal_one_fed_everything() {
        let (mut a, mut b, mut all) =
            (Histogram::default(), Histogram::default(), Histogram::default());
        for i in 0..1000 {
            let us = 5.0 + (i as f64).powf(2.7);
            if i % 3 == 0 {
                a.record(us)
            } else {
                b.record(us)
            }
            all.record(us);
        }
        a.merge(&b);
        assert_eq!(a, all);
    }
}
