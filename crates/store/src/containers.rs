//! Containers on disk: `containers/NAME/` holds config.toml, state.json (while running) and
//! console.log. A container directory appears only complete (built under a temporary name
//! and renamed) and disappears at once (renamed away, then removed), so a command killed
//! half-way never leaves a half-made container visible. Commands on one container are
//! serialised by a lock file; different containers never wait for each other.

use crate::{Store, StoreError, atomic};
use std::fs::File;
use std::path::{Path, PathBuf};

/// Prefix of entries under containers/ that are not containers (in the making or going).
const HIDDEN: char = '.';

impl Store {
    pub fn containers_dir(&self) -> PathBuf {
        self.root().join("containers")
    }

    /// The directory of container `name` (which the caller has validated).
    pub fn container_dir(&self, name: &str) -> PathBuf {
        self.containers_dir().join(name)
    }

    /// Runtime files: locks and control sockets. /run/berth for the default state root
    /// (gone at reboot, as a lock or socket should be); beside the state otherwise, so that
    /// every `--root` (each test's) is self-contained.
    pub fn run_dir(&self) -> PathBuf {
        let default = std::fs::canonicalize(crate::DEFAULT_ROOT)
            .unwrap_or_else(|_| PathBuf::from(crate::DEFAULT_ROOT));
        if self.root() == default {
            PathBuf::from("/run/berth")
        } else {
            self.root().join("run")
        }
    }

    /// Whether container `name` exists.
    pub fn exists(&self, name: &str) -> bool {
        self.container_dir(name).join("config.toml").is_file()
    }

    /// Names of all containers, sorted.
    pub fn list(&self) -> Result<Vec<String>, StoreError> {
        let dir = self.containers_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::io("list", &dir)(e)),
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.starts_with(HIDDEN))
            .filter(|n| self.exists(n))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Creates container `name` with `config` text, atomically: the directory is built
    /// under a hidden temporary name and renamed into place.
    pub fn create_container(&self, name: &str, config: &str) -> Result<PathBuf, StoreError> {
        self.create_container_with(name, config, |_| Ok(()))
    }

    /// As [`Store::create_container`], with `populate` called on the directory (still under
    /// its temporary name) to add files, such as a copy of the rootfs, before it appears.
    pub fn create_container_with(
        &self,
        name: &str,
        config: &str,
        populate: impl FnOnce(&Path) -> Result<(), StoreError>,
    ) -> Result<PathBuf, StoreError> {
        let dir = self.containers_dir();
        atomic::create_dir_all_mode(&dir, 0o711)?;
        let final_dir = self.container_dir(name);
        if final_dir.exists() {
            return Err(StoreError::Exists(name.to_string()));
        }
        let tmp = tempfile::Builder::new()
            .prefix(&format!("{HIDDEN}new-{name}-"))
            .tempdir_in(&dir)
            .map_err(StoreError::io("create a directory in", &dir))?;
        // Held until the rename: the sweep leaves a directory alone while its maker lives,
        // however long it takes to fill.
        let busy = File::open(tmp.path()).map_err(StoreError::io("open", tmp.path()))?;
        busy.lock().map_err(StoreError::io("lock", tmp.path()))?;
        atomic::write(&tmp.path().join("config.toml"), config.as_bytes(), 0o644)?;
        populate(tmp.path())?;
        // Closed to other users: an unprivileged container's root writes files owned by the
        // host's root (idmapped), setuid ones included, into rootfs/ below.
        std::fs::set_permissions(
            tmp.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .map_err(StoreError::io("chmod", tmp.path()))?;
        // rename(2) of a directory onto an existing non-empty one fails: a racing create of
        // the same name loses here, and its temporary directory is removed on drop.
        match std::fs::rename(tmp.path(), &final_dir) {
            Ok(()) => {
                let _ = tmp.keep();
                Ok(final_dir)
            }
            Err(_) if final_dir.exists() => Err(StoreError::Exists(name.to_string())),
            Err(e) => Err(StoreError::io("rename into place", &final_dir)(e)),
        }
    }

    /// Reads container `name`'s config.toml text.
    pub fn read_config(&self, name: &str) -> Result<String, StoreError> {
        let path = self.container_dir(name).join("config.toml");
        std::fs::read_to_string(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                StoreError::NoSuchContainer(name.to_string())
            } else {
                StoreError::io("read", &path)(e)
            }
        })
    }

    /// Replaces container `name`'s config.toml atomically.
    pub fn write_config(&self, name: &str, text: &str) -> Result<(), StoreError> {
        if !self.exists(name) {
            return Err(StoreError::NoSuchContainer(name.to_string()));
        }
        atomic::write(
            &self.container_dir(name).join("config.toml"),
            text.as_bytes(),
            0o644,
        )
    }

    /// Removes container `name`: renamed to a hidden name first (so it is gone for every
    /// other command at once), then deleted.
    pub fn remove_container(&self, name: &str) -> Result<(), StoreError> {
        let dir = self.container_dir(name);
        if !dir.exists() {
            return Err(StoreError::NoSuchContainer(name.to_string()));
        }
        let gone = self
            .containers_dir()
            .join(format!("{HIDDEN}deleting-{name}-{}", std::process::id()));
        std::fs::rename(&dir, &gone).map_err(StoreError::io("rename", &dir))?;
        let busy = File::open(&gone).map_err(StoreError::io("open", &gone))?;
        busy.lock().map_err(StoreError::io("lock", &gone))?;
        match std::fs::remove_dir_all(&gone) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(StoreError::io("remove", &gone)(e))
            }
            _ => Ok(()),
        }
    }

    /// Removes what interrupted creates and deletes left: hidden directories under
    /// containers/ whose maker no longer holds their lock (a create or delete in progress
    /// does, however long it takes).
    pub fn sweep(&self) {
        let Ok(entries) = std::fs::read_dir(self.containers_dir()) else {
            return;
        };
        for e in entries.flatten() {
            if !e.file_name().to_string_lossy().starts_with(HIDDEN) {
                continue;
            }
            let Ok(dir) = File::open(e.path()) else {
                continue;
            };
            if dir.try_lock().is_ok() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }

    /// Like [`Store::lock`], but `None` at once when another holds it.
    pub fn try_lock(&self, name: &str) -> Result<Option<Lock>, StoreError> {
        let path = self.lock_path(name);
        let file = atomic::open_lock_file(&path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Lock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(StoreError::io("lock", &path)(e)),
        }
    }

    fn lock_path(&self, name: &str) -> PathBuf {
        self.run_dir().join("locks").join(format!("{name}.lock"))
    }

    /// Takes the lock of container `name`, waiting for another command that holds it.
    pub fn lock(&self, name: &str) -> Result<Lock, StoreError> {
        let file = atomic::lock_file(&self.lock_path(name), true)?;
        Ok(Lock { _file: file })
    }
}

/// A held container lock, released when dropped (or when the process dies).
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

impl Lock {
    /// The lock file's descriptor, for a forked process that must keep it across a
    /// descriptor sweep.
    pub fn as_raw_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self._file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_list_remove() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Store::open(dir.path()).expect("store");
        assert!(s.list().expect("list").is_empty());
        s.create_container("web", "x = 1\n").expect("create");
        assert!(matches!(
            s.create_container("web", ""),
            Err(StoreError::Exists(_))
        ));
        s.create_container("db", "").expect("create");
        assert_eq!(s.list().expect("list"), ["db", "web"]);
        assert_eq!(s.read_config("web").expect("read"), "x = 1\n");
        s.remove_container("web").expect("remove");
        assert_eq!(s.list().expect("list"), ["db"]);
        assert!(matches!(
            s.read_config("web"),
            Err(StoreError::NoSuchContainer(_))
        ));
        let leftovers: Vec<_> = std::fs::read_dir(s.containers_dir())
            .expect("ls")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(leftovers.len(), 1);
    }

    #[test]
    fn lock_is_exclusive_per_container() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Store::open(dir.path()).expect("store");
        let a = s.lock("web").expect("lock");
        let path = s.run_dir().join("locks/web.lock");
        let other = File::options().write(true).open(&path).expect("open");
        assert!(other.try_lock().is_err());
        let _b = s.lock("db").expect("another container is not blocked");
        drop(a);
        assert!(other.try_lock().is_ok());
    }
}
