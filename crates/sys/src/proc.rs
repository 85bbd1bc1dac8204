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
