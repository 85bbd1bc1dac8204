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

/// Whether `dir` is the root of a cgroup filesystem (v1 or v2) mounted there: its own
/// filesystem is cgroup's, and its parent's is not.
pub fn is_cgroup_root(dir: &std::path::Path) -> bool {
    const CGROUP_SUPER_MAGIC: i64 = 0x0027_e0eb;
    const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
    // f_type's width differs between architectures.
    #[allow(clippy::unnecessary_cast)]
    let kind = |p: &std::path::Path| rustix::fs::statfs(p).map(|s| s.f_type as i64).ok();
    let own = kind(dir);
    let parent = dir.parent().and_then(kind);
    matches!(own, Some(CGROUP_SUPER_MAGIC | CGROUP2_SUPER_MAGIC)) && parent != own
}

/// Unmaps the pages of this program's own text (its executable mapping) that start-up
/// touched, for a long-lived process that then runs a small loop: they stay in the page
/// cache, and the few the loop needs are faulted back in. An idle container's supervisor
/// is counted in host memory by the pages it maps.
pub fn drop_text_pages() {
    let Ok(exe) = std::fs::read_link("/proc/self/exe") else {
        return;
    };
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return;
    };
    for line in maps.lines() {
        // "START-END PERMS OFFSET DEV INODE PATH"
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms)) = (f.next(), f.next()) else {
            continue;
        };
        let path = f.nth(3);
        if perms != "r-xp" || path != exe.to_str() {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (
            usize::from_str_radix(start, 16),
            usize::from_str_radix(end, 16),
        ) else {
            continue;
        };
        // SAFETY: the range is this program's text: a private, read-only, executable mapping
        // of its own file that is never written. MADV_DONTNEED drops only clean copies of
        // file pages; any later access (the very next instruction included) faults them in
        // again from the page cache, unchanged. No Rust reference points into it as data.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
        }
    }
}
