//! The host as this backend sees it: RAM (/proc/meminfo, lowered by a cgroup memory limit),
//! cores (available_parallelism: affinity and CPU quotas) and whether the data directory is on
//! a rotational disk (/sys/dev/block/MAJ:MIN/queue/rotational). The parsers are pure and
//! unit-tested; `read` touches the files.

use crate::health::config::{Disk, Host};
use crate::health::human_bytes;
use std::fs;
use std::path::{Path, PathBuf};

/// cgroup v1 reports "no limit" as a number near 2^63.
const UNLIMITED: f64 = (1u64 << 60) as f64;

/// MemTotal from /proc/meminfo, in bytes.
pub fn parse_meminfo_total(meminfo: &str) -> Option<f64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024.0)
}

/// A cgroup memory limit file (v2 memory.max or v1 memory.limit_in_bytes); None when unlimited.
pub fn parse_memory_limit(text: &str) -> Option<f64> {
    let bytes: f64 = text.trim().parse().ok()?;
    (bytes > 0.0 && bytes < UNLIMITED).then_some(bytes)
}

/// The cgroup directories that may limit this process's memory, from /proc/self/cgroup: the
/// v2 group and its ancestors, or the v1 memory group and its ancestors.
pub fn cgroup_limit_files(proc_self_cgroup: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for line in proc_self_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let (root, file) = if controllers.is_empty() {
            ("/sys/fs/cgroup", "memory.max")
        } else if controllers.split(',').any(|c| c == "memory") {
            ("/sys/fs/cgroup/memory", "memory.limit_in_bytes")
        } else {
            continue;
        };
        let mut dir = Some(Path::new(path));
        while let Some(d) = dir {
            let relative = d.strip_prefix("/").unwrap_or(d);
            files.push(Path::new(root).join(relative).join(file));
            dir = d.parent();
        }
    }
    files
}

/// Linux `major()` / `minor()` of a st_dev.
pub fn major_minor(dev: u64) -> (u64, u64) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major, minor)
}

pub fn parse_rotational(text: &str) -> Option<bool> {
    match text.trim() {
        "1" => Some(true),
        "0" => Some(false),
        _ => None,
    }
}

fn read(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok()
}

/// RAM available to the server and how it was found.
fn ram() -> (f64, String) {
    let total = read(Path::new("/proc/meminfo")).as_deref().and_then(parse_meminfo_total);
    let limit = read(Path::new("/proc/self/cgroup"))
        .map(|c| cgroup_limit_files(&c))
        .unwrap_or_default()
        .iter()
        .filter_map(|f| read(f).as_deref().and_then(parse_memory_limit))
        .reduce(f64::min);
    match (total, limit) {
        (Some(t), Some(l)) if l < t => (
            l,
            format!("a {} cgroup memory limit (the host has {})", human_bytes(l), human_bytes(t)),
        ),
        (Some(t), _) => (t, format!("{} of RAM", human_bytes(t))),
        (None, Some(l)) => (l, format!("a {} cgroup memory limit", human_bytes(l))),
        // Not Linux, or /proc hidden: assume a small machine rather than a big one.
        (None, None) => {
            (1024.0 * 1024.0 * 1024.0, "1 GB of RAM (assumed: /proc/meminfo unreadable)".into())
        }
    }
}

/// Whether the block device holding `dir` spins, walking from a partition to its disk.
fn rotational(dir: &Path) -> Result<(bool, String), String> {
    use std::os::unix::fs::MetadataExt;
    let dev = fs::metadata(dir).map_err(|e| format!("cannot stat it ({e})"))?.dev();
    let (major, minor) = major_minor(dev);
    let sys = fs::canonicalize(format!("/sys/dev/block/{major}:{minor}")).map_err(|_| {
        format!(
            "its device {major}:{minor} is not a block device (container or network filesystem?)"
        )
    })?;
    let candidates = [sys.join("queue/rotational"), sys.join("../queue/rotational")];
    let flag = candidates
        .iter()
        .find_map(|p| read(p).as_deref().and_then(parse_rotational))
        .ok_or_else(|| format!("device {major}:{minor} does not report whether it rotates"))?;
    Ok((flag, format!("{major}:{minor}")))
}

/// The host facts for config_advice; `data_directory` when the caller may read it, else the
/// backend's working directory (which is the data directory).
pub fn read_host(data_directory: Option<&str>) -> Host {
    let (ram_bytes, ram_note) = ram();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let dir = data_directory.map_or_else(|| PathBuf::from("."), PathBuf::from);
    let shown = data_directory.unwrap_or("the data directory");
    let (disk, disk_note) = match rotational(&dir) {
        Ok((true, dev)) => (Disk::Hdd, format!("{shown} is on a rotational disk ({dev})")),
        Ok((false, dev)) => (Disk::Ssd, format!("{shown} is on a non-rotational disk ({dev})")),
        Err(why) => (Disk::Unknown, format!("disk kind unknown for {shown}: {why}; assumed SSD")),
    };
    Host { ram_bytes, cores, disk, ram_note, disk_note }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_total_is_read_in_bytes() {
        let text = "MemTotal:       16314660 kB\nMemFree:         1234 kB\n";
        assert_eq!(parse_meminfo_total(text), Some(16_314_660.0 * 1024.0));
        assert_eq!(parse_meminfo_total("MemFree: 1 kB"), None);
    }

    #[test]
    fn memory_limits_ignore_unlimited_values() {
        assert_eq!(parse_memory_limit("2147483648\n"), Some(2_147_483_648.0));
        assert_eq!(parse_memory_limit("max\n"), None);
        assert_eq!(parse_memory_limit("9223372036854771712"), None, "cgroup v1 'no limit'");
    }

    #[test]
    fn cgroup_files_cover_the_group_and_its_ancestors() {
        let v2 = cgroup_limit_files("0::/system.slice/postgresql.service\n");
        assert_eq!(
            v2,
            vec![
                PathBuf::from("/sys/fs/cgroup/system.slice/postgresql.service/memory.max"),
                PathBuf::from("/sys/fs/cgroup/system.slice/memory.max"),
                PathBuf::from("/sys/fs/cgroup/memory.max"),
            ]
        );
        let v1 = cgroup_limit_files("12:cpu,cpuacct:/x\n4:memory:/docker/abc\n");
        assert_eq!(v1[0], PathBuf::from("/sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes"));
        assert_eq!(
            v1.last().unwrap(),
            &PathBuf::from("/sys/fs/cgroup/memory/memory.limit_in_bytes")
        );
    }

    #[test]
    fn device_numbers_split_like_glibc() {
        assert_eq!(major_minor(0x0801), (8, 1));
        assert_eq!(major_minor(0xfd00), (253, 0));
        // minor 300 of major 259 (nvme partitions): high minor bits live above bit 20.
        let dev = (259u64 << 8) | (300 & 0xff) | ((300 & !0xff) << 12);
        assert_eq!(major_minor(dev), (259, 300));
    }

    #[test]
    fn rotational_flag_parses() {
        assert_eq!(parse_rotational("1\n"), Some(true));
        assert_eq!(parse_rotational("0"), Some(false));
        assert_eq!(parse_rotational(""), None);
    }
}
