//! A system container's settings: `containers/NAME/config.toml`, as DESIGN.md §5 sketches
//! it. Unknown keys are refused (a typo must not be silently ignored), every value is
//! checked by [`Config::validate`], and `berth config get/set` address keys by dotted path.

pub use crate::limits::LimitsConfig;
pub use crate::netconfig::{NetConfig, PortConfig};
use crate::{SpecError, validate};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Hostname inside (default: the container's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The init command, PID 1 of the container.
    #[serde(default = "default_init")]
    pub init: Vec<String>,
    /// No user namespace: container root is host root.
    #[serde(default)]
    pub privileged: bool,
    /// The signal that asks init to halt cleanly ("SIGRTMIN+3", "SIGPWR", "SIGUSR2", "SIGTERM");
    /// detected from the init binary when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(default)]
    pub autostart: Autostart,
    /// Bind lxcfs's /proc and /sys files into the container, so that free, nproc, uptime
    /// and top inside show the container's figures: default on when lxcfs is installed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lxcfs: Option<bool>,
    pub rootfs: Rootfs,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default, rename = "net", skip_serializing_if = "Vec::is_empty")]
    pub nets: Vec<NetConfig>,
    #[serde(default, rename = "mount", skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<MountConfig>,
    #[serde(default, rename = "port", skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortConfig>,
}

fn default_init() -> Vec<String> {
    vec!["/sbin/init".to_string()]
}

/// `autostart = { enabled, order, delay }`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Autostart {
    #[serde(default)]
    pub enabled: bool,
    /// Lower starts first (and stops last).
    #[serde(default)]
    pub order: i64,
    /// Pause after starting this container before the next ("5s").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<String>,
}

/// Where the root filesystem comes from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rootfs {
    /// An image, as the user named it ("busybox", "debian/bookworm").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The image's id at create time: the layer the container stays on, whatever the name
    /// points at later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// How a container of an image holds its files: `overlay` (its changes over the
    /// shared image, the default) or `copy` (a full copy of its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// A root filesystem directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}

impl Rootfs {
    /// Whether the container's files are an overlay over its image.
    pub fn is_overlay(&self) -> bool {
        self.image.is_some() && self.mode.as_deref().unwrap_or("overlay") == "overlay"
    }
}

/// One `[[mount]]` entry: a host path bound into the container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountConfig {
    pub source: PathBuf,
    pub target: String,
    #[serde(default)]
    pub readonly: bool,
}

/// Keys `berth config get/set` accept, with what a value must look like.
pub const KEYS: &[(&str, &str)] = &[
    ("hostname", "a hostname"),
    (
        "init",
        "a command, e.g. \"/sbin/init\" or [\"/sbin/init\", \"--log-level=info\"]",
    ),
    ("privileged", "true or false"),
    (
        "stop_signal",
        "a signal name, e.g. SIGRTMIN+3, SIGPWR, SIGUSR2, SIGTERM",
    ),
    (
        "lxcfs",
        "true or false (default: true when lxcfs is installed)",
    ),
    ("autostart.enabled", "true or false"),
    ("autostart.order", "a whole number"),
    ("autostart.delay", "a duration, e.g. 5s"),
    ("rootfs.image", "an image name"),
    ("rootfs.mode", "overlay or copy"),
    ("rootfs.path", "an absolute path"),
    ("limits.memory", "a size, e.g. 512MiB"),
    (
        "limits.memory_high",
        "a size, e.g. 400MiB (reclaimed hard above it)",
    ),
    (
        "limits.swap",
        "a size of swap on top of limits.memory, e.g. 0 or 1GiB",
    ),
    ("limits.cpus", "a number of cpus, e.g. 1.5"),
    ("limits.cpu_weight", "a share from 1 to 10000 (default 100)"),
    ("limits.cpuset", "a cpu list, e.g. 0-1,3"),
    ("limits.pids", "a whole number"),
    ("limits.io_weight", "a share from 1 to 10000 (default 100)"),
    (
        "limits.io_read_bps",
        "DEVICE:SIZE per second, e.g. /dev/sda:10MiB",
    ),
    (
        "limits.io_write_bps",
        "DEVICE:SIZE per second, e.g. /dev/sda:10MiB",
    ),
    (
        "limits.io_read_iops",
        "DEVICE:COUNT per second, e.g. /dev/sda:500",
    ),
    (
        "limits.io_write_iops",
        "DEVICE:COUNT per second, e.g. /dev/sda:500",
    ),
    ("limits.disk", "a size, e.g. 10GiB (the root disk)"),
    ("limits.disk_inodes", "a whole number of inodes"),
    ("limits.net_ingress", "a rate, e.g. 100mbit"),
    ("limits.net_egress", "a rate, e.g. 20mbit"),
    ("net.type", "bridge, routed, macvlan, none or host"),
    (
        "net.bridge",
        "a berth network (berth network list) or a host bridge; default berth0",
    ),
    ("net.parent", "the host interface of a macvlan, e.g. eth0"),
    (
        "net.ipv4",
        "dhcp, or an address with its prefix, e.g. 10.44.0.10/24 (routed: 10.44.0.10)",
    ),
    ("net.gateway", "the IPv4 gateway of a static address"),
    ("net.ipv6", "a static IPv6 address with its prefix"),
    ("net.mac", "the MAC of eth0, e.g. 02:00:0a:2c:00:0a"),
    ("limits.nofile", "SOFT[:HARD] open files, e.g. 1024:4096"),
    ("limits.nproc", "SOFT[:HARD] processes per user"),
    (
        "limits.core",
        "SOFT[:HARD] core file size, e.g. 0 or unlimited",
    ),
    ("limits.memlock", "SOFT[:HARD] locked memory, e.g. 64MiB"),
    ("limits.stack", "SOFT[:HARD] stack size, e.g. 8MiB"),
    ("limits.fsize", "SOFT[:HARD] file size"),
    ("limits.msgqueue", "SOFT[:HARD] POSIX message queue bytes"),
    ("limits.sigpending", "SOFT[:HARD] queued signals"),
    ("limits.nice", "SOFT[:HARD] nice ceiling (20 - nice)"),
    ("limits.rtprio", "SOFT[:HARD] real-time priority"),
];

/// The keys whose values are numbers, booleans or lists; every other key holds text.
const NON_TEXT_KEYS: &[&str] = &[
    "init",
    "lxcfs",
    "privileged",
    "autostart.enabled",
    "autostart.order",
    "limits.cpus",
    "limits.cpu_weight",
    "limits.pids",
    "limits.io_weight",
    "limits.disk_inodes",
];

impl Config {
    /// A new container's settings for `rootfs`.
    pub fn new(rootfs: Rootfs) -> Config {
        Config {
            hostname: None,
            init: default_init(),
            privileged: false,
            stop_signal: None,
            autostart: Autostart::default(),
            lxcfs: None,
            rootfs,
            limits: LimitsConfig::default(),
            nets: Vec::new(),
            mounts: Vec::new(),
            ports: Vec::new(),
        }
    }

    /// Parses and validates config.toml text.
    pub fn parse(text: &str, host_cpus: usize) -> Result<Config, SpecError> {
        let c: Config =
            toml::from_str(text).map_err(|e| SpecError::Config(e.message().to_string()))?;
        c.validate(host_cpus)?;
        Ok(c)
    }

    /// The TOML text of these settings.
    pub fn to_toml(&self) -> Result<String, SpecError> {
        toml::to_string_pretty(self).map_err(|e| SpecError::Config(e.to_string()))
    }

    /// Checks every value; the first problem is returned, naming the key.
    pub fn validate(&self, host_cpus: usize) -> Result<(), SpecError> {
        let key = |k: &'static str| move |e: SpecError| SpecError::Key(k, e.to_string());
        if let Some(h) = &self.hostname {
            validate::hostname(h).map_err(key("hostname"))?;
        }
        if self.init.is_empty() || !self.init[0].starts_with('/') {
            return Err(SpecError::Key(
                "init",
                "must be a command with an absolute path, e.g. /sbin/init".into(),
            ));
        }
        if let Some(s) = &self.stop_signal {
            signal_number(s)
                .ok_or_else(|| SpecError::Key("stop_signal", format!("unknown signal {s:?}")))?;
        }
        if let Some(d) = &self.autostart.delay {
            humantime::parse_duration(d).map_err(|_| {
                SpecError::Key(
                    "autostart.delay",
                    format!("invalid duration {d:?}: use e.g. 5s or 500ms"),
                )
            })?;
        }
        match (&self.rootfs.image, &self.rootfs.path) {
            (Some(i), None) => {
                validate::image_name(i).map_err(key("rootfs.image"))?;
                if let Some(id) = &self.rootfs.image_id
                    && (id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()))
                {
                    return Err(SpecError::Key(
                        "rootfs.image_id",
                        format!("{id:?} is not an image id"),
                    ));
                }
                if let Some(m) = &self.rootfs.mode
                    && m != "overlay"
                    && m != "copy"
                {
                    return Err(SpecError::Key(
                        "rootfs.mode",
                        format!("{m:?}: use overlay or copy"),
                    ));
                }
            }
            (None, Some(p)) if p.is_absolute() => {}
            (None, Some(_)) => {
                return Err(SpecError::Key("rootfs.path", "must be absolute".into()));
            }
            _ => {
                return Err(SpecError::Key(
                    "rootfs",
                    "set exactly one of image or path".into(),
                ));
            }
        }
        self.limits.resolve(host_cpus)?;
        if self.nets.len() > 1 {
            return Err(SpecError::Key(
                "net",
                "a container has one [[net]] interface (eth0) in this version".into(),
            ));
        }
        for n in &self.nets {
            n.validate()?;
        }
        let net = NetConfig::effective(&self.nets);
        for (i, p) in self.ports.iter().enumerate() {
            p.validate()?;
            if net.kind == "none" || net.kind == "host" {
                return Err(SpecError::Key(
                    "port",
                    format!(
                        "forwards need an interface to forward to, and net.type is {}",
                        net.kind
                    ),
                ));
            }
            if let Some(q) = self.ports[..i].iter().find(|q| q.clashes(p)) {
                return Err(SpecError::Key(
                    "port",
                    format!("host port {}/{} is forwarded twice", q.host_port, q.proto),
                ));
            }
        }
        for m in &self.mounts {
            if !m.source.is_absolute() {
                return Err(SpecError::Key(
                    "mount.source",
                    format!("{} must be absolute", m.source.display()),
                ));
            }
            validate::container_path(&m.target).map_err(key("mount.target"))?;
        }
        Ok(())
    }

    /// The value at a dotted key, as TOML text.
    /// A known key that is not set reads as the empty text (as `lxc config get` prints it).
    pub fn get(&self, dotted: &str) -> Result<String, SpecError> {
        if let Some(key) = dotted.strip_prefix("net.") {
            // The one [[net]] entry, or the default one when the file has none.
            if !KEYS.iter().any(|(k, _)| *k == dotted) {
                return Err(unknown_key(dotted));
            }
            let net = toml::Value::try_from(NetConfig::effective(&self.nets))
                .map_err(|e| SpecError::Config(e.to_string()))?;
            return Ok(match net.get(key) {
                Some(toml::Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            });
        }
        let value = toml::Value::try_from(self).map_err(|e| SpecError::Config(e.to_string()))?;
        let mut v = &value;
        for part in dotted.split('.') {
            match v.get(part) {
                Some(next) => v = next,
                None if KEYS.iter().any(|(k, _)| *k == dotted) => return Ok(String::new()),
                None => return Err(unknown_key(dotted)),
            }
        }
        Ok(match v {
            toml::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }

    /// A copy with `dotted` set to `raw` (TOML syntax, or a bare string), validated.
    pub fn with(&self, dotted: &str, raw: &str, host_cpus: usize) -> Result<Config, SpecError> {
        let c = self.set_unchecked(dotted, raw)?;
        c.validate(host_cpus)?;
        Ok(c)
    }

    /// A copy with every `(key, value)` set, validated once at the end: keys that only make
    /// sense together (`net.type=macvlan` with `net.parent`) can be set in one go.
    pub fn with_all(
        &self,
        sets: &[(String, String)],
        host_cpus: usize,
    ) -> Result<Config, SpecError> {
        let mut c = self.clone();
        for (k, v) in sets {
            c = c.set_unchecked(k, v)?;
        }
        c.validate(host_cpus)?;
        Ok(c)
    }

    /// `dotted` set to `raw`, each value parsed into its field but the whole not validated.
    fn set_unchecked(&self, dotted: &str, raw: &str) -> Result<Config, SpecError> {
        if !KEYS.iter().any(|(k, _)| *k == dotted) {
            return Err(unknown_key(dotted));
        }
        if let Some(key) = dotted.strip_prefix("net.") {
            return self.with_net(key, raw);
        }
        let mut value =
            toml::Value::try_from(self).map_err(|e| SpecError::Config(e.to_string()))?;
        // Text keys take the text as written: `limits.cpuset=0` is the cpu list "0", not
        // the number 0 (which the field would refuse as the wrong type).
        let parsed = match parse_value(raw) {
            v if NON_TEXT_KEYS.contains(&dotted) => v,
            toml::Value::String(s) => toml::Value::String(s),
            _ => toml::Value::String(raw.to_string()),
        };
        let mut table = &mut value;
        let parts: Vec<&str> = dotted.split('.').collect();
        for part in &parts[..parts.len() - 1] {
            let t = table.as_table_mut().ok_or_else(|| unknown_key(dotted))?;
            table = t
                .entry(part.to_string())
                .or_insert_with(|| toml::Value::Table(Default::default()));
        }
        let t = table.as_table_mut().ok_or_else(|| unknown_key(dotted))?;
        t.insert(parts[parts.len() - 1].to_string(), parsed);
        value
            .try_into()
            .map_err(|e: toml::de::Error| SpecError::Key(key_name(dotted), e.message().to_string()))
    }
}

impl Config {
    /// `net.KEY=VALUE`: a key of the one [[net]] entry (made from the default when there
    /// is none). Setting `net.type` starts the entry afresh, since most other keys belong
    /// to one type; an empty value unsets a key.
    fn with_net(&self, key: &str, raw: &str) -> Result<Config, SpecError> {
        let mut net = NetConfig::effective(&self.nets);
        net.set(key, raw)
            .map_err(|_| unknown_key(&format!("net.{key}")))?;
        let mut c = self.clone();
        c.nets = vec![net];
        Ok(c)
    }
}

fn key_name(dotted: &str) -> &'static str {
    KEYS.iter()
        .find(|(k, _)| *k == dotted)
        .map(|(k, _)| *k)
        .unwrap_or("config")
}

fn unknown_key(k: &str) -> SpecError {
    SpecError::Config(format!(
        "unknown key {k:?}; known keys: {}",
        KEYS.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
    ))
}

/// `raw` as a TOML value when it is one (`true`, `2`, `1.5`, `["a"]`), else as a string.
fn parse_value(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

/// A duration as users write one ("5s", "1m 30s", "500ms").
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    humantime::parse_duration(text).ok()
}

/// Signal names berth knows for `stop_signal` and `kill --signal`.
pub fn signal_number(name: &str) -> Option<i32> {
    let n = name.trim().to_ascii_uppercase();
    let n = n.strip_prefix("SIG").unwrap_or(&n);
    const TABLE: &[(&str, i32)] = &[
        ("HUP", 1),
        ("INT", 2),
        ("QUIT", 3),
        ("KILL", 9),
        ("USR1", 10),
        ("USR2", 12),
        ("TERM", 15),
        ("CONT", 18),
        ("STOP", 19),
        ("PWR", 30),
    ];
    if let Some((_, s)) = TABLE.iter().find(|(k, _)| *k == n) {
        return Some(*s);
    }
    if let Some(off) = n.strip_prefix("RTMIN+") {
        return off
            .parse::<i32>()
            .ok()
            .filter(|o| (0..=30).contains(o))
            .map(|o| 34 + o);
    }
    if n == "RTMIN" {
        return Some(34);
    }
    n.parse::<i32>().ok().filter(|s| (1..=64).contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
hostname = "web"
init = ["/sbin/init"]
privileged = false
autostart = { enabled = true, order = 10, delay = "5s" }

[rootfs]
image = "busybox"

[limits]
memory = "512MiB"
cpus = 1.5
pids = 2000

[[net]]
type = "none"

[[mount]]
source = "/srv/data"
target = "/data"
readonly = true
"#;

    #[test]
    fn parses_the_design_example() {
        let c = Config::parse(FULL, 4).expect("valid");
        assert_eq!(c.hostname.as_deref(), Some("web"));
        assert!(c.autostart.enabled);
        assert_eq!(c.limits.pids, Some(2000));
        assert_eq!(c.mounts[0].target, "/data");
        let again = Config::parse(&c.to_toml().expect("toml"), 4).expect("round trip");
        assert_eq!(again, c);
    }

    #[test]
    fn refuses_unknown_keys_and_bad_values() {
        assert!(matches!(
            Config::parse("bogus = 1\n[rootfs]\nimage = \"busybox\"\n", 4),
            Err(SpecError::Config(_))
        ));
        assert!(
            Config::parse(
                "[rootfs]\nimage = \"busybox\"\n[limits]\nmemory = \"12XB\"\n",
                4
            )
            .is_err()
        );
        assert!(Config::parse("[rootfs]\nimage = \"busybox\"\n[limits]\ncpus = 9\n", 4).is_err());
        assert!(Config::parse("[rootfs]\n", 4).is_err());
        assert!(
            Config::parse("init = [\"sbin/init\"]\n[rootfs]\nimage = \"busybox\"\n", 4).is_err()
        );
        assert!(
            Config::parse(
                "stop_signal = \"SIGFOO\"\n[rootfs]\nimage = \"busybox\"\n",
                4
            )
            .is_err()
        );
    }

    #[test]
    fn get_and_set_by_dotted_key() {
        let c = Config::new(Rootfs {
            image: Some("busybox".into()),
            ..Rootfs::default()
        });
        let c = c.with("limits.memory", "1GiB", 4).expect("set");
        assert_eq!(c.get("limits.memory").expect("get"), "1GiB");
        let c = c.with("autostart.enabled", "true", 4).expect("set");
        assert!(c.autostart.enabled);
        let c = c.with("init", "[\"/sbin/init\", \"-v\"]", 4).expect("set");
        assert_eq!(c.init.len(), 2);
        assert!(c.with("limits.memory", "lots", 4).is_err());
        assert!(c.with("limits.bogus", "1", 4).is_err());
        assert!(c.with("autostart.order", "soon", 4).is_err());
        assert!(c.get("nothing.here").is_err());
    }

    #[test]
    fn signals() {
        assert_eq!(signal_number("SIGRTMIN+3"), Some(37));
        assert_eq!(signal_number("pwr"), Some(30));
        assert_eq!(signal_number("SIGUSR2"), Some(12));
        assert_eq!(signal_number("15"), Some(15));
        assert_eq!(signal_number("SIGFOO"), None);
    }
}
