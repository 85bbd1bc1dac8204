//! `berth exec`: a command in a running container: all its namespaces, its cgroup, its
//! security settings.
//!
//! The launcher steps into the container's v1 cgroups (as for a launch, see
//! `Cgroup::enter_v1`) and clones a helper born there (and in the cgroup2 one through
//! CLONE_INTO_CGROUP), then steps back. The helper joins the container's namespaces with one
//! `setns` on the init's pidfd, drops to the container's privileges and spawns the command,
//! which is the first of them to be inside the pid namespace; it waits for it and passes
//! signals on, as the init of `berth run` does. The helper is never visible inside the
//! container (it is not in its pid namespace).

use crate::launcher::LaunchError;
use crate::{exec, privileges, pty, sync};
use berth_spec::User;
use berth_sys::clone::Forked;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::io::Errno;
use std::ffi::OsString;
use std::path::PathBuf;

/// What to run, and where.
pub struct ExecRequest {
    /// The container's init, and its start time (a pid alone may have been reused).
    pub pid: i32,
    pub pid_start: u64,
    /// The container's cgroup directories.
    pub cgroup: Vec<PathBuf>,
    pub command: Vec<String>,
    pub env: Vec<OsString>,
    pub cwd: String,
    pub user: User,
    pub terminal: bool,
    /// The compiled seccomp profile, when the container is confined.
    pub seccomp: Option<Vec<u8>>,
    pub confine: bool,
    /// The container's process limits, as its init got them.
    pub rlimits: Vec<berth_spec::Rlimit>,
}

fn berth(message: impl Into<String>) -> LaunchError {
    LaunchError {
        code: 125,
        message: message.into(),
    }
}

/// Namespace types, with their /proc/PID/ns name.
const NAMESPACES: &[(&str, u64)] = &[
    ("user", berth_sys::clone::flags::NEWUSER),
    ("mnt", berth_sys::clone::flags::NEWNS),
    ("pid", berth_sys::clone::flags::NEWPID),
    ("uts", berth_sys::clone::flags::NEWUTS),
    ("ipc", berth_sys::clone::flags::NEWIPC),
    ("net", berth_sys::clone::flags::NEWNET),
    ("cgroup", berth_sys::clone::flags::NEWCGROUP),
];

/// The namespaces of `pid` that differ from ours (joining one's own user namespace is an
/// error; the container may share the host's network).
fn differing_namespaces(pid: i32) -> Result<u64, LaunchError> {
    let mut flags = 0;
    for (name, flag) in NAMESPACES {
        let theirs = std::fs::read_link(format!("/proc/{pid}/ns/{name}"))
            .map_err(|e| berth(format!("read the container's {name} namespace: {e}")))?;
        let ours = std::fs::read_link(format!("/proc/self/ns/{name}")).ok();
        if ours.as_ref() != Some(&theirs) {
            flags |= flag;
        }
    }
    Ok(flags)
}

/// Runs the request and returns the command's exit status (128+N for a signal N).
pub fn exec(req: &ExecRequest) -> Result<i32, LaunchError> {
    let not_running = || berth("the container is not running");
    let pid = rustix::process::Pid::from_raw(req.pid).ok_or_else(not_running)?;
    let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())
        .map_err(|_| not_running())?;
    // Checked after opening the pidfd: if the start time still matches, the pidfd names the
    // container's init and cannot come to name another process.
    if !crate::proc_start_matches(req.pid, req.pid_start) {
        return Err(not_running());
    }
    let ns = differing_namespaces(req.pid)?;
    let blocked: Vec<i32> = berth_sys::signal::FORWARDED
        .iter()
        .chain(berth_sys::signal::BLOCKED_ONLY)
        .copied()
        .collect();
    let saved_mask =
        berth_sys::signal::block(&blocked).map_err(|e| berth(format!("block signals: {e}")))?;
    let result = (|| {
        let sigfd = berth_sys::signal::signalfd(berth_sys::signal::FORWARDED)
            .map_err(|e| berth(format!("create a signalfd: {e}")))?;
        // A terminal from the container's own devpts, so that its name means something
        // inside (tty, ps).
        let terminal = if req.terminal {
            Some(container_pty(req.pid)?)
        } else {
            None
        };
        let (parent_sock, child_sock) =
            sync::pair().map_err(|e| berth(format!("socketpair: {e}")))?;
        let cg = CgroupEntry::enter(&init_cgroups(req.pid, &req.cgroup))?;
        let launcher_pid = std::process::id() as i32;
        let forked = berth_sys::clone::clone3_checked(0, cg.v2.as_ref().map(AsFd::as_fd));
        if !matches!(forked, Ok(Forked::Child)) {
            cg.leave()?;
        }
        let forked = forked.map_err(|e| berth(format!("clone the exec helper: {e}")))?;
        let (helper, helper_fd) = match forked {
            Forked::Child => {
                drop(parent_sock);
                helper_main(
                    req,
                    launcher_pid,
                    pidfd.as_fd(),
                    ns,
                    child_sock.as_fd(),
                    terminal.as_ref(),
                    &saved_mask,
                )
            }
            Forked::Parent { pid, pidfd } => (pid, pidfd),
        };
        drop(child_sock);
        if let Some(sync::ToParent::Failed { code, message, .. }) = sync::recv_report(&parent_sock)
            .map_err(|e| berth(format!("read the exec report: {e}")))?
        {
            if let Some(p) = rustix::process::Pid::from_raw(helper) {
                let _ = rustix::process::waitpid(Some(p), rustix::process::WaitOptions::empty());
            }
            return Err(LaunchError { code, message });
        }
        let relay = terminal.map(|t| pty::Relay::new(t.master));
        crate::relay::wait(helper, &helper_fd, &sigfd, relay, false)
            .map_err(|e| berth(format!("wait for the command: {e}")))
    })();
    // The mask stays: the caller exits next, and a pending signal must not kill it first.
    result
}

/// The exec helper: joins the container, drops privileges, spawns the command, waits.
fn helper_main(
    req: &ExecRequest,
    launcher: i32,
    init: BorrowedFd<'_>,
    ns: u64,
    sock: BorrowedFd<'_>,
    terminal: Option<&pty::Pty>,
    saved_mask: &berth_sys::signal::SavedMask,
) -> ! {
    // Nothing in the container may reach this process's memory or /proc/PID/exe.
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
    let fail = |code: u8, errno: Errno, message: String| -> ! {
        sync::send_failed(sock, code, errno.raw_os_error(), &message);
        berth_sys::clone::exit_now(i32::from(code))
    };
    if let Err(e) = berth_sys::ns::setns_pidfd(init, ns) {
        fail(125, e, format!("join the container's namespaces: {e}"));
    }
    let userns = ns & berth_sys::clone::flags::NEWUSER != 0;
    if userns
        && let Err(e) = berth_sys::ids::setresgid(0).and_then(|()| berth_sys::ids::setresuid(0))
    {
        fail(125, e, format!("become root in the container: {e}"));
    }
    // A session of its own whatever happens: the command must not reach the caller's
    // terminal through /dev/tty.
    if let Err(e) = rustix::process::setsid() {
        fail(125, e, format!("start a session: {e}"));
    }
    if let Some(t) = terminal {
        let ok = rustix::process::ioctl_tiocsctty(&t.slave)
            .and_then(|()| rustix::stdio::dup2_stdin(&t.slave))
            .and_then(|()| rustix::stdio::dup2_stdout(&t.slave))
            .and_then(|()| rustix::stdio::dup2_stderr(&t.slave));
        if let Err(e) = ok {
            fail(125, e, format!("attach the terminal: {e}"));
        }
    }
    // The container's process limits, while this process may still set them (a hard limit
    // is raised only with CAP_SYS_RESOURCE, which dropping privileges ends).
    if let Err((e, m)) = crate::rlimits::apply(&req.rlimits) {
        fail(125, e, m);
    }
    // No descriptor of the host reaches the command.
    berth_sys::exec::cloexec_from(3);
    let private_net = ns & berth_sys::clone::flags::NEWNET != 0;
    if let Err((e, m)) = privileges::drop_to(&privileges::Target {
        private_net,
        userns,
        confine: req.confine,
        seccomp: req.seccomp.as_deref(),
        user: &req.user,
        cwd: &req.cwd,
    }) {
        fail(125, e, m);
    }
    // If `berth exec` dies, so does the helper, and with it the command (set after the
    // credentials change, which clears it; then checked, in case the launcher already went).
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    if rustix::process::getppid().is_none_or(|p| p.as_raw_nonzero().get() != launcher) {
        berth_sys::clone::exit_now(125);
    }
    let name = req.command.first().cloned().unwrap_or_default();
    let describe = |f: &exec::ExecFailure| {
        let t = std::io::Error::from_raw_os_error(f.errno.raw_os_error()).to_string();
        format!(
            "failed to run command '{name}': {}",
            t.split(" (os error").next().unwrap_or("")
        )
    };
    let prepared = match exec::prepare(&req.command, &req.env, *saved_mask) {
        Ok(p) => p,
        Err(f) => fail(f.code, f.errno, describe(&f)),
    };
    if let Err(e) = berth_sys::signal::block_all() {
        fail(125, e, format!("block signals: {e}"));
    }
    match exec::spawn(&prepared) {
        Ok(command) => {
            berth_sys::clone::close_inherited(sock);
            crate::init::run(command)
        }
        Err(f) => fail(f.code, f.errno, describe(&f)),
    }
}

/// A pty from the container's devpts, opened through its root as the host sees it.
fn container_pty(pid: i32) -> Result<pty::Pty, LaunchError> {
    pty::Pty::open_at(&format!("/proc/{pid}/root"))
        .map_err(|e| berth(format!("allocate a terminal in the container: {e}")))
}

/// The cgroups to join: where the container's init is in each of the container's
/// hierarchies. An init that manages its cgroups (systemd) has moved itself to a leaf
/// (init.scope), and on cgroup v2 only a leaf may take a process once its parent has
/// controllers enabled; a path outside the container's own directory is never taken (the
/// container's own directory is used instead).
fn init_cgroups(pid: i32, dirs: &[PathBuf]) -> Vec<PathBuf> {
    let theirs = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    dirs.iter()
        .map(|dir| {
            let Some(root) = dir.parent() else {
                return dir.clone();
            };
            let v2 = !dir.join("tasks").exists();
            let hierarchy = root.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let found = theirs.lines().find_map(|l| {
                let mut f = l.splitn(3, ':');
                let (_, list, path) = (f.next()?, f.next()?, f.next()?);
                let same = if v2 {
                    list.is_empty()
                } else {
                    list == hierarchy
                        || list
                            .split(',')
                            .any(|c| c == hierarchy || c.strip_prefix("name=") == Some(hierarchy))
                };
                same.then(|| root.join(path.trim_start_matches('/')))
            });
            match found {
                Some(p) if p.starts_with(dir) && p.is_dir() => p,
                _ => dir.clone(),
            }
        })
        .collect()
}

/// The launcher's stay in the container's cgroup while it clones the helper.
struct CgroupEntry {
    back: Vec<PathBuf>,
    v2: Option<OwnedFd>,
}

impl CgroupEntry {
    /// Steps into the v1 directories (writing 0 to `tasks` moves the calling thread, see
    /// Cgroup::enter_v1) and opens the cgroup2 one for CLONE_INTO_CGROUP.
    fn enter(dirs: &[PathBuf]) -> Result<CgroupEntry, LaunchError> {
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let mut entry = CgroupEntry {
            back: Vec::new(),
            v2: None,
        };
        for dir in dirs {
            let tasks = dir.join("tasks");
            if tasks.exists() {
                let Some(back) = own_dir(&own, dir) else {
                    continue;
                };
                std::fs::write(&tasks, "0")
                    .map_err(|e| berth(format!("join {}: {e}", dir.display())))?;
                entry.back.push(back.join("tasks"));
            } else {
                let fd = rustix::fs::open(
                    dir,
                    rustix::fs::OFlags::PATH
                        | rustix::fs::OFlags::DIRECTORY
                        | rustix::fs::OFlags::CLOEXEC,
                    rustix::fs::Mode::empty(),
                )
                .map_err(|e| berth(format!("open {}: {e}", dir.display())))?;
                entry.v2 = Some(fd);
            }
        }
        Ok(entry)
    }

    fn leave(self) -> Result<(), LaunchError> {
        for tasks in &self.back {
            std::fs::write(tasks, "0").map_err(|e| {
                berth(format!(
                    "leave the container's cgroup ({}): {e}",
                    tasks.display()
                ))
            })?;
        }
        Ok(())
    }
}

/// Our own directory in the v1 hierarchy that holds `dir` (a directory under
/// /sys/fs/cgroup/HIERARCHY/, at any depth).
fn own_dir(own: &str, dir: &std::path::Path) -> Option<PathBuf> {
    let base = std::path::Path::new("/sys/fs/cgroup");
    let hierarchy = dir
        .strip_prefix(base)
        .ok()?
        .components()
        .next()?
        .as_os_str()
        .to_str()?;
    let root = base.join(hierarchy);
    own.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, list, path) = (f.next()?, f.next()?, f.next()?);
        let matches = list == hierarchy
            || list
                .split(',')
                .any(|c| c == hierarchy || c.strip_prefix("name=") == Some(hierarchy));
        matches.then(|| root.join(path.trim_start_matches('/')))
    })
}
