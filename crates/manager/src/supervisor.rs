//! The per-container supervisor ("berth: NAME"): started by `berth start`, it launches the
//! container, records its state, keeps its console (into console.log, bounded) and, when the
//! init exits, cleans up and exits too. The container does not depend on it: killing the
//! supervisor leaves the container running and manageable.

use crate::Error;
use berth_runtime::Running;
use berth_spec::Plan;
use berth_store::Store;
use berth_store::containers::Lock;
use berth_store::state::{State, start_time};
use rustix::fd::{AsFd, OwnedFd};
use rustix::io::Errno;
use std::io::{Read, Write};

/// console.log is rotated to console.log.1 beyond this size.
const LOG_LIMIT: u64 = 1 << 20;

/// Forks the supervisor and waits until it reports that the init runs (or why not).
pub fn spawn(
    store: &Store,
    name: &str,
    plan: &Plan,
    host: &berth_runtime::Host,
    stop_signal: i32,
    lock: Lock,
) -> Result<(), Error> {
    let (report_r, report_w) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|errno| Error::Sys {
            what: "create a pipe",
            errno,
        })?;
    match berth_sys::clone::fork_checked().map_err(|errno| Error::Sys {
        what: "fork the supervisor",
        errno,
    })? {
        None => {
            drop(report_r);
            // Both processes hold the lock (one open file, shared by the fork) until the
            // report: a CLI killed meanwhile must not let another command in while this
            // start is still under way.
            let code = match supervise(store, name, plan, host, stop_signal, report_w, lock) {
                Ok(()) => 0,
                Err(_) => 1,
            };
            berth_sys::clone::exit_now(code)
        }
        Some(_) => {
            drop(report_w);
            let mut text = String::new();
            let _ = std::fs::File::from(report_r).read_to_string(&mut text);
            match text.strip_prefix("ok") {
                Some(_) => Ok(()),
                None if text.is_empty() => Err(Error::Start {
                    name: name.to_string(),
                    reason: "the supervisor exited before the container ran".into(),
                }),
                None => Err(Error::Start {
                    name: name.to_string(),
                    reason: text.trim_start_matches("err ").to_string(),
                }),
            }
        }
    }
}

/// The supervisor's life: launch, report, loop, clean up.
fn supervise(
    store: &Store,
    name: &str,
    plan: &Plan,
    host: &berth_runtime::Host,
    stop_signal: i32,
    report: OwnedFd,
    lock: Lock,
) -> Result<(), Error> {
    let _ = rustix::process::setsid();
    let _ = berth_sys::proc::set_name(&format!("berth: {name}"));
    detach_stdio();
    // Nothing of the caller's stays with a long-lived process: its descriptors (a pipe it
    // waits on would never close), its working directory (it would pin that filesystem).
    berth_sys::exec::close_all_but(&[rustix::fd::AsRawFd::as_raw_fd(&report), lock.as_raw_fd()]);
    let _ = rustix::process::chdir("/");
    let mask = berth_sys::signal::block(&[libc::SIGCHLD, libc::SIGPIPE, libc::SIGHUP]).map_err(
        |errno| Error::Sys {
            what: "block signals",
            errno,
        },
    )?;
    let mut report = std::fs::File::from(report);
    let running = match berth_runtime::launch(plan, host, &mask) {
        Ok(r) => r,
        Err(e) => {
            let _ = report.write_all(format!("err {}", e.message).as_bytes());
            return Err(e.into());
        }
    };
    let me = std::process::id() as i32;
    let state = State {
        pid: running.pid,
        pid_start: start_time(running.pid).unwrap_or(0),
        supervisor_pid: me,
        supervisor_start: start_time(me).unwrap_or(0),
        started_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        cgroup: running
            .cgroup
            .as_ref()
            .map(|c| c.paths().iter().map(|p| p.display().to_string()).collect())
            .unwrap_or_default(),
        stop_signal,
        boot_id: berth_store::state::boot_id(),
        rlimits: plan
            .limits
            .rlimits
            .iter()
            .map(|r| (r.name.to_string(), r.soft, r.hard))
            .collect(),
    };
    if let Err(e) = store.write_state(name, &state) {
        let _ = report.write_all(format!("err record the state: {e}").as_bytes());
        return Err(e.into());
    }
    let _ = report.write_all(b"ok");
    drop(report);
    // After the report, off `start`'s path (a new inode on the state disk costs; `berth
    // console` waits a moment for the socket of a container that has just started), but
    // under the lock: a stop and a new start in between must not find the path half-taken.
    let listener = running
        .console
        .as_ref()
        .and_then(|_| listen(&console_socket(store, name)));
    drop(lock);
    // The rest of the supervisor's life is spent waiting. A fresh program image holds only
    // what waiting needs, not the CLI's heap and stack: that is most of an idle container's
    // host memory. `reexec` returns only when the exec failed; then this process goes on.
    reexec(store, name, &running, state.pid_start, listener.as_ref());
    event_loop(store, name, &running, listener);
    finish(store, name, running, state.pid_start);
    Ok(())
}

/// The argument that selects the supervisor's second life in berth's `main`; see [`resume`].
pub const RESUME_ARG: &str = "__supervise";

/// Replaces this process with `berth __supervise ROOT NAME PID PID_START PIDFD CONSOLE SLAVE
/// LISTENER CGROUP...`, the descriptors passed by number ("-" for none). Returns only on failure.
fn reexec(
    store: &Store,
    name: &str,
    running: &Running,
    pid_start: u64,
    listener: Option<&OwnedFd>,
) {
    use std::ffi::CString;
    use std::os::fd::AsRawFd;
    let fds = [
        Some(running.pidfd.as_fd()),
        running.console.as_ref().map(AsFd::as_fd),
        running.console_slave.as_ref().map(AsFd::as_fd),
        listener.map(AsFd::as_fd),
    ];
    use std::os::unix::ffi::OsStrExt;
    // Paths as their bytes: a state root need not be UTF-8.
    let mut args: Vec<Vec<u8>> = vec![
        format!("berth: {name}").into_bytes(),
        RESUME_ARG.into(),
        store.root().as_os_str().as_bytes().to_vec(),
        name.into(),
        running.pid.to_string().into_bytes(),
        pid_start.to_string().into_bytes(),
    ];
    for fd in fds {
        args.push(fd.map_or("-".into(), |fd| fd.as_raw_fd().to_string().into_bytes()));
    }
    if let Some(cg) = &running.cgroup {
        args.extend(cg.paths().iter().map(|p| p.as_os_str().as_bytes().to_vec()));
    }
    let Ok(argv) = args
        .into_iter()
        .map(CString::new)
        .collect::<Result<Vec<_>, _>>()
    else {
        return;
    };
    for fd in fds.into_iter().flatten() {
        if rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty()).is_err() {
            return;
        }
    }
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let _ = berth_sys::exec::execve_raw(c"/proc/self/exe", &argv_ptrs, &[std::ptr::null()]);
    // Still here: put the flags back, so that nothing started later inherits them.
    for fd in fds.into_iter().flatten() {
        let _ = rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC);
    }
}

/// The supervisor after [`reexec`]: `args` are the words after [`RESUME_ARG`]. Watches the
/// container until its init exits, then cleans up; returns the exit status.
///
/// Only root gets here (main checks), and only berth itself means to; still, nothing is
/// taken on trust: the pidfd must name the init's pid and the cgroups must be the
/// container's own, since `finish` kills whatever is in them.
pub fn resume(args: &[std::ffi::OsString]) -> u8 {
    let [
        root,
        name,
        pid,
        pid_start,
        pidfd,
        console,
        slave,
        listener,
        cgroups @ ..,
    ] = args
    else {
        return 2;
    };
    let number = |arg: &std::ffi::OsString| arg.to_str().and_then(|a| a.parse::<i32>().ok());
    // Descriptors above stderr, each named once: `inherit` takes ownership of each.
    let numbers: Vec<i32> = [pidfd, console, slave, listener]
        .into_iter()
        .filter_map(number)
        .collect();
    if numbers.iter().any(|&n| n < 3)
        || (1..numbers.len()).any(|i| numbers[..i].contains(&numbers[i]))
    {
        return 2;
    }
    // Every descriptor is claimed before anything else runs (see `inherit`).
    let claim = |arg| number(arg).and_then(berth_sys::exec::inherit);
    let (pidfd, console, console_slave, listener) =
        (claim(pidfd), claim(console), claim(slave), claim(listener));
    let (Some(pidfd), Some(pid), Some(pid_start), Some(name)) = (
        pidfd,
        number(pid),
        pid_start.to_str().and_then(|p| p.parse::<u64>().ok()),
        name.to_str(),
    ) else {
        return 2;
    };
    let store = match Store::open(std::path::Path::new(root)) {
        Ok(store) => store,
        Err(_) => return 1,
    };
    let own = berth_runtime::launcher::cgroup_name(&crate::lower::host_name(&store, name));
    let paths: Vec<std::path::PathBuf> = cgroups.iter().map(std::path::PathBuf::from).collect();
    // Each cgroup: the container's own directory, right under a cgroup filesystem's root
    // (statfs, not a mount-table parse: the resumed supervisor touches as little as it can).
    let owned = |p: &std::path::PathBuf| {
        p.file_name() == Some(std::ffi::OsStr::new(&own))
            && p.parent().is_some_and(berth_sys::proc::is_cgroup_root)
    };
    if berth_spec::validate::name(name).is_err()
        || berth_sys::proc::pidfd_pid(&pidfd) != Some(pid)
        || !paths.iter().all(owned)
    {
        return 2;
    }
    let _ = berth_sys::proc::set_name(&format!("berth: {name}"));
    // The mask survives exec, but say so here rather than rely on it.
    if berth_sys::signal::block(&[libc::SIGCHLD, libc::SIGPIPE, libc::SIGHUP]).is_err() {
        return 1;
    }
    let running = Running {
        pid,
        pidfd,
        cgroup: (!paths.is_empty()).then(|| berth_cgroups::Cgroup::adopt(&paths)),
        console,
        console_slave,
    };
    event_loop(&store, name, &running, listener);
    finish(&store, name, running, pid_start);
    0
}

/// Points stdin, stdout and stderr at /dev/null: the CLI's pipes must not stay open.
fn detach_stdio() {
    if let Ok(null) = rustix::fs::open(
        "/dev/null",
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) {
        let _ = rustix::stdio::dup2_stdin(&null);
        let _ = rustix::stdio::dup2_stdout(&null);
        let _ = rustix::stdio::dup2_stderr(&null);
    }
}

/// Where the supervisor of `name` serves its console.
pub fn console_socket(store: &Store, name: &str) -> std::path::PathBuf {
    store
        .run_dir()
        .join("consoles")
        .join(format!("{name}.sock"))
}

/// A unix stream socket listening at `path` (replacing a stale one), for root only.
fn listen(path: &std::path::Path) -> Option<OwnedFd> {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    std::fs::create_dir_all(path.parent()?).ok()?;
    let _ = std::fs::remove_file(path);
    let sock = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )
    .ok()?;
    let addr = SocketAddrUnix::new(path).ok()?;
    rustix::net::bind(&sock, &addr).ok()?;
    let _ = std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600));
    rustix::net::listen(&sock, 4).ok()?;
    Some(sock)
}

/// Until the init exits: the console into console.log, and to and from every attached
/// `berth console`.
fn event_loop(store: &Store, name: &str, running: &Running, listener: Option<OwnedFd>) {
    use rustix::event::{PollFd, PollFlags, poll};
    let log_path = store.container_dir(name).join("console.log");
    let mut log = ConsoleLog::open(&log_path);
    let mut clients: Vec<OwnedFd> = Vec::new();
    let mut text_dropped = false;
    // One page: every page the supervisor touches counts against an idle container.
    let mut buf = vec![0u8; 4096];
    loop {
        let mut fds = vec![PollFd::new(&running.pidfd, PollFlags::IN)];
        if let Some(m) = &running.console {
            fds.push(PollFd::new(m, PollFlags::IN));
        }
        if let Some(l) = &listener {
            fds.push(PollFd::new(l, PollFlags::IN));
        }
        let first_client = fds.len();
        for c in &clients {
            fds.push(PollFd::new(c, PollFlags::IN));
        }
        // Once the container has been quiet for a second, the program text that start-up
        // and the first console output touched is unmapped (see `drop_text_pages`): an idle
        // supervisor then maps only the little its loop runs.
        let timeout = rustix::event::Timespec {
            tv_sec: 1,
            tv_nsec: 0,
        };
        match poll(&mut fds, (!text_dropped).then_some(&timeout)) {
            Ok(0) if !text_dropped => {
                drop(fds);
                berth_sys::proc::drop_text_pages();
                text_dropped = true;
                continue;
            }
            Ok(_) | Err(Errno::INTR) => {}
            Err(_) => break,
        }
        let ready: Vec<bool> = fds.iter().map(|f| !f.revents().is_empty()).collect();
        drop(fds);
        let init_done = ready[0];
        if let Some(m) = &running.console {
            if ready[1] {
                match rustix::io::read(m, &mut buf) {
                    Ok(n) if n > 0 => {
                        log.append(&buf[..n]);
                        // A client that cannot take the output is dropped, not waited for.
                        clients.retain(|c| rustix::io::write(c, &buf[..n]).is_ok());
                    }
                    // EIO: no one holds the slave now (the init is exiting).
                    _ if !init_done => std::thread::sleep(std::time::Duration::from_millis(10)),
                    _ => {}
                }
            }
            let mut gone = Vec::new();
            for (i, c) in clients.iter().enumerate() {
                if !ready.get(first_client + i).copied().unwrap_or(false) {
                    continue;
                }
                match rustix::io::read(c, &mut buf) {
                    Ok(n) if n > 0 => {
                        let _ = rustix::io::write(m, &buf[..n]);
                    }
                    Err(Errno::AGAIN | Errno::INTR) => {}
                    _ => gone.push(i),
                }
            }
            for i in gone.into_iter().rev() {
                clients.remove(i);
            }
            if let (Some(l), true) = (&listener, ready.get(2).copied().unwrap_or(false))
                && let Ok(c) = rustix::net::accept_with(
                    l,
                    rustix::net::SocketFlags::CLOEXEC | rustix::net::SocketFlags::NONBLOCK,
                )
            {
                clients.push(c);
            }
        }
        if init_done {
            break;
        }
    }
}

/// The init has exited: reap it, remove its cgroup (killing what is left) and the state.
///
/// Under the container's lock, and only while the state still records this init: a `stop`
/// may have cleaned up already and released the lock, and a new `start` may have followed,
/// with the same cgroup names and console socket.
fn finish(store: &Store, name: &str, running: Running, pid_start: u64) {
    if let Some(pid) = rustix::process::Pid::from_raw(running.pid) {
        let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
    }
    let _lock = store.lock(name).ok();
    let ours = match store.read_state(name) {
        Ok(Some(state)) => state.pid == running.pid && state.pid_start == pid_start,
        // Cleared by `stop`, or unreadable: nothing newer runs under this name.
        Ok(None) | Err(_) => true,
    };
    if !ours {
        // Not ours to remove: a created (not adopted) cgroup would be torn down on drop.
        if let Some(cg) = running.cgroup {
            cg.release();
        }
        return;
    }
    if let Some(cg) = running.cgroup {
        let _ = cg.remove();
    }
    let _ = store.clear_state(name);
    if let Some(config) = crate::networks::config_of(store, name) {
        crate::networks::stopped(store, name, &config);
    }
    if running.console.is_some() {
        let _ = std::fs::remove_file(console_socket(store, name));
    }
}

/// console.log, rotated to console.log.1 when it grows past [`LOG_LIMIT`].
struct ConsoleLog {
    path: std::path::PathBuf,
    file: Option<std::fs::File>,
    size: u64,
}

impl ConsoleLog {
    fn open(path: &std::path::Path) -> ConsoleLog {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .ok();
        let size = file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map(|m| m.len())
            .unwrap_or(0);
        ConsoleLog {
            path: path.to_path_buf(),
            file,
            size,
        }
    }

    fn append(&mut self, data: &[u8]) {
        if self.size + data.len() as u64 > LOG_LIMIT {
            let _ = std::fs::rename(&self.path, self.path.with_extension("log.1"));
            *self = ConsoleLog::open(&self.path);
        }
        if let Some(f) = &mut self.file
            && f.write_all(data).is_ok()
        {
            self.size += data.len() as u64;
        }
    }
}
