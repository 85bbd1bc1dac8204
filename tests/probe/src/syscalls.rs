//! Every `unsafe` call of the probe: thin, safe wrappers over libc and raw system calls.
#![allow(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub struct Ids {
    pub uid: u32,
    pub gid: u32,
    pub euid: u32,
    pub egid: u32,
}

pub fn ids() -> Ids {
    // SAFETY: these calls take no arguments and cannot fail.
    unsafe {
        Ids {
            uid: libc::getuid(),
            gid: libc::getgid(),
            euid: libc::geteuid(),
            egid: libc::getegid(),
        }
    }
}

/// The UTS nodename.
pub fn hostname() -> io::Result<String> {
    // SAFETY: utsname is plain old data; all-zero is a valid value.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `uts` is a valid out-pointer for one `struct utsname`.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let bytes: Vec<u8> = uts
        .nodename
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

pub fn groups() -> io::Result<Vec<u32>> {
    // SAFETY: a size of 0 with a null list only asks for the number of groups.
    let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut list = vec![0; usize::try_from(n).unwrap_or(0)];
    // SAFETY: `list` has room for exactly `n` gids.
    let n = unsafe { libc::getgroups(n, list.as_mut_ptr()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    list.truncate(usize::try_from(n).unwrap_or(0));
    Ok(list)
}

/// `f_flag` of statvfs(3).
pub fn statvfs_flags(path: &Path) -> io::Result<u64> {
    let c_path = CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: statvfs is plain old data; all-zero is a valid value.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c_path` is NUL-terminated and `st` is a valid out-pointer.
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_flag)
}

/// (rows, cols) of the terminal on `fd`.
pub fn winsize(fd: i32) -> io::Result<(u16, u16)> {
    // SAFETY: winsize is plain old data; all-zero is a valid value.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes one `struct winsize` through the pointer, which is valid.
    if unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((ws.ws_row, ws.ws_col))
}

/// (soft, hard) RLIMIT_NOFILE.
/// TIOCSTI with a harmless byte (a newline) on `fd`: the errno (0 if it went through).
/// Only ever aimed at a terminal the test itself owns, or at none.
pub fn tiocsti(fd: i32) -> i32 {
    let byte: libc::c_char = b'\n' as libc::c_char;
    // SAFETY: TIOCSTI reads one byte from the pointer given, which points at `byte`.
    if unsafe { libc::ioctl(fd, libc::TIOCSTI, &byte) } == 0 {
        0
    } else {
        io::Error::last_os_error().raw_os_error().unwrap_or(-1)
    }
}

pub fn rlimit_nofile() -> io::Result<(u64, u64)> {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `rl` is a valid out-pointer for one `struct rlimit`.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((rl.rlim_cur, rl.rlim_max))
}

/// Interface flags (IFF_*) by SIOCGIFFLAGS, for when /sys/class/net is not there.
pub fn if_flags(name: &str) -> io::Result<u32> {
    let bytes = name.as_bytes();
    if bytes.len() >= libc::IFNAMSIZ {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: socket(2) with constant arguments; the fd is closed below.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFFLAGS reads the NUL-terminated name and writes `ifr_flags` of `req`.
    let rc = unsafe { libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req) };
    let err = io::Error::last_os_error();
    // SAFETY: `sock` is our own fd, closed exactly once.
    unsafe { libc::close(sock) };
    if rc != 0 {
        return Err(err);
    }
    // SAFETY: the kernel filled the `ifru_flags` member of the union.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    Ok(u32::from(flags as u16))
}

/// Raises `sig` with its default disposition, unblocked. Returns if the signal did not
/// end the process (a default-ignored signal, or PID 1 of a namespace, which the kernel
/// protects from its own default-disposition signals).
pub fn raise_default(sig: i32) -> io::Result<()> {
    // SIGKILL and SIGSTOP always have their default disposition and cannot be set.
    let settable = sig != libc::SIGKILL && sig != libc::SIGSTOP;
    // SAFETY: SIG_DFL installs no Rust code as a handler.
    if settable && unsafe { libc::signal(sig, libc::SIG_DFL) } == libc::SIG_ERR {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: sigset_t is plain old data and is initialised by sigemptyset.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t; a null old-set pointer is allowed.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
    // SAFETY: raise(3) takes a plain signal number.
    if unsafe { libc::raise(sig) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

extern "C" fn exit_42(_: libc::c_int) {
    // SAFETY: _exit(2) is async-signal-safe and never returns.
    unsafe { libc::_exit(42) }
}

/// Makes SIGTERM end the process with exit status 42.
pub fn exit_42_on_sigterm() -> io::Result<()> {
    let handler = exit_42 as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only calls the async-signal-safe _exit.
    if unsafe { libc::signal(libc::SIGTERM, handler) } == libc::SIG_ERR {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[derive(Clone, Copy, Debug)]
pub enum Abi {
    X86_64,
    I386,
    X32,
}

/// How a system call made in a child process ended.
pub enum Outcome {
    /// The call returned; 0 on success, else the errno.
    Errno(i32),
    /// The child was killed (a seccomp KILL action, or SIGSEGV for `int 0x80` on a kernel
    /// without the i386 ABI) before it could report.
    Signal(i32),
}

/// Makes one raw system call in a forked child and reports how it ended. The child does
/// nothing else and leaves with `_exit`, so whatever the call does to the child's memory
/// never reaches this process, and a seccomp kill only ends the child.
pub fn call_in_child(abi: Abi, nr: u64, args: [u64; 5]) -> io::Result<Outcome> {
    // SAFETY: the probe is single-threaded, so the child may run any code; it ends in _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: PR_SET_DUMPABLE 0 only stops a killed child from dumping core (no core
        // file, no host crash-report helper).
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
        // SAFETY: the caller passes numbers and arguments for which the kernel
        // validates and rejects every pointer; the child exits right after the call.
        let ret = unsafe { raw_syscall(abi, nr, args) };
        let code = if (-4095..0).contains(&ret) { -ret } else { 0 };
        // SAFETY: _exit ends the child without running the parent's destructors twice.
        unsafe { libc::_exit(i32::try_from(code).unwrap_or(255)) }
    }
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid out-pointer and `pid` is our own child.
        if unsafe { libc::waitpid(pid, &mut status, 0) } == pid {
            break;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    if libc::WIFSIGNALED(status) {
        Ok(Outcome::Signal(libc::WTERMSIG(status)))
    } else {
        Ok(Outcome::Errno(libc::WEXITSTATUS(status)))
    }
}

/// Returns the raw kernel result: >= 0 on success, -errno on failure.
///
/// # Safety
/// The call must not break this process's memory or resources in a way Rust relies on.
unsafe fn raw_syscall(abi: Abi, nr: u64, a: [u64; 5]) -> i64 {
    match abi {
        Abi::X86_64 | Abi::X32 => {
            // SAFETY: upheld by the caller; libc::syscall passes the x32 bit through.
            let ret = unsafe { libc::syscall(nr as libc::c_long, a[0], a[1], a[2], a[3], a[4]) };
            if ret == -1 {
                -i64::from(io::Error::last_os_error().raw_os_error().unwrap_or(255))
            } else {
                ret
            }
        }
        // SAFETY: upheld by the caller.
        Abi::I386 => unsafe { int80(nr, a) },
    }
}

/// The i386 ABI from a 64-bit process: `int 0x80`, number in eax, arguments in
/// ebx, ecx, edx, esi, edi; only the low 32 bits of each register are seen.
///
/// # Safety
/// As for `raw_syscall`.
#[cfg(target_arch = "x86_64")]
unsafe fn int80(nr: u64, a: [u64; 5]) -> i64 {
    let ret: u64;
    // SAFETY: upheld by the caller. rbx is reserved by LLVM, so the first argument is
    // swapped in and out around the call. Kernels before 4.17 zeroed r8-r11 on this path.
    unsafe {
        std::arch::asm!(
            "xchg {a1}, rbx",
            "int 0x80",
            "xchg {a1}, rbx",
            a1 = inout(reg) a[0] => _,
            inlateout("rax") nr => ret,
            in("rcx") a[1],
            in("rdx") a[2],
            in("rsi") a[3],
            in("rdi") a[4],
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("r11") _,
        );
    }
    // eax holds a 32-bit result.
    i64::from(ret as u32 as i32)
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn int80(_: u64, _: [u64; 5]) -> i64 {
    -i64::from(libc::ENOSYS)
}
