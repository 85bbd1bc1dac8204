//! How each limit becomes cgroup files: one table for both cgroup versions ([`TABLE`]), and
//! pure functions that turn [`Limits`] into the writes it takes, so the kernel-facing code
//! only loops over what these return. Sources: Documentation/admin-guide/cgroup-v2.rst,
//! cgroup-v1/{memory,pids,cpusets,blkio-controller}.rst, scheduler/sched-bwc.rst.

pub use berth_spec::Limits;

/// CFS bandwidth period for the cpus limit: 100 ms, the kernel's default and what
/// runc, crun and systemd use, so `cpus = 1.5` reads the same in every tool.
pub const CPU_PERIOD_US: u64 = 100_000;

/// The kernel refuses a quota below 1 ms (`min_cfs_quota_period`, kernel/sched/core.c).
const CPU_QUOTA_MIN_US: u64 = 1_000;

/// The kernel refuses a quota above `MAX_BW` = 2^44 - 1 µs (kernel/sched/sched.h), so that
/// the bandwidth arithmetic cannot overflow.
const CPU_QUOTA_MAX_US: u64 = (1 << 44) - 1;

/// The v2 controllers that enforce [`Limits`]: the ones a new cgroup's parent must enable in
/// `cgroup.subtree_control`.
pub const LIMIT_CONTROLLERS: [&str; 5] = ["memory", "pids", "cpu", "cpuset", "io"];

/// One limit key: the controller (v1 name, v2 name) and the files that hold it, and how the
/// value is converted. `alternatives` lists files of which the first present is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    pub key: &'static str,
    pub v1_controller: &'static str,
    pub v1: &'static [&'static str],
    pub v2_controller: &'static str,
    pub v2: &'static [&'static str],
    pub conversion: &'static str,
}

/// The mapping, as documentation and as the test oracle: every write [`writes`] produces
/// names a file of its key's row.
pub const TABLE: &[Row] = &[
    Row {
        key: "memory",
        v1_controller: "memory",
        v1: &["memory.limit_in_bytes"],
        v2_controller: "memory",
        v2: &["memory.max"],
        conversion: "bytes; unset: -1 (v1), max (v2)",
    },
    Row {
        key: "memory_high",
        v1_controller: "memory",
        v1: &["memory.soft_limit_in_bytes"],
        v2_controller: "memory",
        v2: &["memory.high"],
        conversion: "bytes; v1 has no throttling limit, its soft limit (reclaimed first under \
                     pressure) is the nearest",
    },
    Row {
        key: "swap",
        v1_controller: "memory",
        v1: &["memory.memsw.limit_in_bytes"],
        v2_controller: "memory",
        v2: &["memory.swap.max"],
        conversion: "v2: swap bytes; v1: memory + swap (memsw counts both), written after \
                     memory.limit_in_bytes, which must stay below it",
    },
    Row {
        key: "cpus",
        v1_controller: "cpu",
        v1: &["cpu.cfs_period_us", "cpu.cfs_quota_us"],
        v2_controller: "cpu",
        v2: &["cpu.max"],
        conversion: "quota = cpus x 100000 us per 100000 us period; v1 writes the period first",
    },
    Row {
        key: "cpu_weight",
        v1_controller: "cpu",
        v1: &["cpu.shares"],
        v2_controller: "cpu",
        v2: &["cpu.weight"],
        conversion: "v2 weight 1-10000 (default 100); v1 shares = weight x 1024 / 100, \
                     within 2-262144 (systemd's conversion: the defaults meet)",
    },
    Row {
        key: "cpuset",
        v1_controller: "cpuset",
        v1: &["cpuset.cpus"],
        v2_controller: "cpuset",
        v2: &["cpuset.cpus"],
        conversion: "the cpu list as given; unset: the parent's cpus (v1), empty (v2)",
    },
    Row {
        key: "pids",
        v1_controller: "pids",
        v1: &["pids.max"],
        v2_controller: "pids",
        v2: &["pids.max"],
        conversion: "a count; unset: max",
    },
    Row {
        key: "io_weight",
        v1_controller: "blkio",
        v1: &["blkio.bfq.weight", "blkio.weight"],
        v2_controller: "io",
        v2: &["io.weight", "io.bfq.weight"],
        conversion: "io.weight: \"default W\" (1-10000); BFQ (1-1000, default 100): 1-100 \
                     as is, 100-10000 scaled onto 100-1000 (systemd's); v1 CFQ blkio.weight \
                     (10-1000, default 500): W x 5. Effective only under BFQ or io.cost",
    },
    Row {
        key: "io_read_bps",
        v1_controller: "blkio",
        v1: &["blkio.throttle.read_bps_device"],
        v2_controller: "io",
        v2: &["io.max"],
        conversion: "v1 \"MAJ:MIN BYTES\" per file (0 removes); v2 one \"MAJ:MIN rbps= wbps= \
                     riops= wiops=\" line per device (max where unset)",
    },
    Row {
        key: "io_write_bps",
        v1_controller: "blkio",
        v1: &["blkio.throttle.write_bps_device"],
        v2_controller: "io",
        v2: &["io.max"],
        conversion: "as io_read_bps",
    },
    Row {
        key: "io_read_iops",
        v1_controller: "blkio",
        v1: &["blkio.throttle.read_iops_device"],
        v2_controller: "io",
        v2: &["io.max"],
        conversion: "as io_read_bps",
    },
    Row {
        key: "io_write_iops",
        v1_controller: "blkio",
        v1: &["blkio.throttle.write_iops_device"],
        v2_controller: "io",
        v2: &["io.max"],
        conversion: "as io_read_bps",
    },
];

/// A limit the kernel would refuse or that could only break the container.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LimitError {
    #[error("limits.cpus must be a finite number greater than 0, not {cpus}")]
    CpusNotPositive { cpus: f64 },
    #[error("limits.cpus = {cpus} is below the kernel's minimum of 0.01 (1 ms per 100 ms)")]
    CpusTooSmall { cpus: f64 },
    #[error("limits.cpus = {cpus} is above the kernel's maximum quota")]
    CpusTooLarge { cpus: f64 },
    #[error("limits.memory = 0 would kill the container at once")]
    MemoryZero,
    #[error("limits.pids = 0 would keep the container from starting any process")]
    PidsZero,
    #[error("limits.{key}: device {device} has no device number: look it up first")]
    UnresolvedDevice { key: &'static str, device: String },
}

/// A CFS bandwidth limit: at most `quota_us` of CPU time every `period_us`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuQuota {
    pub quota_us: u64,
    pub period_us: u64,
}

/// Refuses values before any cgroup file is touched, so a bad config fails with the field's
/// name instead of a bare EINVAL half-way through applying.
pub fn validate(limits: &Limits) -> Result<(), LimitError> {
    if limits.memory == Some(0) {
        return Err(LimitError::MemoryZero);
    }
    if limits.pids == Some(0) {
        return Err(LimitError::PidsZero);
    }
    if let Some(cpus) = limits.cpus {
        if !cpus.is_finite() || cpus <= 0.0 {
            return Err(LimitError::CpusNotPositive { cpus });
        }
        let quota = cpu_quota(cpus).quota_us;
        if quota < CPU_QUOTA_MIN_US {
            return Err(LimitError::CpusTooSmall { cpus });
        }
        if quota > CPU_QUOTA_MAX_US {
            return Err(LimitError::CpusTooLarge { cpus });
        }
    }
    if let Some(io) = limits.io.iter().find(|io| io.dev == (0, 0)) {
        return Err(LimitError::UnresolvedDevice {
            key: "io",
            device: io.device.display().to_string(),
        });
    }
    Ok(())
}

/// `cpus` as a quota over [`CPU_PERIOD_US`], rounded to the nearest microsecond.
/// Meaningful for values that passed [`validate`]; others saturate.
pub fn cpu_quota(cpus: f64) -> CpuQuota {
    // `as` saturates on overflow and maps NaN to 0; validate() rejects both beforehand.
    let quota_us = (cpus * CPU_PERIOD_US as f64).round() as u64;
    CpuQuota {
        quota_us,
        period_us: CPU_PERIOD_US,
    }
}

/// cgroup v2 weight (1-10000, default 100) to v1 cpu.shares (2-262144, default 1024).
pub fn weight_to_shares(weight: u64) -> u64 {
    (weight * 1024 / 100).clamp(2, 262_144)
}

/// cgroup v2 weight (1-10000, default 100) to a BFQ weight (1-1000, default 100): the lower
/// part as it is, the upper part scaled, so that the defaults and the ends meet.
pub fn weight_to_bfq(weight: u64) -> u64 {
    let w = weight.clamp(1, 10_000);
    if w <= 100 {
        w
    } else {
        100 + (w - 100) * 900 / 9_900
    }
}

/// What to write where: the controller whose directory holds the file, and file/value pairs
/// of which the first file present is written (alternatives, e.g. io.weight or
/// io.bfq.weight). An empty `choices` value list never occurs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Write {
    pub key: &'static str,
    pub controller: &'static str,
    pub choices: Vec<(&'static str, String)>,
    /// v1 cpuset reset: copy the parent's value of the file instead.
    pub from_parent: bool,
}

fn one(key: &'static str, controller: &'static str, file: &'static str, value: String) -> Write {
    Write {
        key,
        controller,
        choices: vec![(file, value)],
        from_parent: false,
    }
}

/// The writes that put `new` in place of `old` (for a fresh cgroup, `old` is the default:
/// nothing set). Keys that did not change are not written; keys that were set and no longer
/// are get the kernel's default back. The order is the order the kernel needs.
pub(crate) fn writes(old: &Limits, new: &Limits, v2: bool) -> Vec<Write> {
    let mut out = Vec::new();
    let unlimited = if v2 { "max" } else { "-1" };
    let bytes = |v: Option<u64>| v.map_or_else(|| unlimited.to_string(), |b| b.to_string());

    // Memory: on v1, memsw (memory + swap) must never be below the memory limit, so it is
    // opened up first, then the memory limit, then memsw set.
    let memory_changed = old.memory != new.memory || old.swap != new.swap;
    if v2 {
        if old.memory != new.memory {
            out.push(one("memory", "memory", "memory.max", bytes(new.memory)));
        }
        if old.memory_high != new.memory_high {
            out.push(one(
                "memory_high",
                "memory",
                "memory.high",
                bytes(new.memory_high),
            ));
        }
        if old.swap != new.swap {
            out.push(one("swap", "memory", "memory.swap.max", bytes(new.swap)));
        }
    } else {
        let swap_involved = old.swap.is_some() || new.swap.is_some();
        if memory_changed && swap_involved && old.swap.is_some() {
            out.push(one(
                "swap",
                "memory",
                "memory.memsw.limit_in_bytes",
                "-1".into(),
            ));
        }
        if old.memory != new.memory {
            out.push(one(
                "memory",
                "memory",
                "memory.limit_in_bytes",
                bytes(new.memory),
            ));
        }
        if memory_changed && swap_involved {
            let memsw = match (new.memory, new.swap) {
                (Some(m), Some(s)) => m.saturating_add(s).to_string(),
                _ => "-1".to_string(),
            };
            out.push(one("swap", "memory", "memory.memsw.limit_in_bytes", memsw));
        }
        if old.memory_high != new.memory_high {
            out.push(one(
                "memory_high",
                "memory",
                "memory.soft_limit_in_bytes",
                bytes(new.memory_high),
            ));
        }
    }

    if old.cpus != new.cpus {
        let quota = new.cpus.map(|c| cpu_quota(c).quota_us);
        if v2 {
            let q = quota.map_or_else(|| "max".to_string(), |q| q.to_string());
            out.push(one(
                "cpus",
                "cpu",
                "cpu.max",
                format!("{q} {CPU_PERIOD_US}"),
            ));
        } else {
            out.push(one(
                "cpus",
                "cpu",
                "cpu.cfs_period_us",
                CPU_PERIOD_US.to_string(),
            ));
            let q = quota.map_or_else(|| "-1".to_string(), |q| q.to_string());
            out.push(one("cpus", "cpu", "cpu.cfs_quota_us", q));
        }
    }
    if old.cpu_weight != new.cpu_weight {
        let w = new.cpu_weight.unwrap_or(100);
        if v2 {
            out.push(one("cpu_weight", "cpu", "cpu.weight", w.to_string()));
        } else {
            let shares = weight_to_shares(w).to_string();
            out.push(one("cpu_weight", "cpu", "cpu.shares", shares));
        }
    }
    if old.cpuset != new.cpuset {
        let mut w = one(
            "cpuset",
            "cpuset",
            "cpuset.cpus",
            // v2's reset is an empty list; a zero-length write(2) would never reach the
            // kernel, so the empty line is sent.
            new.cpuset.clone().unwrap_or_else(|| "\n".into()),
        );
        w.from_parent = new.cpuset.is_none() && !v2;
        out.push(w);
    }
    if old.pids != new.pids {
        let v = new
            .pids
            .map_or_else(|| "max".to_string(), |p| p.to_string());
        out.push(one("pids", "pids", "pids.max", v));
    }
    if old.io_weight != new.io_weight {
        let w = new.io_weight.unwrap_or(100);
        let choices = if v2 {
            vec![
                ("io.weight", format!("default {w}")),
                ("io.bfq.weight", weight_to_bfq(w).to_string()),
            ]
        } else {
            vec![
                ("blkio.bfq.weight", weight_to_bfq(w).to_string()),
                ("blkio.weight", (w * 5).clamp(10, 1000).to_string()),
            ]
        };
        let controller = if v2 { "io" } else { "blkio" };
        out.push(Write {
            key: "io_weight",
            controller,
            choices,
            from_parent: false,
        });
    }
    io_writes(old, new, v2, &mut out);
    out
}

/// Throttles per device: every device of `new` whose values changed, and every device of
/// `old` that `new` no longer names (reset to no limit).
fn io_writes(old: &Limits, new: &Limits, v2: bool, out: &mut Vec<Write>) {
    type Get = fn(&berth_spec::IoLimit) -> Option<u64>;
    const FIELDS: [(&str, &str, &str, Get); 4] = [
        (
            "io_read_bps",
            "rbps",
            "blkio.throttle.read_bps_device",
            |l| l.read_bps,
        ),
        (
            "io_write_bps",
            "wbps",
            "blkio.throttle.write_bps_device",
            |l| l.write_bps,
        ),
        (
            "io_read_iops",
            "riops",
            "blkio.throttle.read_iops_device",
            |l| l.read_iops,
        ),
        (
            "io_write_iops",
            "wiops",
            "blkio.throttle.write_iops_device",
            |l| l.write_iops,
        ),
    ];
    let empty = berth_spec::IoLimit::default();
    let mut devs: Vec<(u32, u32)> = new.io.iter().chain(&old.io).map(|l| l.dev).collect();
    devs.dedup();
    let mut seen = Vec::new();
    for dev in devs {
        if seen.contains(&dev) {
            continue;
        }
        seen.push(dev);
        let before = old.io.iter().find(|l| l.dev == dev).unwrap_or(&empty);
        let after = new.io.iter().find(|l| l.dev == dev).unwrap_or(&empty);
        let (major, minor) = dev;
        if v2 {
            if FIELDS
                .iter()
                .all(|(_, _, _, get)| get(before) == get(after))
            {
                continue;
            }
            let line: Vec<String> = FIELDS
                .iter()
                .map(|(_, name, _, get)| {
                    format!(
                        "{name}={}",
                        get(after).map_or_else(|| "max".to_string(), |v| v.to_string())
                    )
                })
                .collect();
            out.push(one(
                "io_read_bps",
                "io",
                "io.max",
                format!("{major}:{minor} {}", line.join(" ")),
            ));
        } else {
            for (key, _, file, get) in FIELDS {
                if get(before) != get(after) {
                    let v = get(after).unwrap_or(0);
                    out.push(one(key, "blkio", file, format!("{major}:{minor} {v}")));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_spec::IoLimit;

    fn all() -> Limits {
        Limits {
            memory: Some(512 << 20),
            memory_high: Some(400 << 20),
            swap: Some(1 << 30),
            cpus: Some(1.5),
            cpu_weight: Some(200),
            cpuset: Some("0-1".into()),
            pids: Some(100),
            io_weight: Some(50),
            io: vec![IoLimit {
                device: "/dev/vda".into(),
                dev: (254, 0),
                read_bps: Some(10 << 20),
                write_iops: Some(300),
                ..IoLimit::default()
            }],
            ..Limits::default()
        }
    }

    fn flat(w: &[Write]) -> Vec<(&'static str, String)> {
        w.iter().map(|w| w.choices[0].clone()).collect()
    }

    #[test]
    fn every_write_names_a_file_of_its_row() {
        for v2 in [false, true] {
            for w in writes(&Limits::default(), &all(), v2).iter().chain(&writes(
                &all(),
                &Limits::default(),
                v2,
            )) {
                let row = TABLE
                    .iter()
                    .find(|r| r.key == w.key)
                    .unwrap_or_else(|| panic!("{} has no row", w.key));
                let (files, controller) = if v2 {
                    (row.v2, row.v2_controller)
                } else {
                    (row.v1, row.v1_controller)
                };
                assert_eq!(w.controller, controller, "{}", w.key);
                for (file, _) in &w.choices {
                    assert!(files.contains(file), "{}: {file} not in the table", w.key);
                }
            }
        }
        for c in LIMIT_CONTROLLERS {
            assert!(TABLE.iter().any(|r| r.v2_controller == c), "{c}");
        }
    }

    #[test]
    fn v1_writes_in_kernel_order_with_conversions() {
        let w = flat(&writes(&Limits::default(), &all(), false));
        let expect: Vec<(&str, String)> = vec![
            ("memory.limit_in_bytes", "536870912".into()),
            (
                "memory.memsw.limit_in_bytes",
                ((512u64 << 20) + (1 << 30)).to_string(),
            ),
            ("memory.soft_limit_in_bytes", "419430400".into()),
            ("cpu.cfs_period_us", "100000".into()),
            ("cpu.cfs_quota_us", "150000".into()),
            ("cpu.shares", "2048".into()),
            ("cpuset.cpus", "0-1".into()),
            ("pids.max", "100".into()),
            ("blkio.bfq.weight", "50".into()),
            ("blkio.throttle.read_bps_device", "254:0 10485760".into()),
            ("blkio.throttle.write_iops_device", "254:0 300".into()),
        ];
        assert_eq!(w, expect);
    }

    #[test]
    fn v2_writes_with_conversions() {
        let w = writes(&Limits::default(), &all(), true);
        let io_weight = w.iter().find(|w| w.key == "io_weight").expect("io weight");
        assert_eq!(
            io_weight.choices,
            vec![
                ("io.weight", "default 50".to_string()),
                ("io.bfq.weight", "50".to_string())
            ]
        );
        let expect: Vec<(&str, String)> = vec![
            ("memory.max", "536870912".into()),
            ("memory.high", "419430400".into()),
            ("memory.swap.max", "1073741824".into()),
            ("cpu.max", "150000 100000".into()),
            ("cpu.weight", "200".into()),
            ("cpuset.cpus", "0-1".into()),
            ("pids.max", "100".into()),
            ("io.weight", "default 50".into()),
            (
                "io.max",
                "254:0 rbps=10485760 wbps=max riops=max wiops=300".into(),
            ),
        ];
        assert_eq!(flat(&w), expect);
    }

    #[test]
    fn unsetting_restores_the_defaults() {
        let v1 = flat(&writes(&all(), &Limits::default(), false));
        assert_eq!(
            v1,
            vec![
                ("memory.memsw.limit_in_bytes", "-1".into()),
                ("memory.limit_in_bytes", "-1".into()),
                ("memory.memsw.limit_in_bytes", "-1".into()),
                ("memory.soft_limit_in_bytes", "-1".into()),
                ("cpu.cfs_period_us", "100000".into()),
                ("cpu.cfs_quota_us", "-1".into()),
                ("cpu.shares", "1024".into()),
                ("cpuset.cpus", "\n".to_string()),
                ("pids.max", "max".into()),
                ("blkio.bfq.weight", "100".into()),
                ("blkio.throttle.read_bps_device", "254:0 0".into()),
                ("blkio.throttle.write_iops_device", "254:0 0".into()),
            ]
        );
        let reset = writes(&all(), &Limits::default(), false);
        assert!(reset.iter().any(|w| w.key == "cpuset" && w.from_parent));
        let v2 = flat(&writes(&all(), &Limits::default(), true));
        assert!(v2.contains(&("cpu.max", "max 100000".into())));
        assert!(v2.contains(&("memory.max", "max".into())));
        assert!(v2.contains(&(
            "io.max",
            "254:0 rbps=max wbps=max riops=max wiops=max".into()
        )));
    }

    #[test]
    fn unchanged_keys_are_not_written() {
        assert!(writes(&all(), &all(), false).is_empty());
        assert!(writes(&all(), &all(), true).is_empty());
        let mut more = all();
        more.pids = Some(200);
        assert_eq!(
            flat(&writes(&all(), &more, false)),
            vec![("pids.max", "200".to_string())]
        );
        // Raising memory with swap set on v1: memsw opened first, so memory may pass it.
        let mut bigger = all();
        bigger.memory = Some(2 << 30);
        let w = flat(&writes(&all(), &bigger, false));
        assert_eq!(w[0], ("memory.memsw.limit_in_bytes", "-1".into()));
        assert_eq!(w[1], ("memory.limit_in_bytes", (2u64 << 30).to_string()));
        assert_eq!(
            w[2],
            (
                "memory.memsw.limit_in_bytes",
                ((2u64 << 30) + (1 << 30)).to_string()
            )
        );
    }

    #[test]
    fn weights_convert() {
        assert_eq!(weight_to_shares(100), 1024);
        assert_eq!(weight_to_shares(1), 10);
        assert_eq!(weight_to_shares(10_000), 102_400);
        assert_eq!(weight_to_bfq(1), 1);
        assert_eq!(weight_to_bfq(100), 100);
        assert_eq!(weight_to_bfq(10_000), 1000);
        assert_eq!(weight_to_bfq(5_050), 550);
    }

    #[test]
    fn cpus_become_quota_over_a_100ms_period() {
        for (cpus, quota_us) in [
            (1.5, 150_000),
            (0.01, 1_000),
            (0.333_333, 33_333),
            (64.0, 6_400_000),
        ] {
            assert_eq!(cpu_quota(cpus).quota_us, quota_us, "{cpus}");
        }
    }

    #[test]
    fn validate_refuses_what_the_kernel_or_the_container_cannot_take() {
        let cpus = |cpus| Limits {
            cpus: Some(cpus),
            ..Limits::default()
        };
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(matches!(
                validate(&cpus(bad)),
                Err(LimitError::CpusNotPositive { .. })
            ));
        }
        assert!(matches!(
            validate(&cpus(0.0049)),
            Err(LimitError::CpusTooSmall { .. })
        ));
        assert!(matches!(
            validate(&cpus(1e9)),
            Err(LimitError::CpusTooLarge { .. })
        ));
        assert_eq!(validate(&cpus(1.5)), Ok(()));
        let mut unresolved = all();
        unresolved.io[0].dev = (0, 0);
        assert!(matches!(
            validate(&unresolved),
            Err(LimitError::UnresolvedDevice { .. })
        ));
        assert_eq!(validate(&Limits::default()), Ok(()));
    }
}
