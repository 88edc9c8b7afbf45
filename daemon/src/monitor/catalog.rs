//! Every metric the monitor samples, under its Prometheus name (the same name is written to
//! `pitstop.host_metrics.metric`), and the short names alert rules use for them.

/// Where a family's values come from: a rule on a PostgreSQL metric keeps its state while
/// PostgreSQL cannot be sampled instead of resolving for lack of data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Host,
    Postgres,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        }
    }
}

pub struct Family {
    pub name: &'static str,
    pub kind: Kind,
    pub source: Source,
    pub help: &'static str,
    /// False for the series the daemon derives from two samples (a rate, a ratio of two
    /// differences) for alert rules, the dashboard and `pitstop.host_metrics`: Prometheus
    /// gets the counters they come from instead and computes rates itself.
    pub exported: bool,
}

const fn family(name: &'static str, kind: Kind, source: Source, help: &'static str) -> Family {
    Family { name, kind, source, help, exported: true }
}

const fn derived(name: &'static str, help: &'static str) -> Family {
    Family { name, kind: Kind::Gauge, source: Source::Postgres, help, exported: false }
}

use Kind::{Counter, Gauge};
use Source::{Host, Postgres};

pub const CPU: &str = "pitstop_host_cpu_usage_ratio";
pub const CPU_CORE: &str = "pitstop_host_cpu_core_usage_ratio";
pub const LOAD1: &str = "pitstop_host_load1";
pub const LOAD5: &str = "pitstop_host_load5";
pub const LOAD15: &str = "pitstop_host_load15";
pub const MEM_TOTAL: &str = "pitstop_host_memory_total_bytes";
pub const MEM_USED: &str = "pitstop_host_memory_used_bytes";
pub const MEM_AVAILABLE: &str = "pitstop_host_memory_available_bytes";
pub const MEM_RATIO: &str = "pitstop_host_memory_used_ratio";
pub const SWAP_TOTAL: &str = "pitstop_host_swap_total_bytes";
pub const SWAP_USED: &str = "pitstop_host_swap_used_bytes";
pub const SWAP_RATIO: &str = "pitstop_host_swap_used_ratio";
pub const DISK_TOTAL: &str = "pitstop_host_disk_total_bytes";
pub const DISK_USED: &str = "pitstop_host_disk_used_bytes";
pub const DISK_RATIO: &str = "pitstop_host_disk_used_ratio";
pub const DISK_READ: &str = "pitstop_host_disk_read_bytes_total";
pub const DISK_WRITTEN: &str = "pitstop_host_disk_written_bytes_total";
pub const NET_RX: &str = "pitstop_host_network_receive_bytes_total";
pub const NET_TX: &str = "pitstop_host_network_transmit_bytes_total";
pub const PG_PROCESSES: &str = "pitstop_postgres_processes";
pub const PG_RSS: &str = "pitstop_postgres_process_resident_bytes";
pub const PG_CPU: &str = "pitstop_postgres_process_cpu_usage_ratio";
pub const DAEMON_RSS: &str = "pitstop_daemon_resident_bytes";
pub const DAEMON_CPU: &str = "pitstop_daemon_cpu_usage_ratio";
pub const GROWTH: &str = "pitstop_process_memory_growth_bytes_per_second";
pub const CONNECTIONS: &str = "pitstop_postgres_connections";
pub const MAX_CONNECTIONS: &str = "pitstop_postgres_max_connections";
pub const CONNECTIONS_RATIO: &str = "pitstop_postgres_connections_used_ratio";
pub const TRANSACTIONS: &str = "pitstop_postgres_transactions_total";
pub const BLOCKS_HIT: &str = "pitstop_postgres_blocks_hit_total";
pub const BLOCKS_READ: &str = "pitstop_postgres_blocks_read_total";
pub const TPS: &str = "pitstop_postgres_transactions_per_second";
pub const CACHE_HIT: &str = "pitstop_postgres_cache_hit_ratio";
pub const DEADLOCKS: &str = "pitstop_postgres_deadlocks_total";
pub const TEMP_BYTES: &str = "pitstop_postgres_temp_bytes_total";
pub const REPLICATION_LAG: &str = "pitstop_postgres_replication_lag_seconds";
pub const LONGEST_XACT: &str = "pitstop_postgres_longest_transaction_seconds";
pub const XID_AGE: &str = "pitstop_postgres_xid_age";
pub const XID_RATIO: &str = "pitstop_postgres_xid_wraparound_ratio";

/// The sampled families, in `/metrics` order.
pub const FAMILIES: &[Family] = &[
    family(CPU, Gauge, Host, "CPU time in use over the last sample interval, all cores (0-1)."),
    family(CPU_CORE, Gauge, Host, "CPU time in use over the last sample interval, per core (0-1)."),
    family(LOAD1, Gauge, Host, "Load average over 1 minute."),
    family(LOAD5, Gauge, Host, "Load average over 5 minutes."),
    family(LOAD15, Gauge, Host, "Load average over 15 minutes."),
    family(MEM_TOTAL, Gauge, Host, "Physical memory."),
    family(MEM_USED, Gauge, Host, "Physical memory in use (total minus available)."),
    family(MEM_AVAILABLE, Gauge, Host, "Physical memory available to new work without swapping."),
    family(MEM_RATIO, Gauge, Host, "Share of physical memory in use (0-1)."),
    family(SWAP_TOTAL, Gauge, Host, "Swap space."),
    family(SWAP_USED, Gauge, Host, "Swap space in use."),
    family(SWAP_RATIO, Gauge, Host, "Share of swap space in use (0-1; 0 without swap)."),
    family(DISK_TOTAL, Gauge, Host, "Size of each mounted file system (pseudo file systems left out)."),
    family(DISK_USED, Gauge, Host, "Space in use on each mounted file system (total minus available)."),
    family(DISK_RATIO, Gauge, Host, "Share of each mounted file system in use (0-1)."),
    family(DISK_READ, Counter, Host, "Bytes read from the device of each mounted file system, where the platform tells."),
    family(DISK_WRITTEN, Counter, Host, "Bytes written to the device of each mounted file system, where the platform tells."),
    family(NET_RX, Counter, Host, "Bytes received per network interface (loopback left out)."),
    family(NET_TX, Counter, Host, "Bytes sent per network interface (loopback left out)."),
    family(PG_PROCESSES, Gauge, Host, "Processes of the monitored PostgreSQL server (postmaster and children) on this host."),
    family(PG_RSS, Gauge, Host, "Resident memory of the PostgreSQL processes, summed (shared memory counted in each process that touched it)."),
    family(PG_CPU, Gauge, Host, "CPU used by the PostgreSQL processes over the last interval (1 = one core busy)."),
    family(DAEMON_RSS, Gauge, Host, "Resident memory of this pitstop daemon."),
    family(DAEMON_CPU, Gauge, Host, "CPU used by this pitstop daemon over the last interval (1 = one core busy)."),
    family(GROWTH, Gauge, Host, "Sustained resident-memory growth (least-squares slope, bytes per second) of processes the growth detector flags."),
    family(CONNECTIONS, Gauge, Postgres, "Client connections by state (pg_stat_activity)."),
    family(MAX_CONNECTIONS, Gauge, Postgres, "The server's max_connections."),
    family(CONNECTIONS_RATIO, Gauge, Postgres, "Client connections as a share of max_connections (0-1)."),
    family(TRANSACTIONS, Counter, Postgres, "Transactions committed and rolled back, all databases (pg_stat_database)."),
    family(BLOCKS_HIT, Counter, Postgres, "Block reads served from shared buffers, all databases (pg_stat_database)."),
    family(BLOCKS_READ, Counter, Postgres, "Block reads that missed shared buffers, all databases (pg_stat_database)."),
    derived(TPS, "Transactions (commits and rollbacks, all databases) per second over the last interval."),
    derived(CACHE_HIT, "Share of block reads served from shared buffers over the last interval (0-1)."),
    family(DEADLOCKS, Counter, Postgres, "Deadlocks detected, all databases (pg_stat_database)."),
    family(TEMP_BYTES, Counter, Postgres, "Bytes written to temporary files, all databases (pg_stat_database)."),
    family(REPLICATION_LAG, Gauge, Postgres, "On a standby: age of the last replayed transaction (0 when caught up); on a primary: the largest replay lag of its standbys."),
    family(LONGEST_XACT, Gauge, Postgres, "Age of the oldest open transaction of a client backend."),
    family(XID_AGE, Gauge, Postgres, "Age in transactions of the oldest datfrozenxid."),
    family(XID_RATIO, Gauge, Postgres, "Oldest datfrozenxid age as a share of the 2^31 transactions to wraparound (0-1)."),
];

/// The extension's signals (`extension`), read through its SQL functions and views: counters
/// since the server started (or the extension's own reset), gauges per database at most.
pub const EXTENSION_FAMILIES: &[Family] = &[
    family("pitstop_cache_hits_total", Counter, Postgres, "Result cache lookups answered from the cache (pitstop.cache_stats)."),
    family("pitstop_cache_misses_total", Counter, Postgres, "Result cache lookups that found no usable entry."),
    family("pitstop_cache_fills_total", Counter, Postgres, "Results stored in the result cache."),
    family("pitstop_cache_invalidations_total", Counter, Postgres, "cache_invalidate calls and transactions whose DDL made every entry stale."),
    family("pitstop_cache_stale_total", Counter, Postgres, "Lookups that found an entry gone stale."),
    family("pitstop_cache_evictions_total", Counter, Postgres, "Entries evicted to make room."),
    family("pitstop_cache_bypasses_total", Counter, Postgres, "Calls that ran their query without the cache, by reason."),
    family("pitstop_cache_ttl_only_calls_total", Counter, Postgres, "Calls answered under pitstop.cache_replica_ttl_only."),
    family("pitstop_cache_entries", Gauge, Postgres, "Entries in the result cache."),
    family("pitstop_cache_used_bytes", Gauge, Postgres, "Shared memory the result cache's entries use."),
    family("pitstop_cache_size_bytes", Gauge, Postgres, "Shared memory of the result cache (pitstop.cache_size)."),
    family("pitstop_slow_queries_captured_total", Counter, Postgres, "Slow statements captured (pitstop.slow_query_stats)."),
    family("pitstop_slow_queries_capture_failures_total", Counter, Postgres, "Slow statement captures that failed."),
    family("pitstop_slow_queries_dropped_total", Counter, Postgres, "Slow statements not captured because the ring was busy."),
    family("pitstop_slow_queries_plans_too_large_total", Counter, Postgres, "Slow statements whose plan was too large to keep."),
    family("pitstop_slow_queries_entries", Gauge, Postgres, "Entries in the slow statement ring."),
    family("pitstop_slow_queries_capacity", Gauge, Postgres, "Entries the slow statement ring holds (pitstop.slow_query_buffer)."),
    family("pitstop_latency_statements", Gauge, Postgres, "Statements in the latency table (pitstop.latency_stats)."),
    family("pitstop_latency_capacity", Gauge, Postgres, "Slots of the latency table (pitstop.latency_max_statements)."),
    family("pitstop_latency_recorded_total", Counter, Postgres, "Calls the latency histograms hold (reset by query_latency_reset)."),
    family("pitstop_latency_evictions_total", Counter, Postgres, "Statements evicted from the latency table."),
    family("pitstop_latency_missed_samples_total", Counter, Postgres, "Calls not recorded because their latency slot was busy."),
    family("pitstop_latency_no_queryid_total", Counter, Postgres, "Top-level statements without a query identifier (not recorded)."),
    family("pitstop_maintenance_runs_total", Counter, Postgres, "Finished maintenance runs in pitstop.maintenance_log, by outcome (drops when the log is pruned)."),
    family("pitstop_maintenance_runs_running", Gauge, Postgres, "Maintenance runs in progress."),
    family("pitstop_maintenance_actions_total", Counter, Postgres, "Attempts of maintenance actions in pitstop.maintenance_log, by outcome."),
    family("pitstop_maintenance_last_success_timestamp_seconds", Gauge, Postgres, "Start of the latest successful maintenance run since the Unix epoch."),
    family("pitstop_vacuum_tables", Gauge, Postgres, "Tables of the daemon's database by vacuum status (pitstop.vacuum_health)."),
    family("pitstop_vacuum_dead_tuples", Gauge, Postgres, "Dead tuples in the tables of the daemon's database."),
    family("pitstop_vacuum_live_tuples", Gauge, Postgres, "Live tuples in the tables of the daemon's database."),
    family("pitstop_database_xid_age", Gauge, Postgres, "Age in transactions of each database's datfrozenxid (pitstop.database_wraparound)."),
    family("pitstop_database_xid_wraparound_ratio", Gauge, Postgres, "Each database's datfrozenxid age as a share of the way to wraparound (0-1)."),
    family("pitstop_database_mxid_age", Gauge, Postgres, "Age in multixacts of each database's datminmxid."),
    family("pitstop_database_mxid_wraparound_ratio", Gauge, Postgres, "Each database's datminmxid age as a share of the way to wraparound (0-1)."),
    family("pitstop_bloat_relations", Gauge, Postgres, "Tables and btree indexes of the daemon's database bloated by at least 20 % and 10 MB, by kind (pitstop.table_bloat)."),
    family("pitstop_bloat_bytes", Gauge, Postgres, "Estimated bloat of those relations, by kind."),
    family("pitstop_bloat_size_bytes", Gauge, Postgres, "Size of those relations, by kind."),
    family("pitstop_extension_source_up", Gauge, Postgres, "1 when the daemon's last read of an extension source worked, by source."),
    family("pitstop_extension_scrape_errors_total", Counter, Postgres, "Failed reads of an extension source (no rights, timeout, missing preload), by source."),
];

pub fn family_of(name: &str) -> Option<&'static Family> {
    FAMILIES.iter().find(|f| f.name == name)
}

/// How a rule's value is computed from a family's samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Combine {
    /// Each label set is its own alert (`disk_percent` per mount).
    Each,
    /// The matching samples' sum is one value without labels (`connections`).
    Sum,
}

/// A metric alert rules may name.
pub struct RuleMetric {
    pub name: &'static str,
    pub family: &'static str,
    /// The family's value times this (ratios shown as percentages).
    pub scale: f64,
    pub combine: Combine,
}

const fn rule_metric(
    name: &'static str,
    family: &'static str,
    scale: f64,
    combine: Combine,
) -> RuleMetric {
    RuleMetric { name, family, scale, combine }
}

pub const PROCESS_MEMORY_GROWTH: &str = "process_memory_growth";

pub const RULE_METRICS: &[RuleMetric] = &[
    rule_metric("cpu_percent", CPU, 100.0, Combine::Each),
    rule_metric("load1", LOAD1, 1.0, Combine::Each),
    rule_metric("memory_percent", MEM_RATIO, 100.0, Combine::Each),
    rule_metric("swap_percent", SWAP_RATIO, 100.0, Combine::Each),
    rule_metric("disk_percent", DISK_RATIO, 100.0, Combine::Each),
    rule_metric("postgres_rss_bytes", PG_RSS, 1.0, Combine::Each),
    rule_metric("connections", CONNECTIONS, 1.0, Combine::Sum),
    rule_metric("connections_percent", CONNECTIONS_RATIO, 100.0, Combine::Each),
    rule_metric("transactions_per_second", TPS, 1.0, Combine::Each),
    rule_metric("cache_hit_percent", CACHE_HIT, 100.0, Combine::Each),
    rule_metric("longest_transaction_seconds", LONGEST_XACT, 1.0, Combine::Each),
    rule_metric("replication_lag_seconds", REPLICATION_LAG, 1.0, Combine::Each),
    rule_metric("xid_age", XID_AGE, 1.0, Combine::Each),
    rule_metric("xid_wraparound_percent", XID_RATIO, 100.0, Combine::Each),
    // Rules keep their threshold in bytes per hour.
    rule_metric(PROCESS_MEMORY_GROWTH, GROWTH, 3600.0, Combine::Each),
];

pub fn rule_metric_of(name: &str) -> Option<&'static RuleMetric> {
    RULE_METRICS.iter().find(|m| m.name == name)
}

pub fn rule_metric_names() -> Vec<&'static str> {
    RULE_METRICS.iter().map(|m| m.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_prometheus_names_with_units_and_rules_point_at_families() {
        let all: Vec<&Family> = FAMILIES.iter().chain(EXTENSION_FAMILIES).collect();
        for (i, f) in all.iter().enumerate() {
            assert!(
                f.name.starts_with("pitstop_")
                    && f.name
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{}",
                f.name
            );
            assert_eq!(
                f.kind == Kind::Counter,
                f.name.ends_with("_total"),
                "{}: counters and only counters end in _total",
                f.name
            );
            assert!(!all[..i].iter().any(|g| g.name == f.name), "{} twice", f.name);
            if f.exported {
                // Base units only, and no rate the daemon computed: Prometheus takes rate() itself.
                for bad in [
                    "_per_hour",
                    "_per_minute",
                    "_per_second",
                    "_percent",
                    "_milliseconds",
                    "_ms",
                    "_kb",
                    "_mb",
                    "_hours",
                    "_minutes",
                ] {
                    let whole = f.name.ends_with(bad) || f.name.contains(&format!("{bad}_"));
                    assert!(
                        !whole || bad == "_per_second" && f.name == GROWTH,
                        "{}: {bad} is not a base unit",
                        f.name
                    );
                }
            }
        }
        for m in RULE_METRICS {
            assert!(family_of(m.family).is_some(), "{} points at no family", m.name);
        }
    }

    /// contrib/prometheus/pitstop-rules.yml says what the built-in rules say, in /metrics' terms.
    #[test]
    fn the_prometheus_rules_file_mirrors_the_built_in_alert_rules() {
        use crate::config::monitor::Comparison;
        let rules_file = include_str!("../../../contrib/prometheus/pitstop-rules.yml");
        let config = crate::config::Config::parse("", "pitstop.toml", Default::default()).unwrap();
        assert!(config.alerts.rules.len() >= 7);
        let prom_duration = |d: std::time::Duration| match d.as_secs() {
            s if s > 0 && s % 3600 == 0 => format!("{}h", s / 3600),
            s if s > 0 && s % 60 == 0 => format!("{}m", s / 60),
            s => format!("{s}s"),
        };
        for rule in &config.alerts.rules {
            let start = rules_file
                .find(&format!("- alert: {}\n", rule.name))
                .unwrap_or_else(|| panic!("no alert {}", rule.name));
            let block = &rules_file[start..];
            let block = &block[..block[2..].find("- alert:").map_or(block.len(), |e| e + 2)];
            let metric = rule_metric_of(&rule.metric).unwrap();
            assert!(
                family_of(metric.family).unwrap().exported,
                "{}: {} is not on /metrics",
                rule.name,
                metric.family
            );
            let op = match rule.comparison {
                Comparison::Above => ">",
                Comparison::AtLeast => ">=",
                Comparison::Below => "<",
                Comparison::AtMost => "<=",
            };
            let expr = format!("expr: {} {op} {}\n", metric.family, rule.threshold / metric.scale);
            assert!(block.contains(&expr), "{}: wants {expr:?} in\n{block}", rule.name);
            assert!(
                block.contains(&format!("for: {}\n", prom_duration(rule.for_))),
                "{}: for {:?} in\n{block}",
                rule.name,
                rule.for_
            );
            assert!(
                block.contains(&format!("severity: {}\n", rule.severity.as_str())),
                "{}: severity in\n{block}",
                rule.name
            );
        }
        assert_eq!(
            rules_file.matches("- alert: ").count(),
            config.alerts.rules.len(),
            "an alert the daemon does not have"
        );
    }
}
