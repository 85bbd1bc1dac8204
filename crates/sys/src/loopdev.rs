//! Loop devices for a container's disk image (`limits.disk`): attach an image with
//! LOOP_CONFIGURE and autoclear, so the device goes away by itself once the last mount of
//! its filesystem does; find the device an image is attached to; tell a device its file
//! grew. Source: include/uapi/linux/loop.h, loop(4).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LOOP_SET_CAPACITY: libc::c_ulong = 0x4C07;
const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
/// Detach when the last opener (the mounted filesystem) closes the device.
const LO_FLAGS_AUTOCLEAR: u32 = 4;
/// Read and write the image with O_DIRECT: no second copy of every page in the host's
/// page cache (one for the loop device, one for the image file).
const LO_FLAGS_DIRECT_IO: u32 = 16;
const LO_NAME_SIZE: usize = 64;

/// `struct loop_info64`.
#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; LO_NAME_SIZE],
    lo_crypt_name: [u8; LO_NAME_SIZE],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

/// `struct loop_config`.
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

// The kernel's sizes (include/uapi/linux/loop.h): a layout mistake fails the build.
const _: () = assert!(std::mem::size_of::<LoopInfo64>() == 232);
const _: () = assert!(std::mem::size_of::<LoopConfig>() == 304);

/// Attaches `image` to a free loop device with autoclear; returns the device, open, and its
/// path. The device stays attached while this descriptor or a mount of it lives.
pub fn attach(image: &Path) -> Result<(OwnedFd, PathBuf), Errno> {
    let file = rustix::fs::open(image, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())?;
    let ctl = rustix::fs::open(
        "/dev/loop-control",
        OFlags::RDWR | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    // Another process may take the free device between GET_FREE and CONFIGURE (EBUSY):
    // ask again, a bounded number of times.
    for _ in 0..16 {
        // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a device number or -1.
        let n = unsafe { libc::ioctl(ctl.as_raw_fd(), LOOP_CTL_GET_FREE) };
        if n < 0 {
            return Err(Errno::from_raw_os_error(errno()));
        }
        let path = PathBuf::from(format!("/dev/loop{n}"));
        let dev = rustix::fs::open(&path, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())?;
        let mut info = LoopInfo64 {
            lo_device: 0,
            lo_inode: 0,
            lo_rdevice: 0,
            lo_offset: 0,
            lo_sizelimit: 0,
            lo_number: 0,
            lo_encrypt_type: 0,
            lo_encrypt_key_size: 0,
            lo_flags: LO_FLAGS_AUTOCLEAR | LO_FLAGS_DIRECT_IO,
            lo_file_name: [0; LO_NAME_SIZE],
            lo_crypt_name: [0; LO_NAME_SIZE],
            lo_encrypt_key: [0; 32],
            lo_init: [0; 2],
        };
        let name = image.as_os_str().as_encoded_bytes();
        let len = name.len().min(LO_NAME_SIZE - 1);
        info.lo_file_name[..len].copy_from_slice(&name[..len]);
        let mut config = LoopConfig {
            fd: file.as_raw_fd() as u32,
            block_size: 0,
            info,
            reserved: [0; 8],
        };
        match configure(&dev, &config) {
            Ok(()) => return Ok((dev, path)),
            Err(Errno::BUSY) => continue,
            // Direct I/O needs the image's filesystem to support it: without it, attach
            // through the page cache.
            Err(Errno::INVAL) => {
                config.info.lo_flags = LO_FLAGS_AUTOCLEAR;
                configure(&dev, &config)?;
                return Ok((dev, path));
            }
            Err(e) => return Err(e),
        }
    }
    Err(Errno::BUSY)
}

fn configure(dev: &OwnedFd, config: &LoopConfig) -> Result<(), Errno> {
    // SAFETY: LOOP_CONFIGURE reads one `struct loop_config`, which `config` is, laid out as
    // the kernel's (repr(C), the same field types), alive for the call.
    let rc = unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_CONFIGURE, config as *const LoopConfig) };
    if rc == 0 {
        Ok(())
    } else {
        Err(Errno::from_raw_os_error(errno()))
    }
}

/// The loop device `image` is attached to, if any (its backing file, by device and inode).
pub fn find(image: &Path) -> Option<PathBuf> {
    let want = rustix::fs::stat(image).ok()?;
    for entry in std::fs::read_dir("/sys/block").ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("loop") {
            continue;
        }
        let Ok(backing) = std::fs::read_to_string(entry.path().join("loop/backing_file")) else {
            continue;
        };
        let Ok(st) = rustix::fs::stat(backing.trim_end_matches('\n')) else {
            continue;
        };
        if st.st_dev == want.st_dev && st.st_ino == want.st_ino {
            return Some(PathBuf::from(format!("/dev/{name}")));
        }
    }
    None
}

/// The loop device `image` is still attached to after waiting up to `timeout` for it to go:
/// a container that has just stopped releases its filesystem, and autoclear its device,
/// a moment after its last process has gone.
pub fn attached_after(image: &Path, timeout: std::time::Duration) -> Option<PathBuf> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let dev = find(image)?;
        if std::time::Instant::now() >= deadline {
            return Some(dev);
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Makes loop device `dev` take its backing file's new size.
pub fn set_capacity(dev: impl AsFd) -> Result<(), Errno> {
    // SAFETY: LOOP_SET_CAPACITY takes no argument.
    let rc = unsafe { libc::ioctl(dev.as_fd().as_raw_fd(), LOOP_SET_CAPACITY, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(Errno::from_raw_os_error(errno()))
    }
}

/// `EXT4_IOC_RESIZE_FS` (_IOW('f', 16, __u64)): grows the mounted ext4 that `dir` is in to
/// `blocks` of its block size, online.
pub fn ext4_resize(dir: impl AsFd, blocks: u64) -> Result<(), Errno> {
    const EXT4_IOC_RESIZE_FS: libc::c_ulong = 0x4008_6610;
    // SAFETY: the ioctl reads one u64 from the pointer, which points at `blocks`.
    let rc = unsafe { libc::ioctl(dir.as_fd().as_raw_fd(), EXT4_IOC_RESIZE_FS, &blocks) };
    if rc == 0 {
        Ok(())
    } else {
        Err(Errno::from_raw_os_error(errno()))
    }
}

/// A detached mount of the ext4 on `device`, nodev and nosuid: no mount point, only the
/// returned descriptor reaches it (a second mount of a device already mounted shares its
/// superblock).
pub fn mount_ext4(device: &Path) -> Result<OwnedFd, Errno> {
    use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags};
    let fs = rustix::mount::fsopen("ext4", FsOpenFlags::FSOPEN_CLOEXEC)?;
    rustix::mount::fsconfig_set_string(&fs, "source", device)?;
    rustix::mount::fsconfig_create(&fs)?;
    rustix::mount::fsmount(
        &fs,
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NODEV,
    )
}

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}
