//! `pitstop bench`'s live line: each second's clients, tps and percentiles, shown on stderr
//! by `crate::progress`.

use crate::progress::Line;
use hdrhistogram::Histogram;
use std::time::Duration;

pub struct Progress {
    line: Line,
    total: Duration,
}

impl Progress {
    pub fn new(total: Duration) -> Progress {
        let line = Line::bar(total.as_millis() as u64, "{bar:24} {elapsed:>4}/{duration:4} {msg}");
        Progress { line, total }
    }

    /// The last second: clients running, transactions per second, p50 and p99.
    pub fn tick(&self, at: Duration, clients: usize, second: &Histogram<u64>, errors: u64) {
        let position = at.min(self.total).as_millis() as u64;
        self.line.show(line(at, clients, second, errors), Some(position));
    }

    pub fn finish(&self) {
        self.line.finish();
    }
}

pub fn line(at: Duration, clients: usize, second: &Histogram<u64>, errors: u64) -> String {
    let ms = |q: f64| {
        if second.is_empty() {
            "-".to_string()
        } else {
            format!("{:.2} ms", second.value_at_quantile(q) as f64 / 1000.0)
        }
    };
    format!(
        "{:.0} s, {clients} clients, {} tps, p50 {}, p99 {}, {errors} errors",
        at.as_secs_f64(),
        second.len(),
        ms(0.5),
        ms(0.99)
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_progress_line_names_clients_tps_and_percentiles() {
        let mut h = super::super::run::histogram();
        for v in 1..=100u64 {
            h.record(v * 1000).unwrap();
        }
        let line = super::line(std::time::Duration::from_millis(3000), 4, &h, 2);
        assert_eq!(line, "3 s, 4 clients, 100 tps, p50 50.02 ms, p99 99.01 ms, 2 errors");
    }
}
