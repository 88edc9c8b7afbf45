//! The monitor's families in the Prometheus text format, appended to `/metrics`: the latest
//! round's samples under their catalog names, alerts by state and severity, and the monitor's
//! own counters.

use super::alerts::Phase;
use super::catalog::FAMILIES;
use super::live::View;
use crate::config::monitor::Severity;
use std::fmt::Write;

pub fn render(v: &View) -> String {
    let mut out = String::with_capacity(4096);
    let family = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    for f in FAMILIES {
        let mut samples = v.samples.iter().filter(|s| s.metric == f.name).peekable();
        if samples.peek().is_none() {
            continue;
        }
        family(&mut out, f.name, f.kind.as_str(), f.help);
        for s in samples {
            let labels = if s.labels.is_empty() {
                String::new()
            } else {
                format!("{{{}}}", s.labels.iter().map(|(k, val)| format!("{k}=\"{}\"", escape(val))).collect::<Vec<_>>().join(","))
            };
            let _ = writeln!(out, "{}{labels} {}", f.name, s.value);
        }
    }
    for (phase, name, help) in [
        (Phase::Firing, "pitstop_alerts_firing", "Alerts firing, by severity."),
        (Phase::Pending, "pitstop_alerts_pending", "Alerts pending (condition true, `for` not yet over), by severity."),
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
        ("pitstop_monitor_rows_written_total", "Samples written to pitstop.host_metrics.", c.rows_written),
        ("pitstop_monitor_rows_dropped_total", "Samples dropped unwritten (buffer full, or a batch that kept failing).", c.rows_dropped),
        ("pitstop_monitor_rows_pruned_total", "Rows of pitstop.host_metrics deleted after monitor.retention.", c.rows_pruned),
        ("pitstop_monitor_write_errors_total", "Failed writes to pitstop.host_metrics or pitstop.alerts.", c.write_errors),
        ("pitstop_monitor_webhook_sent_total", "Alert notifications the webhook accepted.", c.webhook_sent),
        ("pitstop_monitor_webhook_failed_total", "Alert notifications given up after every retry, or not queued.", c.webhook_failed),
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
    use super::super::catalog::{CPU, DISK_USED, MEM_USED};
    use super::super::sample::Sample;
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
        assert!(text.contains("# TYPE pitstop_host_cpu_usage_ratio gauge\npitstop_host_cpu_usage_ratio 0.25\n"), "{text}");
        assert!(text.contains("pitstop_host_disk_used_bytes{mount=\"/\"} 1000000000\n"), "{text}");
        assert!(text.contains("pitstop_host_disk_used_bytes{mount=\"/mnt/a \\\"b\\\"\"} 2\n"), "{text}");
        assert!(text.contains("pitstop_alerts_firing{severity=\"critical\"} 0\n"));
        assert!(!text.contains("pitstop_postgres_xid_age"), "families without samples are left out");
        assert_eq!(text.matches("# TYPE pitstop_host_disk_used_bytes ").count(), 1);
        assert!(text.find("pitstop_host_cpu_usage_ratio").unwrap() < text.find("pitstop_host_memory_used_bytes").unwrap());
    }
}
