//! The one piece of the new mount API that rustix lacks: `mount_setattr`, for idmapped and
//! read-only detached mounts.

use crate::clone::last_errno;
use rustix::fd::{AsFd, AsRawFd, BorrowedFd};
use rustix::io::Errno;

const AT_EMPTY_PATH: u32 = 0x1000;
const AT_RECURSIVE: u32 = 0x8000;
/// `MOUNT_ATTR_IDMAP` from `linux/mount.h`.
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
const MOUNT_ATTR_RDONLY: u64 = 0x0000_0001;

/// `struct mount_attr` from `linux/mount.h`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

fn setattr(mnt: BorrowedFd<'_>, attr: &MountAttr, recursive: bool) -> Result<(), Errno> {
    let flags = AT_EMPTY_PATH | if recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: `attr` is a valid mount_attr of the size passed; the path is an empty C string.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            mnt.as_raw_fd(),
            c"".as_ptr(),
            flags,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(Errno::from_raw_os_error(last_errno()))
    }
}

/// Makes the detached mount `mnt` (from `open_tree(OPEN_TREE_CLONE)`) show file owners
/// through the id mapping of the user namespace `userns`: on-disk uid 0 appears as the
/// namespace's root, and nothing on disk is chowned. The kernel allows this only on a mount
/// that is not yet attached, and only with CAP_SYS_ADMIN in the initial user namespace.
pub fn idmap(mnt: impl AsFd, userns: impl AsFd, recursive: bool) -> Result<(), Errno> {
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_fd().as_raw_fd() as u64,
    };
    setattr(mnt.as_fd(), &attr, recursive)
}

/// Makes the mount `mnt` (and, when `recursive`, every mount below it) read-only.
pub fn set_readonly(mnt: impl AsFd, recursive: bool) -> Result<(), Errno> {
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    setattr(mnt.as_fd(), &attr, recursive)
}
