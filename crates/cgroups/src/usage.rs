//! What a container uses, read from its cgroup (v1 or v2): for `berth info` and `berth top`.
//! Each figure is None where the host lacks the controller or the file.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::fsio;

/// The cgroup's consumption and the kernel's view of its limits.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Usage {
    pub memory_bytes: Option<u64>,
    /// The memory limit in force (None: unlimited).
    pub memory_limit_bytes: Option<u64>,
    pub memory_peak_bytes: Option<u64>,
    pub swap_bytes: Option<u64>,
    /// Processes the OOM killer ended in this cgroup since it was made.
    pub oom_kills: Option<u64>,
    pub pids: Option<u64>,
    pub pids_limit: Option<u64>,
    pub cpu_nanos: Option<u64>,
    /// Periods in which the cpus limit held the container back.
    pub cpu_throttled_periods: Option<u64>,
    pub io_read_bytes: Option<u64>,
    pub io_write_bytes: Option<u64>,
}

/// Above this a v1 limit means "none" (the kernel reports PAGE_COUNTER_MAX pages).
const V1_UNLIMITED: u64 = 1 << 62;

fn read(dir: &Path, file: &str) -> Option<String> {
    fsio::read(&dir.join(file)).ok()
}

fn number(dir: &Path, file: &str) -> Option<u64> {
    read(dir, file)?.trim().parse().ok()
}

/// A limit file: "max" (v2) or a huge value (v1) is no limit.
fn limit(dir: &Path, file: &str) -> Option<u64> {
    let text = read(dir, file)?;
    let t = text.trim();
    if t == "max" {
        return None;
    }
    t.parse().ok().filter(|v| *v < V1_UNLIMITED)
}

/// `key value` lines (memory.events, cpu.stat, memory.oom_control).
fn keyed(dir: &Path, file: &str, key: &str) -> Option<u64> {
    read(dir, file)?.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

/// Sums `rbytes=`/`wbytes=` over the devices of v2's io.stat.
fn io_stat(dir: &Path) -> Option<(u64, u64)> {
    let text = read(dir, "io.stat")?;
    let mut total = (0, 0);
    for field in text.split_ascii_whitespace() {
        if let Some(v) = field.strip_prefix("rbytes=") {
            total.0 += v.parse::<u64>().unwrap_or(0);
        } else if let Some(v) = field.strip_prefix("wbytes=") {
            total.1 += v.parse::<u64>().unwrap_or(0);
        }
    }
    Some(total)
}

/// Sums the `MAJ:MIN Read N` and `Write N` lines of v1's blkio service bytes.
fn blkio_bytes(dir: &Path) -> Option<(u64, u64)> {
    let text = read(dir, "blkio.throttle.io_service_bytes_recursive")?;
    let mut total = (0, 0);
    for line in text.lines() {
        let mut f = line.split_ascii_whitespace();
        let (Some(_dev), Some(op), Some(n)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let n = n.parse::<u64>().unwrap_or(0);
        match op {
            "Read" => total.0 += n,
            "Write" => total.1 += n,
            _ => {}
        }
    }
    Some(total)
}

/// Reads every figure from the cgroup's directories `paths` (v1 hierarchies and/or v2).
pub(crate) fn read_usage(paths: &[PathBuf]) -> Usage {
    let mut u = Usage::default();
    for dir in paths {
        if dir.join("cgroup.controllers").exists() {
            // v2: each file is present only where its controller is enabled.
            u.memory_bytes = u.memory_bytes.or_else(|| number(dir, "memory.current"));
            if dir.join("memory.max").exists() {
                u.memory_limit_bytes = limit(dir, "memory.max");
                u.memory_peak_bytes = number(dir, "memory.peak");
                u.swap_bytes = number(dir, "memory.swap.current");
                u.oom_kills = keyed(dir, "memory.events", "oom_kill");
            }
            if dir.join("pids.max").exists() {
                u.pids = number(dir, "pids.current");
                u.pids_limit = limit(dir, "pids.max");
            }
            if dir.join("cpu.max").exists() {
                u.cpu_throttled_periods = keyed(dir, "cpu.stat", "nr_throttled");
            }
            u.cpu_nanos = u
                .cpu_nanos
                .or_else(|| keyed(dir, "cpu.stat", "usage_usec").map(|us| us * 1000));
            if let Some((r, w)) = io_stat(dir).filter(|_| dir.join("io.max").exists()) {
                u.io_read_bytes = Some(r);
                u.io_write_bytes = Some(w);
            }
            continue;
        }
        if dir.join("memory.usage_in_bytes").exists() {
            u.memory_bytes = number(dir, "memory.usage_in_bytes");
            u.memory_limit_bytes = limit(dir, "memory.limit_in_bytes");
            u.memory_peak_bytes = number(dir, "memory.max_usage_in_bytes");
            u.swap_bytes = number(dir, "memory.memsw.usage_in_bytes")
                .zip(u.memory_bytes)
                .map(|(sw, m)| sw.saturating_sub(m));
            u.oom_kills = keyed(dir, "memory.oom_control", "oom_kill");
        }
        if dir.join("pids.current").exists() {
            u.pids = number(dir, "pids.current");
            u.pids_limit = limit(dir, "pids.max");
        }
        if dir.join("cpuacct.usage").exists() {
            u.cpu_nanos = number(dir, "cpuacct.usage");
        }
        if dir.join("cpu.cfs_quota_us").exists() {
            u.cpu_throttled_periods = keyed(dir, "cpu.stat", "nr_throttled");
        }
        if let Some((r, w)) = blkio_bytes(dir) {
            u.io_read_bytes = Some(r);
            u.io_write_bytes = Some(w);
        }
    }
    u
}
