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
}

const fn family(name: &'static str, kind: Kind, source: Source, help: &'static str) -> Family {
    Family { name, kind, source, help }
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
pub const GROWTH: &str = "pitstop_process_memory_growth_bytes_per_hour";
pub const CONNECTIONS: &str = "pitstop_postgres_connections";
pub const MAX_CONNECTIONS: &str = "pitstop_postgres_max_connections";
pub const CONNECTIONS_RATIO: &str = "pitstop_postgres_connections_used_ratio";
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
    family(GROWTH, Gauge, Host, "Sustained resident-memory growth (least-squares slope) of processes the growth detector flags."),
    family(CONNECTIONS, Gauge, Postgres, "Client connections by state (pg_stat_activity)."),
    family(MAX_CONNECTIONS, Gauge, Postgres, "The server's max_connections."),
    family(CONNECTIONS_RATIO, Gauge, Postgres, "Client connections as a share of max_connections (0-1)."),
    family(TPS, Gauge, Postgres, "Transactions (commits and rollbacks, all databases) per second over the last interval."),
    family(CACHE_HIT, Gauge, Postgres, "Share of block reads served from shared buffers over the last interval (0-1)."),
    family(DEADLOCKS, Counter, Postgres, "Deadlocks detected, all databases (pg_stat_database)."),
    family(TEMP_BYTES, Counter, Postgres, "Bytes written to temporary files, all databases (pg_stat_database)."),
    family(REPLICATION_LAG, Gauge, Postgres, "On a standby: age of the last replayed transaction (0 when caught up); on a primary: the largest replay lag of its standbys."),
    family(LONGEST_XACT, Gauge, Postgres, "Age of the oldest open transaction of a client backend."),
    family(XID_AGE, Gauge, Postgres, "Age in transactions of the oldest datfrozenxid."),
    family(XID_RATIO, Gauge, Postgres, "Oldest datfrozenxid age as a share of the 2^31 transactions to wraparound (0-1)."),
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

const fn rule_metric(name: &'static str, family: &'static str, scale: f64, combine: Combine) -> RuleMetric {
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
    rule_metric(PROCESS_MEMORY_GROWTH, GROWTH, 1.0, Combine::Each),
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
        for (i, f) in FAMILIES.iter().enumerate() {
            assert!(f.name.starts_with("pitstop_") && f.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'), "{}", f.name);
            assert_eq!(f.kind == Kind::Counter, f.name.ends_with("_total"), "{}: counters and only counters end in _total", f.name);
            assert!(!FAMILIES[..i].iter().any(|g| g.name == f.name), "{} twice", f.name);
        }
        for m in RULE_METRICS {
            assert!(family_of(m.family).is_some(), "{} points at no family", m.name);
        }
    }
}
