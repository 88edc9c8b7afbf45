//! The monitor's families in the Prometheus text format, appended to `/metrics`: the latest
//! round's samples under their catalog names (not the rates the daemon derives), the
//! extension's signals and how reading them goes, alerts by state and severity, and the
//! monitor's own counters.

use super::alerts::Phase;
use super::catalog::{EXTENSION_FAMILIES, FAMILIES};
use super::live::View;
use super::sample::Sample;
use crate::config::monitor::Severity;
use std::fmt::Write;

pub fn render(v: &View) -> String {
    let mut out = String::with_capacity(4096);
    let family = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    let sources = v.extension_sources.iter().flat_map(|s| {
        [
            Sample::labelled(
                "pitstop_extension_source_up",
                "source",
                s.name,
                f64::from(u8::from(s.up)),
            ),
            Sample::labelled(
                "pitstop_extension_scrape_errors_total",
                "source",
                s.name,
                s.errors as f64,
            ),
        ]
    });
    let extension: Vec<Sample> = v.extension.iter().cloned().chain(sources).collect();
    let sampled = FAMILIES.iter().filter(|f| f.exported).map(|f| (f, &v.samples));
    for (f, all) in sampled.chain(EXTENSION_FAMILIES.iter().map(|f| (f, &extension))) {
        let mut samples = all.iter().filter(|s| s.metric == f.name).peekable();
        if samples.peek().is_none() {
            continue;
        }
        family(&mut out, f.name, f.kind.as_str(), f.help);
        for s in samples {
            let labels = if s.labels.is_empty() {
                String::new()
            } else {
                format!(
                    "{{{}}}",
                    s.labels
                        .iter()
                        .map(|(k, val)| format!("{k}=\"{}\"", escape(val)))
                        .collect::<Vec<_>>()
                        .join(",")
                )
            };
            let _ = writeln!(out, "{}{labels} {}", f.name, s.value);
        }
    }
    for (phase, name, help) in [
        (Phase::Firing, "pitstop_alerts_firing", "Alerts firing, by severity."),
        (
            Phase::Pending,
            "pitstop_alerts_pending",
            "Alerts pending (condition true, `for` not yet over), by severity.",
        ),
    ] {
        family(&mut out, name, "gauge", help);
        for severity in [Severity::Info, Severity::Warning, Severity::Critical] {
            let n = v.alerts.iter().filter(|a| a.phase == phase && a.severity == severity).count();
            let _ = writeln!(out, "{name}{{severity=\"{}\"}} {n}", severity.as_str());
        }
    }
    let c = &v.counters;
    let counters: [(&str, &str, u64); 7] = [
        ("pitstop_monitor_samples_total", "Sampling rounds completed.", c.samples),
        (
            "pitstop_monitor_rows_written_total",
            "Samples written to pitstop.host_metrics.",
            c.rows_written,
        ),
        (
            "pitstop_monitor_rows_dropped_total",
            "Samples dropped unwritten (buffer full, or a batch that kept failing).",
            c.rows_dropped,
        ),
        (
            "pitstop_monitor_rows_pruned_total",
            "Rows of pitstop.host_metrics deleted after monitor.retention.",
            c.rows_pruned,
        ),
        (
            "pitstop_monitor_write_errors_total",
            "Failed writes to pitstop.host_metrics or pitstop.alerts.",
            c.write_errors,
        ),
        (
            "pitstop_monitor_webhook_sent_total",
            "Alert notifications the webhook accepted.",
            c.webhook_sent,
        ),
        (
            "pitstop_monitor_webhook_failed_total",
            "Alert notifications given up after every retry, or not queued.",
            c.webhook_failed,
        ),
    ];
    for (name, help, value) in counters {
        family(&mut out, name, "counter", help);
        let _ = writeln!(out, "{name} {value}");
    }
    out
}

/// Label values escaped as the text format wants (backslash, quote, newline).
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::super::catalog::{CACHE_HIT, CPU, DISK_USED, MEM_USED, TPS, TRANSACTIONS};
    use super::super::extension::SourceState;
    use super::*;

    #[test]
    fn renders_sampled_families_and_alert_counts() {
        let v = View {
            samples: vec![
                Sample::new(CPU, 0.25),
                Sample::labelled(DISK_USED, "mount", "/", 1e9),
                Sample::labelled(DISK_USED, "mount", "/mnt/a \"b\"", 2.0),
                Sample::new(MEM_USED, 123.0),
            ],
            ..Default::default()
        };
        let text = render(&v);
        assert!(
            text.contains(
                "# TYPE pitstop_host_cpu_usage_ratio gauge\npitstop_host_cpu_usage_ratio 0.25\n"
            ),
            "{text}"
        );
        assert!(text.contains("pitstop_host_disk_used_bytes{mount=\"/\"} 1000000000\n"), "{text}");
        assert!(
            text.contains("pitstop_host_disk_used_bytes{mount=\"/mnt/a \\\"b\\\"\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("pitstop_alerts_firing{severity=\"critical\"} 0\n"));
        assert!(
            !text.contains("pitstop_postgres_xid_age"),
            "families without samples are left out"
        );
        assert_eq!(text.matches("# TYPE pitstop_host_disk_used_bytes ").count(), 1);
        assert!(
            text.find("pitstop_host_cpu_usage_ratio").unwrap()
                < text.find("pitstop_host_memory_used_bytes").unwrap()
        );
    }

    #[test]
    fn derived_rates_stay_home_and_extension_signals_show_with_their_sources() {
        let v = View {
            samples: vec![
                Sample::new(TRANSACTIONS, 1000.0),
                Sample::new(TPS, 50.0),
                Sample::new(CACHE_HIT, 0.99),
            ],
            extension: vec![
                Sample::new("pitstop_cache_hits_total", 7.0),
                Sample::labelled("pitstop_cache_bypasses_total", "reason", "not_select", 2.0),
            ],
            extension_sources: vec![
                SourceState { name: "cache", up: true, errors: 0 },
                SourceState { name: "bloat", up: false, errors: 3 },
            ],
            ..Default::default()
        };
        let text = render(&v);
        assert!(text.contains("# TYPE pitstop_postgres_transactions_total counter\npitstop_postgres_transactions_total 1000\n"), "{text}");
        assert!(
            !text.contains(TPS) && !text.contains(CACHE_HIT),
            "a rate computed in the daemon is not exported:\n{text}"
        );
        assert!(
            text.contains("# TYPE pitstop_cache_hits_total counter\npitstop_cache_hits_total 7\n"),
            "{text}"
        );
        assert!(text.contains("pitstop_cache_bypasses_total{reason=\"not_select\"} 2\n"), "{text}");
        assert!(text.contains("pitstop_extension_source_up{source=\"bloat\"} 0\n"), "{text}");
        assert!(
            text.contains("pitstop_extension_scrape_errors_total{source=\"bloat\"} 3\n"),
            "{text}"
        );
        assert!(!text.contains("pitstop_bloat_bytes"), "a source that fails has no samples");
    }
}
