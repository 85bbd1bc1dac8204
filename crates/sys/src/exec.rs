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
