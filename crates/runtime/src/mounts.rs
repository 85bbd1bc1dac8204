//! The container's filesystem as a table of operations run by one executor, in order, inside
//! the new root before pivot_root. Sources: systemd-nspawn's mount table (`mount_table[]`),
//! LXC's `default_mounts[]`, the OCI runtime spec's default masked and read-only paths.

use crate::resolve::{Create, fd_path, open_in};
use rustix::fd::BorrowedFd;
use rustix::io::Errno;
use rustix::mount::{MountFlags, MountPropagationFlags};

/// When an entry applies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum When {
    Always,
    /// The container gets /sys (run; chroot leaves it to the rootfs).
    Sys,
    /// The container gets a private /run and /tmp.
    RunTmp,
}

/// One step of the mount table.
#[derive(Debug, Clone, Copy)]
pub enum Op {
    /// A filesystem mounted at `target`. `optional`: a missing filesystem type is skipped.
    Fs {
        fstype: &'static str,
        target: &'static str,
        flags: MountFlags,
        data: &'static str,
    },
    /// `target` bound onto itself, then made read-only (skipped when missing).
    ReadOnly(&'static str),
    /// A file hidden by binding /dev/null over it (skipped when missing).
    MaskFile(&'static str),
    /// A directory hidden by an empty read-only tmpfs (skipped when missing).
    MaskDir(&'static str),
    /// /sys, read-only: sysfs when the kernel lets us mount one, otherwise the host's /sys
    /// bound read-only (a user namespace cannot mount sysfs for a network namespace it does
    /// not own).
    Sys,
    /// The cgroup hierarchies, read-only, under /sys/fs/cgroup (through the cgroup
    /// namespace, so the container sees its own cgroup as the root).
    Cgroup,
    /// A device node of the host bound in (a user namespace cannot mknod).
    Device(&'static str),
    /// /dev/console: the pty slave when there is a terminal, /dev/null otherwise.
    Console,
    Symlink {
        target: &'static str,
        link: &'static str,
    },
    /// A copy of the host's os-release at /run/host/os-release, mode 0444 (systemd's
    /// container interface), when the host has one.
    HostOsRelease,
}

const NOSUID_NODEV_NOEXEC: MountFlags = MountFlags::NOSUID
    .union(MountFlags::NODEV)
    .union(MountFlags::NOEXEC);

/// The table. Order matters: /proc before its read-only and masked parts, /dev (tmpfs)
/// before the nodes inside it, /sys before /sys/fs/cgroup.
pub const TABLE: &[(When, Op)] = &[
    (
        When::Always,
        Op::Fs {
            fstype: "proc",
            target: "/proc",
            flags: NOSUID_NODEV_NOEXEC,
            data: "",
        },
    ),
    // OCI runtime spec defaults (readonlyPaths) and nspawn: kernel tunables are the host's.
    (When::Always, Op::ReadOnly("/proc/sys")),
    (When::Always, Op::ReadOnly("/proc/sysrq-trigger")),
    (When::Always, Op::ReadOnly("/proc/irq")),
    (When::Always, Op::ReadOnly("/proc/bus")),
    (When::Always, Op::ReadOnly("/proc/fs")),
    // OCI runtime spec defaults (maskedPaths): host memory, keys and scheduler internals.
    (When::Always, Op::MaskFile("/proc/kcore")),
    (When::Always, Op::MaskFile("/proc/keys")),
    (When::Always, Op::MaskFile("/proc/timer_list")),
    (When::Always, Op::MaskFile("/proc/timer_stats")),
    (When::Always, Op::MaskFile("/proc/sched_debug")),
    (When::Always, Op::MaskFile("/proc/latency_stats")),
    (When::Always, Op::MaskFile("/proc/kallsyms")),
    (When::Always, Op::MaskDir("/proc/acpi")),
    (When::Always, Op::MaskDir("/proc/scsi")),
    (When::Always, Op::MaskDir("/proc/asound")),
    (When::Always, Op::MaskDir("/proc/driver")),
    (When::Sys, Op::Sys),
    (When::Sys, Op::Cgroup),
    (
        When::Always,
        Op::Fs {
            fstype: "tmpfs",
            target: "/dev",
            flags: MountFlags::NOSUID.union(MountFlags::NOEXEC),
            data: "mode=755,size=4m",
        },
    ),
    (When::Always, Op::Device("null")),
    (When::Always, Op::Device("zero")),
    (When::Always, Op::Device("full")),
    (When::Always, Op::Device("random")),
    (When::Always, Op::Device("urandom")),
    (When::Always, Op::Device("tty")),
    (
        When::Always,
        Op::Fs {
            fstype: "devpts",
            target: "/dev/pts",
            flags: MountFlags::NOSUID.union(MountFlags::NOEXEC),
            data: "newinstance,ptmxmode=0666,mode=0620,gid=5",
        },
    ),
    (
        When::Always,
        Op::Symlink {
            target: "pts/ptmx",
            link: "/dev/ptmx",
        },
    ),
    (When::Always, Op::Console),
    (
        When::Always,
        Op::Fs {
            fstype: "tmpfs",
            target: "/dev/shm",
            flags: MountFlags::NOSUID.union(MountFlags::NODEV),
            data: "mode=1777",
        },
    ),
    (
        When::Always,
        Op::Fs {
            fstype: "mqueue",
            target: "/dev/mqueue",
            flags: NOSUID_NODEV_NOEXEC,
            data: "",
        },
    ),
    (
        When::Always,
        Op::Symlink {
            target: "/proc/self/fd",
            link: "/dev/fd",
        },
    ),
    (
        When::Always,
        Op::Symlink {
            target: "/proc/self/fd/0",
            link: "/dev/stdin",
        },
    ),
    (
        When::Always,
        Op::Symlink {
            target: "/proc/self/fd/1",
            link: "/dev/stdout",
        },
    ),
    (
        When::Always,
        Op::Symlink {
            target: "/proc/self/fd/2",
            link: "/dev/stderr",
        },
    ),
    (
        When::RunTmp,
        Op::Fs {
            fstype: "tmpfs",
            target: "/run",
            flags: MountFlags::NOSUID.union(MountFlags::NODEV),
            data: "mode=755",
        },
    ),
    (When::RunTmp, Op::HostOsRelease),
    (
        When::RunTmp,
        Op::Fs {
            fstype: "tmpfs",
            target: "/tmp",
            flags: MountFlags::NOSUID.union(MountFlags::NODEV),
            data: "mode=1777",
        },
    ),
];

/// What the executor needs besides the table.
pub struct Env<'a> {
    /// The new root (a mount), before pivot_root.
    pub root: BorrowedFd<'a>,
    pub sys: bool,
    pub run_tmp: bool,
    /// No user namespace: device nodes can be made with mknod instead of bind mounts.
    pub privileged: bool,
    /// A system container's init manages its own cgroup subtree (see `mount_cgroup`).
    pub delegate_cgroup: bool,
    /// The pty slave's path for /dev/console, if any.
    pub console: Option<&'a str>,
    pub cgroups: Option<&'a berth_cgroups::Layout>,
}

/// A failed step: which operation, on which path.
#[derive(Debug, thiserror::Error)]
#[error("{what} {target}: {errno}")]
pub struct MountError {
    pub what: &'static str,
    pub target: String,
    pub errno: Errno,
}

fn err<'a>(what: &'static str, target: &'a str) -> impl FnOnce(Errno) -> MountError + 'a {
    move |errno| MountError {
        what,
        target: target.to_string(),
        errno,
    }
}

/// Runs the table.
pub fn run_table(env: &Env<'_>) -> Result<(), MountError> {
    for (when, op) in TABLE {
        let wanted = match when {
            When::Always => true,
            When::Sys => env.sys,
            When::RunTmp => env.run_tmp,
        };
        if wanted {
            run_op(env, op)?;
        }
    }
    Ok(())
}

fn run_op(env: &Env<'_>, op: &Op) -> Result<(), MountError> {
    let root = env.root;
    match *op {
        Op::Fs {
            fstype,
            target,
            flags,
            data,
        } => {
            let fd =
                open_in(root, target, Create::Dir).map_err(err("create mount point", target))?;
            mount_fs(fstype, &fd_path(&fd), flags, data).map_err(err("mount", target))
        }
        Op::ReadOnly(target) => {
            let Some(fd) = open_existing(root, target)? else {
                return Ok(());
            };
            let p = fd_path(&fd);
            rustix::mount::mount_bind(&p, &p).map_err(err("bind", target))?;
            let top = open_in(root, target, Create::Nothing).map_err(err("resolve", target))?;
            berth_sys::mount::set_readonly(&top, true).map_err(err("make read-only", target))
        }
        Op::MaskFile(target) => {
            let Some(fd) = open_existing(root, target)? else {
                return Ok(());
            };
            rustix::mount::mount_bind("/dev/null", fd_path(&fd)).map_err(err("mask", target))
        }
        Op::MaskDir(target) => {
            let Some(fd) = open_existing(root, target)? else {
                return Ok(());
            };
            mount_fs(
                "tmpfs",
                &fd_path(&fd),
                NOSUID_NODEV_NOEXEC | MountFlags::RDONLY,
                "size=0",
            )
            .map_err(err("mask", target))
        }
        Op::Sys => mount_sys(root),
        Op::Cgroup => match env.cgroups {
            Some(layout) => mount_cgroup(root, layout, env.delegate_cgroup),
            None => Ok(()),
        },
        Op::Device(name) if env.privileged => make_node(root, name),
        Op::Device(name) => {
            let target = format!("/dev/{name}");
            let fd = open_in(root, &target, Create::File).map_err(err("create", "/dev node"))?;
            rustix::mount::mount_bind(format!("/dev/{name}"), fd_path(&fd))
                .map_err(err("bind device", name))
        }
        Op::Console => {
            let fd = open_in(root, "/dev/console", Create::File)
                .map_err(err("create", "/dev/console"))?;
            let source = match env.console {
                Some(slave) => slave.to_string(),
                None => "/dev/null".to_string(),
            };
            rustix::mount::mount_bind(source, fd_path(&fd)).map_err(err("bind", "/dev/console"))
        }
        Op::HostOsRelease => {
            // A copy on the container's own /run tmpfs, not a bind: a privileged container
            // could remount a bind read-write and write the host's file.
            if let Err(e) = copy_host_os_release(root) {
                tracing::warn!("no /run/host/os-release in the container: {e}");
            }
            Ok(())
        }
        Op::Symlink { target, link } => {
            let (dir, name) = link.rsplit_once('/').unwrap_or(("", link));
            let dfd = open_in(root, dir, Create::Dir).map_err(err("create", link))?;
            let dfd = rustix::fs::openat(
                &dfd,
                ".",
                rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .map_err(err("open", dir))?;
            match rustix::fs::symlinkat(target, &dfd, name) {
                Ok(()) | Err(Errno::EXIST) => Ok(()),
                Err(e) => Err(err("symlink", link)(e)),
            }
        }
    }
}

/// Writes the host's os-release to /run/host/os-release in the root (on its /run tmpfs).
fn copy_host_os_release(root: BorrowedFd<'_>) -> Result<(), MountError> {
    const TARGET: &str = "/run/host/os-release";
    let Some(text) = ["/etc/os-release", "/usr/lib/os-release"]
        .into_iter()
        .find_map(|p| std::fs::read(p).ok())
    else {
        return Ok(());
    };
    let fd = open_in(root, TARGET, Create::File).map_err(err("create", TARGET))?;
    let file = rustix::fs::open(
        fd_path(&fd),
        rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::TRUNC | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(err("open", TARGET))?;
    rustix::io::write(&file, &text).map_err(err("write", TARGET))?;
    rustix::fs::fchmod(&file, rustix::fs::Mode::from_raw_mode(0o444)).map_err(err("chmod", TARGET))
}

/// Opens `target` inside the root, or None when it does not exist.
fn open_existing(
    root: BorrowedFd<'_>,
    target: &str,
) -> Result<Option<rustix::fd::OwnedFd>, MountError> {
    match open_in(root, target, Create::Nothing) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(err("resolve", target)(e)),
    }
}

/// Makes /dev/NAME with the host node's type and numbers: cheaper than a bind mount, and
/// possible only outside a user namespace.
fn make_node(root: BorrowedFd<'_>, name: &str) -> Result<(), MountError> {
    let host = rustix::fs::stat(format!("/dev/{name}")).map_err(err("stat host device", name))?;
    let dev = open_in(root, "/dev", Create::Nothing).map_err(err("resolve", "/dev"))?;
    let dev = rustix::fs::openat(
        &dev,
        ".",
        rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(err("open", "/dev"))?;
    rustix::fs::mknodat(
        &dev,
        name,
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o666),
        host.st_rdev,
    )
    .map_err(err("mknod", name))?;
    // mknod applies the umask; the nodes must be usable by every user, as on the host.
    rustix::fs::chmodat(
        &dev,
        name,
        rustix::fs::Mode::from_raw_mode(0o666),
        rustix::fs::AtFlags::empty(),
    )
    .map_err(err("chmod", name))
}

/// mount(2) of a filesystem, with `data` as its options.
pub fn mount_fs(fstype: &str, target: &str, flags: MountFlags, data: &str) -> Result<(), Errno> {
    let data = std::ffi::CString::new(data).map_err(|_| Errno::INVAL)?;
    rustix::mount::mount(fstype, target, fstype, flags, Some(data.as_c_str()))
}

fn mount_sys(root: BorrowedFd<'_>) -> Result<(), MountError> {
    let fd = open_in(root, "/sys", Create::Dir).map_err(err("create mount point", "/sys"))?;
    let p = fd_path(&fd);
    match mount_fs("sysfs", &p, NOSUID_NODEV_NOEXEC | MountFlags::RDONLY, "") {
        Ok(()) => Ok(()),
        Err(Errno::PERM | Errno::ACCESS) => {
            rustix::mount::mount_bind_recursive("/sys", &p).map_err(err("bind", "/sys"))?;
            let top = open_in(root, "/sys", Create::Nothing).map_err(err("resolve", "/sys"))?;
            berth_sys::mount::set_readonly(&top, true).map_err(err("make read-only", "/sys"))
        }
        Err(e) => Err(err("mount", "/sys")(e)),
    }
}

/// The cgroup hierarchies under /sys/fs/cgroup, through the cgroup namespace. Read-only,
/// except (with `delegate`, for a system container's init) the trees an init manages: the
/// cgroup2 tree and the v1 name=systemd hierarchy, whose container part the launcher gave to
/// the container's root.
fn mount_cgroup(
    root: BorrowedFd<'_>,
    layout: &berth_cgroups::Layout,
    delegate: bool,
) -> Result<(), MountError> {
    const T: &str = "/sys/fs/cgroup";
    let ro = NOSUID_NODEV_NOEXEC | MountFlags::RDONLY;
    let managed = if delegate { NOSUID_NODEV_NOEXEC } else { ro };
    if layout.v1.is_empty() {
        // Pure v2: the unified hierarchy itself.
        let fd = open_in(root, T, Create::Nothing).map_err(err("resolve", T))?;
        return mount_fs("cgroup2", &fd_path(&fd), managed, "").map_err(err("mount", T));
    }
    let fd = open_in(root, T, Create::Nothing).map_err(err("resolve", T))?;
    mount_fs("tmpfs", &fd_path(&fd), NOSUID_NODEV_NOEXEC, "mode=755").map_err(err("mount", T))?;
    for h in &layout.v1 {
        let target = format!("{T}/{}", h.name);
        let fd = open_in(root, &target, Create::Dir).map_err(err("create", T))?;
        let data = h.options.as_str();
        let flags = if data.contains("name=systemd") {
            managed
        } else {
            ro
        };
        mount_fs("cgroup", &fd_path(&fd), flags, data).map_err(|e| MountError {
            what: "mount cgroup",
            target: target.clone(),
            errno: e,
        })?;
    }
    if layout.unified.is_some() {
        let target = format!("{T}/unified");
        let fd = open_in(root, &target, Create::Dir).map_err(err("create", T))?;
        mount_fs("cgroup2", &fd_path(&fd), managed, "").map_err(err("mount", T))?;
    }
    let top = open_in(root, T, Create::Nothing).map_err(err("resolve", T))?;
    berth_sys::mount::set_readonly(&top, false).map_err(err("make read-only", T))
}

/// Makes every mount in this namespace private, so nothing the child mounts propagates back
/// to the host and nothing the host mounts later appears in the container.
pub fn make_private() -> Result<(), MountError> {
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .map_err(err("make private", "/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_comes_before_its_parts_and_dev_before_nodes() {
        let pos =
            |pred: &dyn Fn(&Op) -> bool| TABLE.iter().position(|(_, op)| pred(op)).expect("entry");
        let proc_ = pos(&|op| {
            matches!(
                op,
                Op::Fs {
                    target: "/proc",
                    ..
                }
            )
        });
        let ro = pos(&|op| matches!(op, Op::ReadOnly("/proc/sys")));
        let mask = pos(&|op| matches!(op, Op::MaskFile("/proc/kcore")));
        let dev = pos(&|op| matches!(op, Op::Fs { target: "/dev", .. }));
        let null = pos(&|op| matches!(op, Op::Device("null")));
        let pts = pos(&|op| {
            matches!(
                op,
                Op::Fs {
                    target: "/dev/pts",
                    ..
                }
            )
        });
        let sys = pos(&|op| matches!(op, Op::Sys));
        let cg = pos(&|op| matches!(op, Op::Cgroup));
        assert!(proc_ < ro && proc_ < mask);
        assert!(dev < null && dev < pts);
        assert!(sys < cg);
    }

    #[test]
    fn the_issue_list_of_paths_is_covered() {
        let has = |p: &str| {
            TABLE.iter().any(|(_, op)| match op {
                Op::ReadOnly(t) | Op::MaskFile(t) | Op::MaskDir(t) => *t == p,
                _ => false,
            })
        };
        for p in [
            "/proc/sys",
            "/proc/sysrq-trigger",
            "/proc/irq",
            "/proc/bus",
            "/proc/kcore",
            "/proc/keys",
            "/proc/timer_list",
        ] {
            assert!(has(p), "{p}");
        }
        for d in ["null", "zero", "full", "random", "urandom", "tty"] {
            assert!(
                TABLE
                    .iter()
                    .any(|(_, op)| matches!(op, Op::Device(n) if *n == d)),
                "{d}"
            );
        }
    }
}
