//! Bringing the loopback interface up in a new network namespace, by ioctl: cheaper than a
//! netlink round trip for the one thing every container needs.

use crate::clone::last_errno;
use rustix::fd::{AsRawFd, FromRawFd, OwnedFd};
use rustix::io::Errno;

/// Sets IFF_UP on `lo` in the calling process's network namespace.
pub fn loopback_up() -> Result<(), Errno> {
    // SAFETY: socket() takes integers and returns a new fd or -1.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(Errno::from_raw_os_error(last_errno()));
    }
    // SAFETY: `raw` is a fresh fd that nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: `req` is a valid ifreq naming "lo"; the kernel fills ifru_flags.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(Errno::from_raw_os_error(last_errno()));
    }
    // SAFETY: reading and writing the flags member of the union the kernel just filled.
    unsafe { req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
    // SAFETY: as above, with the flags to set.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(Errno::from_raw_os_error(last_errno()));
    }
    Ok(())
}
