//! Memory-growth detection: a least-squares line through each process's resident memory
//! over `monitor.growth_window`. A process is flagged when the line rises at least
//! `growth_min_slope` bytes per hour, fits with R² ≥ `growth_min_r2`, the points cover most
//! of the window, and both halves of the window rise on their own (a single step up, which a
//! line can fit tolerably, does not count as sustained growth).

use super::alerts::AlertLabels;
use super::catalog::GROWTH;
use super::sample::Sample;
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

/// Points kept per process, spread over the window.
const MAX_POINTS: usize = 240;
/// Fewer points than this say nothing.
const MIN_POINTS: usize = 8;
/// The points must span this share of the window.
const MIN_COVERAGE: f64 = 0.75;
/// Processes tracked at most (backends beyond are not watched).
const MAX_PROCESSES: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Process {
    PostgresBackend,
    Daemon,
}

impl Process {
    /// The alert's `process` label.
    pub fn label(self) -> &'static str {
        match self {
            Process::PostgresBackend => "postgres backend",
            Process::Daemon => "pitstop",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    pub window: Duration,
    pub min_r2: f64,
    /// Bytes per hour.
    pub min_slope: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    /// Units of y per unit of x.
    pub slope: f64,
    pub r2: f64,
}

/// Least squares of y on x; None for fewer than two points or no spread in x. A flat series
/// (no variance in y) fits perfectly with slope 0.
pub fn fit(points: &[(f64, f64)]) -> Option<Fit> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let (mx, my) = points.iter().fold((0.0, 0.0), |(sx, sy), (x, y)| (sx + x / n, sy + y / n));
    let (mut sxx, mut sxy, mut syy) = (0.0, 0.0, 0.0);
    for (x, y) in points {
        let (dx, dy) = (x - mx, y - my);
        sxx += dx * dx;
        sxy += dx * dy;
        syy += dy * dy;
    }
    if sxx <= 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    let r2 = if syy <= 0.0 { 1.0 } else { (sxy * sxy) / (sxx * syy) };
    Some(Fit { slope, r2 })
}

#[derive(Debug, Clone, PartialEq)]
pub struct Flag {
    pub pid: u32,
    pub process: Process,
    pub bytes_per_hour: f64,
    pub r2: f64,
    pub rss: f64,
}

#[derive(Debug, Default)]
struct Track {
    process: Option<Process>,
    points: VecDeque<(f64, f64)>,
}

#[derive(Debug)]
pub struct Tracker {
    params: Params,
    processes: HashMap<u32, Track>,
}

impl Tracker {
    pub fn new(params: Params) -> Tracker {
        Tracker { params, processes: HashMap::new() }
    }

    pub fn set_params(&mut self, params: Params) {
        self.params = params;
    }

    /// One round: the resident bytes of every watched process at `at` (seconds). Processes
    /// not listed have exited and are forgotten.
    pub fn observe(&mut self, at: f64, processes: &[(u32, Process, u64)]) {
        let span = self.params.window.as_secs_f64();
        let spacing = span / MAX_POINTS as f64;
        let alive: HashSet<u32> = processes.iter().map(|(pid, _, _)| *pid).collect();
        self.processes.retain(|pid, _| alive.contains(pid));
        for &(pid, process, rss) in processes {
            if !self.processes.contains_key(&pid) && self.processes.len() >= MAX_PROCESSES {
                continue;
            }
            let track = self.processes.entry(pid).or_default();
            if track.process != Some(process) {
                // A pid reused by another kind of process starts over.
                track.points.clear();
                track.process = Some(process);
            }
            if track.points.back().is_some_and(|(t, _)| at - t < spacing) {
                continue;
            }
            track.points.push_back((at, rss as f64));
            while track.points.front().is_some_and(|(t, _)| *t < at - span)
                || track.points.len() > MAX_POINTS
            {
                track.points.pop_front();
            }
        }
    }

    /// The processes whose memory grows steadily, largest slope first.
    pub fn flagged(&self) -> Vec<Flag> {
        let mut flags: Vec<Flag> = self
            .processes
            .iter()
            .filter_map(|(pid, track)| {
                let points: Vec<(f64, f64)> = track.points.iter().copied().collect();
                let (fit, rss) = judge(&points, &self.params)?;
                Some(Flag {
                    pid: *pid,
                    process: track.process?,
                    bytes_per_hour: fit.slope,
                    r2: fit.r2,
                    rss,
                })
            })
            .collect();
        flags.sort_by(|a, b| b.bytes_per_hour.total_cmp(&a.bytes_per_hour));
        flags
    }

    #[cfg(test)]
    pub fn tracked(&self) -> usize {
        self.processes.len()
    }
}

/// The fit (slope in bytes per hour) and latest value of a series that shows sustained
/// growth under `params`, else None.
pub fn judge(points: &[(f64, f64)], params: &Params) -> Option<(Fit, f64)> {
    if points.len() < MIN_POINTS {
        return None;
    }
    let covered = points.last()?.0 - points.first()?.0;
    if covered < params.window.as_secs_f64() * MIN_COVERAGE {
        return None;
    }
    let hourly: Vec<(f64, f64)> = points.iter().map(|(t, y)| (t / 3600.0, *y)).collect();
    let whole = fit(&hourly)?;
    if whole.slope < params.min_slope || whole.r2 < params.min_r2 {
        return None;
    }
    let (first, second) = hourly.split_at(hourly.len() / 2);
    let rising = |half: &[(f64, f64)]| fit(half).is_some_and(|f| f.slope > 0.0);
    (rising(first) && rising(second))
        .then(|| (whole, points.last().map(|p| p.1).unwrap_or_default()))
}

/// The growth family's samples (one per kind of process: the steepest slope) and the words
/// for the alert's summary (which pids, how fast, how well the line fits).
pub fn to_samples(flags: &[Flag]) -> (Vec<Sample>, HashMap<(&'static str, AlertLabels), String>) {
    let mut samples: Vec<Sample> = Vec::new();
    let mut details = HashMap::new();
    for process in [Process::PostgresBackend, Process::Daemon] {
        let mine: Vec<&Flag> = flags.iter().filter(|f| f.process == process).collect();
        let Some(steepest) = mine.first() else { continue };
        // Exported in base units (bytes per second); rules scale it back to bytes per hour.
        samples.push(Sample::labelled(
            GROWTH,
            "process",
            process.label(),
            steepest.bytes_per_hour / 3600.0,
        ));
        let mut words: Vec<String> = mine
            .iter()
            .take(3)
            .map(|f| {
                format!(
                    "pid {} grows {:.1} MB/h (R² {:.2}, private RSS {:.1} MB)",
                    f.pid,
                    f.bytes_per_hour / MB,
                    f.r2,
                    f.rss / MB
                )
            })
            .collect();
        if mine.len() > 3 {
            words.push(format!("and {} more", mine.len() - 3));
        }
        details.insert(
            (GROWTH, AlertLabels::from([("process".to_string(), process.label().to_string())])),
            words.join("; "),
        );
    }
    (samples, details)
}

const MB: f64 = 1024.0 * 1024.0;

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> Params {
        Params { window: Duration::from_secs(3600), min_r2: 0.9, min_slope: 50.0 * MB }
    }

    /// 120 points over an hour: `f(minute)`.
    fn series(f: impl Fn(f64) -> f64) -> Vec<(f64, f64)> {
        (0..120).map(|i| (f64::from(i) * 30.0, f(f64::from(i) * 0.5))).collect()
    }

    /// Deterministic noise in [-1, 1].
    fn noise(i: f64) -> f64 {
        ((i * 12.9898).sin() * 43_758.545_3).fract()
    }

    #[test]
    fn least_squares() {
        let f = fit(&[(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]).unwrap();
        assert!((f.slope - 2.0).abs() < 1e-12 && (f.r2 - 1.0).abs() < 1e-12);
        assert_eq!(fit(&[(1.0, 1.0), (1.0, 2.0)]), None);
        assert_eq!(fit(&[(0.0, 5.0), (1.0, 5.0)]), Some(Fit { slope: 0.0, r2: 1.0 }));
    }

    #[test]
    fn a_linear_leak_is_flagged() {
        // 200 MB + 2 MB a minute (120 MB/h), with a little noise.
        let leak = series(|m| 200.0 * MB + 2.0 * MB * m + noise(m) * MB);
        let (fit, _) = judge(&leak, &params()).expect("flagged");
        assert!((fit.slope / MB - 120.0).abs() < 2.0, "{}", fit.slope / MB);
        assert!(fit.r2 > 0.99);
    }

    #[test]
    fn flat_noisy_slow_stepped_or_short_series_are_not() {
        let p = params();
        assert_eq!(judge(&series(|_| 300.0 * MB), &p), None, "flat");
        assert_eq!(
            judge(&series(|m| 300.0 * MB + noise(m) * 80.0 * MB), &p),
            None,
            "noise without trend"
        );
        assert_eq!(
            judge(&series(|m| 300.0 * MB + 0.5 * MB * m), &p),
            None,
            "30 MB/h is under the minimum slope"
        );
        let step = series(|m| if m < 30.0 { 100.0 * MB } else { 600.0 * MB });
        assert_eq!(judge(&step, &p), None, "one step up");
        let late_step = series(|m| if m < 50.0 { 100.0 * MB } else { 600.0 * MB });
        assert_eq!(judge(&late_step, &p), None, "one late step up");
        let short: Vec<(f64, f64)> = series(|m| 2.0 * MB * m).into_iter().take(60).collect();
        assert_eq!(judge(&short, &p), None, "half the window is not enough");
    }

    #[test]
    fn the_tracker_follows_pids_and_forgets_exited_ones() {
        let mut t = Tracker::new(params());
        for i in 0..200 {
            let at = f64::from(i) * 30.0;
            let mut procs = vec![(7, Process::Daemon, (20.0 * MB) as u64)];
            procs.push((100, Process::PostgresBackend, (50.0 * MB + 3.0 * MB * at / 60.0) as u64));
            if i < 150 {
                procs.push((101, Process::PostgresBackend, (80.0 * MB) as u64));
            }
            t.observe(at, &procs);
        }
        let flags = t.flagged();
        assert_eq!(flags.len(), 1, "{flags:?}");
        assert_eq!((flags[0].pid, flags[0].process), (100, Process::PostgresBackend));
        assert!((flags[0].bytes_per_hour / MB - 180.0).abs() < 1.0);
        assert_eq!(t.tracked(), 2, "pid 101 exited");
        // Points are thinned to the window's spacing: 1 a second for an hour keeps ≤ 240.
        let mut fast = Tracker::new(params());
        for i in 0..7200 {
            fast.observe(f64::from(i), &[(1, Process::Daemon, 1)]);
        }
        assert!(fast.processes[&1].points.len() <= MAX_POINTS);
    }

    #[test]
    fn flags_become_one_sample_per_kind_of_process_with_the_pids_in_words() {
        let flag = |pid, process, mb_per_hour: f64| Flag {
            pid,
            process,
            bytes_per_hour: mb_per_hour * MB,
            r2: 0.97,
            rss: 300.0 * MB,
        };
        let flags = [
            flag(11, Process::PostgresBackend, 200.0),
            flag(12, Process::PostgresBackend, 90.0),
            flag(5, Process::Daemon, 60.0),
        ];
        let (samples, details) = to_samples(&flags);
        assert_eq!(samples.len(), 2);
        assert_eq!(
            samples[0],
            Sample::labelled(GROWTH, "process", "postgres backend", 200.0 * MB / 3600.0)
        );
        let words = &details[&(
            GROWTH,
            AlertLabels::from([("process".to_string(), "postgres backend".to_string())]),
        )];
        assert_eq!(words, "pid 11 grows 200.0 MB/h (R² 0.97, private RSS 300.0 MB); pid 12 grows 90.0 MB/h (R² 0.97, private RSS 300.0 MB)");
        assert_eq!(to_samples(&[]).0, []);
    }
}
