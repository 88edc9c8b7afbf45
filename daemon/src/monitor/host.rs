//! Host sampling with `sysinfo`: CPU (total and per core), load, memory, swap, file systems
//! (space and device I/O), network interfaces, and the PostgreSQL server's processes (the
//! postmaster and its children) and this daemon's own. Blocking: run it off the async thread.

use super::catalog::*;
use super::growth::Process;
use super::sample::{ratio, Sample};
use std::collections::BTreeSet;
use sysinfo::{Disks, Networks, Pid, ProcessRefreshKind, ProcessesToUpdate, System};

/// File systems that hold no data of their own.
const PSEUDO_FILE_SYSTEMS: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "efivarfs",
    "fusectl",
    "hugetlbfs",
    "mqueue",
    "nsfs",
    "proc",
    "pstore",
    "ramfs",
    "rpc_pipefs",
    "securityfs",
    "squashfs",
    "sysfs",
    "tmpfs",
    "tracefs",
    "fuse.lxcfs",
    "fuse.gvfsd-fuse",
    "fuse.portal",
    "iso9660",
];

pub fn is_pseudo_file_system(fs: &str) -> bool {
    PSEUDO_FILE_SYSTEMS.contains(&fs)
}

/// One round of host samples, and the processes the growth detector watches.
#[derive(Debug, Default)]
pub struct HostSample {
    pub samples: Vec<Sample>,
    pub processes: Vec<(u32, Process, u64)>,
    /// The postmaster given was found on this host.
    pub postmaster_found: bool,
}

pub struct HostSampler {
    system: Option<System>,
    disks: Option<Disks>,
    networks: Option<Networks>,
    own_pid: Option<Pid>,
    /// The processes sampled between full scans: the postmaster, its children, this daemon.
    watched: Vec<Pid>,
    last_full_scan: Option<std::time::Instant>,
}

/// How often every process of the host is read (to find new backends); in between only the
/// watched ones are. Reading all of /proc each second was most of the daemon's CPU time.
const FULL_SCAN_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

impl HostSampler {
    pub fn new() -> HostSampler {
        let mut system = System::new().ok();
        if let Some(s) = &mut system {
            // CPU usage is measured between two refreshes: the first sample covers the time
            // from here.
            s.refresh_cpu_usage();
            s.refresh_processes_specifics(ProcessesToUpdate::All, true, process_kind());
        }
        HostSampler {
            system,
            disks: Disks::new_with_refreshed_list().ok(),
            networks: Networks::new_with_refreshed_list().ok(),
            own_pid: sysinfo::get_current_pid().ok(),
            watched: Vec::new(),
            last_full_scan: Some(std::time::Instant::now()),
        }
    }

    /// The PostgreSQL server whose backend has pid `backend`: its postmaster (the backend's
    /// parent), if that process is on this host and is a `postgres` process.
    /// Both are read afresh: the backend is usually newer than the last full scan.
    pub fn postmaster_of(&mut self, backend: u32) -> Option<u32> {
        let system = self.system.as_mut()?;
        let backend = Pid::from_u32(backend);
        system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[backend]),
            false,
            process_kind(),
        );
        let parent = system.process(backend)?.parent()?;
        system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[parent]),
            false,
            process_kind(),
        );
        let parent = system.process(parent)?;
        is_postgres(parent.name()).then(|| parent.pid().as_u32())
    }

    /// Samples the host; `postmaster` is the monitored server's postmaster, when known.
    pub fn sample(&mut self, postmaster: Option<u32>) -> HostSample {
        let mut out = HostSample::default();
        let s = &mut out.samples;
        if let Some(system) = &mut self.system {
            system.refresh_cpu_usage();
            system.refresh_memory();
            // A postmaster not watched yet (just found) needs a full scan to find its children.
            let new_postmaster =
                postmaster.is_some_and(|pm| !self.watched.contains(&Pid::from_u32(pm)));
            let full = self.last_full_scan.is_none_or(|at| at.elapsed() >= FULL_SCAN_EVERY)
                || self.watched.is_empty()
                || new_postmaster;
            if full {
                system.refresh_processes_specifics(ProcessesToUpdate::All, true, process_kind());
                self.last_full_scan = Some(std::time::Instant::now());
            } else {
                system.refresh_processes_specifics(
                    ProcessesToUpdate::Some(&self.watched),
                    true,
                    process_kind(),
                );
            }
            let mut watched: Vec<Pid> = self.own_pid.into_iter().collect();
            s.push(Sample::new(CPU, f64::from(system.global_cpu_usage()) / 100.0));
            for (i, cpu) in system.cpus().iter().enumerate() {
                s.push(Sample::labelled(
                    CPU_CORE,
                    "core",
                    i.to_string(),
                    f64::from(cpu.usage()) / 100.0,
                ));
            }
            let (total, available) =
                (system.total_memory() as f64, system.available_memory() as f64);
            if total > 0.0 {
                let used = (total - available).max(0.0);
                s.extend([
                    Sample::new(MEM_TOTAL, total),
                    Sample::new(MEM_USED, used),
                    Sample::new(MEM_AVAILABLE, available),
                ]);
                s.extend(ratio(used, total).map(|r| Sample::new(MEM_RATIO, r)));
            }
            let (swap_total, swap_used) = (system.total_swap() as f64, system.used_swap() as f64);
            s.extend([Sample::new(SWAP_TOTAL, swap_total), Sample::new(SWAP_USED, swap_used)]);
            s.push(Sample::new(SWAP_RATIO, ratio(swap_used, swap_total).unwrap_or(0.0)));

            if let Some(pm) = postmaster
                .map(Pid::from_u32)
                .filter(|pid| system.process(*pid).is_some_and(|p| is_postgres(p.name())))
            {
                out.postmaster_found = true;
                let (mut count, mut rss, mut cpu) = (0u32, 0.0, 0.0);
                for (pid, p) in system.processes() {
                    let child = p.parent() == Some(pm) && p.thread_kind().is_none();
                    if *pid == pm || child {
                        watched.push(*pid);
                        count += 1;
                        rss += p.memory() as f64;
                        cpu += f64::from(p.cpu_usage()) / 100.0;
                    }
                    if child {
                        let private = private_resident(pid.as_u32()).unwrap_or(p.memory());
                        out.processes.push((pid.as_u32(), Process::PostgresBackend, private));
                    }
                }
                s.extend([
                    Sample::new(PG_PROCESSES, f64::from(count)),
                    Sample::new(PG_RSS, rss),
                    Sample::new(PG_CPU, cpu),
                ]);
            }
            if full {
                self.watched = watched;
            }
            if let Some(me) = self.own_pid.and_then(|pid| system.process(pid)) {
                s.extend([
                    Sample::new(DAEMON_RSS, me.memory() as f64),
                    Sample::new(DAEMON_CPU, f64::from(me.cpu_usage()) / 100.0),
                ]);
                out.processes.push((
                    me.pid().as_u32(),
                    Process::Daemon,
                    private_resident(me.pid().as_u32()).unwrap_or(me.memory()),
                ));
            }
        }
        if let Ok(load) = System::load_average() {
            s.extend([
                Sample::new(LOAD1, load.one),
                Sample::new(LOAD5, load.five),
                Sample::new(LOAD15, load.fifteen),
            ]);
        }
        if let Some(disks) = &mut self.disks {
            disks.refresh(true);
            let mut mounts = BTreeSet::new();
            for disk in disks.iter() {
                let fs = disk.file_system().to_string_lossy();
                let mount = disk.mount_point().display().to_string();
                let total = disk.total_space() as f64;
                if total <= 0.0 || is_pseudo_file_system(&fs) || !mounts.insert(mount.clone()) {
                    continue;
                }
                let used = (total - disk.available_space() as f64).max(0.0);
                let usage = disk.usage();
                s.push(Sample::labelled(DISK_TOTAL, "mount", &mount, total));
                s.push(Sample::labelled(DISK_USED, "mount", &mount, used));
                s.extend(
                    ratio(used, total).map(|r| Sample::labelled(DISK_RATIO, "mount", &mount, r)),
                );
                if usage.total_read_bytes > 0 || usage.total_written_bytes > 0 {
                    s.push(Sample::labelled(
                        DISK_READ,
                        "mount",
                        &mount,
                        usage.total_read_bytes as f64,
                    ));
                    s.push(Sample::labelled(
                        DISK_WRITTEN,
                        "mount",
                        &mount,
                        usage.total_written_bytes as f64,
                    ));
                }
            }
        }
        if let Some(networks) = &mut self.networks {
            networks.refresh(true);
            let mut interfaces: Vec<_> =
                networks.iter().filter(|(name, _)| name.as_os_str() != "lo").collect();
            interfaces.sort_by(|a, b| a.0.cmp(b.0));
            for (name, data) in interfaces {
                let name = name.to_string_lossy();
                s.push(Sample::labelled(
                    NET_RX,
                    "interface",
                    name.as_ref(),
                    data.total_received() as f64,
                ));
                s.push(Sample::labelled(
                    NET_TX,
                    "interface",
                    name.as_ref(),
                    data.total_transmitted() as f64,
                ));
            }
        }
        out
    }
}

fn process_kind() -> ProcessRefreshKind {
    ProcessRefreshKind::nothing().with_memory().with_cpu()
}

fn is_postgres(name: &std::ffi::OsStr) -> bool {
    name == "postgres" || name == "postmaster"
}

/// A process's private resident memory (`RssAnon`, Linux): what a leak grows, unlike the
/// shared buffers a backend touches, which count in its RSS too.
fn private_resident(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_rss_anon(&status)
}

fn parse_rss_anon(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("RssAnon:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_anon_and_pseudo_file_systems() {
        assert_eq!(
            parse_rss_anon("Name:\tpostgres\nRssAnon:\t    2048 kB\nRssFile:\t 1 kB\n"),
            Some(2 * 1024 * 1024)
        );
        assert_eq!(parse_rss_anon("Name:\tkthreadd\n"), None);
        assert!(is_pseudo_file_system("tmpfs") && is_pseudo_file_system("proc"));
        assert!(
            !is_pseudo_file_system("ext4")
                && !is_pseudo_file_system("overlay")
                && !is_pseudo_file_system("xfs")
        );
    }

    #[test]
    fn samples_this_host_and_finds_itself() {
        let mut sampler = HostSampler::new();
        let round = sampler.sample(None);
        let value = |name: &str| round.samples.iter().find(|s| s.metric == name).map(|s| s.value);
        assert!(value(MEM_TOTAL).unwrap() > 0.0);
        assert!((0.0..=1.0).contains(&value(MEM_RATIO).unwrap()));
        assert!((0.0..=1.0).contains(&value(CPU).unwrap()));
        assert!(value(DAEMON_RSS).unwrap() > 0.0, "the test process itself");
        assert!(round
            .processes
            .iter()
            .any(|(pid, p, _)| *pid == std::process::id() && *p == Process::Daemon));
        assert!(value(PG_RSS).is_none(), "no postmaster given");
        assert!(round.samples.iter().all(|s| s.value.is_finite()));
    }
}
