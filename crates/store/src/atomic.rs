//! Write-then-rename, so readers never see a half-written file.

use crate::StoreError;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// Creates `dir` and its missing parents with `mode`.
pub fn create_dir_all_mode(dir: &Path, mode: u32) -> Result<(), StoreError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .map_err(StoreError::io("create directory", dir))
}

/// Opens (creating it) the lock file `path`, in a directory made 0700 if missing.
pub fn open_lock_file(path: &Path) -> Result<std::fs::File, StoreError> {
    if let Some(dir) = path.parent() {
        create_dir_all_mode(dir, 0o700)?;
    }
    std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(StoreError::io("open lock", path))
}

/// [`open_lock_file`], then locked, shared or exclusive, waiting for other holders: berth's
/// one way to take a lock file.
pub fn lock_file(path: &Path, exclusive: bool) -> Result<std::fs::File, StoreError> {
    let file = open_lock_file(path)?;
    if exclusive {
        file.lock()
    } else {
        file.lock_shared()
    }
    .map_err(StoreError::io("lock", path))?;
    Ok(file)
}

/// Replaces `path` with `bytes` atomically, keeping `mode`; the data is synced before the
/// rename so that a crash cannot leave an empty file under the final name.
pub fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StoreError> {
    write_with(path, bytes, mode, true)
}

/// Like [`write`], without the sync: for records that mean nothing after a crash (what runs
/// now), where a crash may leave an empty file that readers must take for "none". Saves a
/// disk flush (about a millisecond) on `berth start`.
pub fn write_unsynced(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StoreError> {
    write_with(path, bytes, mode, false)
}

fn write_with(path: &Path, bytes: &[u8], mode: u32, sync: bool) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".berth-tmp-")
        .tempfile_in(dir)
        .map_err(StoreError::io("create temporary file in", dir))?;
    tmp.write_all(bytes)
        .and_then(|()| {
            if sync {
                tmp.as_file().sync_all()
            } else {
                Ok(())
            }
        })
        .map_err(StoreError::io("write", tmp.path()))?;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode))
        .map_err(StoreError::io("set permissions of", path))?;
    tmp.persist(path)
        .map_err(|e| StoreError::io("rename into place", path)(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_replaces_whole_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("f");
        write(&p, b"first version, long", 0o640).expect("write");
        write(&p, b"second", 0o640).expect("write");
        assert_eq!(std::fs::read(&p).expect("read"), b"second");
        let mode = std::fs::metadata(&p).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o640);
        let leftovers = std::fs::read_dir(dir.path()).expect("ls").count();
        assert_eq!(leftovers, 1);
    }
}
