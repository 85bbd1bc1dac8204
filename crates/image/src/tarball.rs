//! Root filesystem tarballs in and out: `berth image import FILE` and `berth image export`.
//!
//! Every entry of an imported tarball is hostile until checked. Nothing is written by path
//! from the host's root: each entry's directory is opened beneath the image's root with
//! `openat2(RESOLVE_IN_ROOT)` (a symlink in the tarball resolves inside the root, however
//! many `..` it holds), and the entry itself is made with `*at` calls that never follow a
//! final symlink. A name with a `..` component is refused outright; a leading `/` is dropped,
//! as GNU tar does. Owners, modes (setuid included) and xattrs (`user.*`,
//! `security.capability`) are kept; device nodes are left out (a container gets its /dev from
//! berth); the data written is bounded by the free space of the image store's disk.
//!
//! Compression is recognised by its magic bytes: gzip, xz, zstd, or none. An LXC/Incus image
//! (a tarball holding `metadata.yaml` and `rootfs/`) is recognised by its first entry.

use crate::{Error, Images, Metadata};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

/// Space left free on the store's disk by an import, besides what it writes.
const RESERVE: u64 = 64 << 20;
/// Inodes left free likewise.
const INODE_RESERVE: u64 = 10_000;

/// Imports `file` as a new image (named `alias`, if given).
pub fn import(images: &Images, file: &Path, alias: Option<&str>) -> Result<crate::Image, Error> {
    let reader = open_decompressed(file)?;
    let mut meta = Metadata::new("import", &file.display().to_string());
    let mut found: Option<LxcMetadata> = None;
    let label = file.display().to_string();
    let image = images.build(alias, meta.clone(), |rootfs| {
        let mut unpacker = Unpacker::new(rootfs)?;
        found = unpacker.run(reader).map_err(|e| match e {
            Error::Bad(_, why) => Error::Bad(label.clone(), why),
            other => other,
        })?;
        if unpacker.skipped_devices > 0 {
            tracing::warn!(
                "left out {} device node(s): a container gets its /dev from berth",
                unpacker.skipped_devices
            );
        }
        Ok(Some(unpacker.written))
    })?;
    if let Some(lxc) = found {
        // The metadata of an LXC/Incus image, recorded after the fact: rewrite it in place
        // (the image is complete and named already; only its description changes).
        meta.os = lxc.os.or(image.metadata.os.clone());
        meta.release = lxc.release;
        if let Some(d) = lxc.description {
            meta.description = d;
        }
        meta.size_bytes = image.metadata.size_bytes;
        meta.created_at = image.metadata.created_at;
        images.rewrite_metadata(&image.id, &meta)?;
        return images.by_id(&image.id)?.ok_or(Error::Unknown(image.id));
    }
    Ok(image)
}

/// Imports an LXC/Incus image in its split form: a metadata tarball (metadata.yaml,
/// templates/) and the root filesystem as a squashfs. The squashfs is turned into a tar
/// stream by `sqfs2tar` (squashfs-tools-ng), run as nobody on a copy only nobody can read
/// (the parser of a hostile filesystem image gets no privilege and writes nothing), and the
/// stream is unpacked like any tarball.
pub fn import_split(
    images: &Images,
    metadata_file: &Path,
    squashfs: &Path,
    alias: Option<&str>,
) -> Result<crate::Image, Error> {
    let label = squashfs.display().to_string();
    let lxc = read_metadata(metadata_file)?;
    // A copy that only nobody (and root) can read, in a directory of a random name that
    // others cannot list: what sqfs2tar, running as nobody, opens.
    let sandbox = tempfile::Builder::new()
        .prefix("berth-sqfs-")
        .tempdir()
        .map_err(Error::io(
            "create a temporary directory in",
            &std::env::temp_dir(),
        ))?;
    let copy = sandbox.path().join("rootfs.squashfs");
    std::fs::copy(squashfs, &copy).map_err(Error::io("copy", squashfs))?;
    std::os::unix::fs::chown(&copy, Some(65534), Some(65534)).map_err(Error::io("chown", &copy))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o400))
        .map_err(Error::io("chmod", &copy))?;
    std::fs::set_permissions(sandbox.path(), std::fs::Permissions::from_mode(0o711))
        .map_err(Error::io("chmod", sandbox.path()))?;
    let mut meta = Metadata::new(
        "import",
        &format!("{} + {}", metadata_file.display(), label),
    );
    meta.os = lxc.os;
    meta.release = lxc.release;
    if let Some(d) = lxc.description {
        meta.description = d;
    }
    images.build(alias, meta, |rootfs| {
        let mut cmd = std::process::Command::new("setpriv");
        cmd.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--no-new-privs",
            "--",
        ])
        .args(["sqfs2tar", "--root-becomes", "."])
        .arg(&copy)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
        berth_sys::proc::die_with_parent(&mut cmd);
        let mut child = cmd.spawn().map_err(|e| {
            Error::Bad(
                label.clone(),
                format!("cannot run sqfs2tar ({e}): apt-get install squashfs-tools-ng"),
            )
        })?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| Error::Bad(label.clone(), "no output from sqfs2tar".into()))?;
        let mut unpacker = Unpacker::new(rootfs)?;
        let unpacked = unpacker.run(Box::new(BufReader::with_capacity(1 << 20, stdout)));
        let status = child
            .wait()
            .map_err(Error::io("wait for", Path::new("sqfs2tar")))?;
        let mut errors = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = (&mut e).take(4096).read_to_string(&mut errors);
        }
        match unpacked {
            Err(Error::Bad(_, why)) => return Err(Error::Bad(label.clone(), why)),
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        if !status.success() {
            return Err(Error::Bad(
                label.clone(),
                format!(
                    "not a squashfs berth can read: {}",
                    errors.trim().replace(&copy.display().to_string(), &label)
                ),
            ));
        }
        Ok(Some(unpacker.written()))
    })
}

/// metadata.yaml from an LXC/Incus metadata tarball (any compression).
fn read_metadata(file: &Path) -> Result<LxcMetadata, Error> {
    let mut archive = tar::Archive::new(open_decompressed(file)?);
    let bad = |why: String| Error::Bad(file.display().to_string(), why);
    for entry in archive.entries().map_err(|e| bad(e.to_string()))? {
        let mut entry = entry.map_err(|e| bad(format!("not a tarball, or a damaged one ({e})")))?;
        if clean_path(&entry.path_bytes()).as_deref() == Some(&[b"metadata.yaml".to_vec()][..]) {
            let mut text = String::new();
            (&mut entry)
                .take(1 << 20)
                .read_to_string(&mut text)
                .map_err(|e| bad(e.to_string()))?;
            return Ok(LxcMetadata::parse(&text));
        }
    }
    Err(bad(
        "no metadata.yaml in it: is it an LXC/Incus metadata tarball?".into(),
    ))
}

/// The few properties an LXC/Incus image's metadata.yaml carries that berth shows.
#[derive(Debug, Default)]
struct LxcMetadata {
    os: Option<String>,
    release: Option<String>,
    description: Option<String>,
}

impl LxcMetadata {
    /// Reads `key: value` lines of the `properties:` block (enough of YAML for these files).
    fn parse(text: &str) -> LxcMetadata {
        let mut m = LxcMetadata::default();
        let mut in_props = false;
        for line in text.lines() {
            if !line.starts_with(' ') {
                in_props = line.trim_end() == "properties:";
                continue;
            }
            if !in_props {
                continue;
            }
            let Some((k, v)) = line.trim().split_once(':') else {
                continue;
            };
            let v = v.trim().trim_matches('"').trim_matches('\'').to_string();
            match k.trim() {
                "os" => m.os = Some(v),
                "release" => m.release = Some(v),
                "description" => m.description = Some(v),
                _ => {}
            }
        }
        m
    }
}

/// `file`, decompressed according to its first bytes.
fn open_decompressed(file: &Path) -> Result<Box<dyn Read>, Error> {
    let f = std::fs::File::open(file).map_err(Error::io("open", file))?;
    let mut buf = BufReader::with_capacity(1 << 20, f);
    let magic = buf.fill_buf().map_err(Error::io("read", file))?.to_vec();
    Ok(if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(buf))
    } else if magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(buf))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(buf).map_err(Error::io("read", file))?)
    } else {
        Box::new(buf)
    })
}

/// Free bytes and inodes of the filesystem holding `dir`.
fn free_space(dir: &Path) -> Result<(u64, u64), Error> {
    let st = rustix::fs::statvfs(dir).map_err(|e| Error::io("statvfs", dir)(e.into()))?;
    Ok((st.f_bavail.saturating_mul(st.f_frsize), st.f_favail))
}

/// Writes a tarball's entries beneath one root directory.
pub(crate) struct Unpacker {
    root: OwnedFd,
    /// What the OCI layer being applied has made (an opaque directory keeps only that).
    made: std::collections::HashSet<Vec<u8>>,
    /// The directory of the previous entry (tarballs list a directory's entries together).
    last_dir: Option<(Vec<u8>, OwnedFd)>,
    budget: u64,
    /// Files, directories and links that may still be made.
    inodes: u64,
    /// Bytes of file data written (hard links once).
    written: u64,
    skipped_devices: usize,
}

const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

impl Unpacker {
    /// An unpacker into `rootfs` (made here), bounded by the free space of its filesystem.
    pub(crate) fn new(rootfs: &Path) -> Result<Unpacker, Error> {
        std::fs::create_dir(rootfs).map_err(Error::io("create", rootfs))?;
        let (free, free_inodes) = free_space(rootfs)?;
        let root = rustix::fs::open(
            rootfs,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io("open", rootfs)(e.into()))?;
        Ok(Unpacker {
            root,
            made: std::collections::HashSet::new(),
            last_dir: None,
            budget: free.saturating_sub(RESERVE),
            inodes: free_inodes.saturating_sub(INODE_RESERVE),
            written: 0,
            skipped_devices: 0,
        })
    }

    /// Applies one OCI layer over what earlier layers wrote: its whiteouts delete
    /// (`.wh.NAME`: NAME; `.wh..wh..opq`: everything of the directory that earlier layers
    /// made), the rest is unpacked as usual.
    pub(crate) fn apply_layer(&mut self, reader: Box<dyn Read>) -> Result<(), Error> {
        self.made.clear();
        let mut archive = tar::Archive::new(reader);
        let bad = |what: String| Error::Bad("layer".into(), what);
        for entry in archive.entries().map_err(|e| bad(e.to_string()))? {
            let mut entry = entry.map_err(|e| bad(format!("unreadable entry: {e}")))?;
            let raw = entry.path_bytes().into_owned();
            let Some(parts) = clean_path(&raw) else {
                return Err(bad(format!(
                    "entry {:?} climbs out of the image (a `..` in its name): refused",
                    String::from_utf8_lossy(&raw)
                )));
            };
            if let Some((name, dirs)) = parts.split_last()
                && let Some(target) = name.strip_prefix(b".wh.")
            {
                if matches!(target, b"" | b"." | b"..") {
                    return Err(bad(format!(
                        "whiteout {:?} names no file: refused",
                        String::from_utf8_lossy(&raw)
                    )));
                }
                // Whiteouts hide what lower layers have, never what this one made.
                let mut path = dirs.join(&b'/');
                if !path.is_empty() {
                    path.push(b'/');
                }
                path.extend_from_slice(target);
                if target != b".wh..opq" && self.made.contains(&path) {
                    continue;
                }
                let (rel, dir) = self.take_dir(dirs)?;
                let done = if target == b".wh..opq" {
                    let prefix = dirs.join(&b'/');
                    clear_dir(dir.as_fd(), &prefix, &self.made)
                } else {
                    match remove_tree(dir.as_fd(), target) {
                        Err(Errno::NOENT) => Ok(()),
                        other => other,
                    }
                };
                self.last_dir = Some((rel, dir));
                done.map_err(|e| bad(format!("{}: {e}", String::from_utf8_lossy(&raw))))?;
                continue;
            }
            self.made.insert(parts.join(&b'/'));
            self.unpack(&mut entry, &parts).map_err(|e| match e {
                Error::Bad(..) => e,
                other => bad(format!("{}: {other}", String::from_utf8_lossy(&raw))),
            })?;
        }
        Ok(())
    }

    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    /// Unpacks every entry; returns an LXC/Incus image's metadata when it was one.
    fn run(&mut self, reader: Box<dyn Read>) -> Result<Option<LxcMetadata>, Error> {
        let mut archive = tar::Archive::new(reader);
        let bad = |what: String| Error::Bad("tarball".into(), what);
        let mut lxc: Option<bool> = None;
        let mut metadata = None;
        let entries = archive.entries().map_err(|e| bad(e.to_string()))?;
        for entry in entries {
            let mut entry =
                entry.map_err(|e| bad(format!("not a tarball, or a damaged one ({e})")))?;
            let raw = entry.path_bytes().into_owned();
            let Some(mut parts) = clean_path(&raw) else {
                return Err(bad(format!(
                    "entry {:?} climbs out of the image (a `..` in its name): refused",
                    String::from_utf8_lossy(&raw)
                )));
            };
            if lxc.is_none() && !parts.is_empty() {
                lxc = Some(matches!(
                    parts[0].as_slice(),
                    b"metadata.yaml" | b"rootfs" | b"templates"
                ));
            }
            if lxc == Some(true) {
                match parts.first().map(Vec::as_slice) {
                    Some(b"metadata.yaml") if parts.len() == 1 => {
                        let mut text = String::new();
                        (&mut entry)
                            .take(1 << 20)
                            .read_to_string(&mut text)
                            .map_err(|e| bad(e.to_string()))?;
                        metadata = Some(LxcMetadata::parse(&text));
                        continue;
                    }
                    Some(b"rootfs") => {
                        parts.remove(0);
                    }
                    _ => continue,
                }
            }
            self.unpack(&mut entry, &parts).map_err(|e| {
                let why = match e {
                    Error::Bad(_, why) => why,
                    other => other.to_string(),
                };
                bad(format!("entry {}: {why}", String::from_utf8_lossy(&raw)))
            })?;
        }
        Ok(metadata.or(if lxc == Some(true) {
            Some(LxcMetadata::default())
        } else {
            None
        }))
    }

    fn unpack(
        &mut self,
        entry: &mut tar::Entry<'_, Box<dyn Read>>,
        parts: &[Vec<u8>],
    ) -> Result<(), Error> {
        use tar::EntryType as T;
        let header = entry.header().clone();
        let kind = header.entry_type();
        let io = |e: Errno| Error::Bad("tarball".into(), e.to_string());
        let uid = header.uid().unwrap_or(0) as u32;
        let gid = header.gid().unwrap_or(0) as u32;
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        let xattrs = xattrs_of(entry);
        let Some((name, dirs)) = parts.split_last() else {
            // The root itself ("./"): its owner and mode.
            if kind == T::Directory {
                own(self.root.as_fd(), uid, gid, mode).map_err(io)?;
            }
            return Ok(());
        };
        // The entry's directory, taken out of the cache for the while (and put back below).
        let (rel, dir_fd) = self.take_dir(dirs)?;
        let result = self.make(entry, &header, dir_fd.as_fd(), name, &xattrs);
        self.last_dir = Some((rel, dir_fd));
        result
    }

    /// Makes one entry (not the root) in `dir`.
    fn make(
        &mut self,
        entry: &mut tar::Entry<'_, Box<dyn Read>>,
        header: &tar::Header,
        dir: BorrowedFd<'_>,
        name: &[u8],
        xattrs: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<(), Error> {
        use tar::EntryType as T;
        let kind = header.entry_type();
        let io = |e: Errno| Error::Bad("tarball".into(), e.to_string());
        let uid = header.uid().unwrap_or(0) as u32;
        let gid = header.gid().unwrap_or(0) as u32;
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        if self.inodes == 0 {
            return Err(Error::Bad(
                "tarball".into(),
                "it has more files than the image store's disk can hold".into(),
            ));
        }
        self.inodes -= 1;
        match kind {
            T::Directory => {
                match rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o700)) {
                    Ok(()) => {}
                    Err(Errno::EXIST) => {
                        let st =
                            rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(io)?;
                        if !rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir() {
                            remove_tree(dir, name).map_err(io)?;
                            rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o700))
                                .map_err(io)?;
                        }
                    }
                    Err(e) => return Err(io(e)),
                }
                let fd = rustix::fs::openat(
                    dir,
                    name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(io)?;
                own(fd.as_fd(), uid, gid, mode).map_err(io)?;
                set_xattrs(fd.as_fd(), xattrs);
            }
            T::Regular | T::Continuous | T::GNUSparse => {
                let size = entry.size();
                if size > self.budget {
                    return Err(Error::Bad(
                        "tarball".into(),
                        "it does not fit on the image store's disk (berth keeps 64 MiB free)"
                            .into(),
                    ));
                }
                self.budget -= size;
                self.written += size;
                replace(dir, name).map_err(io)?;
                let fd = rustix::fs::openat(
                    dir,
                    name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(io)?;
                let mut file = std::fs::File::from(fd);
                std::io::copy(entry, &mut file)
                    .map_err(|e| Error::Bad("tarball".into(), e.to_string()))?;
                own(file.as_fd(), uid, gid, mode).map_err(io)?;
                set_xattrs(file.as_fd(), xattrs);
                if let Ok(mtime) = header.mtime() {
                    let t = rustix::fs::Timestamps {
                        last_access: rustix::fs::Timespec {
                            tv_sec: mtime as i64,
                            tv_nsec: 0,
                        },
                        last_modification: rustix::fs::Timespec {
                            tv_sec: mtime as i64,
                            tv_nsec: 0,
                        },
                    };
                    let _ = rustix::fs::futimens(&file, &t);
                }
            }
            T::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                replace(dir, name).map_err(io)?;
                rustix::fs::symlinkat(target.as_slice(), dir, name).map_err(io)?;
                chown_at(dir, name, uid, gid).map_err(io)?;
            }
            T::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                let Some(target) = clean_path(&target) else {
                    return Err(Error::Bad(
                        "tarball".into(),
                        "a hard link climbs out of the image".into(),
                    ));
                };
                let rel = target.join(&b'/');
                let src = rustix::fs::openat2(
                    &self.root,
                    rel.as_slice(),
                    OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                    RESOLVE,
                )
                .map_err(io)?;
                replace(dir, name).map_err(io)?;
                rustix::fs::linkat(&src, "", dir, name, AtFlags::EMPTY_PATH).map_err(io)?;
            }
            T::Fifo => {
                replace(dir, name).map_err(io)?;
                rustix::fs::mknodat(
                    dir,
                    name,
                    rustix::fs::FileType::Fifo,
                    Mode::from_raw_mode(mode),
                    0,
                )
                .map_err(io)?;
                chown_at(dir, name, uid, gid).map_err(io)?;
                rustix::fs::chmodat(dir, name, Mode::from_raw_mode(mode), AtFlags::empty())
                    .map_err(io)?;
            }
            T::Char | T::Block => self.skipped_devices += 1,
            // PAX and GNU headers are read by the tar crate; anything else is not a file.
            _ => {}
        }
        Ok(())
    }

    /// The directory `dirs` beneath the root (made, 0755 and root's, where missing), from
    /// the cache when it is the previous entry's.
    fn take_dir(&mut self, dirs: &[Vec<u8>]) -> Result<(Vec<u8>, OwnedFd), Error> {
        let rel: Vec<u8> = dirs.join(&b'/');
        match self.last_dir.take() {
            Some((p, fd)) if p == rel => Ok((p, fd)),
            _ => Ok((rel, self.open_dir(dirs)?)),
        }
    }

    fn open_dir(&self, dirs: &[Vec<u8>]) -> Result<OwnedFd, Error> {
        let io = |e: Errno| Error::Bad("tarball".into(), e.to_string());
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let rel: Vec<u8> = if dirs.is_empty() {
            b".".to_vec()
        } else {
            dirs.join(&b'/')
        };
        match rustix::fs::openat2(&self.root, rel.as_slice(), flags, Mode::empty(), RESOLVE) {
            Ok(fd) => return Ok(fd),
            Err(Errno::NOENT) => {}
            Err(e) => return Err(io(e)),
        }
        // Missing directories on the way: made one by one, each beneath the root.
        let mut fd =
            rustix::fs::openat2(&self.root, ".", flags, Mode::empty(), RESOLVE).map_err(io)?;
        for d in dirs {
            match rustix::fs::mkdirat(&fd, d.as_slice(), Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(io(e)),
            }
            fd = rustix::fs::openat2(&fd, d.as_slice(), flags, Mode::empty(), RESOLVE)
                .map_err(io)?;
        }
        Ok(fd)
    }
}

/// The components of an entry's name, without "" and "."; `None` if any is "..".
fn clean_path(raw: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for part in raw.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return None,
            p => out.push(p.to_vec()),
        }
    }
    Some(out)
}

/// Removes what stands at `name`: a later entry replaces an earlier one (as with tar), and
/// a later layer's file replaces a lower layer's directory with all it held.
fn replace(dir: BorrowedFd<'_>, name: &[u8]) -> Result<(), Errno> {
    match remove_tree(dir, name) {
        Err(Errno::NOENT) => Ok(()),
        other => other,
    }
}

/// Removes `name` in `dir` and, for a directory, everything below it, never following a
/// symlink (the tree is hostile).
fn remove_tree(dir: BorrowedFd<'_>, name: &[u8]) -> Result<(), Errno> {
    let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir() {
        let sub = rustix::fs::openat(
            dir,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        for child in children(sub.as_fd())? {
            remove_tree(sub.as_fd(), &child)?;
        }
        rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)
    } else {
        rustix::fs::unlinkat(dir, name, AtFlags::empty())
    }
}

/// The names in a directory (not `.` and `..`).
fn children(dir: BorrowedFd<'_>) -> Result<Vec<Vec<u8>>, Errno> {
    let mut out = Vec::new();
    let mut d = rustix::fs::Dir::read_from(dir)?;
    while let Some(entry) = d.read() {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            out.push(name);
        }
    }
    Ok(out)
}

/// An opaque directory: removes what earlier layers put in it (`made`: this layer's paths;
/// `prefix`: the directory's own path).
fn clear_dir(
    dir: BorrowedFd<'_>,
    prefix: &[u8],
    made: &std::collections::HashSet<Vec<u8>>,
) -> Result<(), Errno> {
    for child in children(dir)? {
        let mut path = prefix.to_vec();
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(&child);
        if !made.contains(&path) {
            remove_tree(dir, &child)?;
        }
    }
    Ok(())
}

/// The owner of `name` in `dir`, never through a symlink.
fn chown_at(dir: BorrowedFd<'_>, name: &[u8], uid: u32, gid: u32) -> Result<(), Errno> {
    rustix::fs::chownat(
        dir,
        name,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
}

/// Owner, then mode (chown clears setuid bits, so the mode comes after).
fn own(fd: BorrowedFd<'_>, uid: u32, gid: u32, mode: u32) -> Result<(), Errno> {
    rustix::fs::fchown(
        fd,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
    )?;
    rustix::fs::fchmod(fd, Mode::from_raw_mode(mode))
}

/// The xattrs of an entry's PAX records that berth keeps.
fn xattrs_of(entry: &mut tar::Entry<'_, Box<dyn Read>>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let Ok(Some(exts)) = entry.pax_extensions() else {
        return Vec::new();
    };
    exts.flatten()
        .filter_map(|e| {
            let name = e.key_bytes().strip_prefix(b"SCHILY.xattr.")?;
            let kept = kept_xattr(name);
            kept.then(|| (name.to_vec(), e.value_bytes().to_vec()))
        })
        .collect()
}

/// The xattrs an image keeps: `user.*` (not overlayfs's own `user.overlay.*`, which it
/// would read in a layer), file capabilities and POSIX ACLs.
fn kept_xattr(name: &[u8]) -> bool {
    (name.starts_with(b"user.") && !name.starts_with(b"user.overlay."))
        || name == b"security.capability"
        || name == b"system.posix_acl_access"
        || name == b"system.posix_acl_default"
}

fn set_xattrs(fd: BorrowedFd<'_>, xattrs: &[(Vec<u8>, Vec<u8>)]) {
    for (name, value) in xattrs {
        let Ok(name) = std::ffi::CString::new(name.clone()) else {
            continue;
        };
        if let Err(e) =
            rustix::fs::fsetxattr(fd, name.as_c_str(), value, rustix::fs::XattrFlags::empty())
        {
            tracing::warn!("xattr {name:?} not kept: {e}");
        }
    }
}

/// Writes image `image`'s root filesystem to `file` as a tarball, compressed as its name
/// says (.tar.gz/.tgz, .tar.xz, .tar.zst, else plain), through a temporary file renamed
/// into place: owners, modes, symlinks, hard links, xattrs and device nodes as they are.
pub fn export(image: &crate::Image, file: &Path) -> Result<(), Error> {
    let dir = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(".berth-export-")
        .tempfile_in(dir)
        .map_err(Error::io("create a temporary file in", dir))?;
    let name = file.to_string_lossy();
    let out = std::io::BufWriter::with_capacity(
        1 << 20,
        tmp.as_file()
            .try_clone()
            .map_err(Error::io("open", tmp.path()))?,
    );
    let writer: Box<dyn Write> = if name.ends_with(".gz") || name.ends_with(".tgz") {
        Box::new(flate2::write::GzEncoder::new(
            out,
            flate2::Compression::default(),
        ))
    } else if name.ends_with(".xz") {
        Box::new(liblzma::write::XzEncoder::new(out, 6))
    } else if name.ends_with(".zst") {
        Box::new(
            zstd::stream::write::Encoder::new(out, 3)
                .map_err(Error::io("compress", file))?
                .auto_finish(),
        )
    } else {
        Box::new(out)
    };
    let mut builder = tar::Builder::new(writer);
    let mut links = std::collections::HashMap::new();
    let io = Error::io("write", file);
    walk(&image.rootfs, Path::new(""), &mut builder, &mut links).map_err(io)?;
    let mut writer = builder.into_inner().map_err(Error::io("write", file))?;
    writer.flush().map_err(Error::io("write", file))?;
    drop(writer);
    tmp.as_file().sync_all().map_err(Error::io("write", file))?;
    tmp.persist(file)
        .map_err(|e| Error::io("rename into place", file)(e.error))?;
    Ok(())
}

fn walk(
    root: &Path,
    rel: &Path,
    builder: &mut tar::Builder<Box<dyn Write>>,
    links: &mut std::collections::HashMap<(u64, u64), PathBuf>,
) -> std::io::Result<()> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let path = root.join(rel);
    let meta = std::fs::symlink_metadata(&path)?;
    let ft = meta.file_type();
    let name = if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel.to_path_buf()
    };
    let mut header = tar::Header::new_gnu();
    header.set_mode(meta.mode() & 0o7777);
    header.set_uid(meta.uid().into());
    header.set_gid(meta.gid().into());
    header.set_mtime(meta.mtime().max(0) as u64);
    header.set_size(0);
    append_xattrs(&path, builder)?;
    if ft.is_dir() {
        header.set_entry_type(tar::EntryType::Directory);
        builder.append_data(&mut header, &name, std::io::empty())?;
        let mut children: Vec<_> = std::fs::read_dir(&path)?
            .flatten()
            .map(|e| e.file_name())
            .collect();
        children.sort();
        for c in children {
            walk(root, &rel.join(c), builder, links)?;
        }
    } else if ft.is_symlink() {
        header.set_entry_type(tar::EntryType::Symlink);
        builder.append_link(&mut header, &name, std::fs::read_link(&path)?)?;
    } else if ft.is_file() {
        if meta.nlink() > 1 {
            if let Some(first) = links.get(&(meta.dev(), meta.ino())) {
                header.set_entry_type(tar::EntryType::Link);
                builder.append_link(&mut header, &name, first)?;
                return Ok(());
            }
            links.insert((meta.dev(), meta.ino()), name.clone());
        }
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(meta.len());
        builder.append_data(&mut header, &name, std::fs::File::open(&path)?)?;
    } else if ft.is_char_device() || ft.is_block_device() {
        header.set_entry_type(if ft.is_char_device() {
            tar::EntryType::Char
        } else {
            tar::EntryType::Block
        });
        let dev = meta.rdev();
        header.set_device_major(rustix::fs::major(dev))?;
        header.set_device_minor(rustix::fs::minor(dev))?;
        builder.append_data(&mut header, &name, std::io::empty())?;
    } else if ft.is_fifo() {
        header.set_entry_type(tar::EntryType::Fifo);
        builder.append_data(&mut header, &name, std::io::empty())?;
    }
    Ok(())
}

/// A PAX header with the path's xattrs (`SCHILY.xattr.NAME`), before its own entry.
fn append_xattrs(path: &Path, builder: &mut tar::Builder<Box<dyn Write>>) -> std::io::Result<()> {
    let mut names = vec![0u8; 4096];
    let n = match rustix::fs::llistxattr(path, &mut names) {
        Ok(n) => n,
        Err(_) => return Ok(()),
    };
    let mut records = Vec::new();
    for name in names[..n].split(|b| *b == 0).filter(|s| !s.is_empty()) {
        let kept = kept_xattr(name);
        if !kept {
            continue;
        }
        let Ok(cname) = std::ffi::CString::new(name.to_vec()) else {
            continue;
        };
        let mut value = vec![0u8; 65536];
        let Ok(len) = rustix::fs::lgetxattr(path, cname.as_c_str(), &mut value) else {
            continue;
        };
        let mut body = b"SCHILY.xattr.".to_vec();
        body.extend_from_slice(name);
        body.push(b'=');
        body.extend_from_slice(&value[..len]);
        body.push(b'\n');
        // "LEN KEY=VALUE\n", LEN counting itself.
        let mut len = body.len() + 1;
        loop {
            let total = len.to_string().len() + body.len() + 1;
            if total == len {
                break;
            }
            len = total;
        }
        records.extend_from_slice(format!("{len} ").as_bytes());
        records.extend_from_slice(&body);
    }
    if records.is_empty() {
        return Ok(());
    }
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::XHeader);
    header.set_size(records.len() as u64);
    header.set_mode(0o644);
    header.set_path("PaxHeader")?;
    header.set_cksum();
    builder.append(&header, records.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_dotdot_are_refused_and_others_cleaned() {
        assert_eq!(
            clean_path(b"./etc//passwd"),
            Some(vec![b"etc".to_vec(), b"passwd".to_vec()])
        );
        assert_eq!(
            clean_path(b"/etc/passwd"),
            Some(vec![b"etc".to_vec(), b"passwd".to_vec()])
        );
        assert_eq!(clean_path(b"./"), Some(vec![]));
        assert_eq!(clean_path(b"a/../../x"), None);
        assert_eq!(clean_path(b".."), None);
    }

    proptest::proptest! {
        /// Whatever bytes a hostile tarball names an entry with, the cleaned name is a
        /// relative path of plain components (or refused): nothing to climb out with.
        #[test]
        fn clean_names_never_climb(raw in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::strategy::Just(b'/'),
                proptest::strategy::Just(b'.'),
                proptest::num::u8::ANY,
            ],
            0..64,
        )) {
            if let Some(parts) = clean_path(&raw) {
                for p in parts {
                    proptest::prop_assert!(!p.is_empty());
                    proptest::prop_assert!(p != b"." && p != b"..");
                    proptest::prop_assert!(!p.contains(&b'/'));
                }
            } else {
                proptest::prop_assert!(raw.split(|b| *b == b'/').any(|c| c == b".."));
            }
        }
    }

    #[test]
    fn lxc_metadata_properties() {
        let m = LxcMetadata::parse(
            "architecture: amd64\ncreation_date: 1\nproperties:\n  description: Debian bookworm\n  os: debian\n  release: \"bookworm\"\ntemplates: {}\n",
        );
        assert_eq!(m.os.as_deref(), Some("debian"));
        assert_eq!(m.release.as_deref(), Some("bookworm"));
        assert_eq!(m.description.as_deref(), Some("Debian bookworm"));
    }
}
