//! Small files berth writes in the guest before init (resolv.conf, a static address for
//! the guest's network manager), treating the guest's tree as hostile: the child does this
//! after pivot_root but still privileged and holding host descriptors, so no path may
//! follow a symlink (a link to /proc/self/fd/N would lead back to the host), no open may
//! block (a FIFO), and no read may be unbounded (a link to /dev/zero).

use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// Every lookup stays below its directory and follows no link at all.
const RESOLVE: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

/// The longest file berth reads back (its own files are a few hundred bytes).
const READ_LIMIT: usize = 64 * 1024;

/// What is at a name berth may write.
pub enum Existing {
    Missing,
    /// A regular file, its text.
    Regular(String),
    /// A symlink, FIFO, device, directory or oversized file: the guest's, left alone.
    Other,
}

/// A directory of the guest, by its path from the guest's root ("etc/systemd/network"),
/// opened without following any symlink. None when it is missing or not reachable so.
pub fn dir(rel: &str) -> Option<OwnedFd> {
    let root = rustix::fs::open(
        "/",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    rustix::fs::openat2(
        &root,
        rel,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        RESOLVE,
    )
    .ok()
}

/// What `name` in `dir` is.
pub fn existing(dir: &OwnedFd, name: &str) -> Existing {
    let fd = match rustix::fs::openat2(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
        RESOLVE,
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Existing::Missing,
        Err(_) => return Existing::Other,
    };
    let regular = rustix::fs::fstat(&fd)
        .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::RegularFile);
    if !regular {
        return Existing::Other;
    }
    let mut buf = vec![0u8; READ_LIMIT + 1];
    let mut len = 0;
    while len < buf.len() {
        match rustix::io::read(&fd, &mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(Errno::INTR) => {}
            Err(_) => return Existing::Other,
        }
    }
    if len > READ_LIMIT {
        return Existing::Other;
    }
    buf.truncate(len);
    Existing::Regular(String::from_utf8_lossy(&buf).into_owned())
}

/// Replaces `name` in `dir` with `text`: a new file (mode 0644) made exclusively under a
/// temporary name, then renamed over it (rename replaces a link, never follows it).
/// Failures (a read-only or full rootfs) leave what was there.
pub fn replace(dir: &OwnedFd, name: &str, text: &str) {
    let tmp = format!(".{name}.berth-tmp");
    let _ = rustix::fs::unlinkat(dir, tmp.as_str(), rustix::fs::AtFlags::empty());
    let Ok(fd) = rustix::fs::openat2(
        dir,
        tmp.as_str(),
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
        RESOLVE,
    ) else {
        return;
    };
    let mut rest = text.as_bytes();
    while !rest.is_empty() {
        match rustix::io::write(fd.as_fd(), rest) {
            Ok(n) => rest = &rest[n..],
            Err(Errno::INTR) => {}
            Err(_) => break,
        }
    }
    drop(fd);
    if !rest.is_empty() || rustix::fs::renameat(dir, tmp.as_str(), dir, name).is_err() {
        let _ = rustix::fs::unlinkat(dir, tmp.as_str(), rustix::fs::AtFlags::empty());
    }
}

/// Removes `name` from `dir` (berth's own file: the caller checked).
pub fn remove(dir: &OwnedFd, name: &str) {
    let _ = rustix::fs::unlinkat(dir, name, rustix::fs::AtFlags::empty());
}
