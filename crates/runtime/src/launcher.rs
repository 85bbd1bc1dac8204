//! The parent side of a launch: everything that needs host privileges (cgroups, id maps,
//! idmapped mounts) happens here while the child waits. [`run`] then relays the terminal and
//! signals until the command exits (`berth run` and `berth chroot`, which have no
//! supervisor); a supervisor calls [`launch`] and keeps the container's console itself.

use crate::child::{self, ChildCtx};
use crate::{pty, seccomp, sync};
use berth_cgroups::{Cgroup, Layout};
use berth_spec::{IdMap, NetMode, Plan};
use berth_sys::clone::{Forked, flags};
use berth_sys::signal::SavedMask;
use rustix::fd::{AsFd, OwnedFd};
use rustix::io::Errno;
use rustix::mount::OpenTreeFlags;
use std::path::{Path, PathBuf};

/// Host facts a launch needs, detected once per process.
pub struct Host {
    /// The cgroup layout; needed only when a plan asks for a cgroup.
    pub cgroups: Option<Layout>,
    /// Where the compiled seccomp profile is cached.
    pub cache_dir: PathBuf,
}

/// Why a launch failed before the command ran. `code` is the exit status the CLI reports:
/// 125 for berth's own failures, 126 when the command cannot be run, 127 when it is missing.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct LaunchError {
    pub code: u8,
    pub message: String,
}

impl LaunchError {
    fn berth(message: impl Into<String>) -> Self {
        LaunchError {
            code: 125,
            message: message.into(),
        }
    }
}

fn errno_ctx(what: &str) -> impl FnOnce(Errno) -> LaunchError + '_ {
    move |e| LaunchError::berth(format!("{what}: {e}"))
}

/// A container whose first process has exec'd.
pub struct Running {
    /// Its first process, as the host sees it.
    pub pid: i32,
    pub pidfd: OwnedFd,
    /// Its cgroup (removed when dropped).
    pub cgroup: Option<Cgroup>,
    /// The master of its terminal, when the plan asked for one.
    pub console: Option<OwnedFd>,
    /// A system container's supervisor keeps the terminal's other end too: without it the
    /// master reports EIO whenever no process inside holds the console, and a poll loop on
    /// it would spin.
    pub console_slave: Option<OwnedFd>,
}

/// Launches `plan` and waits for its command. Returns the command's exit status (128+N when
/// a signal N ended it).
///
/// Must be called from a single-threaded process: it clones with new user and mount
/// namespaces, which the kernel refuses to a multi-threaded one.
pub fn run(plan: &Plan, host: &Host) -> Result<i32, LaunchError> {
    // Blocked before the clone, so that no signal meant for the container is lost before
    // the wait loop reads them; SIGPIPE too, so that a closed pipe cannot kill the launcher
    // before it has cleaned up.
    let blocked: Vec<i32> = berth_sys::signal::FORWARDED
        .iter()
        .chain(berth_sys::signal::BLOCKED_ONLY)
        .copied()
        .collect();
    let saved_mask = berth_sys::signal::block(&blocked).map_err(errno_ctx("block signals"))?;
    let result = (|| {
        let sigfd = berth_sys::signal::signalfd(berth_sys::signal::FORWARDED)
            .map_err(errno_ctx("create a signalfd"))?;
        let running = launch(plan, host, &saved_mask)?;
        let relay = running.console.map(pty::Relay::new);
        let shares_session = !plan.terminal && !plan.new_session;
        let status = crate::relay::wait(running.pid, &running.pidfd, &sigfd, relay, shares_session)
            .map_err(errno_ctx("wait for the container"));
        if let Some(cg) = running.cgroup
            && let Err(e) = cg.remove()
        {
            tracing::warn!("remove the container's cgroup: {e}");
        }
        status
    })();
    // The mask stays: the caller exits next, and a signal still pending (a SIGPIPE from the
    // relay) must not kill it first.
    result
}

/// Starts `plan`'s container and returns once its first process has exec'd (or with why it
/// could not, having removed whatever it set up). `child_mask` is the signal mask the
/// container's processes start with.
///
/// Must be called from a single-threaded process (see [`run`]).
pub fn launch(plan: &Plan, host: &Host, child_mask: &SavedMask) -> Result<Running, LaunchError> {
    // Every launch, run and system container alike: bad input costs nothing, and an
    // unprivileged rootfs must be out of other users' reach.
    crate::preflight::check(plan)?;
    crate::rlimits::check(&plan.limits.rlimits).map_err(LaunchError::berth)?;
    let layout = match (&host.cgroups, plan.cgroup || plan.cgroupns) {
        (Some(l), _) => Some(l),
        (None, false) => None,
        (None, true) => return Err(LaunchError::berth("the cgroup layout was not detected")),
    };
    // Dropped on any error below, which removes it again.
    let cgroup = if plan.cgroup
        && let Some(layout) = layout
    {
        let cg = Cgroup::create(layout, &cgroup_name(&plan.name))
            .map_err(|e| LaunchError::berth(format!("create the container's cgroup: {e}")))?;
        // A system container's init (systemd) manages its own subtree.
        if !plan.init_stub
            && let Some(map) = &plan.id_map
        {
            cg.delegate(map.host_uid, map.host_gid)
                .map_err(|e| LaunchError::berth(format!("delegate the container's cgroup: {e}")))?;
        }
        Some(cg)
    } else {
        None
    };
    let seccomp = if plan.confine {
        Some(
            seccomp::load_or_compile(&host.cache_dir)
                .map_err(|e| LaunchError::berth(e.to_string()))?,
        )
    } else {
        None
    };
    let rootfs = detached_tree(&plan.rootfs, plan.rootfs_recursive)?;
    let overlay_rw = match &plan.disk {
        Some(image) => Some(mount_disk(image)?),
        None => plan
            .overlay_rw
            .as_deref()
            .map(|p| detached_tree(p, false))
            .transpose()?,
    };
    let binds = plan
        .binds
        .iter()
        .map(|b| {
            let fd = detached_tree(&b.source, true)?;
            if b.readonly {
                berth_sys::mount::set_readonly(&fd, true)
                    .map_err(errno_ctx("make bind read-only"))?;
            }
            Ok(fd)
        })
        .collect::<Result<Vec<_>, LaunchError>>()?;
    let terminal = if plan.terminal {
        Some(pty::Pty::open().map_err(errno_ctx("allocate a pseudo-terminal"))?)
    } else {
        None
    };
    // The host side of eth0 checked before any process exists: a missing bridge or parent
    // costs nothing to refuse.
    let mut host_side = match &plan.net {
        NetMode::Interface(iface) => {
            Some(crate::netdev::prepare(iface).map_err(LaunchError::berth)?)
        }
        _ => None,
    };
    let (parent_sock, child_sock) = sync::pair().map_err(errno_ctx("create the sync socket"))?;
    // The child is born in its cgroups: the v1 ones because we step into them for the
    // clone (see Cgroup::enter_v1), the cgroup2 one through CLONE_INTO_CGROUP.
    let stay = cgroup
        .as_ref()
        .map(Cgroup::enter_v1)
        .transpose()
        .map_err(|e| LaunchError::berth(format!("join the container's cgroup: {e}")))?;
    let forked = berth_sys::clone::clone3_checked(
        clone_flags(plan),
        cgroup.as_ref().and_then(Cgroup::clone_fd),
    );
    let forked = match forked {
        Ok(forked) => forked,
        Err(e) => {
            if let Some(stay) = stay {
                stay.leave().map_err(|e| {
                    LaunchError::berth(format!("leave the container's cgroup: {e}"))
                })?;
            }
            return Err(LaunchError::berth(format!(
                "create the container's namespaces (clone3): {e}"
            )));
        }
    };
    let (pid, pidfd) = match forked {
        Forked::Child => {
            drop(parent_sock);
            let ctx = ChildCtx {
                plan,
                sock: child_sock.as_fd(),
                rootfs: rootfs.as_fd(),
                binds: &binds,
                overlay_rw: overlay_rw.as_ref().map(AsFd::as_fd),
                pty_slave: terminal.as_ref().map(|t| t.slave.as_fd()),
                pty_path: terminal.as_ref().map(|t| t.slave_path.as_str()),
                seccomp: seccomp.as_deref(),
                cgroups: layout,
                saved_mask: child_mask,
            };
            child::main(&ctx)
        }
        Forked::Parent { pid, pidfd } => (pid, pidfd),
    };
    drop(child_sock);
    // The child sets up its mounts while the launcher steps out of the cgroup and writes the
    // limits (only once out: a small memory or pids limit must bind the container, never
    // kill or block the launcher itself); the child waits for them before it execs.
    let went = start_child(
        plan,
        pid,
        &rootfs,
        overlay_rw.as_ref(),
        terminal.as_ref(),
        host_side.as_mut(),
        &parent_sock,
    );
    // Out of the cgroup whatever happened: on an error below the cgroup is removed, which
    // kills everything inside it.
    let left = stay.map_or(Ok(()), |stay| {
        stay.leave()
            .map_err(|e| LaunchError::berth(format!("leave the container's cgroup: {e}")))
    });
    let started = went
        .and(left)
        .and_then(|()| match &cgroup {
            Some(cg) => cg
                .apply(&plan.limits)
                .map_err(|e| LaunchError::berth(format!("apply limits: {e:#}"))),
            None => Ok(()),
        })
        .and_then(|()| finish_child(pid, &parent_sock));
    if let Err(e) = started {
        let _ = rustix::process::pidfd_send_signal(&pidfd, rustix::process::Signal::KILL);
        let _ = rustix::process::waitpid(Some(pid_of(pid)), rustix::process::WaitOptions::empty());
        return Err(e);
    }
    // The launcher's copy of the slave must go, or the master never sees the container
    // close it.
    Ok(Running {
        pid,
        pidfd,
        cgroup,
        console_slave: terminal
            .as_ref()
            .filter(|_| !plan.init_stub)
            .and_then(|t| t.slave.try_clone().ok()),
        console: terminal.map(|t| t.master),
    })
}

/// Everything between clone3 and the child's exec: id maps, idmapped mounts,
/// Go, then the child's report.
fn start_child(
    plan: &Plan,
    pid: i32,
    rootfs: &OwnedFd,
    overlay_rw: Option<&OwnedFd>,
    terminal: Option<&pty::Pty>,
    host_side: Option<&mut crate::netdev::HostSide<'_>>,
    sock: &OwnedFd,
) -> Result<(), LaunchError> {
    if let Some(map) = &plan.id_map {
        write_id_maps(pid, map)?;
    }
    if let Some(side) = host_side {
        side.create_into(pid).map_err(LaunchError::berth)?;
    }
    // A rootfs already owned by the container's ids (chowned into the range once, as LXC's
    // unprivileged containers are) needs no idmapped mount: the way to run unprivileged on
    // a filesystem that has none (tmpfs before Linux 6.3, 9p, NFS).
    if let Some(map) = &plan.id_map {
        let rootfs_shifted = already_shifted(rootfs, map);
        let layer_shifted = overlay_rw.is_none_or(|rw| already_shifted(rw, map));
        let userns = || {
            rustix::fs::open(
                format!("/proc/{pid}/ns/user"),
                rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .map_err(errno_ctx("open the container's user namespace"))
        };
        if !rootfs_shifted {
            berth_sys::mount::idmap(rootfs, &userns()?, plan.rootfs_recursive).map_err(|e| {
                LaunchError::berth(format!(
                    "idmap the rootfs {} (does its filesystem support idmapped mounts? otherwise chown the rootfs into the container's ids, {}:{} for its root, or use --privileged): {e}",
                    plan.rootfs.display(),
                    map.host_uid,
                    map.host_gid
                ))
            })?;
        }
        // An instance's own layer too: what container root writes there is host root's on
        // disk, as in a directory rootfs (the instance's directory is private); a layer over
        // an image already in the container's ids is in them too (see `new_layer`).
        if let Some(rw) = overlay_rw
            && !layer_shifted
        {
            berth_sys::mount::idmap(rw, &userns()?, false).map_err(|e| {
                LaunchError::berth(format!(
                    "idmap the container's layer (does its filesystem support idmapped mounts?): {e}"
                ))
            })?;
        }
        // Binds are not idmapped: host files keep their host owners (root's appear as
        // nobody inside), so container root cannot create host-root-owned (setuid) files in
        // a host directory.
    }
    if plan.overlay_rw.is_some() {
        // The shared image, read-only even below the overlay (defence in depth: the
        // container cannot reach it after pivot_root anyway).
        berth_sys::mount::set_readonly(rootfs, true)
            .map_err(errno_ctx("make the image read-only"))?;
    }
    if let (Some(map), Some(t)) = (&plan.id_map, terminal) {
        // The terminal belongs to the container's root and tty group (gid 5), as a login
        // terminal would: otherwise /dev/console is host root's, unwritable inside.
        rustix::fs::fchown(
            &t.slave,
            Some(rustix::process::Uid::from_raw(map.host_uid)),
            Some(rustix::process::Gid::from_raw(map.host_gid + 5)),
        )
        .and_then(|()| rustix::fs::fchmod(&t.slave, rustix::fs::Mode::from_raw_mode(0o620)))
        .map_err(errno_ctx("give the terminal to the container's root"))?;
    }
    sync::send(sock, sync::ToChild::Go).map_err(errno_ctx("start the container"))
}

/// Lets the child exec (its limits are in place) and waits for the exec or its failure.
fn finish_child(pid: i32, sock: &OwnedFd) -> Result<(), LaunchError> {
    // A child that failed early has exited already (EPIPE): its report is still queued, and
    // without one it died (killed) before it could report.
    let gone = match sync::send(sock, sync::ToChild::Ready) {
        Ok(()) => false,
        Err(Errno::PIPE) => true,
        Err(e) => return Err(errno_ctx("start the container")(e)),
    };
    match sync::recv_report(sock).map_err(errno_ctx("read the container's start report"))? {
        None if gone => {
            let _ =
                rustix::process::waitpid(Some(pid_of(pid)), rustix::process::WaitOptions::empty());
            Err(LaunchError::berth(
                "the container's first process died before it could start (killed?)",
            ))
        }
        None => Ok(()),
        Some(sync::ToParent::Failed { code, message, .. }) => {
            let _ =
                rustix::process::waitpid(Some(pid_of(pid)), rustix::process::WaitOptions::empty());
            Err(LaunchError { code, message })
        }
    }
}

/// Whether the rootfs's top directory belongs to the container's root (host uid and gid
/// where the map puts 0).
/// Its top and /etc, if any, are looked at: a tree chowned only in part would otherwise come
/// up owned by nobody.
fn already_shifted(rootfs: &OwnedFd, map: &IdMap) -> bool {
    let ours = |st: rustix::fs::Stat| st.st_uid == map.host_uid && st.st_gid == map.host_gid;
    let top = rustix::fs::fstat(rootfs).is_ok_and(ours);
    let etc = match rustix::fs::statat(rootfs, "etc", rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => ours(st),
        Err(_) => true,
    };
    let shifted = top && etc;
    if shifted {
        tracing::info!("the rootfs is owned by the container's ids: mounted without an idmap");
    }
    shifted
}

fn pid_of(pid: i32) -> rustix::process::Pid {
    rustix::process::Pid::from_raw(pid).unwrap_or(rustix::process::Pid::INIT)
}

fn clone_flags(plan: &Plan) -> u64 {
    let mut f = flags::NEWNS | flags::NEWPID | flags::NEWUTS | flags::NEWIPC;
    if plan.id_map.is_some() {
        f |= flags::NEWUSER;
    }
    if plan.net != NetMode::Host {
        f |= flags::NEWNET;
    }
    f
}

/// The container's disk image on a loop device (autoclear: it detaches by itself once the
/// last mount goes, with the container's mount namespace) and its ext4 mounted detached.
fn mount_disk(image: &Path) -> Result<OwnedFd, LaunchError> {
    let fail = |what: &str, e: Errno| {
        LaunchError::berth(format!(
            "{what} the container's disk {}: {e}",
            image.display()
        ))
    };
    if let Some(dev) = berth_sys::loopdev::attached_after(image, std::time::Duration::from_secs(2))
    {
        return Err(LaunchError::berth(format!(
            "the container's disk {} is still attached to {}: a process keeps the container's old mount namespace, or a file in it, open (`grep -l {} /proc/*/mountinfo` finds it)",
            image.display(),
            dev.display(),
            dev.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        )));
    }
    let (dev, path) = berth_sys::loopdev::attach(image).map_err(|e| fail("attach", e))?;
    let mnt = berth_sys::loopdev::mount_ext4(&path).map_err(|e| fail("mount", e))?;
    // The mount holds the device now; closing ours lets autoclear work.
    drop(dev);
    Ok(mnt)
}

/// A detached copy of the mount tree at `path` (only `path`'s own mount unless
/// `recursive`), which the child attaches inside its own mount namespace.
fn detached_tree(path: &Path, recursive: bool) -> Result<OwnedFd, LaunchError> {
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    rustix::mount::open_tree(rustix::fs::CWD, path, flags)
        .map_err(|e| LaunchError::berth(format!("open {}: {e}", path.display())))
}

/// Container ids 0..count map to the host range; written by us (root on the host), so
/// setgroups stays allowed, as a system container's login needs.
fn write_id_maps(pid: i32, map: &IdMap) -> Result<(), LaunchError> {
    let uid = format!("0 {} {}\n", map.host_uid, map.count);
    let gid = format!("0 {} {}\n", map.host_gid, map.count);
    std::fs::write(format!("/proc/{pid}/uid_map"), uid)
        .and_then(|()| std::fs::write(format!("/proc/{pid}/gid_map"), gid))
        .map_err(|e| LaunchError::berth(format!("write the user namespace's id maps: {e}")))
}

/// cgroup directory name of a container, from its plan's name ("berth-web",
/// "berth-run.1234", "berth.1a2b3c4d-web" for a container of another state root).
pub fn cgroup_name(name: &str) -> String {
    format!(
        "berth{}{name}",
        if name.starts_with('.') { "" } else { "-" }
    )
}
