//! The settings `pitstop.config_advice(workload)` suggests, from the host (RAM, cores, disk
//! kind) and the live server (connections, database size, temp spills, checkpoint causes). Pure
//! formulas in the spirit of PGTune, each with the reason a DBA can check; `health::host` reads
//! the host. The SQL function is `config_advice` in the extension's `health/sql.rs`, which
//! reads the server through `health/read.rs`.

use crate::health::human_bytes;

const KB: f64 = 1024.0;
const MB: f64 = 1024.0 * KB;
const GB: f64 = 1024.0 * MB;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// Many short queries from an application, mostly reads.
    Web,
    /// Many short read-write transactions.
    Oltp,
    /// Few large analytic queries over big tables.
    Dw,
    Mixed,
}

/// A workload name `Workload::parse` does not know (the extension raises it with SQLSTATE 22023).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownWorkload(pub String);

impl Workload {
    pub fn parse(given: &str) -> Result<Self, UnknownWorkload> {
        match given.trim().to_ascii_lowercase().as_str() {
            "web" => Ok(Workload::Web),
            "oltp" => Ok(Workload::Oltp),
            "dw" => Ok(Workload::Dw),
            "mixed" => Ok(Workload::Mixed),
            _ => Err(UnknownWorkload(given.to_string())),
        }
    }

    fn label(self) -> &'static str {
        match self {
            Workload::Web => "web",
            Workload::Oltp => "oltp",
            Workload::Dw => "dw",
            Workload::Mixed => "mixed",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disk {
    Ssd,
    Hdd,
    /// Could not tell (containers, network storage): treated as an SSD.
    Unknown,
}

/// What the host offers to this server.
#[derive(Clone, Debug, PartialEq)]
pub struct Host {
    pub ram_bytes: f64,
    pub cores: u32,
    pub disk: Disk,
    /// How the RAM was found, e.g. "15.6 GB of RAM" or "a 2.0 GB cgroup limit (the host has 16.0 GB)".
    pub ram_note: String,
    /// How the disk kind was found, e.g. "/var/lib/postgresql is on a non-rotational disk (8:0)".
    pub disk_note: String,
}

/// What the live server shows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Server {
    pub max_connections: f64,
    /// All databases together.
    pub database_bytes: f64,
    /// pg_stat_database, all databases, since their statistics were reset.
    pub temp_files: f64,
    pub temp_bytes: f64,
    /// pg_stat_bgwriter (pg_stat_checkpointer from PostgreSQL 17).
    pub checkpoints_timed: f64,
    pub checkpoints_req: f64,
    /// When the checkpoint counters were last reset, for the reason text.
    pub checkpoint_stats_since: String,
    /// The current max_wal_size, in MB.
    pub max_wal_size_mb: f64,
}

/// A suggested value, in the setting's kind.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    /// Memory, in kB.
    Kb(f64),
    /// Time, in ms.
    Ms(f64),
    Number(f64),
}

impl Value {
    /// As SHOW prints it: the largest unit that divides the value exactly. ALTER SYSTEM accepts it.
    pub fn show(self) -> String {
        fn largest(value: f64, units: &[(&str, f64)]) -> String {
            let (unit, size) = units
                .iter()
                .find(|(_, size)| value >= *size && value % size == 0.0)
                .unwrap_or(units.last().unwrap());
            format!("{}{unit}", value / size)
        }
        match self {
            Value::Kb(kb) => {
                largest(kb.round(), &[("TB", GB), ("GB", MB), ("MB", KB), ("kB", 1.0)])
            }
            Value::Ms(ms) => largest(
                ms.round(),
                &[
                    ("d", 86_400_000.0),
                    ("h", 3_600_000.0),
                    ("min", 60_000.0),
                    ("s", 1000.0),
                    ("ms", 1.0),
                ],
            ),
            Value::Number(n) => format!("{n}"),
        }
    }

    /// The value in the unit pg_settings reports the setting in (its `unit` column).
    pub fn in_unit(self, unit: Option<&str>) -> f64 {
        match (self, unit) {
            (Value::Kb(kb), Some("8kB")) => kb / 8.0,
            (Value::Kb(kb), Some("MB")) => kb / KB,
            (Value::Ms(ms), Some("s")) => ms / 1000.0,
            (Value::Ms(ms), Some("min")) => ms / 60_000.0,
            (Value::Kb(v) | Value::Ms(v) | Value::Number(v), _) => v,
        }
    }
}

/// One suggestion before it meets pg_settings.
#[derive(Clone, Debug, PartialEq)]
pub struct Advice {
    pub name: &'static str,
    pub value: Value,
    pub reason: String,
}

/// A setting as pg_settings shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct CurrentSetting {
    /// pg_settings.setting, in `unit`.
    pub setting: String,
    pub unit: Option<String>,
    /// pg_settings.context ('postmaster' needs a restart).
    pub context: String,
    /// As SHOW prints it (`current_setting(name)`).
    pub shown: String,
}

/// One row of config_advice.
#[derive(Clone, Debug, PartialEq)]
pub struct AdviceRow {
    pub name: String,
    pub current: String,
    pub suggested: String,
    pub unit: Option<String>,
    pub reason: String,
    pub restart_required: bool,
    pub differs: bool,
}

pub fn row(advice: &Advice, current: &CurrentSetting) -> AdviceRow {
    let wanted = advice.value.in_unit(current.unit.as_deref());
    let differs = match current.setting.trim().parse::<f64>() {
        Ok(now) => (now - wanted).abs() > 1e-9 * wanted.abs().max(1.0),
        Err(_) => current.setting != advice.value.show(),
    };
    AdviceRow {
        name: advice.name.to_string(),
        current: current.shown.clone(),
        suggested: advice.value.show(),
        unit: current.unit.clone(),
        reason: advice.reason.clone(),
        restart_required: current.context == "postmaster",
        differs,
    }
}

/// Whole megabytes (as kB), at least `floor_mb`.
fn mb_kb(bytes: f64, floor_mb: f64) -> f64 {
    (bytes / MB).floor().max(floor_mb) * KB
}

fn shared_buffers(host: &Host) -> (f64, String) {
    let bytes = (host.ram_bytes * 0.25).clamp(32.0 * MB, 32.0 * GB);
    let capped = host.ram_bytes * 0.25 > 32.0 * GB;
    let reason = if capped {
        format!("25% of {} capped at 32 GB: beyond that the OS cache serves better and checkpoints write more", host.ram_note)
    } else {
        format!("25% of {}; the OS cache (effective_cache_size) holds the rest", host.ram_note)
    };
    (mb_kb(bytes, 32.0), reason)
}

/// Workers one query may use under a Gather node.
fn workers_per_gather(workload: Workload, cores: u32) -> f64 {
    let half = f64::from(cores / 2);
    match workload {
        Workload::Web | Workload::Oltp => half.min(2.0),
        Workload::Mixed => half.min(4.0),
        Workload::Dw => half.min(8.0),
    }
}

fn work_mem(workload: Workload, host: &Host, server: &Server, shared_kb: f64) -> Advice {
    let connections = server.max_connections.max(1.0);
    let budget = (host.ram_bytes - shared_kb * KB).max(0.0) / connections;
    // Sort and hash nodes a query runs at once, per connection, on average.
    let (share, why) = match workload {
        Workload::Web | Workload::Oltp => {
            (0.25, "short queries rarely sort much; 1/4 of each connection's share")
        }
        Workload::Mixed => (0.5, "half of each connection's share"),
        Workload::Dw => (1.0, "few large queries; each connection's whole share"),
    };
    let per_gather = workers_per_gather(workload, host.cores).max(1.0);
    let mut bytes = (budget * share / per_gather).clamp(4.0 * MB, 2.0 * GB);
    let mut reason = format!(
        "(RAM - shared_buffers) / {connections} max_connections = {}; {why}",
        human_bytes(budget)
    );
    if per_gather > 1.0 {
        reason
            .push_str(&format!(", split among the {per_gather} parallel workers a query may use"));
    }
    if server.temp_files > 0.0 {
        let average = server.temp_bytes / server.temp_files;
        reason.push_str(&format!(
            "; {} temp files averaging {} were written since statistics were reset",
            server.temp_files,
            human_bytes(average)
        ));
        if matches!(workload, Workload::Dw | Workload::Mixed) && average > bytes {
            bytes = (bytes * 2.0).min(budget.max(4.0 * MB));
            reason.push_str(", so doubled within the connection budget");
        }
        reason.push_str("; for the heaviest queries prefer SET work_mem per role or session");
    }
    Advice { name: "work_mem", value: Value::Kb(mb_kb(bytes, 4.0)), reason }
}

fn wal_sizes(workload: Workload, server: &Server) -> (Advice, Advice) {
    let (min_gb, max_gb) = match workload {
        Workload::Web | Workload::Mixed => (1.0, 4.0),
        Workload::Oltp => (2.0, 8.0),
        Workload::Dw => (4.0, 16.0),
    };
    let mut max_mb = max_gb * KB;
    let mut reason = format!("{} workload default", workload.label());
    let total = server.checkpoints_timed + server.checkpoints_req;
    if total >= 10.0 && server.checkpoints_req > server.checkpoints_timed {
        max_mb = max_mb.max(server.max_wal_size_mb * 2.0).min(64.0 * KB);
        reason = format!(
            "{} of {} checkpoints since {} were requested (WAL filled max_wal_size before checkpoint_timeout): \
             at least twice the current size; reset the counters after changing it",
            server.checkpoints_req, total, server.checkpoint_stats_since
        );
    } else if total > 0.0 {
        reason.push_str(&format!(
            "; {} of {} checkpoints since {} were requested, most came from checkpoint_timeout",
            server.checkpoints_req, total, server.checkpoint_stats_since
        ));
    }
    (
        Advice {
            name: "min_wal_size",
            value: Value::Kb(min_gb * MB),
            reason: "WAL kept for reuse between checkpoints; smooths bursts".into(),
        },
        Advice { name: "max_wal_size", value: Value::Kb(max_mb * KB), reason },
    )
}

/// Every suggestion for this host, server and workload.
pub fn advise(workload: Workload, host: &Host, server: &Server) -> Vec<Advice> {
    let cores = host.cores.max(1);
    let ssd = host.disk != Disk::Hdd;
    let (shared_kb, shared_reason) = shared_buffers(host);
    let cache_kb = mb_kb(host.ram_bytes * 0.75, 64.0);
    let maintenance_kb = mb_kb((host.ram_bytes / 16.0).clamp(64.0 * MB, 2.0 * GB), 64.0);
    let wal_buffers_kb = ((shared_kb / 32.0).clamp(64.0, 16.0 * KB) / 8.0).floor() * 8.0;
    let per_gather = workers_per_gather(workload, cores);
    let (min_wal, max_wal) = wal_sizes(workload, server);
    let disk = &host.disk_note;
    let random_page_cost = if ssd {
        (1.1, format!("{disk}: random reads cost about as much as sequential ones"))
    } else if server.database_bytes < cache_kb * KB {
        (
            2.0,
            format!(
                "{disk}, but the databases ({}) fit in the cache",
                human_bytes(server.database_bytes)
            ),
        )
    } else {
        (
            4.0,
            format!(
                "{disk}: seeks are expensive and the databases ({}) exceed the cache",
                human_bytes(server.database_bytes)
            ),
        )
    };
    let (vacuum_scale, analyze_scale, naptime_ms, churn) = match workload {
        Workload::Web | Workload::Oltp => {
            (0.05, 0.02, 30_000.0, "frequent updates: vacuum and analyze large tables sooner")
        }
        Workload::Mixed => {
            (0.1, 0.05, 60_000.0, "vacuum and analyze large tables sooner than the defaults")
        }
        Workload::Dw => (0.2, 0.1, 60_000.0, "bulk loads, few updates: the defaults suffice"),
    };
    vec![
        Advice { name: "shared_buffers", value: Value::Kb(shared_kb), reason: shared_reason },
        Advice {
            name: "effective_cache_size",
            value: Value::Kb(cache_kb),
            reason: format!("75% of {}: what shared_buffers and the OS cache hold together (planner estimate only)", host.ram_note),
        },
        work_mem(workload, host, server, shared_kb),
        Advice {
            name: "maintenance_work_mem",
            value: Value::Kb(maintenance_kb),
            reason: "RAM / 16, at most 2 GB: faster VACUUM and CREATE INDEX; each autovacuum worker may use as much".into(),
        },
        Advice {
            name: "wal_buffers",
            value: Value::Kb(wal_buffers_kb),
            reason: "1/32 of shared_buffers, at most 16 MB (what -1 picks): enough for bursts of WAL".into(),
        },
        min_wal,
        max_wal,
        Advice {
            name: "checkpoint_completion_target",
            value: Value::Number(0.9),
            reason: "spread checkpoint writes over 90% of the interval".into(),
        },
        Advice { name: "random_page_cost", value: Value::Number(random_page_cost.0), reason: random_page_cost.1 },
        Advice {
            name: "effective_io_concurrency",
            value: Value::Number(if ssd { 200.0 } else { 2.0 }),
            reason: format!("{disk}: {}", if ssd { "many concurrent reads in flight" } else { "about one read in flight per spindle" }),
        },
        Advice {
            name: "max_worker_processes",
            value: Value::Number(f64::from(cores).max(8.0)),
            reason: format!("{cores} cores, at least the default 8 (parallel workers, logical replication, extensions)"),
        },
        Advice {
            name: "max_parallel_workers",
            value: Value::Number(f64::from(cores)),
            reason: format!("one per core ({cores})"),
        },
        Advice {
            name: "max_parallel_workers_per_gather",
            value: Value::Number(per_gather),
            reason: format!("{} workload on {cores} cores: half the cores, at most {}", workload.label(), match workload {
                Workload::Web | Workload::Oltp => 2,
                Workload::Mixed => 4,
                Workload::Dw => 8,
            }),
        },
        Advice {
            name: "max_parallel_maintenance_workers",
            value: Value::Number(f64::from(cores / 2).min(4.0)),
            reason: "half the cores, at most 4 (parallel CREATE INDEX and VACUUM)".into(),
        },
        Advice {
            name: "autovacuum_max_workers",
            value: Value::Number(f64::from(cores / 2).clamp(3.0, 6.0)),
            reason: format!("{cores} cores: half of them, between 3 and 6"),
        },
        Advice {
            name: "autovacuum_vacuum_cost_limit",
            value: Value::Number(if ssd { 2000.0 } else { 400.0 }),
            reason: format!(
                "{disk}: the default (200, shared by all workers) throttles autovacuum {}",
                if ssd { "far below what the disk can take" } else { "more than needed" }
            ),
        },
        Advice { name: "autovacuum_naptime", value: Value::Ms(naptime_ms), reason: format!("{} workload", workload.label()) },
        Advice { name: "autovacuum_vacuum_scale_factor", value: Value::Number(vacuum_scale), reason: churn.into() },
        Advice { name: "autovacuum_analyze_scale_factor", value: Value::Number(analyze_scale), reason: churn.into() },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(ram_gb: f64, cores: u32, disk: Disk) -> Host {
        Host {
            ram_bytes: ram_gb * GB,
            cores,
            disk,
            ram_note: format!("{ram_gb} GB of RAM"),
            disk_note: "the disk".into(),
        }
    }

    fn server() -> Server {
        Server {
            max_connections: 100.0,
            database_bytes: 50.0 * GB,
            max_wal_size_mb: 1024.0,
            ..Server::default()
        }
    }

    fn shown(advice: &[Advice], name: &str) -> String {
        advice.iter().find(|a| a.name == name).unwrap_or_else(|| panic!("no {name}")).value.show()
    }

    #[test]
    fn workloads_parse_and_unknown_ones_are_errors() {
        assert_eq!(Workload::parse("OLTP").unwrap(), Workload::Oltp);
        assert_eq!(Workload::parse(" dw ").unwrap(), Workload::Dw);
        assert_eq!(Workload::parse("batch"), Err(UnknownWorkload("batch".into())));
    }

    #[test]
    fn oltp_on_16_gb_4_cores_ssd() {
        let a = advise(Workload::Oltp, &host(16.0, 4, Disk::Ssd), &server());
        assert_eq!(shown(&a, "shared_buffers"), "4GB");
        assert_eq!(shown(&a, "effective_cache_size"), "12GB");
        // (16 GB - 4 GB) / 100 connections / 4 / 2 workers = 15.36 MB.
        assert_eq!(shown(&a, "work_mem"), "15MB");
        assert_eq!(shown(&a, "maintenance_work_mem"), "1GB");
        assert_eq!(shown(&a, "wal_buffers"), "16MB");
        assert_eq!(shown(&a, "min_wal_size"), "2GB");
        assert_eq!(shown(&a, "max_wal_size"), "8GB");
        assert_eq!(shown(&a, "random_page_cost"), "1.1");
        assert_eq!(shown(&a, "effective_io_concurrency"), "200");
        assert_eq!(shown(&a, "max_worker_processes"), "8");
        assert_eq!(shown(&a, "max_parallel_workers"), "4");
        assert_eq!(shown(&a, "max_parallel_workers_per_gather"), "2");
        assert_eq!(shown(&a, "autovacuum_max_workers"), "3");
        assert_eq!(shown(&a, "autovacuum_naptime"), "30s");
        assert_eq!(shown(&a, "autovacuum_vacuum_scale_factor"), "0.05");
        assert_eq!(shown(&a, "checkpoint_completion_target"), "0.9");
    }

    #[test]
    fn dw_on_2_gb_1_core_hdd() {
        let a = advise(Workload::Dw, &host(2.0, 1, Disk::Hdd), &server());
        assert_eq!(shown(&a, "shared_buffers"), "512MB");
        assert_eq!(shown(&a, "effective_cache_size"), "1536MB");
        // (2 GB - 512 MB) / 100, no parallel workers on one core: 15.36 MB.
        assert_eq!(shown(&a, "work_mem"), "15MB");
        assert_eq!(shown(&a, "maintenance_work_mem"), "128MB");
        assert_eq!(shown(&a, "wal_buffers"), "16MB");
        assert_eq!(shown(&a, "max_wal_size"), "16GB");
        assert_eq!(
            shown(&a, "random_page_cost"),
            "4",
            "50 GB of data does not fit 1.5 GB of cache"
        );
        assert_eq!(shown(&a, "effective_io_concurrency"), "2");
        assert_eq!(shown(&a, "max_parallel_workers_per_gather"), "0");
        assert_eq!(shown(&a, "max_parallel_maintenance_workers"), "0");
        assert_eq!(shown(&a, "max_parallel_workers"), "1");
        assert_eq!(shown(&a, "autovacuum_vacuum_cost_limit"), "400");
        assert_eq!(shown(&a, "autovacuum_naptime"), "1min");
    }

    #[test]
    fn small_databases_on_hdd_are_mostly_cached() {
        let small = Server { database_bytes: 100.0 * MB, ..server() };
        let a = advise(Workload::Mixed, &host(8.0, 2, Disk::Hdd), &small);
        assert_eq!(shown(&a, "random_page_cost"), "2");
    }

    #[test]
    fn huge_ram_is_capped_where_more_does_not_help() {
        let a = advise(
            Workload::Web,
            &host(1024.0, 64, Disk::Ssd),
            &Server { max_connections: 500.0, ..server() },
        );
        assert_eq!(shown(&a, "shared_buffers"), "32GB");
        assert_eq!(shown(&a, "effective_cache_size"), "768GB");
        assert_eq!(shown(&a, "maintenance_work_mem"), "2GB");
        assert_eq!(shown(&a, "max_worker_processes"), "64");
        assert_eq!(shown(&a, "max_parallel_workers_per_gather"), "2");
        assert_eq!(shown(&a, "autovacuum_max_workers"), "6");
        let dw = advise(
            Workload::Dw,
            &host(1024.0, 64, Disk::Ssd),
            &Server { max_connections: 10.0, ..server() },
        );
        assert_eq!(shown(&dw, "work_mem"), "2GB", "capped");
        assert_eq!(shown(&dw, "max_parallel_workers_per_gather"), "8");
    }

    #[test]
    fn web_and_mixed_split_memory_differently() {
        let h = host(16.0, 4, Disk::Unknown);
        let web = advise(Workload::Web, &h, &server());
        let mixed = advise(Workload::Mixed, &h, &server());
        assert_eq!(shown(&web, "work_mem"), "15MB");
        assert_eq!(shown(&mixed, "work_mem"), "30MB");
        assert_eq!(shown(&web, "max_wal_size"), "4GB");
        assert_eq!(shown(&mixed, "autovacuum_analyze_scale_factor"), "0.05");
        // Unknown disks are treated as SSDs.
        assert_eq!(shown(&web, "random_page_cost"), "1.1");
    }

    #[test]
    fn requested_checkpoints_raise_max_wal_size() {
        let busy = Server {
            checkpoints_timed: 5.0,
            checkpoints_req: 40.0,
            max_wal_size_mb: 8192.0,
            ..server()
        };
        let a = advise(Workload::Web, &host(16.0, 4, Disk::Ssd), &busy);
        assert_eq!(shown(&a, "max_wal_size"), "16GB");
        assert!(a
            .iter()
            .find(|a| a.name == "max_wal_size")
            .unwrap()
            .reason
            .starts_with("40 of 45 checkpoints"));
        let calm = Server { checkpoints_timed: 40.0, checkpoints_req: 5.0, ..busy };
        assert_eq!(
            shown(&advise(Workload::Web, &host(16.0, 4, Disk::Ssd), &calm), "max_wal_size"),
            "4GB"
        );
    }

    #[test]
    fn temp_spills_are_reported_and_raise_work_mem_for_analytics() {
        let spilling = Server { temp_files: 100.0, temp_bytes: 100.0 * GB, ..server() };
        let a = advise(Workload::Mixed, &host(16.0, 4, Disk::Ssd), &spilling);
        let work_mem = a.iter().find(|a| a.name == "work_mem").unwrap();
        assert_eq!(work_mem.value.show(), "61MB");
        assert!(work_mem.reason.contains("100 temp files averaging 1.0 GB"), "{}", work_mem.reason);
        let oltp = advise(Workload::Oltp, &host(16.0, 4, Disk::Ssd), &spilling);
        assert_eq!(
            shown(&oltp, "work_mem"),
            "15MB",
            "OLTP keeps its budget and gets the per-role hint"
        );
    }

    #[test]
    fn values_print_as_show_does_and_compare_in_the_settings_unit() {
        assert_eq!(Value::Kb(131_072.0).show(), "128MB");
        assert_eq!(Value::Kb(4.0 * MB).show(), "4GB");
        assert_eq!(Value::Kb(1000.0).show(), "1000kB");
        assert_eq!(Value::Ms(60_000.0).show(), "1min");
        assert_eq!(Value::Ms(1500.0).show(), "1500ms");
        assert_eq!(Value::Number(1.1).show(), "1.1");
        let current = |setting: &str, unit: Option<&str>, context: &str| CurrentSetting {
            setting: setting.into(),
            unit: unit.map(str::to_string),
            context: context.into(),
            shown: "x".into(),
        };
        let shared =
            Advice { name: "shared_buffers", value: Value::Kb(131_072.0), reason: String::new() };
        let same = row(&shared, &current("16384", Some("8kB"), "postmaster"));
        assert!(!same.differs && same.restart_required);
        assert_eq!(same.suggested, "128MB");
        assert!(row(&shared, &current("16385", Some("8kB"), "postmaster")).differs);
        let wal =
            Advice { name: "max_wal_size", value: Value::Kb(4.0 * MB), reason: String::new() };
        assert!(!row(&wal, &current("4096", Some("MB"), "sighup")).differs);
        let nap = Advice {
            name: "autovacuum_naptime",
            value: Value::Ms(30_000.0),
            reason: String::new(),
        };
        let r = row(&nap, &current("60", Some("s"), "sighup"));
        assert!(r.differs && !r.restart_required);
        let cost =
            Advice { name: "random_page_cost", value: Value::Number(1.1), reason: String::new() };
        assert!(!row(&cost, &current("1.1", None, "user")).differs);
    }
}
