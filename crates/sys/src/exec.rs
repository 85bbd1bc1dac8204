//! `execve` with an explicit argv and environment, returning the error when it fails, and
//! close-on-exec for inherited descriptors.

use rustix::io::Errno;
use std::ffi::CStr;

/// `execve` with ready NULL-terminated pointer arrays: it allocates nothing, so it can run in
/// a child that shares its parent's memory. Only returns on failure.
pub fn execve_raw(
    path: &CStr,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
) -> Errno {
    if argv.last().is_none_or(|p| !p.is_null()) || envp.last().is_none_or(|p| !p.is_null()) {
        return Errno::INVAL;
    }
    // SAFETY: both arrays are NULL-terminated (checked above) and their pointers come from C
    // strings the caller keeps alive for the call.
    unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    Errno::from_raw_os_error(crate::clone::last_errno())
}

/// Marks every descriptor from `first` upwards close-on-exec (close_range with
/// CLOSE_RANGE_CLOEXEC), so none of them reaches the next program.
pub fn cloexec_from(first: u32) {
    const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;
    // SAFETY: close_range only changes flags of this process's descriptors; no memory is
    // passed.
    unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) };
}

/// Makes `cmd` start as a daemon: a session of its own (no terminal, no signal of the
/// caller's session), and none of the caller's descriptors beyond stdio (a pipe a caller
/// waits on would never reach EOF while the daemon lives). Its working directory is the
/// caller's business (`Command::current_dir`).
pub fn daemonize(cmd: &mut std::process::Command) {
    // SAFETY: the closure runs in the forked child before exec and calls only setsid(2) and
    // close_range(2), both async-signal-safe, touching no memory of the parent's.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(cmd, || {
            libc::setsid();
            cloexec_from(3);
            Ok(())
        });
    }
}

/// A command ready to exec: every C string built and every pointer array laid out, so that
/// the exec itself allocates nothing (it may run in a child sharing its parent's memory).
pub struct ExecPlan {
    candidates: Vec<std::ffi::CString>,
    _argv: Vec<std::ffi::CString>,
    _envp: Vec<std::ffi::CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    envp_ptrs: Vec<*const libc::c_char>,
    /// For each candidate, `/bin/sh CANDIDATE ARGS...`: execvp(3)'s answer to a script
    /// without `#!` (ENOEXEC), which chroot(8) inherits.
    sh_ptrs: Vec<Vec<*const libc::c_char>>,
    mask: crate::signal::SavedMask,
    errno: std::sync::atomic::AtomicI32,
}

const SH: &CStr = c"/bin/sh";

impl ExecPlan {
    /// `candidates`: the paths to try in turn (a PATH search done by the caller); `argv`
    /// and `envp` as execve takes them; `mask`: the signal mask the command starts with.
    pub fn new(
        candidates: Vec<std::ffi::CString>,
        argv: Vec<std::ffi::CString>,
        envp: Vec<std::ffi::CString>,
        mask: crate::signal::SavedMask,
    ) -> ExecPlan {
        let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
        argv_ptrs.push(std::ptr::null());
        let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
        envp_ptrs.push(std::ptr::null());
        let sh_ptrs = candidates
            .iter()
            .map(|c| {
                let mut v = vec![SH.as_ptr(), c.as_ptr()];
                v.extend(argv.iter().skip(1).map(|a| a.as_ptr()));
                v.push(std::ptr::null());
                v
            })
            .collect();
        ExecPlan {
            candidates,
            _argv: argv,
            _envp: envp,
            argv_ptrs,
            envp_ptrs,
            sh_ptrs,
            mask,
            errno: std::sync::atomic::AtomicI32::new(0),
        }
    }

    /// Execs in this process. Only returns on failure.
    pub fn exec_here(&self) -> Errno {
        let _ = crate::signal::restore(&self.mask);
        self.try_candidates()
    }

    /// Starts the command in a child that shares our memory until it execs (CLONE_VM |
    /// CLONE_VFORK, as posix_spawn does: no page tables copied), with a parent-death signal
    /// of SIGKILL. Returns its pid once it has exec'd, or the exec's error.
    pub fn spawn(&self) -> Result<i32, Errno> {
        let mut stack = vec![0u8; 64 * 1024];
        // SAFETY: `spawned_child` only reads `self` (alive until we return; we are suspended
        // until the child has exec'd or exited), writes the atomic errno, makes syscalls and
        // allocates nothing; it runs on `stack`, which outlives it.
        let pid = unsafe {
            crate::clone::spawn_shared(
                spawned_child,
                std::ptr::from_ref(self).cast_mut().cast(),
                &mut stack,
            )
        }?;
        match self.errno.load(std::sync::atomic::Ordering::SeqCst) {
            0 => Ok(pid),
            e => {
                if let Some(p) = rustix::process::Pid::from_raw(pid) {
                    let _ =
                        rustix::process::waitpid(Some(p), rustix::process::WaitOptions::empty());
                }
                Err(Errno::from_raw_os_error(e))
            }
        }
    }

    /// Tries every candidate as execvp(3) does; returns the error to report (EACCES if any
    /// candidate was not executable, else the last error).
    fn try_candidates(&self) -> Errno {
        let mut saw_eacces = false;
        let mut last = Errno::NOENT;
        for (path, sh) in self.candidates.iter().zip(&self.sh_ptrs) {
            match execve_raw(path, &self.argv_ptrs, &self.envp_ptrs) {
                Errno::ACCESS => saw_eacces = true,
                Errno::NOENT | Errno::NOTDIR | Errno::LOOP | Errno::NAMETOOLONG => {}
                Errno::NOEXEC => {
                    last = execve_raw(SH, sh, &self.envp_ptrs);
                    saw_eacces = false;
                    break;
                }
                other => {
                    last = other;
                    saw_eacces = false;
                    break;
                }
            }
        }
        if saw_eacces { Errno::ACCESS } else { last }
    }
}

/// The spawned command's process until it execs.
extern "C" fn spawned_child(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `&ExecPlan` that `spawn` passed, alive while we run.
    let plan = unsafe { &*arg.cast::<ExecPlan>() };
    let _ = crate::signal::restore(&plan.mask);
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    let e = plan.try_candidates();
    plan.errno
        .store(e.raw_os_error(), std::sync::atomic::Ordering::SeqCst);
    127
}

/// Closes every descriptor above stderr except those in `keep` (a process that outlives its
/// caller must not hold the caller's pipes open).
pub fn close_all_but(keep: &[std::os::fd::RawFd]) {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let open: Vec<i32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2 && !keep.contains(fd))
        .collect();
    for fd in open {
        // SAFETY: closing numbers this process owns that no Rust object here will use again:
        // the caller's inherited descriptors (the directory listing above is already closed).
        unsafe { libc::close(fd) };
    }
}

/// Takes ownership of descriptor `raw`, handed down by the program that exec'd this one
/// (which cleared its close-on-exec flag for the purpose), and marks it close-on-exec again.
/// `None` when no such descriptor is open. Call it once per descriptor, at start-up, before
/// anything else could open or close descriptors.
pub fn inherit(raw: std::os::fd::RawFd) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    if raw < 0 {
        return None;
    }
    // SAFETY: F_GETFD reads the flags of a descriptor number and touches no memory.
    if unsafe { libc::fcntl(raw, libc::F_GETFD) } < 0 {
        return None;
    }
    // SAFETY: the descriptor is open (checked above) and, per this function's contract, owned
    // by nothing else in this freshly exec'd process.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) };
    rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC).ok()?;
    Some(fd)
}
