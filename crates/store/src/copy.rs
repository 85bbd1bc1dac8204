//! Copying a root filesystem tree exactly: file types, modes, owners and times' worth of
//! what a system needs (device nodes, symlinks, setuid bits), without following any symlink.

use crate::StoreError;
use rustix::fs::{AtFlags, FileType, Mode};
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::Path;

/// Copies the tree at `src` to `dst` (which must not exist).
pub fn copy_tree(src: &Path, dst: &Path) -> Result<(), StoreError> {
    let meta = std::fs::symlink_metadata(src).map_err(StoreError::io("stat", src))?;
    copy_entry(src, dst, &meta)
}

fn copy_entry(src: &Path, dst: &Path, meta: &std::fs::Metadata) -> Result<(), StoreError> {
    let ft = meta.file_type();
    if ft.is_dir() {
        std::fs::create_dir(dst).map_err(StoreError::io("create", dst))?;
        for entry in std::fs::read_dir(src).map_err(StoreError::io("list", src))? {
            let entry = entry.map_err(StoreError::io("list", src))?;
            let m = entry
                .metadata()
                .map_err(StoreError::io("stat", &entry.path()))?;
            copy_entry(&entry.path(), &dst.join(entry.file_name()), &m)?;
        }
    } else if ft.is_symlink() {
        let target = std::fs::read_link(src).map_err(StoreError::io("read link", src))?;
        symlink(&target, dst).map_err(StoreError::io("create link", dst))?;
    } else if ft.is_file() {
        std::fs::copy(src, dst).map_err(StoreError::io("copy to", dst))?;
    } else {
        // Device nodes, FIFOs and sockets: made again with the same type and numbers.
        let kind = FileType::from_raw_mode(meta.mode());
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dst,
            kind,
            Mode::from_raw_mode(meta.mode() & 0o7777),
            meta.rdev(),
        )
        .map_err(|e| StoreError::io("make node", dst)(e.into()))?;
    }
    // Owner before mode: chown clears the setuid and setgid bits.
    rustix::fs::chownat(
        rustix::fs::CWD,
        dst,
        Some(rustix::process::Uid::from_raw(meta.uid())),
        Some(rustix::process::Gid::from_raw(meta.gid())),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| StoreError::io("chown", dst)(e.into()))?;
    if !ft.is_symlink() {
        rustix::fs::chmodat(
            rustix::fs::CWD,
            dst,
            Mode::from_raw_mode(meta.mode() & 0o7777),
            AtFlags::empty(),
        )
        .map_err(|e| StoreError::io("chmod", dst)(e.into()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn copies_types_modes_and_links() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("bin")).expect("mkdir");
        std::fs::write(src.join("bin/tool"), "x").expect("write");
        std::fs::set_permissions(
            src.join("bin/tool"),
            std::fs::Permissions::from_mode(0o4755),
        )
        .expect("chmod");
        symlink("tool", src.join("bin/alias")).expect("link");
        symlink("/etc/passwd", src.join("abs")).expect("link");
        copy_tree(&src, &dir.path().join("dst")).expect("copy");
        let dst = dir.path().join("dst");
        assert_eq!(
            std::fs::read_to_string(dst.join("bin/tool")).expect("read"),
            "x"
        );
        assert_eq!(
            std::fs::metadata(dst.join("bin/tool"))
                .expect("stat")
                .mode()
                & 0o7777,
            0o4755
        );
        assert_eq!(
            std::fs::read_link(dst.join("bin/alias")).expect("link"),
            Path::new("tool")
        );
        assert_eq!(
            std::fs::read_link(dst.join("abs")).expect("link"),
            Path::new("/etc/passwd")
        );
    }
}
