//! Which cgroup file systems this host has and where: read once from `/proc/self/mountinfo`
//! (no directory probing, no process spawning), so that creating a cgroup later touches only
//! the directories it needs.

use std::path::{Path, PathBuf};

use crate::Error;

/// Where the kernel describes our mount namespace; `man 5 proc`, "/proc/pid/mountinfo".
const MOUNTINFO: &str = "/proc/self/mountinfo";

/// Super-block options a v1 hierarchy shows that are not controllers. Source: the kernel's
/// `cgroup1_show_options()` (kernel/cgroup/cgroup-v1.c) plus the VFS's leading `rw`/`ro`.
/// Everything else in the list is a controller (`legacy_name`), so a controller this table
/// does not know still ends up in the mount options a container needs.
const V1_NON_CONTROLLER_OPTIONS: &[&str] = &[
    "rw",
    "ro",
    "noprefix",
    "xattr",
    "cpuset_v2_mode",
    "favordynmods",
    "clone_children",
];

/// How the host arranges its cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// Only v1 hierarchies.
    V1,
    /// v1 hierarchies plus a cgroup2 mount (usually `/sys/fs/cgroup/unified`), which holds the
    /// controllers no v1 hierarchy has claimed (often none).
    Hybrid,
    /// One cgroup2 tree holds every controller.
    V2,
}

/// One mounted v1 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Hierarchy {
    pub mount_point: PathBuf,
    /// The mount point's last component (`cpu`, `cpu,cpuacct`, `systemd`): the directory a
    /// container's own `/sys/fs/cgroup` should show it under.
    pub name: String,
    /// The mount data that mounts this same hierarchy again (`cpu,cpuacct`,
    /// `none,name=systemd`): the kernel matches an existing hierarchy by exactly its
    /// controllers and name, and refuses a subset with EBUSY.
    pub options: String,
    pub controllers: Vec<String>,
}

/// The cgroup mounts of this mount namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub version: Version,
    pub v1: Vec<V1Hierarchy>,
    /// The cgroup2 mount, if any.
    pub unified: Option<PathBuf>,
}

impl Layout {
    /// The same layout restricted to the v1 hierarchies that hold one of `controllers`
    /// (and the cgroup2 tree only on a pure v2 host, where it holds everything): a
    /// container that needs only some controllers joins only those, which keeps its start
    /// and removal cheap ("join only what a container needs", DESIGN.md).
    pub fn only(&self, controllers: &[&str]) -> Layout {
        Layout {
            version: self.version,
            v1: self
                .v1
                .iter()
                .filter(|h| {
                    h.controllers
                        .iter()
                        .any(|c| controllers.contains(&c.as_str()))
                })
                .cloned()
                .collect(),
            unified: if self.version == Version::V2 {
                self.unified.clone()
            } else {
                None
            },
        }
    }

    /// Reads the layout from `/proc/self/mountinfo`. Call once per process and keep the
    /// result: the mount table does not change under a running container manager.
    pub fn detect() -> Result<Layout, Error> {
        let path = Path::new(MOUNTINFO);
        let text = std::fs::read_to_string(path).map_err(|source| Error::ReadMountinfo {
            path: path.to_owned(),
            source,
        })?;
        Layout::parse(&text).ok_or_else(|| Error::NoCgroupMounts {
            path: path.to_owned(),
        })
    }

    /// Parses mountinfo text (`man 5 proc`); `None` when it has no cgroup mount at all.
    ///
    /// A hierarchy mounted more than once (bind mounts, a container's view) is listed once, at
    /// its first mount point: its super block's device number identifies it.
    pub fn parse(mountinfo: &str) -> Option<Layout> {
        let mut v1: Vec<V1Hierarchy> = Vec::new();
        let mut v1_devices: Vec<&str> = Vec::new();
        let mut unified = None;
        for mount in mountinfo.lines().filter_map(Mount::parse) {
            match mount.fs_type {
                "cgroup2" if unified.is_none() => unified = Some(mount.mount_point),
                "cgroup" if !v1_devices.contains(&mount.device) => {
                    v1_devices.push(mount.device);
                    v1.push(v1_hierarchy(mount.mount_point, mount.super_options));
                }
                _ => {}
            }
        }
        let version = match (v1.is_empty(), unified.is_some()) {
            (false, true) => Version::Hybrid,
            (false, false) => Version::V1,
            (true, true) => Version::V2,
            (true, false) => return None,
        };
        Some(Layout {
            version,
            v1,
            unified,
        })
    }
}

/// The fields of one mountinfo line that matter here.
struct Mount<'a> {
    device: &'a str,
    mount_point: PathBuf,
    fs_type: &'a str,
    super_options: &'a str,
}

impl<'a> Mount<'a> {
    /// `ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER_OPTIONS`.
    /// A malformed line yields `None` and is skipped: one odd mount must not hide the rest.
    fn parse(line: &'a str) -> Option<Mount<'a>> {
        let mut fields = line.split_ascii_whitespace();
        let device = fields.nth(2)?;
        let mount_point = unescape(fields.nth(1)?);
        let mut fields = fields.skip_while(|field| *field != "-").skip(1);
        let fs_type = fields.next()?;
        let super_options = fields.nth(1)?;
        Some(Mount {
            device,
            mount_point: PathBuf::from(mount_point),
            fs_type,
            super_options,
        })
    }
}

fn v1_hierarchy(mount_point: PathBuf, super_options: &str) -> V1Hierarchy {
    let mut controllers = Vec::new();
    let mut named = None;
    for option in super_options.split(',') {
        if let Some(name) = option.strip_prefix("name=") {
            named = Some(name);
        } else if !option.is_empty()
            && !option.contains('=')
            && !V1_NON_CONTROLLER_OPTIONS.contains(&option)
        {
            controllers.push(option.to_owned());
        }
    }
    let mut options = if controllers.is_empty() {
        // A hierarchy without controllers must say so, or the kernel would bind them all.
        String::from("none")
    } else {
        controllers.join(",")
    };
    if let Some(name) = named {
        options.push_str(",name=");
        options.push_str(name);
    }
    let name = mount_point
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    V1Hierarchy {
        mount_point,
        name,
        options,
        controllers,
    }
}

/// mountinfo writes space, tab, newline and backslash in paths as `\ooo` octal escapes.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], octal) {
            (b'\\', Some(d)) => {
                let value = d.iter().fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This kind of host: every controller in its own v1 hierarchy, cgroup2 beside them.
    const HYBRID: &str = "\
25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    /// systemd's default since v243: one cgroup2 tree, with optional fields before `-`.
    const PURE_V2: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
26 22 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw
27 26 0:24 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:3 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    /// A CentOS 7 style host: co-mounted controllers, named systemd hierarchy, no cgroup2,
    /// and the same hierarchy bind-mounted a second time.
    const PURE_V1: &str = "\
24 18 0:20 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:8 - tmpfs tmpfs ro,mode=755
25 24 0:21 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:9 - cgroup cgroup rw,xattr,release_agent=/usr/lib/systemd/systemd-cgroups-agent,name=systemd
28 24 0:24 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,cpu,cpuacct
29 24 0:25 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,net_prio,net_cls
30 24 0:26 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,cpuset,clone_children
31 24 0:27 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,memory
90 22 0:27 / /mnt/my\\040memory rw,relatime shared:15 - cgroup cgroup rw,memory
";

    fn names(layout: &Layout) -> Vec<&str> {
        layout.v1.iter().map(|h| h.name.as_str()).collect()
    }

    #[test]
    fn hybrid_lists_every_v1_hierarchy_and_the_unified_mount() {
        let layout = Layout::parse(HYBRID).expect("cgroups present");
        assert_eq!(layout.version, Version::Hybrid);
        assert_eq!(
            names(&layout),
            [
                "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
                "systemd"
            ]
        );
        assert_eq!(
            layout.unified.as_deref(),
            Some(Path::new("/sys/fs/cgroup/unified"))
        );
        let systemd = &layout.v1[8];
        assert_eq!(systemd.mount_point, Path::new("/sys/fs/cgroup/systemd"));
        assert_eq!(systemd.options, "none,name=systemd");
        assert!(systemd.controllers.is_empty());
        assert_eq!(layout.v1[0].options, "cpu");
        assert_eq!(layout.v1[0].controllers, ["cpu"]);
    }

    #[test]
    fn pure_v2_has_only_the_unified_mount() {
        let layout = Layout::parse(PURE_V2).expect("cgroups present");
        assert_eq!(layout.version, Version::V2);
        assert!(layout.v1.is_empty());
        assert_eq!(layout.unified.as_deref(), Some(Path::new("/sys/fs/cgroup")));
    }

    #[test]
    fn pure_v1_keeps_co_mounted_controllers_together_and_skips_non_controller_options() {
        let layout = Layout::parse(PURE_V1).expect("cgroups present");
        assert_eq!(layout.version, Version::V1);
        assert_eq!(layout.unified, None);
        assert_eq!(
            names(&layout),
            [
                "systemd",
                "cpu,cpuacct",
                "net_cls,net_prio",
                "cpuset",
                "memory"
            ]
        );
        let options: Vec<&str> = layout.v1.iter().map(|h| h.options.as_str()).collect();
        assert_eq!(
            options,
            [
                "none,name=systemd",
                "cpu,cpuacct",
                "net_prio,net_cls",
                "cpuset",
                "memory"
            ]
        );
        assert_eq!(layout.v1[1].controllers, ["cpu", "cpuacct"]);
        // The bind mount of the memory hierarchy at /mnt is the same super block (0:27).
        assert_eq!(layout.v1[4].mount_point, Path::new("/sys/fs/cgroup/memory"));
    }

    #[test]
    fn no_cgroup_mount_is_none() {
        let text = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n";
        assert_eq!(Layout::parse(text), None);
        assert_eq!(Layout::parse(""), None);
    }

    #[test]
    fn malformed_lines_are_skipped() {
        let text = format!("garbage\n1 2 3\n{PURE_V2}\n40 1 0:1 / /x rw - cgroup\n");
        let layout = Layout::parse(&text).expect("cgroups present");
        assert_eq!(layout.version, Version::V2);
    }

    #[test]
    fn named_hierarchy_with_controllers_keeps_both() {
        let h = v1_hierarchy(PathBuf::from("/c/x"), "rw,cpu,name=x,release_agent=/bin/a");
        assert_eq!(h.options, "cpu,name=x");
        assert_eq!(h.controllers, ["cpu"]);
        assert_eq!(h.name, "x");
    }

    #[test]
    fn octal_escapes_are_decoded() {
        assert_eq!(unescape(r"/mnt/a\040b\011c\134d"), "/mnt/a b\tc\\d");
        assert_eq!(unescape(r"/mnt/trailing\04"), r"/mnt/trailing\04");
        assert_eq!(unescape(r"/mnt/not\999"), r"/mnt/not\999");
    }
}
