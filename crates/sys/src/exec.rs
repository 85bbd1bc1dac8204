//! `execve` with an explicit argv and environment, returning the error when it fails.

use rustix::io::Errno;
use std::ffi::{CStr, CString};

/// Replaces the process image. Only returns on failure.
pub fn execve(path: &CStr, argv: &[CString], envp: &[CString]) -> Errno {
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut env_ptrs: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
    env_ptrs.push(std::ptr::null());
    // SAFETY: every pointer comes from a live CString and both arrays are NULL-terminated; they
    // outlive the call, which either replaces the process or returns.
    unsafe { libc::execve(path.as_ptr(), argv_ptrs.as_ptr(), env_ptrs.as_ptr()) };
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
