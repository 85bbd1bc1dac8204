//! Joining namespaces.

use crate::clone::last_errno;
use rustix::fd::{AsRawFd, BorrowedFd};
use rustix::io::Errno;

/// Joins the namespaces in `flags` (CLONE_NEW* bits) of the process behind `pidfd`, all at
/// once (setns(2) with a pidfd, Linux 5.8).
pub fn setns_pidfd(pidfd: BorrowedFd<'_>, flags: u64) -> Result<(), Errno> {
    // SAFETY: setns takes a descriptor and integer flags; no memory is passed.
    let ret = unsafe { libc::setns(pidfd.as_raw_fd(), flags as libc::c_int) };
    if ret == 0 {
        Ok(())
    } else {
        Err(Errno::from_raw_os_error(last_errno()))
    }
}
