//! Resource limits: `[limits]` as users write it ([`LimitsConfig`]) and the typed, checked
//! form the runtime applies ([`Limits`]). Pure: device paths are kept as written, and the
//! caller that may touch the filesystem fills in their numbers ([`IoLimit::dev`]).

use crate::SpecError;
use crate::units::{parse_cpus, parse_size};
use serde::{Deserialize, Deserializer, Serialize};
use std::path::PathBuf;

/// `[limits]`, as users write them. Every key is optional; absent means the kernel's default
/// (no limit). Rlimits take `SOFT[:HARD]` or `unlimited`; sizes take units ("512MiB").
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_high: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swap: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_weight: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpuset: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_weight: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_read_bps: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_write_bps: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_read_iops: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_write_iops: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_inodes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net_ingress: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net_egress: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "text_or_number"
    )]
    pub nofile: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "text_or_number"
    )]
    pub nproc: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "text_or_number"
    )]
    pub core: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "text_or_number"
    )]
    pub memlock: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "text_or_number"
    )]
    pub stack: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "text_or_number"
    )]
    pub fsize: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "text_or_number"
    )]
    pub msgqueue: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "text_or_number"
    )]
    pub sigpending: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "text_or_number"
    )]
    pub nice: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "text_or_number"
    )]
    pub rtprio: Option<String>,
}

/// `nofile = 4096` and `nofile = "1024:4096"` both read as text.
fn text_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Number(i64),
    }
    Ok(Option::<Raw>::deserialize(d)?.map(|r| match r {
        Raw::Text(t) => t,
        Raw::Number(n) => n.to_string(),
    }))
}

/// What an rlimit's value counts: sizes accept units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RlimitUnit {
    Count,
    Bytes,
}

/// The rlimits berth sets, as (key, RLIMIT_* number, unit). The numbers are the generic
/// Linux ones (include/uapi/asm-generic/resource.h), which x86 and arm64 use.
pub const RLIMITS: &[(&str, i32, RlimitUnit)] = &[
    ("fsize", 1, RlimitUnit::Bytes),
    ("stack", 3, RlimitUnit::Bytes),
    ("core", 4, RlimitUnit::Bytes),
    ("nproc", 6, RlimitUnit::Count),
    ("nofile", 7, RlimitUnit::Count),
    ("memlock", 8, RlimitUnit::Bytes),
    ("sigpending", 11, RlimitUnit::Count),
    ("msgqueue", 12, RlimitUnit::Bytes),
    ("nice", 13, RlimitUnit::Count),
    ("rtprio", 14, RlimitUnit::Count),
];

/// A process resource limit for the container's init (and so everything it starts).
/// `None` is RLIM_INFINITY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimit {
    pub name: &'static str,
    pub resource: i32,
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

/// A block device's throttle. `dev` is its (major, minor), filled in by the caller that
/// looks the path up on the host; (0, 0) until then.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IoLimit {
    pub device: PathBuf,
    pub dev: (u32, u32),
    pub read_bps: Option<u64>,
    pub write_bps: Option<u64>,
    pub read_iops: Option<u64>,
    pub write_iops: Option<u64>,
}

/// The limits of one container, checked and in kernel units.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    /// Bytes of memory, page cache included (hard: the OOM killer acts above it).
    pub memory: Option<u64>,
    /// Bytes above which the container's memory is reclaimed hard (soft limit).
    pub memory_high: Option<u64>,
    /// Bytes of swap on top of `memory`.
    pub swap: Option<u64>,
    /// A hard cap in CPUs' worth of time per period (1.5 = one and a half CPUs).
    pub cpus: Option<f64>,
    /// Relative CPU share, 1 to 10000, default 100 (cgroup v2's scale).
    pub cpu_weight: Option<u64>,
    /// The CPUs the container may run on, in the kernel's list format ("0-1,3").
    pub cpuset: Option<String>,
    /// Processes and threads.
    pub pids: Option<u64>,
    /// Relative disk-time share, 1 to 10000, default 100 (cgroup v2's scale).
    pub io_weight: Option<u64>,
    /// Per-device throttles, one entry per device.
    pub io: Vec<IoLimit>,
    /// Size in bytes of the filesystem holding the container's writable files.
    pub disk: Option<u64>,
    /// Inodes of that filesystem.
    pub disk_inodes: Option<u64>,
    /// Bits per second into the container.
    pub net_ingress: Option<u64>,
    /// Bits per second out of the container.
    pub net_egress: Option<u64>,
    pub rlimits: Vec<Rlimit>,
}

impl Limits {
    /// Whether any limit needs the cgroup's cpuset controller, io controller, etc. is the
    /// cgroup crate's business; this tells whether there is anything for a cgroup at all.
    pub fn has_cgroup_limits(&self) -> bool {
        self.memory.is_some()
            || self.memory_high.is_some()
            || self.swap.is_some()
            || self.cpus.is_some()
            || self.cpu_weight.is_some()
            || self.cpuset.is_some()
            || self.pids.is_some()
            || self.io_weight.is_some()
            || !self.io.is_empty()
    }
}

/// The smallest memory limit accepted: below it even a container's first process cannot
/// start.
pub const MIN_MEMORY: u64 = 4 << 20;

/// The smallest disk berth makes: ext4 needs room for its journal and metadata.
pub const MIN_DISK: u64 = 16 << 20;

impl LimitsConfig {
    /// Checks every key and converts it to kernel units. The error names the key and says
    /// what a right value looks like. `host_cpus` bounds `cpus` and `cpuset`.
    pub fn resolve(&self, host_cpus: usize) -> Result<Limits, SpecError> {
        let key = |k: &'static str| move |e: SpecError| SpecError::Key(k, e.to_string());
        let size = |k: &'static str, v: &Option<String>| {
            v.as_deref().map(parse_size).transpose().map_err(key(k))
        };
        let weight = |k: &'static str, v: Option<u64>| match v {
            Some(w) if !(1..=10_000).contains(&w) => Err(SpecError::Key(
                k,
                format!("{w} is out of range: use 1 to 10000 (100 is the default share)"),
            )),
            _ => Ok(v),
        };
        let mut limits = Limits {
            memory: size("limits.memory", &self.memory)?,
            memory_high: size("limits.memory_high", &self.memory_high)?,
            swap: size("limits.swap", &self.swap)?,
            cpus: self
                .cpus
                .map(|c| parse_cpus(&c.to_string(), host_cpus))
                .transpose()
                .map_err(key("limits.cpus"))?,
            cpu_weight: weight("limits.cpu_weight", self.cpu_weight)?,
            cpuset: self
                .cpuset
                .as_deref()
                .map(|s| parse_cpuset(s, host_cpus))
                .transpose()
                .map_err(key("limits.cpuset"))?,
            pids: self.pids,
            io_weight: weight("limits.io_weight", self.io_weight)?,
            io: Vec::new(),
            disk: size("limits.disk", &self.disk)?,
            disk_inodes: self.disk_inodes,
            net_ingress: self
                .net_ingress
                .as_deref()
                .map(parse_rate)
                .transpose()
                .map_err(key("limits.net_ingress"))?,
            net_egress: self
                .net_egress
                .as_deref()
                .map(parse_rate)
                .transpose()
                .map_err(key("limits.net_egress"))?,
            rlimits: Vec::new(),
        };
        if let Some(m) = limits.memory
            && m < MIN_MEMORY
        {
            return Err(SpecError::Key(
                "limits.memory",
                "must be at least 4MiB: a container's processes need some memory to start".into(),
            ));
        }
        if let Some(h) = limits.memory_high {
            if h < MIN_MEMORY {
                return Err(SpecError::Key(
                    "limits.memory_high",
                    "must be at least 4MiB: below it the container is throttled to a stop".into(),
                ));
            }
            if limits.memory.is_some_and(|m| h > m) {
                return Err(SpecError::Key(
                    "limits.memory_high",
                    "must not be above limits.memory (the hard limit acts first)".into(),
                ));
            }
        }
        if limits.swap.is_some() && limits.memory.is_none() {
            return Err(SpecError::Key(
                "limits.swap",
                "is swap on top of limits.memory: set limits.memory too".into(),
            ));
        }
        if limits.pids == Some(0) {
            return Err(SpecError::Key("limits.pids", "must be at least 1".into()));
        }
        if let Some(d) = limits.disk
            && d < MIN_DISK
        {
            return Err(SpecError::Key(
                "limits.disk",
                "must be at least 16MiB (room for the filesystem's own metadata)".into(),
            ));
        }
        match limits.disk_inodes {
            Some(0) => {
                return Err(SpecError::Key(
                    "limits.disk_inodes",
                    "must be at least 1".into(),
                ));
            }
            Some(_) if limits.disk.is_none() => {
                return Err(SpecError::Key(
                    "limits.disk_inodes",
                    "counts the inodes of limits.disk: set limits.disk too".into(),
                ));
            }
            _ => {}
        }
        for (k, v) in [
            ("limits.net_ingress", limits.net_ingress),
            ("limits.net_egress", limits.net_egress),
        ] {
            if v == Some(0) {
                return Err(SpecError::Key(k, "must be above 0".into()));
            }
        }
        let io_keys: [(&'static str, &Option<String>, IoField); 4] = [
            ("limits.io_read_bps", &self.io_read_bps, IoField::ReadBps),
            ("limits.io_write_bps", &self.io_write_bps, IoField::WriteBps),
            ("limits.io_read_iops", &self.io_read_iops, IoField::ReadIops),
            (
                "limits.io_write_iops",
                &self.io_write_iops,
                IoField::WriteIops,
            ),
        ];
        for (k, text, field) in io_keys {
            let Some(text) = text else { continue };
            let entries =
                parse_io_list(text, field.is_bytes()).map_err(|e| SpecError::Key(k, e))?;
            for (device, value) in entries {
                let at = match limits.io.iter().position(|l| l.device == device) {
                    Some(i) => i,
                    None => {
                        limits.io.push(IoLimit {
                            device,
                            ..IoLimit::default()
                        });
                        limits.io.len() - 1
                    }
                };
                let slot = field.slot(&mut limits.io[at]);
                if slot.is_some() {
                    return Err(SpecError::Key(k, "names a device twice".into()));
                }
                *slot = Some(value);
            }
        }
        for (name, resource, unit) in RLIMITS {
            let Some(text) = self.rlimit(name) else {
                continue;
            };
            let (soft, hard) = parse_rlimit(text, *unit)
                .map_err(|e| SpecError::Key(rlimit_key(name), format!("{text:?}: {e}")))?;
            limits.rlimits.push(Rlimit {
                name,
                resource: *resource,
                soft,
                hard,
            });
        }
        Ok(limits)
    }

    fn rlimit(&self, name: &str) -> Option<&str> {
        match name {
            "nofile" => self.nofile.as_deref(),
            "nproc" => self.nproc.as_deref(),
            "core" => self.core.as_deref(),
            "memlock" => self.memlock.as_deref(),
            "stack" => self.stack.as_deref(),
            "fsize" => self.fsize.as_deref(),
            "msgqueue" => self.msgqueue.as_deref(),
            "sigpending" => self.sigpending.as_deref(),
            "nice" => self.nice.as_deref(),
            "rtprio" => self.rtprio.as_deref(),
            _ => None,
        }
    }
}

/// `limits.NAME` with a static lifetime, for error messages.
fn rlimit_key(name: &str) -> &'static str {
    const KEYS: &[&str] = &[
        "limits.fsize",
        "limits.stack",
        "limits.core",
        "limits.nproc",
        "limits.nofile",
        "limits.memlock",
        "limits.sigpending",
        "limits.msgqueue",
        "limits.nice",
        "limits.rtprio",
    ];
    KEYS.iter()
        .copied()
        .find(|k| k.strip_prefix("limits.") == Some(name))
        .unwrap_or("limits")
}

#[derive(Clone, Copy)]
enum IoField {
    ReadBps,
    WriteBps,
    ReadIops,
    WriteIops,
}

impl IoField {
    fn is_bytes(self) -> bool {
        matches!(self, IoField::ReadBps | IoField::WriteBps)
    }
    fn slot(self, l: &mut IoLimit) -> &mut Option<u64> {
        match self {
            IoField::ReadBps => &mut l.read_bps,
            IoField::WriteBps => &mut l.write_bps,
            IoField::ReadIops => &mut l.read_iops,
            IoField::WriteIops => &mut l.write_iops,
        }
    }
}

/// `DEVICE:VALUE[,DEVICE:VALUE]...`, as Docker's `--device-read-bps` writes one entry:
/// `/dev/sda:10MiB` (bytes per second) or `/dev/sda:500` (operations per second).
pub fn parse_io_list(text: &str, bytes: bool) -> Result<Vec<(PathBuf, u64)>, String> {
    let example = if bytes {
        "/dev/sda:10MiB"
    } else {
        "/dev/sda:500"
    };
    let mut out = Vec::new();
    for entry in text.split(',').map(str::trim) {
        let Some((dev, value)) = entry.rsplit_once(':') else {
            return Err(format!("{entry:?}: use DEVICE:VALUE, e.g. {example}"));
        };
        if !dev.starts_with("/dev/") || dev.split('/').any(|c| c == "..") {
            return Err(format!(
                "{dev:?} is not a device path: use a block device under /dev, e.g. {example}"
            ));
        }
        let v = if bytes {
            parse_size(value).map_err(|e| e.to_string())?
        } else {
            value
                .trim()
                .parse::<u64>()
                .map_err(|_| format!("{value:?} is not a whole number of operations per second"))?
        };
        if v == 0 {
            return Err(format!("{entry:?}: a rate of 0 would stop all I/O"));
        }
        out.push((PathBuf::from(dev), v));
    }
    Ok(out)
}

/// A network rate in bits per second: `100mbit`, `1.5gbit`, `800kbit`, `64000bit` (the
/// units of tc, decimal). Bytes per second are not accepted: tc's `kbps` means kilobytes,
/// a classic source of eightfold mistakes.
pub fn parse_rate(text: &str) -> Result<u64, SpecError> {
    let bad = || {
        SpecError::Config(format!(
            "invalid rate {text:?}: use bits per second with a unit, e.g. 100mbit, 1gbit or 800kbit"
        ))
    };
    let t = text.trim().to_ascii_lowercase();
    let (number, scale) = [
        ("tbit", 1e12),
        ("gbit", 1e9),
        ("mbit", 1e6),
        ("kbit", 1e3),
        ("bit", 1.0),
    ]
    .iter()
    .find_map(|(unit, scale)| t.strip_suffix(unit).map(|n| (n, *scale)))
    .ok_or_else(bad)?;
    let n: f64 = number.trim().parse().map_err(|_| bad())?;
    if !n.is_finite() || n <= 0.0 {
        return Err(bad());
    }
    let bits = (n * scale).round();
    if !(8.0..=1e15).contains(&bits) {
        return Err(bad());
    }
    Ok(bits as u64)
}

/// A cpu list ("0-3,5"): sorted, merged back into the kernel's list format. Every cpu must
/// be below `host_cpus`.
pub fn parse_cpuset(text: &str, host_cpus: usize) -> Result<String, SpecError> {
    let bad = |why: String| SpecError::Plain(format!("invalid cpuset {text:?}: {why}"));
    let mut cpus = std::collections::BTreeSet::new();
    for part in text.split(',').map(str::trim) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let parse = |s: &str| {
            s.trim()
                .parse::<usize>()
                .map_err(|_| bad("use cpu numbers and ranges, e.g. 0-1,3".into()))
        };
        let (a, b) = (parse(a)?, parse(b)?);
        if a > b {
            return Err(bad(format!("{part}: a range goes from low to high")));
        }
        if b >= host_cpus {
            return Err(bad(format!(
                "cpu {b} does not exist: this host has cpus 0 to {}",
                host_cpus.saturating_sub(1)
            )));
        }
        cpus.extend(a..=b);
    }
    let list: Vec<usize> = cpus.into_iter().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < list.len() {
        let start = list[i];
        while i + 1 < list.len() && list[i + 1] == list[i] + 1 {
            i += 1;
        }
        out.push(if start == list[i] {
            start.to_string()
        } else {
            format!("{start}-{}", list[i])
        });
        i += 1;
    }
    Ok(out.join(","))
}

/// `SOFT[:HARD]` (one value sets both), each a number, a size for byte limits, or
/// `unlimited`. Soft above hard is refused, as setrlimit(2) would.
pub fn parse_rlimit(text: &str, unit: RlimitUnit) -> Result<(Option<u64>, Option<u64>), String> {
    let one = |s: &str| -> Result<Option<u64>, String> {
        let s = s.trim();
        if s == "unlimited" || s == "infinity" {
            return Ok(None);
        }
        match unit {
            RlimitUnit::Count => s
                .parse::<u64>()
                .map(Some)
                .map_err(|_| "use a whole number, SOFT:HARD or unlimited".to_string()),
            RlimitUnit::Bytes => parse_size(s)
                .map(Some)
                .map_err(|_| "use a size (e.g. 8MiB), SOFT:HARD or unlimited".to_string()),
        }
    };
    let (soft, hard) = match text.split_once(':') {
        Some((s, h)) => (one(s)?, one(h)?),
        None => {
            let v = one(text)?;
            (v, v)
        }
    };
    if let (Some(s), h) = (soft, hard)
        && h.is_some_and(|h| s > h)
    {
        return Err("the soft limit is above the hard limit".into());
    }
    if soft.is_none() && hard.is_some() {
        return Err("the soft limit is above the hard limit".into());
    }
    Ok((soft, hard))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(toml_text: &str) -> Result<Limits, SpecError> {
        let c: LimitsConfig = toml::from_str(toml_text).expect("toml");
        c.resolve(4)
    }

    #[test]
    fn every_key_resolves() {
        let l = resolve(
            r#"
memory = "512MiB"
memory_high = "400MiB"
swap = "0"
cpus = 1.5
cpu_weight = 200
cpuset = "3,0-1"
pids = 100
io_weight = 50
io_read_bps = "/dev/vda:10MiB,/dev/vdb:1MiB"
io_write_iops = "/dev/vda:300"
disk = "1GiB"
disk_inodes = 10000
net_ingress = "100mbit"
net_egress = "1.5gbit"
nofile = "1024:4096"
nproc = 500
stack = "8MiB"
core = "unlimited"
"#,
        )
        .expect("valid");
        assert_eq!(l.memory, Some(512 << 20));
        assert_eq!(l.memory_high, Some(400 << 20));
        assert_eq!(l.swap, Some(0));
        assert_eq!(l.cpus, Some(1.5));
        assert_eq!(l.cpu_weight, Some(200));
        assert_eq!(l.cpuset.as_deref(), Some("0-1,3"));
        assert_eq!(l.io_weight, Some(50));
        assert_eq!(l.io.len(), 2);
        assert_eq!(l.io[0].device, PathBuf::from("/dev/vda"));
        assert_eq!(l.io[0].read_bps, Some(10 << 20));
        assert_eq!(l.io[0].write_iops, Some(300));
        assert_eq!(l.io[1].read_bps, Some(1 << 20));
        assert_eq!(l.io[1].write_iops, None);
        assert_eq!(l.disk, Some(1 << 30));
        assert_eq!(l.disk_inodes, Some(10000));
        assert_eq!(l.net_ingress, Some(100_000_000));
        assert_eq!(l.net_egress, Some(1_500_000_000));
        let by = |n: &str| l.rlimits.iter().find(|r| r.name == n).copied();
        assert_eq!(
            by("nofile").map(|r| (r.soft, r.hard)),
            Some((Some(1024), Some(4096)))
        );
        assert_eq!(
            by("nproc").map(|r| (r.soft, r.hard)),
            Some((Some(500), Some(500)))
        );
        assert_eq!(by("stack").map(|r| r.soft), Some(Some(8 << 20)));
        assert_eq!(by("core").map(|r| (r.soft, r.hard)), Some((None, None)));
        assert_eq!(by("nofile").map(|r| r.resource), Some(7));
        assert!(l.has_cgroup_limits());
        assert!(!Limits::default().has_cgroup_limits());
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            ("memory = \"-1\"", "limits.memory"),
            ("memory = \"12XB\"", "limits.memory"),
            ("memory = \"1MiB\"", "limits.memory"),
            ("swap = \"1GiB\"", "limits.swap"),
            ("cpus = 5", "limits.cpus"),
            ("cpus = -1", "limits.cpus"),
            ("cpu_weight = 0", "limits.cpu_weight"),
            ("cpu_weight = 10001", "limits.cpu_weight"),
            ("cpuset = \"4\"", "limits.cpuset"),
            ("cpuset = \"2-1\"", "limits.cpuset"),
            ("cpuset = \"a\"", "limits.cpuset"),
            ("pids = 0", "limits.pids"),
            ("io_weight = 0", "limits.io_weight"),
            ("io_read_bps = \"sda:1MiB\"", "limits.io_read_bps"),
            ("io_read_bps = \"/dev/sda\"", "limits.io_read_bps"),
            ("io_read_bps = \"/dev/sda:0\"", "limits.io_read_bps"),
            ("io_read_bps = \"/dev/../sda:1M\"", "limits.io_read_bps"),
            (
                "io_read_bps = \"/dev/sda:1M,/dev/sda:2M\"",
                "limits.io_read_bps",
            ),
            ("io_read_iops = \"/dev/sda:1.5\"", "limits.io_read_iops"),
            ("disk = \"1MiB\"", "limits.disk"),
            ("disk_inodes = 5", "limits.disk_inodes"),
            ("net_ingress = \"100\"", "limits.net_ingress"),
            ("net_egress = \"10mbps\"", "limits.net_egress"),
            ("net_egress = \"-5mbit\"", "limits.net_egress"),
            ("nofile = \"2048:1024\"", "limits.nofile"),
            ("nofile = \"lots\"", "limits.nofile"),
            ("nofile = -1", "limits.nofile"),
            ("stack = \"8XB\"", "limits.stack"),
        ];
        for (text, key) in cases {
            match resolve(text) {
                Err(SpecError::Key(k, _)) => assert_eq!(k, key, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        assert!(toml::from_str::<LimitsConfig>("bogus = 1").is_err());
    }

    #[test]
    fn rates_are_bits_per_second() {
        assert_eq!(parse_rate("100mbit").ok(), Some(100_000_000));
        assert_eq!(parse_rate("1Gbit").ok(), Some(1_000_000_000));
        assert_eq!(parse_rate("800kbit").ok(), Some(800_000));
        assert_eq!(parse_rate("64000bit").ok(), Some(64_000));
        for bad in [
            "", "100", "mbit", "1mbps", "0mbit", "nanmbit", "infgbit", "2bit",
        ] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cpusets_are_normalised() {
        assert_eq!(parse_cpuset("0", 2).ok().as_deref(), Some("0"));
        assert_eq!(parse_cpuset("1,0", 2).ok().as_deref(), Some("0-1"));
        assert_eq!(
            parse_cpuset("0-2,5,6-7", 8).ok().as_deref(),
            Some("0-2,5-7")
        );
        assert!(parse_cpuset("", 2).is_err());
        assert!(parse_cpuset("2", 2).is_err());
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(s in ".{0,24}") {
            let _ = parse_rate(&s);
            let _ = parse_cpuset(&s, 8);
            let _ = parse_rlimit(&s, RlimitUnit::Count);
            let _ = parse_rlimit(&s, RlimitUnit::Bytes);
            let _ = parse_io_list(&s, true);
            let _ = parse_io_list(&s, false);
        }

        #[test]
        fn a_normalised_cpuset_reads_back_the_same(cpus in proptest::collection::btree_set(0usize..64, 1..10)) {
            let text = cpus.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(",");
            let once = parse_cpuset(&text, 64).expect("valid");
            proptest::prop_assert_eq!(parse_cpuset(&once, 64).expect("valid"), once);
        }

        #[test]
        fn mbit_rates_are_a_million_bits(n in 1u64..100_000) {
            proptest::prop_assert_eq!(parse_rate(&format!("{n}mbit")).ok(), Some(n * 1_000_000));
        }
    }

    #[test]
    fn rlimits_take_soft_and_hard() {
        use RlimitUnit::*;
        assert_eq!(parse_rlimit("10", Count), Ok((Some(10), Some(10))));
        assert_eq!(parse_rlimit("10:20", Count), Ok((Some(10), Some(20))));
        assert_eq!(parse_rlimit("10:unlimited", Count), Ok((Some(10), None)));
        assert_eq!(
            parse_rlimit("1MiB", Bytes),
            Ok((Some(1 << 20), Some(1 << 20)))
        );
        assert!(parse_rlimit("unlimited:10", Count).is_err());
        assert!(parse_rlimit("1MiB", Count).is_err());
    }
}
