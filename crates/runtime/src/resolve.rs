//! Resolving paths inside a root filesystem without ever leaving it. Every target the child
//! mounts on is opened with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` from a
//! descriptor of the root: symlinks resolve as they would for a process chrooted there (an
//! absolute one from the rootfs's top, `..` stopping at it), so a hostile rootfs whose `/proc`
//! points at `/etc` or `../../..` cannot make berth mount over the host's files. Before
//! anything is created, [`leads_out`] refuses paths whose relative symlinks climb out.

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// What to create when the path does not exist yet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Create {
    Nothing,
    Dir,
    File,
}

const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// Opens `path` (absolute inside the root, e.g. "/dev/pts") as an O_PATH descriptor,
/// creating it (and missing parent directories) as `create` says.
pub fn open_in(root: BorrowedFd<'_>, path: &str, create: Create) -> Result<OwnedFd, Errno> {
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    match open_path(root, rel) {
        Err(Errno::NOENT) if create != Create::Nothing => {}
        other => return other,
    }
    // The common case: only the last component is missing. Create it from its parent, opened
    // (beneath the root) once.
    let (parent, name) = rel.rsplit_once('/').unwrap_or((".", rel));
    if name != ".." && name != "." {
        match open_dir(root, parent) {
            Ok(dir) => {
                make(&dir, name, create)?;
                return open_path(dir.as_fd(), name);
            }
            Err(Errno::NOENT) => {}
            Err(e) => return Err(e),
        }
    }
    // Several components are missing: create them one by one, each beneath the root.
    let comps: Vec<&str> = rel
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    for i in 0..comps.len() {
        let prefix = comps[..=i].join("/");
        match open_path(root, &prefix) {
            Ok(_) => continue,
            Err(Errno::NOENT) => {}
            Err(e) => return Err(e),
        }
        let dir = open_dir(
            root,
            &if i == 0 {
                ".".to_string()
            } else {
                comps[..i].join("/")
            },
        )?;
        let last = i + 1 == comps.len();
        make(&dir, comps[i], if last { create } else { Create::Dir })?;
    }
    open_path(root, rel)
}

fn open_path(dir: BorrowedFd<'_>, rel: &str) -> Result<OwnedFd, Errno> {
    rustix::fs::openat2(
        dir,
        rel,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        RESOLVE,
    )
}

/// A directory beneath the root, opened for the *at calls that create in it.
fn open_dir(root: BorrowedFd<'_>, rel: &str) -> Result<OwnedFd, Errno> {
    rustix::fs::openat2(
        root,
        rel,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        RESOLVE,
    )
}

/// Creates `name` in `dir` as a directory or an empty file; one already there is fine.
fn make(dir: &OwnedFd, name: &str, create: Create) -> Result<(), Errno> {
    let made = if create == Create::File {
        rustix::fs::openat(
            dir,
            name,
            OFlags::CREATE | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .map(drop)
    } else {
        rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o755))
    };
    match made {
        Ok(()) | Err(Errno::EXIST) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether `path`, followed through its symlinks inside the root, climbs above the root
/// with `..` (absolute symlinks count from the root, as in a chroot). Only a check: the
/// mounts themselves resolve with RESOLVE_IN_ROOT whatever happens meanwhile.
pub fn leads_out(root: BorrowedFd<'_>, path: &str) -> Result<bool, Errno> {
    let mut resolved: Vec<String> = Vec::new();
    let mut pending: std::collections::VecDeque<String> =
        path.split('/').map(str::to_string).collect();
    let mut links = 0;
    while let Some(c) = pending.pop_front() {
        match c.as_str() {
            "" | "." => continue,
            ".." => {
                if resolved.pop().is_none() {
                    return Ok(true);
                }
                continue;
            }
            _ => {}
        }
        let here = if resolved.is_empty() {
            c.clone()
        } else {
            format!("{}/{c}", resolved.join("/"))
        };
        match rustix::fs::readlinkat(root, here.as_str(), Vec::new()) {
            Ok(target) => {
                links += 1;
                if links > 40 {
                    return Err(Errno::LOOP);
                }
                let target = target.to_string_lossy().into_owned();
                if target.starts_with('/') {
                    resolved.clear();
                }
                for t in target.split('/').rev() {
                    pending.push_front(t.to_string());
                }
            }
            // Not a symlink, or not there (the rest will be created inside).
            Err(Errno::INVAL | Errno::NOENT | Errno::NOTDIR) => resolved.push(c),
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// Reads a small regular file inside the root as the container would see it (symlinks
/// resolved inside), or None when it is missing, not a regular file (a FIFO would block
/// forever) or larger than `max` bytes.
pub fn read_in_root(rootfs: &std::path::Path, path: &str, max: u64) -> Option<String> {
    use std::io::Read;
    let root = rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let fd = rustix::fs::openat2(
        &root,
        path.trim_start_matches('/'),
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
        RESOLVE,
    )
    .ok()?;
    let st = rustix::fs::fstat(&fd).ok()?;
    if !rustix::fs::FileType::from_raw_mode(st.st_mode).is_file() || st.st_size as u64 > max {
        return None;
    }
    let mut text = String::new();
    std::fs::File::from(fd)
        .take(max)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

/// The `/proc/self/fd/N` path naming an open descriptor, for syscalls that take paths.
pub fn fd_path(fd: impl AsFd) -> String {
    use rustix::fd::AsRawFd;
    format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd())
}

/// Opens `path` inside the root the way the container will see it: absolute symlinks are
/// taken relative to the root (`RESOLVE_IN_ROOT`), as a chrooted process resolves them.
pub fn open_as_container(
    root: BorrowedFd<'_>,
    path: &str,
    flags: OFlags,
) -> Result<OwnedFd, Errno> {
    rustix::fs::openat2(
        root,
        path.trim_start_matches('/'),
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
}

/// Replaces a small regular file inside the root with `text`, atomically (a temporary file
/// in the same directory, renamed over it), resolving the path as the container would and
/// keeping the file's mode. Refuses anything but a regular file.
pub fn replace_in_root(rootfs: &std::path::Path, path: &str, text: &str) -> Result<(), Errno> {
    use std::io::Write;
    let root = rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let (dir, name) = path
        .trim_start_matches('/')
        .rsplit_once('/')
        .unwrap_or((".", path));
    let dirfd = rustix::fs::openat2(
        &root,
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        RESOLVE,
    )?;
    let st = rustix::fs::statat(&dirfd, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)?;
    if !rustix::fs::FileType::from_raw_mode(st.st_mode).is_file() {
        return Err(Errno::INVAL);
    }
    let tmp = format!(".{name}.berth-new");
    let fd = rustix::fs::openat(
        &dirfd,
        tmp.as_str(),
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(st.st_mode & 0o7777),
    )?;
    let mut f = std::fs::File::from(fd);
    let written = f.write_all(text.as_bytes()).and_then(|()| f.sync_all());
    let owned = rustix::fs::fchown(
        &f,
        Some(rustix::process::Uid::from_raw(st.st_uid)),
        Some(rustix::process::Gid::from_raw(st.st_gid)),
    );
    if written.is_err() || owned.is_err() {
        let _ = rustix::fs::unlinkat(&dirfd, tmp.as_str(), rustix::fs::AtFlags::empty());
        return Err(Errno::IO);
    }
    rustix::fs::renameat(&dirfd, tmp.as_str(), &dirfd, name)
}
