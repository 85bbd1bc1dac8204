//! The container's first process, between clone3 and execve. It runs as a forked copy of the
//! launcher: single-threaded, allocation allowed (the parent was single-threaded when it
//! forked), and it never returns: it execs the command or reports why not and exits.

use crate::mounts::{self, MountError};
use crate::resolve::{Create, fd_path, open_in};
use crate::{exec, sync};
use berth_spec::{NetMode, Plan};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::io::Errno;
use rustix::mount::{MountFlags, MoveMountFlags};

/// Everything the child inherits from the launcher, by reference (it is a copy of the
/// launcher's memory, so no serialisation is needed).
pub struct ChildCtx<'a> {
    pub plan: &'a Plan,
    pub sock: BorrowedFd<'a>,
    /// Detached mount of the rootfs (idmapped by the parent before Go when unprivileged).
    pub rootfs: BorrowedFd<'a>,
    /// Detached mounts of the binds, in plan order.
    pub binds: &'a [OwnedFd],
    /// Detached mount of the copy-on-write instance's directory (upper/, work/), idmapped
    /// like the rootfs.
    pub overlay_rw: Option<BorrowedFd<'a>>,
    pub pty_slave: Option<BorrowedFd<'a>>,
    pub pty_path: Option<&'a str>,
    pub seccomp: Option<&'a [u8]>,
    pub cgroups: Option<&'a berth_cgroups::Layout>,
    pub saved_mask: &'a berth_sys::signal::SavedMask,
}

/// A failed step of the child, reported to the parent.
struct Failure {
    code: u8,
    errno: Errno,
    message: String,
}

impl From<MountError> for Failure {
    fn from(e: MountError) -> Self {
        let message = if e.errno == Errno::XDEV {
            format!(
                "rootfs path {} leads out of the root filesystem (a symlink pointing outside it); refusing to mount there",
                e.target
            )
        } else {
            format!("{} {}: {}", e.what, e.target, e.errno)
        };
        Failure {
            code: 125,
            errno: e.errno,
            message,
        }
    }
}

fn step(what: &'static str) -> impl FnOnce(Errno) -> Failure {
    move |errno| Failure {
        code: 125,
        errno,
        message: format!("{what}: {errno}"),
    }
}

/// Entry point of the child. Never returns.
pub fn main(ctx: &ChildCtx<'_>) -> ! {
    // Nothing inside the container may ptrace or open /proc/PID/exe of this process while it
    // still runs berth's code (CVE-2019-5736): non-dumpable until execve resets it.
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
    let failure = match setup(ctx).and_then(|()| start_init(ctx)) {
        Ok(never) => match never {},
        Err(f) => f,
    };
    sync::send_failed(
        ctx.sock,
        failure.code,
        failure.errno.raw_os_error(),
        &failure.message,
    );
    berth_sys::clone::exit_now(i32::from(failure.code))
}

fn describe(e: Errno) -> String {
    std::io::Error::from_raw_os_error(e.raw_os_error())
        .to_string()
        .split(" (os error")
        .next()
        .unwrap_or("")
        .to_string()
}

/// The steps, in order. Each comment says why the order matters.
fn setup(ctx: &ChildCtx<'_>) -> Result<(), Failure> {
    let plan = ctx.plan;
    // Wait until the parent has written the id maps.
    sync::recv(ctx.sock, sync::ToChild::Go).map_err(step("wait for the launcher"))?;
    // Opened in our own mount namespace (a descriptor from the parent would name the
    // parent's mount, which move_mount refuses) and before becoming the namespace's root,
    // while our credentials are still the host root's: the state directory above the rootfs
    // may be closed to the container's ids.
    let rootfs_dir = rustix::fs::open(
        &plan.rootfs,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(step("open the rootfs directory"))?;
    if plan.id_map.is_some() {
        // Become root of the new user namespace (we were "nobody" until the maps existed).
        berth_sys::ids::setresgid(0).map_err(step("become root in the user namespace"))?;
        berth_sys::ids::setresuid(0).map_err(step("become root in the user namespace"))?;
    }
    if plan.cgroupns {
        // After joining the cgroup, so that the namespace's root is the container's cgroup.
        berth_sys::clone::unshare(berth_sys::clone::flags::NEWCGROUP)
            .map_err(step("create the cgroup namespace"))?;
    }
    mounts::make_private()?;
    let root = build_root(ctx, rootfs_dir.as_fd())?;
    let env = mounts::Env {
        root: root.as_fd(),
        sys: plan.mount_sys,
        privileged: plan.id_map.is_none(),
        delegate_cgroup: !plan.init_stub,
        run_tmp: plan.tmpfs_run_tmp,
        console: ctx.pty_path,
        cgroups: ctx.cgroups,
    };
    mounts::run_table(&env)?;
    attach_binds(root.as_fd(), ctx)?;
    enter_root(&root)?;
    if let Some(h) = &plan.hostname {
        rustix::system::sethostname(h.as_bytes()).map_err(step("set the hostname"))?;
    }
    if plan.net != NetMode::Host {
        berth_sys::net::loopback_up().map_err(step("bring up the loopback interface"))?;
    }
    if let NetMode::Interface(iface) = &plan.net {
        crate::netdev::configure_inside(iface).map_err(|message| Failure {
            code: 125,
            errno: rustix::io::Errno::INVAL,
            message,
        })?;
    }
    match ctx.pty_slave {
        Some(slave) => attach_terminal(slave)?,
        // Out of the caller's session: a container must not reach the caller's terminal
        // through /dev/tty (TIOCSTI would type into it).
        None if plan.new_session => {
            rustix::process::setsid().map_err(step("start a session"))?;
        }
        None => {}
    }
    // Nothing of the container's runs before its cgroup limits bind.
    sync::recv(ctx.sock, sync::ToChild::Ready).map_err(step("wait for the launcher"))?;
    // Before privileges drop: lowering is always allowed, and a hard limit above the host's
    // was refused by the launcher's check.
    crate::rlimits::apply(&plan.limits.rlimits).map_err(|(errno, message)| Failure {
        code: 125,
        errno,
        message,
    })?;
    if plan.close_fds {
        // No descriptor of the host may reach the command: mark everything above stderr
        // close-on-exec (our own socket included, which is how the parent sees exec succeed).
        berth_sys::exec::cloexec_from(3);
    }
    crate::privileges::drop_to(&crate::privileges::Target {
        private_net: plan.net != NetMode::Host,
        userns: plan.id_map.is_some(),
        confine: plan.confine,
        seccomp: ctx.seccomp,
        user: &plan.user,
        cwd: &plan.cwd,
    })
    .map_err(|(errno, message)| Failure {
        code: 125,
        errno,
        message,
    })?;
    if plan.init_stub {
        // If the launcher dies, so does a run/chroot container (set last: changing
        // credentials clears it). A system container outlives its supervisor.
        let _ =
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    }
    Ok(())
}

/// Execs a system container's init as PID 1, or (run, chroot) spawns the command under a
/// minimal PID 1 (see [`crate::init`]). Returns in the command's
/// process; the init never returns.
fn start_init(ctx: &ChildCtx<'_>) -> Result<std::convert::Infallible, Failure> {
    let prepared = exec::prepare(&ctx.plan.command, &ctx.plan.env, *ctx.saved_mask)
        .map_err(|f| exec_failure(ctx, f))?;
    if !ctx.plan.init_stub {
        // A system container: its own init is PID 1.
        return Err(exec_failure(ctx, exec::exec_here(&prepared)));
    }
    // Every signal queued for the init (blocked first, so none is lost between the spawn and
    // the wait loop). The command gets the launcher's original mask; every signal
    // disposition of the caller passes through, as with chroot(8) (berth does not run
    // Rust's start-up code, which would ignore SIGPIPE).
    berth_sys::signal::block_all().map_err(step("block signals"))?;
    let command = exec::spawn(&prepared).map_err(|f| exec_failure(ctx, f))?;
    // The command has exec'd: the launcher learns it from the end of the socket.
    berth_sys::clone::close_inherited(ctx.sock);
    crate::init::run(command)
}

fn exec_failure(ctx: &ChildCtx<'_>, f: exec::ExecFailure) -> Failure {
    Failure {
        code: f.code,
        errno: f.errno,
        message: format!(
            "failed to run command '{}': {}",
            ctx.plan.command.first().map(String::as_str).unwrap_or(""),
            describe(f.errno)
        ),
    }
}

/// Mounts a small tmpfs over the rootfs path (in our private namespace only) as a staging
/// area, attaches the rootfs (or an overlay over it) at `staging/root` and returns a
/// descriptor of that new root.
fn build_root(ctx: &ChildCtx<'_>, rootfs_dir: BorrowedFd<'_>) -> Result<OwnedFd, Failure> {
    use rustix::fs::{Mode, OFlags};
    let plan = ctx.plan;
    // The new mount API, so that no path is walked with container credentials: the host
    // directories above the rootfs may be closed to the container's root (mode 0700).
    let staging = new_tmpfs("755", Some("64k")).map_err(step("mount the staging tmpfs"))?;
    let both = MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH;
    rustix::mount::move_mount(&staging, "", rootfs_dir, "", both)
        .map_err(step("attach the staging tmpfs"))?;
    let root_dir = open_in(staging.as_fd(), "/root", Create::Dir)
        .map_err(step("create the root mount point"))?;
    if plan.ephemeral || ctx.overlay_rw.is_some() {
        let lower = open_in(staging.as_fd(), "/lower", Create::Dir)
            .map_err(step("create the overlay lower dir"))?;
        // The writable layer: the instance's own directory, or (ephemeral) a tmpfs of its
        // own, as large as tmpfs allows by default (half of RAM), not the small staging one.
        let rw_dir = open_in(staging.as_fd(), "/rw", Create::Dir)
            .map_err(step("create the overlay's writable layer"))?;
        let fresh;
        let rw = match ctx.overlay_rw {
            Some(fd) => fd,
            None => {
                let size = plan.limits.disk.map(|d| d.to_string());
                let inodes = plan.limits.disk_inodes.map(|n| n.to_string());
                fresh = new_sized_tmpfs("755", size.as_deref(), inodes.as_deref())
                    .map_err(step("create the overlay's writable layer"))?;
                fresh.as_fd()
            }
        };
        rustix::mount::move_mount(rw, "", &rw_dir, "", both)
            .map_err(step("attach the overlay's writable layer"))?;
        let upper = open_in(rw.as_fd(), "/upper", Create::Dir)
            .map_err(step("create the overlay upper dir"))?;
        let work = open_in(rw.as_fd(), "/work", Create::Dir)
            .map_err(step("create the overlay work dir"))?;
        rustix::mount::move_mount(ctx.rootfs, "", &lower, "", both)
            .map_err(step("attach the rootfs"))?;
        // The layers are named through our own descriptors (the rootfs descriptor now names
        // the attached mount); userxattr: in a user namespace overlayfs may only use the
        // user.* xattr namespace, and a lasting upper layer always uses it, so that it reads
        // the same whether the container runs privileged or not.
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}{}",
            fd_path(ctx.rootfs),
            fd_path(&upper),
            fd_path(&work),
            if plan.id_map.is_some() || ctx.overlay_rw.is_some() {
                ",userxattr"
            } else {
                ""
            }
        );
        mounts::mount_fs("overlay", &fd_path(&root_dir), MountFlags::empty(), &opts)
            .map_err(step("mount the overlay"))?;
    } else {
        rustix::mount::move_mount(ctx.rootfs, "", &root_dir, "", both)
            .map_err(step("attach the rootfs"))?;
    }
    rustix::fs::openat(
        &staging,
        "root",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(step("open the new root"))
}

fn attach_binds(root: BorrowedFd<'_>, ctx: &ChildCtx<'_>) -> Result<(), Failure> {
    for (bind, fd) in ctx.plan.binds.iter().zip(ctx.binds) {
        let is_dir = rustix::fs::fstat(fd)
            .map(|st| rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir())
            .unwrap_or(true);
        let target = open_in(
            root,
            &bind.target,
            if is_dir { Create::Dir } else { Create::File },
        )
        .map_err(|e| MountError {
            what: "create bind target",
            target: bind.target.clone(),
            errno: e,
        })?;
        rustix::mount::move_mount(
            fd,
            "",
            &target,
            "",
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
        )
        .map_err(|e| MountError {
            what: "bind",
            target: bind.target.clone(),
            errno: e,
        })?;
    }
    Ok(())
}

/// A detached tmpfs mount (nosuid, nodev), made with the new mount API so that no path is
/// walked to make it.
fn new_tmpfs(mode: &str, size: Option<&str>) -> Result<OwnedFd, Errno> {
    new_sized_tmpfs(mode, size, None)
}

/// A tmpfs, with a size and an inode count when given (`run --ephemeral --disk`).
fn new_sized_tmpfs(mode: &str, size: Option<&str>, inodes: Option<&str>) -> Result<OwnedFd, Errno> {
    use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags};
    let fs = rustix::mount::fsopen("tmpfs", FsOpenFlags::FSOPEN_CLOEXEC)?;
    rustix::mount::fsconfig_set_string(&fs, "mode", mode)?;
    if let Some(size) = size {
        rustix::mount::fsconfig_set_string(&fs, "size", size)?;
    }
    if let Some(inodes) = inodes {
        rustix::mount::fsconfig_set_string(&fs, "nr_inodes", inodes)?;
    }
    rustix::mount::fsconfig_create(&fs)?;
    rustix::mount::fsmount(
        &fs,
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NODEV,
    )
}

/// pivot_root into the new root and detach the old one: afterwards nothing of the host's
/// tree is reachable.
fn enter_root(root: &OwnedFd) -> Result<(), Failure> {
    rustix::process::fchdir(root).map_err(step("enter the new root"))?;
    rustix::process::pivot_root(".", ".").map_err(step("pivot_root"))?;
    rustix::mount::unmount(".", rustix::mount::UnmountFlags::DETACH)
        .map_err(step("detach the old root"))?;
    rustix::process::chdir("/").map_err(step("chdir /"))
}

fn attach_terminal(slave: BorrowedFd<'_>) -> Result<(), Failure> {
    rustix::process::setsid().map_err(step("start a session"))?;
    rustix::process::ioctl_tiocsctty(slave).map_err(step("take the terminal"))?;
    for target in 0..3 {
        let res = match target {
            0 => rustix::stdio::dup2_stdin(slave),
            1 => rustix::stdio::dup2_stdout(slave),
            _ => rustix::stdio::dup2_stderr(slave),
        };
        res.map_err(step("attach the terminal"))?;
    }
    Ok(())
}
