//! `berth-probe report`: everything the process sees, as one JSON object.
//!
//! Every read that can fail reports null or false instead; nothing here writes anywhere.

use std::collections::BTreeMap;
use std::fs;
use std::io::{IsTerminal, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use serde_json::{Map, Value, json};

use crate::{abi, syscalls};

/// Paths runtimes hide from containers (OCI runtime-spec `maskedPaths` defaults).
const MASKED: &[&str] = &[
    "/proc/kcore",
    "/proc/keys",
    "/proc/timer_list",
    "/proc/sched_debug",
    "/proc/latency_stats",
    "/proc/acpi",
    "/proc/scsi",
    "/proc/asound",
];

/// Paths runtimes mount read-only (OCI `readonlyPaths`, plus /sys, the cgroup fs and /).
const READONLY: &[&str] = &[
    "/proc/sys",
    "/proc/sysrq-trigger",
    "/proc/irq",
    "/proc/bus",
    "/sys",
    "/sys/fs/cgroup",
    "/",
];

/// Files whose writability matters; opened O_WRONLY and closed at once, never written.
const WRITE_PROBE: &[&str] = &["/proc/sys/kernel/hostname", "/proc/sysrq-trigger"];

const STATUS_FIELDS: &[(&str, &str)] = &[
    ("cap_inh", "CapInh"),
    ("cap_prm", "CapPrm"),
    ("cap_eff", "CapEff"),
    ("cap_bnd", "CapBnd"),
    ("cap_amb", "CapAmb"),
];

pub fn report() -> Value {
    let ids = syscalls::ids();
    let mut out = json!({
        "pid": std::process::id(),
        "ppid": std::os::unix::process::parent_id(),
        "hostname": syscalls::hostname().ok(),
        "uid": ids.uid,
        "gid": ids.gid,
        "euid": ids.euid,
        "egid": ids.egid,
        "groups": syscalls::groups().ok(),
        "cwd": std::env::current_dir().ok().map(|p| p.to_string_lossy().into_owned()),
        "env": env(),
        "uid_map": read_text("/proc/self/uid_map"),
        "gid_map": read_text("/proc/self/gid_map"),
        "setgroups": read_text("/proc/self/setgroups"),
        "syscalls": abi::report(),
        "masked": masked(),
        "readonly": readonly(),
        "write_probe": write_probe(),
        "mounts": mounts(),
        "cgroup": read_text("/proc/self/cgroup"),
        "fds": fds(),
        "procs": procs(),
        "dev": dev(),
        "net": net(),
        "exe_self": read_link("/proc/self/exe"),
        "pid1_exe": read_link("/proc/1/exe"),
        "pid1_exe_open_write_errno": open_write_errno("/proc/1/exe"),
        "tty": tty(),
        "winsize": syscalls::winsize(0).ok().map(|(rows, cols)| json!({"rows": rows, "cols": cols})),
        "rlimit_nofile": syscalls::rlimit_nofile().ok().map(|(soft, hard)| json!({"soft": soft, "hard": hard})),
    });
    if let Some(map) = out.as_object_mut() {
        map.extend(status());
    }
    out
}

fn read_text(path: impl AsRef<Path>) -> Option<String> {
    fs::read(path)
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

fn read_link(path: impl AsRef<Path>) -> Option<String> {
    fs::read_link(path)
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// Names in a directory, or nothing if it cannot be listed.
fn dir_names(path: impl AsRef<Path>) -> Vec<String> {
    let Ok(dir) = fs::read_dir(path) else {
        return Vec::new();
    };
    dir.flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn errno(err: &std::io::Error) -> i32 {
    err.raw_os_error().unwrap_or(-1)
}

/// 0 if `path` opened for writing (it is closed at once, nothing is written), else errno.
fn open_write_errno(path: &str) -> i32 {
    match fs::OpenOptions::new().write(true).open(path) {
        Ok(_) => 0,
        Err(e) => errno(&e),
    }
}

fn env() -> BTreeMap<String, String> {
    std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect()
}

/// Capability sets and seccomp/no_new_privs state from /proc/self/status.
fn status() -> Map<String, Value> {
    let text = read_text("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    };
    let number = |name: &str| json!(field(name).and_then(|v| v.parse::<u64>().ok()));
    let mut out = Map::new();
    for (key, name) in STATUS_FIELDS {
        out.insert((*key).to_owned(), json!(field(name)));
    }
    out.insert("no_new_privs".to_owned(), number("NoNewPrivs"));
    out.insert("seccomp".to_owned(), number("Seccomp"));
    out.insert("seccomp_filters".to_owned(), number("Seccomp_filters"));
    out
}

fn masked() -> Map<String, Value> {
    let mut out = Map::new();
    for path in MASKED {
        let meta = fs::metadata(path).ok();
        let is_dir = meta.as_ref().is_some_and(fs::Metadata::is_dir);
        let entries = is_dir
            .then(|| fs::read_dir(path).ok().map(Iterator::count))
            .flatten();
        let readable_bytes = fs::File::open(path).ok().and_then(|mut f| {
            let mut buf = [0u8; 4096];
            f.read(&mut buf).ok()
        });
        let value = json!({
            "exists": meta.is_some(),
            "readable_bytes": readable_bytes,
            "is_dir": is_dir,
            "entries": entries,
        });
        out.insert((*path).to_owned(), value);
    }
    out
}

fn readonly() -> Map<String, Value> {
    let mut out = Map::new();
    for path in READONLY {
        let flags = syscalls::statvfs_flags(Path::new(path)).ok();
        let ro = flags.map(|f| f & libc::ST_RDONLY != 0);
        out.insert((*path).to_owned(), json!(ro));
    }
    out
}

fn write_probe() -> Map<String, Value> {
    WRITE_PROBE
        .iter()
        .map(|p| ((*p).to_owned(), json!(open_write_errno(p))))
        .collect()
}

/// /proc/self/mountinfo (proc(5)): "id parent maj:min root mount_point options [optional
/// fields] - fstype source super_options".
fn mounts() -> Vec<Value> {
    let text = read_text("/proc/self/mountinfo").unwrap_or_default();
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((before, after)) = line.split_once(" - ") else {
            continue;
        };
        let before: Vec<&str> = before.split(' ').collect();
        let after: Vec<&str> = after.split(' ').collect();
        let (Some(mount_point), Some(options)) = (before.get(4), before.get(5)) else {
            continue;
        };
        out.push(json!({
            "mount_point": unescape(mount_point),
            "options": options,
            "fstype": after.first(),
            "source": after.get(1).map(|s| unescape(s)),
            "super_options": after.get(2),
        }));
    }
    out
}

/// Undoes the kernel's octal escapes ("\040" for a space) in mountinfo paths.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (bytes[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Open fds. The fd that lists /proc/self/fd is closed before the links are read, so its
/// readlink fails and it drops out.
fn fds() -> BTreeMap<u32, String> {
    let numbers: Vec<u32> = dir_names("/proc/self/fd")
        .iter()
        .filter_map(|n| n.parse().ok())
        .collect();
    numbers
        .into_iter()
        .filter_map(|fd| Some((fd, read_link(format!("/proc/self/fd/{fd}"))?)))
        .collect()
}

fn procs() -> Vec<u32> {
    let mut pids: Vec<u32> = dir_names("/proc")
        .iter()
        .filter_map(|n| n.parse().ok())
        .collect();
    pids.sort_unstable();
    pids
}

fn dev() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for name in dir_names("/dev") {
        out.insert(name.clone(), file_kind(&Path::new("/dev").join(&name)));
    }
    for name in dir_names("/dev/pts") {
        out.insert(
            format!("pts/{name}"),
            file_kind(&Path::new("/dev/pts").join(&name)),
        );
    }
    out
}

/// "char 1:3", "block 7:0", "dir", "symlink -> target", "file", "fifo", "socket".
fn file_kind(path: &Path) -> String {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return "missing".to_owned();
    };
    let ft = meta.file_type();
    let rdev = meta.rdev();
    let (major, minor) = (libc::major(rdev), libc::minor(rdev));
    if ft.is_char_device() {
        format!("char {major}:{minor}")
    } else if ft.is_block_device() {
        format!("block {major}:{minor}")
    } else if ft.is_dir() {
        "dir".to_owned()
    } else if ft.is_symlink() {
        format!("symlink -> {}", read_link(path).unwrap_or_default())
    } else if ft.is_fifo() {
        "fifo".to_owned()
    } else if ft.is_socket() {
        "socket".to_owned()
    } else {
        "file".to_owned()
    }
}

/// Interfaces from /sys/class/net (the network namespace sysfs was mounted in), else
/// /proc/net/dev (the namespace of the process) with SIOCGIFFLAGS.
fn net() -> Vec<Value> {
    let mut names = dir_names("/sys/class/net");
    let from_sysfs = !names.is_empty();
    if !from_sysfs {
        let text = read_text("/proc/net/dev").unwrap_or_default();
        names = text
            .lines()
            .skip(2)
            .filter_map(|l| Some(l.split_once(':')?.0.trim().to_owned()))
            .collect();
    }
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let flags = if from_sysfs {
                read_text(format!("/sys/class/net/{name}/flags"))
                    .and_then(|f| u32::from_str_radix(f.trim().trim_start_matches("0x"), 16).ok())
            } else {
                syscalls::if_flags(&name).ok()
            };
            let up = flags.map(|f| f & libc::IFF_UP as u32 != 0);
            json!({"name": name, "up": up, "flags": flags})
        })
        .collect()
}

fn tty() -> Value {
    let stdin = std::io::stdin().is_terminal();
    json!({
        "stdin": stdin,
        "stdout": std::io::stdout().is_terminal(),
        "stderr": std::io::stderr().is_terminal(),
        "ttyname": if stdin { read_link("/proc/self/fd/0") } else { None },
    })
}

#[cfg(test)]
mod tests {
    use super::unescape;

    #[test]
    fn unescape_octal() {
        assert_eq!(unescape(r"/a\040b\\c"), r"/a b\\c");
        assert_eq!(unescape(r"/x\0"), r"/x\0");
    }
}
