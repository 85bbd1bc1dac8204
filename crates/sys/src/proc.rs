//! This process's name, as `ps` and /proc/PID/comm show it.

use rustix::io::Errno;

/// Sets the process name (PR_SET_NAME; the kernel keeps 15 bytes), so that `ps` explains what
/// a supervisor is ("berth: web").
pub fn set_name(name: &str) -> Result<(), Errno> {
    let mut bytes: Vec<u8> = name.bytes().filter(|b| *b != 0).take(15).collect();
    bytes.push(0);
    let c = std::ffi::CStr::from_bytes_with_nul(&bytes).map_err(|_| Errno::INVAL)?;
    rustix::thread::set_name(c)
}

/// The pid a pidfd refers to, from /proc/self/fdinfo (`Pid:`); `None` when the descriptor
/// is not a pidfd or its process is gone.
pub fn pidfd_pid(pidfd: &impl std::os::fd::AsRawFd) -> Option<i32> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd())).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|p| p.trim().parse().ok())
        .filter(|&p: &i32| p > 0)
}

/// Makes the program `cmd` runs die (SIGKILL) when the process that spawned it dies, so that
/// a tool berth drives (debootstrap) never outlives a killed berth and keeps writing into a
/// directory that is being cleaned up.
pub fn die_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed: prctl(2) is a plain system call, and nothing is
    // allocated or locked.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
