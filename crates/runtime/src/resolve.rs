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
