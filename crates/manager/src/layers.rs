//! A container's files as its init will see them, for the few edits `create` makes
//! (/etc/hostname, /etc/inittab): a directory rootfs, or an image with the container's own
//! upper layer over it, where an edit lands in the upper layer (copied up first, with its
//! directories, as overlayfs itself would).

use berth_runtime::resolve::{read_in_root, replace_in_root};
use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;
use std::path::{Path, PathBuf};

pub struct Layers {
    /// The rootfs, or the image's (read-only) rootfs under an upper layer.
    pub lower: PathBuf,
    /// The container's own layer, over `lower`.
    pub upper: Option<PathBuf>,
}

impl Layers {
    /// A small regular file, as the container would read it.
    pub fn read(&self, path: &str, max: u64) -> Option<String> {
        self.upper
            .as_deref()
            .and_then(|up| read_in_root(up, path, max))
            .or_else(|| read_in_root(&self.lower, path, max))
    }

    /// Replaces an existing regular file (see `replace_in_root`).
    pub fn replace(&self, path: &str, text: &str) -> Result<(), Errno> {
        match &self.upper {
            None => replace_in_root(&self.lower, path, text),
            Some(up) => {
                copy_up(&self.lower, up, path)?;
                replace_in_root(up, path, text)
            }
        }
    }
}

/// Makes `path` (a regular file of `lower`) and its directories exist in `upper`, with the
/// lower's modes and owners. Symlinks on the way are refused (EINVAL): the edit is skipped
/// rather than made somewhere the container would not look.
fn copy_up(lower: &Path, upper: &Path, path: &str) -> Result<(), Errno> {
    let open_dir = |p: &Path| {
        rustix::fs::open(
            p,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
    };
    let mut lo = open_dir(lower)?;
    let mut up = open_dir(upper)?;
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let Some((file, dirs)) = parts.split_last() else {
        return Err(Errno::INVAL);
    };
    for dir in dirs {
        if *dir == ".." || *dir == "." {
            return Err(Errno::INVAL);
        }
        let st = rustix::fs::statat(&lo, *dir, AtFlags::SYMLINK_NOFOLLOW)?;
        if !rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir() {
            return Err(Errno::INVAL);
        }
        match rustix::fs::mkdirat(&up, *dir, Mode::from_raw_mode(st.st_mode & 0o7777)) {
            Ok(()) => {
                rustix::fs::chownat(
                    &up,
                    *dir,
                    Some(rustix::fs::Uid::from_raw(st.st_uid)),
                    Some(rustix::fs::Gid::from_raw(st.st_gid)),
                    AtFlags::SYMLINK_NOFOLLOW,
                )?;
                rustix::fs::chmodat(
                    &up,
                    *dir,
                    Mode::from_raw_mode(st.st_mode & 0o7777),
                    AtFlags::empty(),
                )?;
            }
            Err(Errno::EXIST) => {}
            Err(e) => return Err(e),
        }
        let next = |fd: &rustix::fd::OwnedFd| {
            rustix::fs::openat(
                fd,
                *dir,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
        };
        lo = next(&lo)?;
        up = next(&up)?;
    }
    if rustix::fs::statat(&up, *file, AtFlags::SYMLINK_NOFOLLOW).is_ok() {
        return Ok(());
    }
    let src = rustix::fs::openat(
        &lo,
        *file,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let st = rustix::fs::fstat(&src)?;
    if !rustix::fs::FileType::from_raw_mode(st.st_mode).is_file() || st.st_size > 1 << 20 {
        return Err(Errno::INVAL);
    }
    let dst = rustix::fs::openat(
        &up,
        *file,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(st.st_mode & 0o7777),
    )?;
    let mut from = std::fs::File::from(src);
    let mut to = std::fs::File::from(dst);
    std::io::copy(&mut from, &mut to).map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::IO))?;
    rustix::fs::fchown(
        &to,
        Some(rustix::fs::Uid::from_raw(st.st_uid)),
        Some(rustix::fs::Gid::from_raw(st.st_gid)),
    )?;
    rustix::fs::fchmod(&to, Mode::from_raw_mode(st.st_mode & 0o7777))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edit_lands_in_the_upper_layer_with_its_directories() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (lower, upper) = (dir.path().join("lower"), dir.path().join("upper"));
        std::fs::create_dir_all(lower.join("etc")).expect("mkdir");
        std::fs::create_dir_all(&upper).expect("mkdir");
        std::fs::write(lower.join("etc/hostname"), "old\n").expect("write");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(lower.join("etc"), std::fs::Permissions::from_mode(0o751))
            .expect("chmod");
        let layers = Layers {
            lower: lower.clone(),
            upper: Some(upper.clone()),
        };
        assert_eq!(layers.read("/etc/hostname", 100).as_deref(), Some("old\n"));
        layers.replace("/etc/hostname", "new\n").expect("replace");
        assert_eq!(layers.read("/etc/hostname", 100).as_deref(), Some("new\n"));
        assert_eq!(
            std::fs::read_to_string(lower.join("etc/hostname")).expect("read"),
            "old\n"
        );
        let mode = std::fs::metadata(upper.join("etc"))
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o751);
        // A symlinked directory on the way is not followed.
        std::os::unix::fs::symlink("/etc", lower.join("link")).expect("symlink");
        assert!(layers.replace("/link/hostname", "x").is_err());
    }
}
