//! Finding and executing the command inside the container, with chroot(8)'s exit codes:
//! 127 when the command does not exist, 126 when it exists but cannot be run.
//!
//! The command is started from the container's init with a child that shares the init's
//! memory until it execs (CLONE_VM | CLONE_VFORK, as posix_spawn does): no page tables are
//! copied, which a fork would do for nothing since the child execs at once. Everything the
//! child needs is prepared beforehand, so that it only makes syscalls.

use berth_sys::signal::SavedMask;
use rustix::io::Errno;
use std::ffi::{CString, c_char, c_int, c_void};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicI32, Ordering};

/// Default PATH when the environment has none (Debian's for root).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Why the command could not be executed.
#[derive(Debug)]
pub struct ExecFailure {
    pub code: u8,
    pub errno: Errno,
}

impl ExecFailure {
    fn from_errno(errno: Errno) -> Self {
        let code = if errno == Errno::NOENT || errno == Errno::NOTDIR {
            127
        } else {
            126
        };
        ExecFailure { code, errno }
    }
}

/// A command ready to exec: C strings built, PATH searched into a list of candidates.
pub struct Prepared {
    candidates: Vec<CString>,
    _argv: Vec<CString>,
    _envp: Vec<CString>,
    argv_ptrs: Vec<*const c_char>,
    envp_ptrs: Vec<*const c_char>,
    mask: SavedMask,
    /// The child's exec error (0: it exec'd). Written by the child, read after it is gone.
    errno: AtomicI32,
}

/// Builds what [`spawn`] needs: the C strings of `argv` and `env`, and the paths to try
/// (argv[0] itself when it has a '/', otherwise each directory of `PATH` from `env`, as
/// execvp(3) searches). `mask` is the signal mask the command starts with.
pub fn prepare(
    argv: &[String],
    env: &[std::ffi::OsString],
    mask: SavedMask,
) -> Result<Prepared, ExecFailure> {
    let invalid = || ExecFailure::from_errno(Errno::INVAL);
    let cmd = argv
        .first()
        .ok_or_else(|| ExecFailure::from_errno(Errno::NOENT))?;
    let cargv: Vec<CString> = argv
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(|_| invalid())?;
    let cenv: Vec<CString> = env
        .iter()
        .map(|e| CString::new(e.as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(|_| invalid())?;
    let candidates = if cmd.contains('/') {
        vec![CString::new(cmd.as_bytes()).map_err(|_| invalid())?]
    } else {
        let path = env
            .iter()
            .find_map(|e| e.as_bytes().strip_prefix(b"PATH="))
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or_else(|| DEFAULT_PATH.to_string());
        path.split(':')
            .map(|d| if d.is_empty() { "." } else { d })
            .filter_map(|d| CString::new(format!("{d}/{cmd}")).ok())
            .collect()
    };
    let mut argv_ptrs: Vec<*const c_char> = cargv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const c_char> = cenv.iter().map(|e| e.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());
    Ok(Prepared {
        candidates,
        _argv: cargv,
        _envp: cenv,
        argv_ptrs,
        envp_ptrs,
        mask,
        errno: AtomicI32::new(0),
    })
}

/// Starts the prepared command in a new process and returns its pid once it has exec'd, or
/// why it could not.
pub fn spawn(p: &Prepared) -> Result<i32, ExecFailure> {
    // The child's stack: it only makes syscalls, but give it room.
    let mut stack = vec![0u8; 64 * 1024];
    // SAFETY: `child` only reads `p` (alive until we return, and we are suspended until the
    // child has exec'd or exited) and writes its atomic errno; it allocates nothing and runs
    // on its own stack.
    let pid = unsafe {
        berth_sys::clone::spawn_shared(child, std::ptr::from_ref(p).cast_mut().cast(), &mut stack)
    }
    .map_err(ExecFailure::from_errno)?;
    match p.errno.load(Ordering::SeqCst) {
        0 => Ok(pid),
        e => {
            // The child has exited; reap it.
            if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
            }
            Err(ExecFailure::from_errno(Errno::from_raw_os_error(e)))
        }
    }
}

/// Execs the prepared command in this process (a system container's init, which must be
/// PID 1 itself). Only returns on failure.
pub fn exec_here(p: &Prepared) -> ExecFailure {
    let _ = berth_sys::signal::restore(&p.mask);
    ExecFailure::from_errno(try_candidates(p))
}

/// The command's process until it execs: signal mask, parent-death signal, then every
/// candidate path in turn.
extern "C" fn child(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `&Prepared` given to spawn_shared, alive while we run.
    let p = unsafe { &*arg.cast::<Prepared>() };
    let _ = berth_sys::signal::restore(&p.mask);
    // If the init dies, so does the command (set here: credentials are final).
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    p.errno
        .store(try_candidates(p).raw_os_error(), Ordering::SeqCst);
    127
}

/// Tries every candidate path as execvp(3) does; returns the error to report (EACCES if
/// any candidate was not executable, else the last error). Allocates nothing.
fn try_candidates(p: &Prepared) -> Errno {
    let mut saw_eacces = false;
    let mut last = Errno::NOENT;
    for path in &p.candidates {
        match berth_sys::exec::execve_raw(path, &p.argv_ptrs, &p.envp_ptrs) {
            Errno::ACCESS => saw_eacces = true,
            Errno::NOENT | Errno::NOTDIR | Errno::LOOP | Errno::NAMETOOLONG => {}
            other => {
                last = other;
                saw_eacces = false;
                break;
            }
        }
    }
    if saw_eacces { Errno::ACCESS } else { last }
}
