//! The limit flags of `create`, `launch` and `run`: each is a `limits.KEY` setting, so one
//! parser ([`berth_spec::LimitsConfig::resolve`]) checks flags and config files alike.

use clap::Args;

/// Resource limits (see `berth config show` for the same keys under `[limits]`).
#[derive(Args, Debug, Default, PartialEq)]
pub struct LimitFlags {
    /// Memory limit, e.g. 512MiB (the OOM killer acts above it).
    #[arg(
        long,
        value_name = "SIZE",
        help_heading = "Limits",
        allow_hyphen_values = true
    )]
    pub memory: Option<String>,
    /// Soft memory limit: reclaimed hard above it, e.g. 400MiB.
    #[arg(
        long,
        value_name = "SIZE",
        help_heading = "Limits",
        allow_hyphen_values = true
    )]
    pub memory_high: Option<String>,
    /// Swap on top of --memory, e.g. 0 or 1GiB.
    #[arg(
        long,
        value_name = "SIZE",
        help_heading = "Limits",
        allow_hyphen_values = true
    )]
    pub swap: Option<String>,
    /// CPU cap, in cpus (e.g. 1.5).
    #[arg(
        long,
        value_name = "N",
        help_heading = "Limits",
        allow_hyphen_values = true
    )]
    pub cpus: Option<String>,
    /// CPU share, 1-10000 (default 100).
    #[arg(
        long,
        value_name = "W",
        help_heading = "Limits",
        allow_hyphen_values = true
    )]
    pub cpu_weight: Option<String>,
    /// The CPUs to run on, e.g. 0-1,3.
    #[arg(long, value_name = "LIST", help_heading = "Limits")]
    pub cpuset: Option<String>,
    /// Maximum number of processes.
    #[arg(
        long,
        value_name = "N",
        help_heading = "Limits",
        allow_hyphen_values = true
    )]
    pub pids: Option<String>,
    /// Disk-time share, 1-10000 (default 100; effective under BFQ or io.cost).
    #[arg(
        long,
        value_name = "W",
        help_heading = "Limits",
        allow_hyphen_values = true
    )]
    pub io_weight: Option<String>,
    /// Read rate of a disk, DEVICE:SIZE per second (repeatable), e.g. /dev/sda:10MiB.
    #[arg(long, value_name = "DEV:SIZE", help_heading = "Limits")]
    pub io_read_bps: Vec<String>,
    /// Write rate of a disk, DEVICE:SIZE per second (repeatable).
    #[arg(long, value_name = "DEV:SIZE", help_heading = "Limits")]
    pub io_write_bps: Vec<String>,
    /// Read operations per second of a disk, DEVICE:N (repeatable).
    #[arg(long, value_name = "DEV:N", help_heading = "Limits")]
    pub io_read_iops: Vec<String>,
    /// Write operations per second of a disk, DEVICE:N (repeatable).
    #[arg(long, value_name = "DEV:N", help_heading = "Limits")]
    pub io_write_iops: Vec<String>,
    /// Root disk size, e.g. 10GiB (a filesystem of that size holds the container's files).
    #[arg(
        long,
        value_name = "SIZE",
        help_heading = "Limits",
        allow_hyphen_values = true
    )]
    pub disk: Option<String>,
    /// Inodes of the root disk.
    #[arg(
        long,
        value_name = "N",
        help_heading = "Limits",
        allow_hyphen_values = true
    )]
    pub disk_inodes: Option<String>,
    /// Bandwidth into the container, e.g. 100mbit.
    #[arg(
        long,
        value_name = "RATE",
        help_heading = "Limits",
        allow_hyphen_values = true
    )]
    pub net_ingress: Option<String>,
    /// Bandwidth out of the container, e.g. 20mbit.
    #[arg(
        long,
        value_name = "RATE",
        help_heading = "Limits",
        allow_hyphen_values = true
    )]
    pub net_egress: Option<String>,
    /// A process limit NAME=SOFT[:HARD] (repeatable), e.g. nofile=1024:4096; NAME is one of
    /// nofile nproc core memlock stack fsize msgqueue sigpending nice rtprio.
    #[arg(long, value_name = "NAME=SOFT[:HARD]", help_heading = "Limits")]
    pub rlimit: Vec<String>,
}

impl LimitFlags {
    /// The flags as `limits.KEY` = value settings, in a fixed order.
    pub fn settings(&self) -> Result<Vec<(String, String)>, String> {
        let mut out = Vec::new();
        let mut one = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                out.push((format!("limits.{k}"), v.clone()));
            }
        };
        one("memory", &self.memory);
        one("memory_high", &self.memory_high);
        one("swap", &self.swap);
        one("cpus", &self.cpus);
        one("cpu_weight", &self.cpu_weight);
        one("cpuset", &self.cpuset);
        one("pids", &self.pids);
        one("io_weight", &self.io_weight);
        one("disk", &self.disk);
        one("disk_inodes", &self.disk_inodes);
        one("net_ingress", &self.net_ingress);
        one("net_egress", &self.net_egress);
        for (k, list) in [
            ("io_read_bps", &self.io_read_bps),
            ("io_write_bps", &self.io_write_bps),
            ("io_read_iops", &self.io_read_iops),
            ("io_write_iops", &self.io_write_iops),
        ] {
            if !list.is_empty() {
                out.push((format!("limits.{k}"), list.join(",")));
            }
        }
        for r in &self.rlimit {
            let Some((name, value)) = r.split_once('=') else {
                return Err(format!(
                    "invalid --rlimit {r:?}: use NAME=SOFT[:HARD], e.g. nofile=1024:4096"
                ));
            };
            if !berth_spec::limits::RLIMITS
                .iter()
                .any(|(n, _, _)| *n == name)
            {
                let names: Vec<&str> = berth_spec::limits::RLIMITS.iter().map(|r| r.0).collect();
                return Err(format!(
                    "invalid --rlimit {r:?}: {name:?} is not one of {}",
                    names.join(", ")
                ));
            }
            out.push((format!("limits.{name}"), value.to_string()));
        }
        Ok(out)
    }

    /// The flags as a `[limits]` table, through the same TOML path as `config set`.
    pub fn to_config(&self) -> Result<berth_spec::LimitsConfig, String> {
        let mut table = toml::Table::new();
        for (key, value) in self.settings()? {
            let k = key.trim_start_matches("limits.").to_string();
            let v = match k.as_str() {
                "cpus" => value
                    .trim()
                    .parse::<f64>()
                    .map(toml::Value::Float)
                    .map_err(|_| format!("invalid --cpus {value:?}: use a number, e.g. 1.5"))?,
                "cpu_weight" | "io_weight" | "pids" | "disk_inodes" => value
                    .trim()
                    .parse::<i64>()
                    .ok()
                    .filter(|n| *n >= 0)
                    .map(toml::Value::Integer)
                    .ok_or_else(|| {
                        format!(
                            "invalid --{} {value:?}: use a whole number",
                            k.replace('_', "-")
                        )
                    })?,
                _ => toml::Value::String(value),
            };
            table.insert(k, v);
        }
        toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| e.message().to_string())
    }
}
