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

/// Blocked in the launcher (but not read from its signalfd): a write to a closed pipe then
/// fails with EPIPE instead of killing the launcher before it has cleaned up.
pub const BLOCKED_ONLY: &[i32] = &[libc::SIGPIPE];

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
#[derive(Clone, Copy, Debug)]
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

/// A received signal and its origin.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Received {
    pub signo: i32,
    /// `si_code`: SI_USER (0) or negative for kill/sigqueue/tgkill from a process,
    /// SI_KERNEL (0x80) for signals the kernel generated, such as a terminal's ^C.
    pub code: i32,
    /// `si_pid`: the sender as seen from the receiver's pid namespace (0 when outside it).
    pub pid: i32,
}

impl Received {
    /// Sent by the kernel (a terminal's ^C, ^\, SIGCHLD...) rather than by a process.
    pub fn from_kernel(&self) -> bool {
        self.code > 0
    }
}

/// Reads one pending signal from a signalfd, or None when none is pending.
pub fn read_signal(fd: impl AsFd) -> Result<Option<Received>, Errno> {
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
    Ok(Some(Received {
        signo: info.ssi_signo as i32,
        code: info.ssi_code,
        pid: info.ssi_pid as i32,
    }))
}

/// Blocks every signal (SIGKILL and SIGSTOP cannot be) and returns the previous mask.
pub fn block_all() -> Result<SavedMask, Errno> {
    // SAFETY: sigfillset initialises the set; both pointers refer to live sigset_t values.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        let mut old: libc::sigset_t = std::mem::zeroed();
        if libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old) != 0 {
            return Err(Errno::from_raw_os_error(last_errno()));
        }
        Ok(SavedMask(old))
    }
}

/// Waits for any blocked signal (sigwaitinfo over every signal).
pub fn wait_any() -> Result<Received, Errno> {
    // SAFETY: the set is initialised by sigfillset; siginfo_t is plain old data the kernel
    // fills; si_pid is read through libc's accessor for the union.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let signo = libc::sigwaitinfo(&set, &mut info);
        if signo < 0 {
            return Err(Errno::from_raw_os_error(last_errno()));
        }
        Ok(Received {
            signo,
            code: info.si_code,
            pid: info.si_pid(),
        })
    }
}

/// Sends signal number `sig` (real-time ones included, which rustix's `Signal` does not
/// name) to the process behind `pidfd`.
pub fn pidfd_send(pidfd: impl AsFd, sig: i32) -> Result<(), Errno> {
    // SAFETY: pidfd_send_signal takes a descriptor, a signal number, a NULL siginfo and flags.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_fd().as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(Errno::from_raw_os_error(last_errno()))
    }
}

/// Sends signal number `sig` to process `pid` (of our own pid namespace).
pub fn kill(pid: i32, sig: i32) -> Result<(), Errno> {
    // SAFETY: kill takes two integers.
    if unsafe { libc::kill(pid, sig) } == 0 {
        Ok(())
    } else {
        Err(Errno::from_raw_os_error(last_errno()))
    }
}
