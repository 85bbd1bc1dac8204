//! The two capability operations on the launch path, as single prctl calls.

use crate::clone::last_errno;
use rustix::io::Errno;

/// Drops capability number `cap` from the bounding set (PR_CAPBSET_DROP). A capability the
/// kernel does not know (EINVAL) is already absent.
pub fn drop_bounding(cap: u8) -> Result<(), Errno> {
    // SAFETY: prctl with integer arguments only.
    let ret = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) };
    if ret == 0 || last_errno() == libc::EINVAL {
        Ok(())
    } else {
        Err(Errno::from_raw_os_error(last_errno()))
    }
}

/// Clears the ambient set (PR_CAP_AMBIENT_CLEAR_ALL).
pub fn clear_ambient() -> Result<(), Errno> {
    // SAFETY: prctl with integer arguments only.
    let ret = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(Errno::from_raw_os_error(last_errno()))
    }
}

/// Whether this process holds CAP_SYS_RESOURCE in its effective set: what raising a hard
/// rlimit and resizing a mounted ext4 ask for (root may lack it, where a host drops it).
pub fn has_sys_resource() -> bool {
    rustix::thread::capabilities(None).is_ok_and(|c| {
        c.effective
            .contains(rustix::thread::CapabilitySet::SYS_RESOURCE)
    })
}
