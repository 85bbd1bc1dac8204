//! A container's own disk (`limits.disk`), as OpenVZ's ploop gave one: an ext4 filesystem in
//! an image file of that size, holding the container's writable layer. Writing past it
//! fails inside with ENOSPC; the image's blocks are reserved on the host when it is made
//! or grown (fallocate), so the container can never fill the host's disk.
//!
//! The image is attached to a loop device and mounted when the container starts (by the
//! launcher, see berth-runtime), only inside the container's mount namespace: it goes away
//! with the container, leaving nothing mounted on the host.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;

/// The image's name in the container's directory.
pub const DISK_FILE: &str = "disk.img";

/// The error for a disk operation.
fn bad(what: String) -> Error {
    Error::Disk(what)
}

/// Runs a tool of e2fsprogs; its own message is the error.
fn run(tool: &str, args: &[&str]) -> Result<String, Error> {
    let out = Command::new(tool)
        .args(args)
        .env("LC_ALL", "C")
        .output()
        .map_err(|e| {
            bad(format!(
                "run {tool}: {e} (install e2fsprogs: apt-get install e2fsprogs)"
            ))
        })?;
    // e2fsck -p exits 1 when it fixed something: that is fine.
    let ok = out.status.success() || (tool == "e2fsck" && out.status.code() == Some(1));
    if !ok {
        // The tools print their version banner first ("resize2fs 1.47.0 (5-Feb-2023)"):
        // the last line says what went wrong.
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty() && !l.starts_with(&format!("{tool} ")))
            .unwrap_or("failed");
        return Err(bad(format!("{tool}: {last}")));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Reserves `size` bytes for `path` on the host (the file grows to `size`).
fn reserve(path: &Path, size: u64) -> Result<(), Error> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(Error::io("open", path))?;
    rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, size).map_err(|e| {
        if e == rustix::io::Errno::NOSPC {
            bad(format!(
                "the host has not {} of free space for this disk; free some, or ask for less",
                human(size)
            ))
        } else if e == rustix::io::Errno::FBIG || e == rustix::io::Errno::INVAL {
            bad(format!(
                "{} is more than the host's filesystem can hold in one file; ask for less",
                human(size)
            ))
        } else {
            bad(format!(
                "reserve {} for {}: {e}",
                human(size),
                path.display()
            ))
        }
    })
}

fn human(bytes: u64) -> String {
    if bytes >= 1 << 40 {
        format!("{:.1} TiB", bytes as f64 / (1u64 << 40) as f64)
    } else if bytes >= 1 << 30 {
        format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
    } else {
        format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
    }
}

/// Makes the disk image `path` (which must not exist): `size` bytes reserved, an ext4
/// filesystem with `inodes` inodes (mkfs's default ratio when None) holding a copy of the
/// directory `populate` (owners, modes, xattrs: mkfs.ext4 -d), whose root becomes the
/// filesystem's root. On failure nothing is left.
pub fn create(path: &Path, size: u64, inodes: Option<u64>, populate: &Path) -> Result<(), Error> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(Error::io("create", path))?;
    let made = reserve(path, size).and_then(|()| {
        let n = inodes.map(|n| n.to_string());
        let from = populate.to_string_lossy();
        let mut args = vec![
            "-q",
            "-F", // a file, not a device: no question
            "-m",
            "0", // no blocks reserved for root: the container's root is its only user
            "-b",
            "4096", // whatever the size: growth keeps it, and 4K-sector disks take it
            "-L",
            "berth",
            "-d",
            &from,
            // mkfs discards a file's blocks by default, which would undo the reservation.
            "-E",
            "nodiscard",
        ];
        if let Some(n) = &n {
            args.extend(["-N", n.as_str()]);
        }
        let p = path.to_string_lossy();
        args.push(&p);
        run("mkfs.ext4", &args).map(|_| ()).map_err(|e| {
            if e.to_string().contains("populate") || e.to_string().contains("allocate") {
                bad(format!(
                    "the container's files do not fit in {}: ask for more",
                    human(size)
                ))
            } else {
                e
            }
        })
    });
    if made.is_err() {
        let _ = std::fs::remove_file(path);
    }
    made
}

/// The image's size in bytes.
pub fn size(path: &Path) -> Result<u64, Error> {
    Ok(std::fs::metadata(path)
        .map_err(Error::io("read", path))?
        .len())
}

/// Grows the disk of a running container: the image file first (reserved), then the loop
/// device, then the mounted ext4, online. `device` is the loop device the image is on.
pub fn grow_online(path: &Path, device: &Path, new_size: u64) -> Result<(), Error> {
    // ext4 resizes only for CAP_SYS_RESOURCE (fs/ext4/ioctl.c), which root may lack (as on
    // hosts that drop it from every process): say so before anything changes.
    let may = berth_sys::caps::has_sys_resource();
    if !may {
        return Err(bad(
            "growing a mounted ext4 needs CAP_SYS_RESOURCE, which this process lacks: stop the \
             container, set the size (resized offline), and start it again"
                .into(),
        ));
    }
    let old_size = size(path)?;
    reserve(path, new_size)?;
    match grow_mounted(device, new_size) {
        Ok(()) => Ok(()),
        // A resize that failed half-way may own blocks past the old end: the file keeps its
        // new size then. Before the resize, the file (and the device) go back.
        Err((e, false)) => {
            let _ = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .and_then(|f| f.set_len(old_size));
            if let Ok(dev) = rustix::fs::open(
                device,
                rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            ) {
                let _ = berth_sys::loopdev::set_capacity(&dev);
            }
            Err(e)
        }
        Err((e, true)) => Err(e),
    }
}

/// The device's new capacity, then the filesystem's; the flag says whether the resize
/// itself was tried.
fn grow_mounted(device: &Path, new_size: u64) -> Result<(), (Error, bool)> {
    let before = |e: Error| (e, false);
    let dev = rustix::fs::open(
        device,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| before(bad(format!("open {}: {e}", device.display()))))?;
    berth_sys::loopdev::set_capacity(&dev)
        .map_err(|e| before(bad(format!("tell {} its new size: {e}", device.display()))))?;
    // A second, detached mount of the same device shares the container's superblock: an
    // open directory of the filesystem to resize it through, and nothing on the host's
    // mount table.
    let mnt = mount_detached(device).map_err(before)?;
    // The mount's descriptor is a path handle (O_PATH), which takes no ioctl: open its root.
    let root = rustix::fs::openat(
        &mnt,
        ".",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| before(bad(format!("open the disk's root: {e}"))))?;
    let st =
        rustix::fs::fstatfs(&root).map_err(|e| before(bad(format!("statfs the disk: {e}"))))?;
    let block = st.f_bsize as u64;
    berth_sys::loopdev::ext4_resize(root.as_fd(), new_size / block).map_err(|e| {
        (
            bad(format!("grow the filesystem to {}: {e}", human(new_size))),
            true,
        )
    })
}

/// A detached mount of the ext4 on `device` (see [`berth_sys::loopdev::mount_ext4`]).
pub fn mount_detached(device: &Path) -> Result<std::os::fd::OwnedFd, Error> {
    berth_sys::loopdev::mount_ext4(device)
        .map_err(|e| bad(format!("mount the disk {}: {e}", device.display())))
}

/// Changes the size of a stopped container's disk: grown or shrunk offline with resize2fs
/// after a check. Shrinking below what the files need is refused with the figure.
pub fn resize_offline(path: &Path, new_size: u64) -> Result<(), Error> {
    let p = path.to_string_lossy().into_owned();
    run("e2fsck", &["-f", "-p", &p])?;
    let current = size(path)?;
    if new_size < current {
        // "Estimated minimum size of the filesystem: N" (blocks).
        let out = run("resize2fs", &["-P", &p])?;
        let min_blocks: u64 = out
            .lines()
            .find_map(|l| l.rsplit_once(": ").and_then(|(_, n)| n.trim().parse().ok()))
            .unwrap_or(u64::MAX);
        let block = block_size(path)?;
        let min = min_blocks.saturating_mul(block);
        if new_size < min {
            return Err(bad(format!(
                "the container's files need about {}: a disk of {} cannot hold them; delete files in it first, or keep at least that size",
                human(min),
                human(new_size)
            )));
        }
        run("resize2fs", &[&p, &format!("{}K", new_size / 1024)])?;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(Error::io("open", path))?;
        file.set_len(new_size)
            .map_err(Error::io("truncate", path))?;
    } else {
        reserve(path, new_size)?;
        if let Err(e) = run("resize2fs", &[&p, &format!("{}K", new_size / 1024)]) {
            let _ = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .and_then(|f| f.set_len(current));
            return Err(e);
        }
    }
    Ok(())
}

/// The block size of the ext4 in `path` (dumpe2fs -h).
fn block_size(path: &Path) -> Result<u64, Error> {
    let out = run("dumpe2fs", &["-h", &path.to_string_lossy()])?;
    out.lines()
        .find_map(|l| l.strip_prefix("Block size:").map(|v| v.trim().parse().ok()))
        .flatten()
        .ok_or_else(|| bad("dumpe2fs names no block size".into()))
}

/// The image of container directory `dir`, when it has one.
pub fn of(dir: &Path) -> Option<PathBuf> {
    let p = dir.join(DISK_FILE);
    p.is_file().then_some(p)
}
