//! The bounded in-memory window of recent samples, for live views: one ring per series,
//! holding at most `window / sample_interval` points (capped), at most `MAX_SERIES` series;
//! series that stopped reporting leave once their newest point is older than the window.

use super::sample::{Labels, Sample};
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// Most points one series keeps, whatever the window and interval.
pub const MAX_POINTS: usize = 1440;
/// Most series kept; samples of further series are not kept (and counted).
pub const MAX_SERIES: usize = 256;

type Key = (&'static str, Labels);

/// One series over the window.
#[derive(Debug, Clone, PartialEq)]
pub struct Trend {
    pub metric: &'static str,
    pub labels: Labels,
    pub min: f64,
    pub mean: f64,
    pub max: f64,
    pub points: usize,
    /// When the oldest point was sampled (seconds since the Unix epoch).
    pub since: f64,
}

#[derive(Debug, Default)]
pub struct Window {
    span: f64,
    capacity: usize,
    series: HashMap<Key, VecDeque<(f64, f64)>>,
    /// Samples not kept because `MAX_SERIES` series were already there.
    pub refused: u64,
}

impl Window {
    pub fn new(window: Duration, interval: Duration) -> Window {
        let mut w = Window::default();
        w.resize(window, interval);
        w
    }

    /// Applies a new window or interval (configuration reload); trims the rings at once.
    pub fn resize(&mut self, window: Duration, interval: Duration) {
        self.span = window.as_secs_f64();
        let points = (window.as_secs_f64() / interval.as_secs_f64().max(0.001)).ceil() as usize;
        self.capacity = points.clamp(2, MAX_POINTS);
        for ring in self.series.values_mut() {
            while ring.len() > self.capacity {
                ring.pop_front();
            }
        }
    }

    /// Adds one round of samples taken at `at` (seconds since the Unix epoch).
    pub fn push(&mut self, at: f64, samples: &[Sample]) {
        for s in samples {
            let key = (s.metric, s.labels.clone());
            let full = self.series.len() >= MAX_SERIES;
            let ring = match self.series.get_mut(&key) {
                Some(ring) => ring,
                None if full => {
                    self.refused += 1;
                    continue;
                }
                None => self.series.entry(key).or_default(),
            };
            if ring.len() == self.capacity {
                ring.pop_front();
            }
            ring.push_back((at, s.value));
        }
        let oldest = at - self.span;
        self.series.retain(|_, ring| ring.back().is_some_and(|(t, _)| *t >= oldest));
    }

    /// The points of one series, oldest first.
    #[cfg(test)]
    pub fn series(&self, metric: &'static str, labels: &Labels) -> Option<&VecDeque<(f64, f64)>> {
        self.series.get(&(metric, labels.clone()))
    }

    /// Minimum, mean and maximum over the window of each series of the `families` given, for
    /// live views; sorted by family and labels.
    pub fn trends(&self, families: &[&str]) -> Vec<Trend> {
        let mut out: Vec<Trend> = self
            .series
            .iter()
            .filter(|((metric, _), ring)| families.contains(metric) && !ring.is_empty())
            .map(|((metric, labels), ring)| {
                let values = ring.iter().map(|(_, v)| *v);
                Trend {
                    metric,
                    labels: labels.clone(),
                    min: values.clone().fold(f64::INFINITY, f64::min),
                    mean: values.clone().sum::<f64>() / ring.len() as f64,
                    max: values.fold(f64::NEG_INFINITY, f64::max),
                    points: ring.len(),
                    since: ring.front().map(|(t, _)| *t).unwrap_or_default(),
                }
            })
            .collect();
        out.sort_by(|a, b| (a.metric, &a.labels).cmp(&(b.metric, &b.labels)));
        out
    }

    /// The values of the unlabelled series `metric`, oldest first, averaged into at most
    /// `max` equal buckets (a sparkline's points); empty when there is no such series.
    pub fn recent(&self, metric: &'static str, max: usize) -> Vec<f64> {
        let Some(ring) = self.series.get(&(metric, Vec::new())) else { return Vec::new() };
        let (len, max) = (ring.len(), max.max(1));
        if len <= max {
            return ring.iter().map(|(_, v)| *v).collect();
        }
        (0..max)
            .map(|b| {
                let (from, to) = (b * len / max, (b + 1) * len / max);
                ring.range(from..to).map(|(_, v)| *v).sum::<f64>() / (to - from) as f64
            })
            .collect()
    }

    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    pub fn points(&self) -> usize {
        self.series.values().map(VecDeque::len).sum()
    }

    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rings_are_capped_by_window_over_interval() {
        let mut w = Window::new(Duration::from_secs(60), Duration::from_secs(10));
        assert_eq!(w.capacity(), 6);
        for i in 0..100 {
            w.push(
                f64::from(i) * 10.0,
                &[Sample::new("a", f64::from(i)), Sample::labelled("b", "mount", "/", 1.0)],
            );
        }
        let a = w.series("a", &Vec::new()).unwrap();
        assert_eq!(a.len(), 6);
        assert_eq!(a.front().unwrap().1, 94.0, "the oldest points went first");
        assert_eq!(w.points(), 12);
        let trends = w.trends(&["a"]);
        assert_eq!(trends.len(), 1);
        assert_eq!(
            (trends[0].min, trends[0].mean, trends[0].max, trends[0].points, trends[0].since),
            (94.0, 96.5, 99.0, 6, 940.0)
        );
        w.resize(Duration::from_secs(30), Duration::from_secs(10));
        assert_eq!(w.points(), 6);
    }

    #[test]
    fn recent_values_are_averaged_into_at_most_max_buckets() {
        let mut w = Window::new(Duration::from_secs(100), Duration::from_secs(1));
        assert!(w.recent("a", 4).is_empty());
        for i in 0..10 {
            w.push(
                f64::from(i),
                &[Sample::new("a", f64::from(i)), Sample::labelled("b", "mount", "/", 1.0)],
            );
        }
        assert_eq!(w.recent("a", 20), (0..10).map(f64::from).collect::<Vec<_>>());
        assert_eq!(w.recent("a", 5), [0.5, 2.5, 4.5, 6.5, 8.5]);
        assert_eq!(w.recent("a", 3), [1.0, 4.0, 7.5]);
        assert!(w.recent("b", 4).is_empty(), "labelled series are not sketched");
    }

    #[test]
    fn memory_stays_bounded() {
        let mut w = Window::new(Duration::from_secs(86_400 * 365), Duration::from_millis(100));
        assert_eq!(w.capacity(), MAX_POINTS);
        for i in 0..(MAX_SERIES + 50) {
            w.push(1.0, &[Sample::labelled("x", "pid", i.to_string(), 1.0)]);
        }
        assert_eq!(w.series_count(), MAX_SERIES);
        assert_eq!(w.refused, 50);
    }

    #[test]
    fn series_that_stop_reporting_leave_after_the_window() {
        let mut w = Window::new(Duration::from_secs(60), Duration::from_secs(10));
        w.push(0.0, &[Sample::labelled("disk", "mount", "/mnt", 1.0)]);
        w.push(30.0, &[Sample::new("cpu", 0.5)]);
        assert_eq!(w.series_count(), 2);
        w.push(61.0, &[Sample::new("cpu", 0.5)]);
        assert_eq!(w.series_count(), 1);
        assert!(w.series("disk", &vec![("mount", "/mnt".into())]).is_none());
    }
}
