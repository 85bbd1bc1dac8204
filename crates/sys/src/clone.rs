//! `clone3` with fork semantics (no new stack), so that one call creates every namespace,
//! hands back a pidfd and, on cgroup v2, places the child straight into its cgroup.

use rustix::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use rustix::io::Errno;

/// Namespace and process flags for [`clone3`], as the kernel defines them (`linux/sched.h`).
pub mod flags {
    pub const NEWNS: u64 = libc::CLONE_NEWNS as u64;
    pub const NEWUTS: u64 = libc::CLONE_NEWUTS as u64;
    pub const NEWIPC: u64 = libc::CLONE_NEWIPC as u64;
    pub const NEWUSER: u64 = libc::CLONE_NEWUSER as u64;
    pub const NEWPID: u64 = libc::CLONE_NEWPID as u64;
    pub const NEWNET: u64 = libc::CLONE_NEWNET as u64;
    pub const NEWCGROUP: u64 = libc::CLONE_NEWCGROUP as u64;
}

/// What `clone3` returned: in the parent, the child's pid and pidfd; in the child, nothing.
#[derive(Debug)]
pub enum Forked {
    Parent { pid: i32, pidfd: OwnedFd },
    Child,
}

const CLONE_PIDFD: u64 = 0x1000;
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `struct clone_args` from `linux/sched.h` (version 2, 88 bytes).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Creates a child process like `fork`, with the namespaces in `ns_flags`, a pidfd for it and
/// (when `cgroup` is given) directly inside that cgroup v2 directory.
///
/// # Safety
/// The caller must be single-threaded: the child is a copy of the calling thread only, so any
/// lock held by another thread (the allocator's included) would stay locked forever in it.
/// The kernel itself refuses CLONE_NEWUSER from a multi-threaded process.
pub unsafe fn clone3(ns_flags: u64, cgroup: Option<BorrowedFd<'_>>) -> Result<Forked, Errno> {
    let mut pidfd: i32 = -1;
    let mut args = CloneArgs {
        flags: ns_flags | CLONE_PIDFD,
        pidfd: &mut pidfd as *mut i32 as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..CloneArgs::default()
    };
    if let Some(fd) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd.as_raw_fd() as u64;
    }
    // SAFETY: `args` is a valid, fully initialised clone_args of the size we pass; with a zero
    // stack the child continues on a copy of our stack, exactly as after fork(2). The caller
    // guarantees we are single-threaded (see above).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match ret {
        -1 => Err(Errno::from_raw_os_error(last_errno())),
        0 => Ok(Forked::Child),
        pid => {
            // SAFETY: with CLONE_PIDFD the kernel stored a new, owned file descriptor in
            // `pidfd` when clone3 succeeded.
            let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
            Ok(Forked::Parent {
                pid: pid as i32,
                pidfd,
            })
        }
    }
}

pub(crate) fn last_errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// Leaves the process at once with `code`, without running destructors or atexit handlers:
/// the right exit for a forked child whose parent owns every resource it inherited.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no Rust state.
    unsafe { libc::_exit(code) }
}

/// `unshare(2)` for namespaces only (CLONE_NEWCGROUP after the cgroup is joined, for example).
pub fn unshare(flags: u64) -> Result<(), Errno> {
    // SAFETY: unshare with namespace flags only changes this process's namespaces; it does not
    // touch memory. Callers are single-threaded (namespace unsharing requires it anyway).
    let ret = unsafe { libc::unshare(flags as i32) };
    if ret == 0 {
        Ok(())
    } else {
        Err(Errno::from_raw_os_error(last_errno()))
    }
}

/// fork(2).
///
/// # Safety
/// As for [`clone3`]: the caller must be single-threaded.
pub unsafe fn fork() -> Result<Option<i32>, Errno> {
    // SAFETY: the caller guarantees a single-threaded process, so the child's copy of the
    // address space holds no lock owned by another thread.
    match unsafe { libc::fork() } {
        -1 => Err(Errno::from_raw_os_error(last_errno())),
        0 => Ok(None),
        pid => Ok(Some(pid)),
    }
}

/// Closes a descriptor this process borrowed from a parent it was forked from and will not
/// use again (the parent's copy is a different descriptor and stays open).
pub fn close_inherited(fd: BorrowedFd<'_>) {
    // SAFETY: after fork each process has its own descriptor table; the caller promises not
    // to use this number again in this process.
    unsafe { libc::close(fd.as_raw_fd()) };
}

/// Runs `f(arg)` in a new child process that shares this process's memory and waits for it
/// to exec or exit before returning (CLONE_VM | CLONE_VFORK, as posix_spawn does), on
/// `stack`. Returns the child's pid.
///
/// # Safety
/// `f` must not allocate or touch anything but `arg` and its own stack, and `arg` must be
/// valid until this returns.
pub unsafe fn spawn_shared(
    f: extern "C" fn(*mut libc::c_void) -> libc::c_int,
    arg: *mut libc::c_void,
    stack: &mut [u8],
) -> Result<i32, Errno> {
    // The stack grows down: pass its top, aligned to 16 bytes.
    let top = stack.as_mut_ptr_range().end as usize & !15;
    // SAFETY: `top` is the 16-byte-aligned end of a writable buffer that outlives the child's
    // use of it (we are suspended until it execs or exits); the caller vouches for `f`/`arg`.
    let pid = unsafe {
        libc::clone(
            f,
            top as *mut libc::c_void,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            arg,
        )
    };
    if pid < 0 {
        Err(Errno::from_raw_os_error(last_errno()))
    } else {
        Ok(pid)
    }
}

/// Whether this process has a single thread (field 20 of /proc/self/stat), the condition
/// under which a fork-like clone is sound.
pub fn single_threaded() -> bool {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.get(s.rfind(')')? + 2..)?.to_string();
            rest.split(' ').nth(17)?.parse::<u32>().ok()
        })
        .is_some_and(|n| n == 1)
}

/// [`clone3`], refused (EAGAIN) in a multi-threaded process (checked first, for about 10
/// µs): the safe way to create a container's first process.
pub fn clone3_checked(ns_flags: u64, cgroup: Option<BorrowedFd<'_>>) -> Result<Forked, Errno> {
    if !single_threaded() {
        return Err(Errno::AGAIN);
    }
    // SAFETY: checked just above: this process is single-threaded.
    unsafe { clone3(ns_flags, cgroup) }
}

/// fork(2), refused (EAGAIN) in a multi-threaded process, where the child could inherit
/// locks held by threads that do not exist in it.
pub fn fork_checked() -> Result<Option<i32>, Errno> {
    if !single_threaded() {
        return Err(Errno::AGAIN);
    }
    // SAFETY: checked just above: this process is single-threaded.
    unsafe { fork() }
}
