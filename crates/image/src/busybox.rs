//! The built-in `busybox` image, made on first use from the host's busybox-static: no
//! download, so `berth run busybox` works on a machine without network.

use crate::{Error, Images, Metadata};
use berth_store::atomic;
use std::os::unix::fs::{DirBuilderExt, symlink};
use std::path::Path;
use std::process::Command;

/// Where Debian's busybox-static installs its binary.
const HOST_BUSYBOX: &str = "/bin/busybox";

/// Directories every system container expects to exist.
const DIRS: &[(&str, u32)] = &[
    ("bin", 0o755),
    ("sbin", 0o755),
    ("usr", 0o755),
    ("usr/bin", 0o755),
    ("usr/sbin", 0o755),
    ("etc", 0o755),
    ("proc", 0o555),
    ("sys", 0o555),
    ("dev", 0o755),
    ("run", 0o755),
    ("tmp", 0o1777),
    ("root", 0o700),
    ("home", 0o755),
    ("var", 0o755),
    ("var/log", 0o755),
    ("var/tmp", 0o1777),
];

/// Small files of the image: accounts for root and nobody, and the identity of the system.
const FILES: &[(&str, &str)] = &[
    (
        "etc/passwd",
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    ),
    ("etc/group", "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n"),
    ("etc/hostname", "busybox\n"),
    // busybox init as a container's PID 1: a shell on the console once Enter is pressed there
    // (berth console; an interactive shell would ignore the halt's SIGTERM), no
    // gettys on ttys a container does not have; SIGUSR2 (berth stop) powers off.
    (
        "etc/inittab",
        "::sysinit:/bin/mkdir -p /run/lock\n::askfirst:-/bin/sh\n::ctrlaltdel:/sbin/reboot\n::shutdown:/bin/sync\n",
    ),
    (
        "etc/os-release",
        "NAME=\"BusyBox\"\nID=busybox\nPRETTY_NAME=\"BusyBox (berth built-in image)\"\n",
    ),
];

/// The name the built-in image goes by.
pub const ALIAS: &str = "busybox";

/// Builds the image (named `alias`, by default "busybox") from the host's busybox-static.
pub fn build_image(images: &Images, alias: Option<&str>) -> Result<crate::Image, Error> {
    check_static(Path::new(HOST_BUSYBOX))?;
    let mut meta = Metadata::new("busybox", "BusyBox from the host's busybox-static");
    meta.os = Some("busybox".into());
    images.build(Some(alias.unwrap_or(ALIAS)), meta, |rootfs| {
        build(rootfs).map(|()| None)
    })
}

/// Refuses a dynamically linked busybox: copied alone into a rootfs, it could not run.
fn check_static(path: &Path) -> Result<(), Error> {
    let err = || Error::NoStaticBusybox {
        path: path.to_path_buf(),
    };
    let bytes = std::fs::read(path).map_err(|_| err())?;
    if is_static_elf(&bytes) {
        Ok(())
    } else {
        Err(err())
    }
}

/// An ELF file without a PT_INTERP program header needs no dynamic loader.
fn is_static_elf(b: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    if b.len() < 64 || &b[..4] != b"\x7fELF" || b[4] != 2 {
        return false;
    }
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let Some(phoff) = b.get(32..40).map(|s| {
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        u64::from_le_bytes(a) as usize
    }) else {
        return false;
    };
    let (phentsize, phnum) = (u16_at(54), u16_at(56));
    (0..phnum).all(|i| {
        let o = phoff + i * phentsize;
        b.get(o..o + 4)
            .map(|t| u32::from_le_bytes([t[0], t[1], t[2], t[3]]) != PT_INTERP)
            .unwrap_or(false)
    })
}

fn build(rootfs: &Path) -> Result<(), Error> {
    let mut builder = std::fs::DirBuilder::new();
    builder.mode(0o755);
    builder
        .create(rootfs)
        .map_err(Error::io("create", rootfs))?;
    for (dir, mode) in DIRS {
        let p = rootfs.join(dir);
        std::fs::DirBuilder::new()
            .mode(*mode)
            .create(&p)
            .map_err(Error::io("create", &p))?;
        // The umask may have cleared bits such as the sticky bit of /tmp.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode))
            .map_err(Error::io("chmod", &p))?;
    }
    for (file, text) in FILES {
        atomic::write(&rootfs.join(file), text.as_bytes(), 0o644)?;
    }
    let bin = rootfs.join("bin/busybox");
    std::fs::copy(HOST_BUSYBOX, &bin).map_err(Error::io("copy busybox to", &bin))?;
    for applet in applets()? {
        let rel = applet.trim_start_matches('/');
        if rel.is_empty() || rel.contains("..") || rel == "bin/busybox" {
            continue;
        }
        let link = rootfs.join(rel);
        let depth = rel.matches('/').count();
        let target = format!("{}bin/busybox", "../".repeat(depth));
        if let Some(parent) = link.parent() {
            atomic::create_dir_all_mode(parent, 0o755)?;
        }
        match symlink(&target, &link) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io("link applet", &link)(e)),
        }
    }
    Ok(())
}

/// The applets busybox knows, with their usual install paths ("usr/bin/awk").
fn applets() -> Result<Vec<String>, Error> {
    let out = Command::new(HOST_BUSYBOX)
        .arg("--list-full")
        .output()
        .map_err(Error::io("run", Path::new(HOST_BUSYBOX)))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_static_elf() {
        assert!(!is_static_elf(b"#!/bin/sh\n"));
        if let Ok(bytes) = std::fs::read("/bin/ls") {
            // Debian's coreutils are dynamically linked.
            assert!(!is_static_elf(&bytes));
        }
        if let Ok(bytes) = std::fs::read(HOST_BUSYBOX) {
            assert!(is_static_elf(&bytes));
        }
    }
}
