//! The significance test of `--compare`: a one-sided Mann-Whitney U test (normal
//! approximation with tie and continuity corrections) on per-window median latencies.
//! Latency samples are skewed and heavy-tailed, so a rank test that assumes no distribution
//! fits; windows of many transactions are far less autocorrelated than single transactions.

/// One-sided p-value for "`current` tends to be larger than `baseline`".
pub fn mann_whitney_greater(baseline: &[f64], current: &[f64]) -> f64 {
    let (n1, n2) = (baseline.len() as f64, current.len() as f64);
    if baseline.is_empty() || current.is_empty() {
        return 1.0;
    }
    let mut all: Vec<(f64, bool)> =
        baseline.iter().map(|&v| (v, false)).chain(current.iter().map(|&v| (v, true))).collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = all.len();
    let (mut rank_sum_current, mut tie_term) = (0.0, 0.0);
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let average_rank = (i + j) as f64 / 2.0 + 1.0;
        let t = (j - i + 1) as f64;
        tie_term += t * t * t - t;
        rank_sum_current += all[i..=j].iter().filter(|x| x.1).count() as f64 * average_rank;
        i = j + 1;
    }
    let u = rank_sum_current - n2 * (n2 + 1.0) / 2.0;
    let mean = n1 * n2 / 2.0;
    let total = n1 + n2;
    let variance = n1 * n2 / 12.0 * ((total + 1.0) - tie_term / (total * (total - 1.0)));
    if variance <= 0.0 {
        return if u > mean { 0.0 } else { 1.0 };
    }
    let z = (u - mean - 0.5) / variance.sqrt();
    normal_sf(z)
}

/// P(Z > z) for a standard normal Z (erfc by Abramowitz & Stegun 7.1.26, absolute error
/// < 1.5e-7).
pub fn normal_sf(z: f64) -> f64 {
    let x = z / std::f64::consts::SQRT_2;
    let erfc = |x: f64| {
        let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
        let poly = t
            * (0.254_829_592
                + t * (-0.284_496_736
                    + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
        let e = poly * (-x * x).exp();
        if x >= 0.0 {
            e
        } else {
            2.0 - e
        }
    };
    erfc(x) / 2.0
}

pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 { v[m] } else { (v[m - 1] + v[m]) / 2.0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_tail_matches_tables() {
        assert!((normal_sf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_sf(1.959_964) - 0.025).abs() < 1e-6);
        assert!((normal_sf(-1.644_854) - 0.95).abs() < 1e-6);
        assert!((normal_sf(2.326_348) - 0.01).abs() < 1e-6);
    }

    #[test]
    fn mann_whitney_matches_known_answers() {
        // Separated samples: U = 25, z = (25 - 12.5 - 0.5) / sqrt(25 * 11 / 12) = 2.5067,
        // p = 0.00609 (scipy.stats.mannwhitneyu(..., alternative="greater", method="asymptotic")).
        let low = [1.0, 2.0, 3.0, 4.0, 5.0];
        let high = [6.0, 7.0, 8.0, 9.0, 10.0];
        assert!((mann_whitney_greater(&low, &high) - 0.00609).abs() < 1e-4);
        // The other direction is not significant.
        assert!(mann_whitney_greater(&high, &low) > 0.99);
        // Ties: baseline [1,2,2,3], current [2,3,3,4]: average ranks give U = 13,
        // tie-corrected variance 10.857, p = P(Z > (13 - 8 - 0.5) / 3.295) = 0.0860.
        let p = mann_whitney_greater(&[1.0, 2.0, 2.0, 3.0], &[2.0, 3.0, 3.0, 4.0]);
        assert!((p - 0.0860).abs() < 1e-3, "{p}");
        // Identical samples: no evidence at all.
        let same: Vec<f64> = (0..30).map(|i| (i % 7) as f64).collect();
        assert!(mann_whitney_greater(&same, &same) > 0.4);
        assert_eq!(mann_whitney_greater(&[], &[1.0]), 1.0);
    }

    #[test]
    fn mann_whitney_false_positive_rate_is_near_alpha_on_equal_distributions() {
        let mut rng = crate::bench::expr::Rng::new(11);
        let trials = 2000;
        let hits = (0..trials)
            .filter(|_| {
                let a: Vec<f64> = (0..30).map(|_| rng.unit().powi(3)).collect();
                let b: Vec<f64> = (0..30).map(|_| rng.unit().powi(3)).collect();
                mann_whitney_greater(&a, &b) < 0.05
            })
            .count();
        let rate = hits as f64 / trials as f64;
        assert!((0.03..0.07).contains(&rate), "false positive rate {rate}");
        // And a 20 % shift of a skewed distribution is found almost always.
        let found = (0..200)
            .filter(|_| {
                let a: Vec<f64> = (0..30).map(|_| 1.0 + rng.unit().powi(3)).collect();
                let b: Vec<f64> = (0..30).map(|_| 1.3 + rng.unit().powi(3)).collect();
                mann_whitney_greater(&a, &b) < 0.01
            })
            .count();
        assert!(found > 190, "power {found}/200");
    }

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }
}
