//! Resolving paths inside a root filesystem without ever leaving it. Every target the child
//! mounts on is opened with `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)` from a
//! descriptor of the root, so a hostile rootfs whose `/proc` is a symlink to `/etc` (or to
//! `../../..`) cannot make berth mount over the host's files: the kernel refuses the path with
//! EXDEV instead, and berth reports it.

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

const RESOLVE: ResolveFlags = ResolveFlags::BENEATH.union(ResolveFlags::NO_MAGICLINKS);

/// Opens `path` (absolute inside the root, e.g. "/dev/pts") as an O_PATH descriptor,
/// creating it (and missing parent directories) as `create` says.
pub fn open_in(root: BorrowedFd<'_>, path: &str, create: Create) -> Result<OwnedFd, Errno> {
    let rel = path.trim_start_matches('/');
    if rel.is_empty() {
        return rustix::fs::openat2(
            root,
            ".",
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            RESOLVE,
        );
    }
    match rustix::fs::openat2(
        root,
        rel,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        RESOLVE,
    ) {
        Err(Errno::NOENT) if create != Create::Nothing => {}
        other => return other,
    }
    let comps: Vec<&str> = rel
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    for i in 0..comps.len() {
        let prefix = comps[..=i].join("/");
        let last = i + 1 == comps.len();
        match rustix::fs::openat2(
            root,
            &prefix,
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            RESOLVE,
        ) {
            Ok(fd) if last => return Ok(fd),
            Ok(_) => continue,
            Err(Errno::NOENT) => {}
            Err(e) => return Err(e),
        }
        let parent = if i == 0 {
            rustix::fs::openat2(
                root,
                ".",
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
                RESOLVE,
            )?
        } else {
            rustix::fs::openat2(
                root,
                comps[..i].join("/"),
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
                RESOLVE,
            )?
        };
        if last && create == Create::File {
            let f = rustix::fs::openat(
                parent.as_fd(),
                comps[i],
                OFlags::CREATE | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o644),
            );
            match f {
                Ok(_) | Err(Errno::EXIST) => {}
                Err(e) => return Err(e),
            }
        } else {
            match rustix::fs::mkdirat(parent.as_fd(), comps[i], Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(e),
            }
        }
    }
    rustix::fs::openat2(
        root,
        rel,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        RESOLVE,
    )
}

/// Whether `path` exists inside the root (without leaving it).
pub fn exists_in(root: BorrowedFd<'_>, path: &str) -> Result<bool, Errno> {
    match open_in(root, path, Create::Nothing) {
        Ok(_) => Ok(true),
        Err(Errno::NOENT) => Ok(false),
        Err(e) => Err(e),
    }
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
