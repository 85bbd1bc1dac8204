//! Process credentials. glibc's wrappers are used (not the raw syscalls) so that the change
//! applies to the whole process, which matters only if it ever has threads.

use crate::clone::last_errno;
use rustix::io::Errno;

fn check(ret: i32) -> Result<(), Errno> {
    if ret == 0 {
        Ok(())
    } else {
        Err(Errno::from_raw_os_error(last_errno()))
    }
}

/// Sets the supplementary groups.
pub fn setgroups(groups: &[u32]) -> Result<(), Errno> {
    // SAFETY: the pointer and length describe a live slice of gid_t (u32).
    check(unsafe { libc::setgroups(groups.len(), groups.as_ptr()) })
}

/// Sets real, effective and saved group ids.
pub fn setresgid(gid: u32) -> Result<(), Errno> {
    // SAFETY: plain integer arguments.
    check(unsafe { libc::setresgid(gid, gid, gid) })
}

/// Sets real, effective and saved user ids. Dropping from root clears the capabilities of a
/// process that did not ask to keep them, as the kernel documents in capabilities(7).
pub fn setresuid(uid: u32) -> Result<(), Errno> {
    // SAFETY: plain integer arguments.
    check(unsafe { libc::setresuid(uid, uid, uid) })
}
