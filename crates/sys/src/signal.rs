//! Blocking signals and reading them from a signalfd, so that the launcher's poll loop sees
//! them as ordinary events and no signal handler (and no thread) is needed.

use crate::clone::last_errno;
use rustix::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use rustix::io::Errno;

/// The signals a launcher forwards to its container, plus SIGCHLD and SIGWINCH.
pub const FORWARDED: &[i32] = &[
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGCONT,
    libc::SIGTSTP,
    libc::SIGTTIN,
    libc::SIGTTOU,
    libc::SIGALRM,
    libc::SIGPWR,
    libc::SIGWINCH,
    libc::SIGCHLD,
];

fn set_of(signals: &[i32]) -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set it is given; sigaddset with valid numbers.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// The signal mask to restore in a child before it execs.
#[derive(Clone, Copy)]
pub struct SavedMask(libc::sigset_t);

/// Blocks `signals` and returns the previous mask.
pub fn block(signals: &[i32]) -> Result<SavedMask, Errno> {
    let set = set_of(signals);
    // SAFETY: zeroed sigset_t is valid storage for the old mask.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers refer to live sigset_t values.
    if unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old) } != 0 {
        return Err(Errno::from_raw_os_error(last_errno()));
    }
    Ok(SavedMask(old))
}

/// Restores a mask saved by [`block`].
pub fn restore(mask: &SavedMask) -> Result<(), Errno> {
    // SAFETY: the pointer refers to a live sigset_t; the old-mask pointer may be NULL.
    if unsafe { libc::sigprocmask(libc::SIG_SETMASK, &mask.0, std::ptr::null_mut()) } != 0 {
        return Err(Errno::from_raw_os_error(last_errno()));
    }
    Ok(())
}

/// Resets every signal disposition to the default, as a freshly exec'd program expects.
/// Ignored dispositions survive execve, so a launcher that ignored SIGPIPE must undo it.
pub fn reset_dispositions() {
    for sig in 1..libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: SIG_DFL is a valid disposition for every catchable signal.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
}

/// A signalfd for `signals` (which must be blocked).
pub fn signalfd(signals: &[i32]) -> Result<OwnedFd, Errno> {
    let set = set_of(signals);
    // SAFETY: -1 asks for a new fd; `set` is a live sigset_t.
    let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) };
    if fd < 0 {
        return Err(Errno::from_raw_os_error(last_errno()));
    }
    // SAFETY: signalfd returned a new fd that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Reads one pending signal number from a signalfd, or None when none is pending.
pub fn read_signal(fd: impl AsFd) -> Result<Option<i32>, Errno> {
    // SAFETY: signalfd_siginfo is plain old data.
    let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
    let len = std::mem::size_of::<libc::signalfd_siginfo>();
    // SAFETY: the buffer is exactly one signalfd_siginfo long.
    let n = unsafe {
        libc::read(
            fd.as_fd().as_raw_fd(),
            (&mut info as *mut libc::signalfd_siginfo).cast(),
            len,
        )
    };
    if n < 0 {
        let e = Errno::from_raw_os_error(last_errno());
        return if e == Errno::AGAIN { Ok(None) } else { Err(e) };
    }
    if n as usize != len {
        return Ok(None);
    }
    Ok(Some(info.ssi_signo as i32))
}

/// Whether the process `pid` has a handler installed for `sig` (from the SigCgt mask in
/// /proc/PID/status). A namespace's PID 1 ignores signals it does not catch, even from its
/// parent; the launcher uses this to give `berth run` the semantics of a plain process.
pub fn catches(pid: i32, sig: i32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|mask| sig > 0 && sig <= 64 && mask & (1u64 << (sig - 1)) != 0)
}
