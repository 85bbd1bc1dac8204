//! The image store: `images/ID/{rootfs/,metadata.toml}` and `images/aliases.toml`.
//!
//! Images are written once and never changed: a build fills `images/.tmp-RANDOM/` (whose
//! builder holds `.tmp-RANDOM.lock`), then renames it to `images/ID`; only then does a name
//! point at it. A build killed half-way leaves a temporary directory whose lock is free, which
//! the next image command removes. Names change under one store-wide lock
//! (`run/locks/.images.lock`), with aliases.toml replaced atomically.

use crate::Error;
use berth_spec::validate;
use berth_store::{Store, atomic};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};

/// In an image's directory: deleted with --force while containers used it.
const DOOMED: &str = "deleted";

/// What an image is, as `metadata.toml` records it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// How it was made: "busybox", "debootstrap", "import", "oci", "publish".
    pub source: String,
    /// Free text: the release, the file it came from, the container it was published from.
    #[serde(default)]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    pub architecture: String,
    /// Seconds since the epoch.
    pub created_at: u64,
    /// Bytes of file data in rootfs/ (apparent sizes).
    pub size_bytes: u64,
}

impl Metadata {
    /// Metadata for an image made now from `source`, on this machine's architecture.
    pub fn new(source: &str, description: &str) -> Metadata {
        Metadata {
            source: source.to_string(),
            description: description.to_string(),
            architecture: std::env::consts::ARCH.to_string(),
            created_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            ..Metadata::default()
        }
    }
}

/// One image of the store.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub id: String,
    /// Its names, sorted (none for an image kept only for the containers made from it).
    pub aliases: Vec<String>,
    pub metadata: Metadata,
    pub rootfs: PathBuf,
}

/// The names, as aliases.toml holds them.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Aliases {
    #[serde(default)]
    aliases: BTreeMap<String, String>,
}

/// The images of one state root.
#[derive(Debug, Clone)]
pub struct Images {
    dir: PathBuf,
    locks: PathBuf,
}

/// Held while names change; released when dropped.
#[derive(Debug)]
pub struct ImagesLock {
    _file: File,
}

impl Images {
    /// The images of `store` (the directory is made, closed to other users, on first use: an
    /// image may hold setuid-root programs that no other user may run from there).
    pub fn open(store: &Store) -> Result<Images, Error> {
        let dir = store.images_dir();
        atomic::create_dir_all_mode(&dir, 0o700)?;
        let images = Images {
            dir,
            locks: store.run_dir().join("locks"),
        };
        images.sweep();
        Ok(images)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The store-wide lock for names (waits for another holder).
    pub fn lock(&self) -> Result<ImagesLock, Error> {
        self.lock_named(".images.lock", true)
    }

    /// Taken shared by whatever makes a container of an image (from finding the image to
    /// the container's config naming it) and exclusive by whatever removes images after
    /// working out which are used: an image is never removed from under a new container.
    pub fn users_lock(&self, exclusive: bool) -> Result<ImagesLock, Error> {
        self.lock_named(".images-users.lock", exclusive)
    }

    /// A lock for building the image called `alias` on first use, so that two first uses
    /// build it once (the second waits, then finds it).
    pub fn build_lock(&self, alias: &str) -> Result<ImagesLock, Error> {
        validate::image_name(alias)?;
        self.lock_named(&format!(".build-{}.lock", alias.replace('/', "_")), true)
    }

    fn lock_named(&self, file: &str, exclusive: bool) -> Result<ImagesLock, Error> {
        let file = atomic::lock_file(&self.locks.join(file), exclusive)?;
        Ok(ImagesLock { _file: file })
    }

    fn read_aliases(&self) -> Result<BTreeMap<String, String>, Error> {
        let path = self.dir.join("aliases.toml");
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str::<Aliases>(&text)
                .map(|a| a.aliases)
                .map_err(|e| Error::Bad("aliases.toml".into(), e.message().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(Error::io("read", &path)(e)),
        }
    }

    fn write_aliases(
        &self,
        aliases: BTreeMap<String, String>,
        _lock: &ImagesLock,
    ) -> Result<(), Error> {
        let text = toml::to_string_pretty(&Aliases { aliases })
            .map_err(|e| Error::Bad("aliases.toml".into(), e.to_string()))?;
        atomic::write(&self.dir.join("aliases.toml"), text.as_bytes(), 0o600)?;
        Ok(())
    }

    /// The image called `name` (an alias, or an id), if there is one.
    pub fn resolve(&self, name: &str) -> Result<Option<Image>, Error> {
        let aliases = self.read_aliases()?;
        let id = match aliases.get(name) {
            Some(id) => id.clone(),
            None if is_id(name) && self.dir.join(name).join("metadata.toml").is_file() => {
                name.to_string()
            }
            None => return Ok(None),
        };
        self.load(&id, &aliases).map(Some)
    }

    /// The image with id `id` (`None` when it is gone).
    pub fn by_id(&self, id: &str) -> Result<Option<Image>, Error> {
        if !is_id(id) || !self.dir.join(id).join("metadata.toml").is_file() {
            return Ok(None);
        }
        self.load(id, &self.read_aliases()?).map(Some)
    }

    fn load(&self, id: &str, aliases: &BTreeMap<String, String>) -> Result<Image, Error> {
        let path = self.dir.join(id).join("metadata.toml");
        let text = std::fs::read_to_string(&path).map_err(Error::io("read", &path))?;
        let metadata: Metadata = toml::from_str(&text)
            .map_err(|e| Error::Bad(id.to_string(), e.message().to_string()))?;
        Ok(Image {
            id: id.to_string(),
            aliases: aliases
                .iter()
                .filter(|(_, v)| *v == id)
                .map(|(k, _)| k.clone())
                .collect(),
            metadata,
            rootfs: self.dir.join(id).join("rootfs"),
        })
    }

    /// Every image, sorted by its first name (unnamed ones last).
    pub fn list(&self) -> Result<Vec<Image>, Error> {
        let aliases = self.read_aliases()?;
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(Error::io("list", &self.dir))? {
            let Ok(entry) = entry else { continue };
            let id = entry.file_name().to_string_lossy().into_owned();
            if is_id(&id) && entry.path().join("metadata.toml").is_file() {
                out.push(self.load(&id, &aliases)?);
            }
        }
        out.sort_by(|a, b| match (a.aliases.first(), b.aliases.first()) {
            (Some(x), Some(y)) => x.cmp(y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => a.id.cmp(&b.id),
        });
        Ok(out)
    }

    /// Makes a new image: `fill` writes its root filesystem into the directory it is given
    /// (which does not exist yet) and returns the bytes it wrote if it counted them (else the
    /// tree is measured); then the image is renamed into place and, with `alias`, named (taking the name from an older image, which keeps its other names and, if it has
    /// none left, stays for the containers made from it).
    pub fn build(
        &self,
        alias: Option<&str>,
        mut metadata: Metadata,
        fill: impl FnOnce(&Path) -> Result<Option<u64>, Error>,
    ) -> Result<Image, Error> {
        if let Some(a) = alias {
            validate::image_name(a)?;
        }
        let id = new_id()?;
        let tmp = self.dir.join(format!(".tmp-{id}"));
        let lock_path = self.dir.join(format!(".tmp-{id}.lock"));
        let guard = atomic::lock_file(&lock_path, true)?;
        let cleanup = |e: Error| {
            let _ = std::fs::remove_dir_all(&tmp);
            let _ = std::fs::remove_file(&lock_path);
            e
        };
        atomic::create_dir_all_mode(&tmp, 0o700).map_err(|e| cleanup(e.into()))?;
        let size = fill(&tmp.join("rootfs")).map_err(cleanup)?;
        metadata.size_bytes = size.unwrap_or_else(|| tree_size(&tmp.join("rootfs")));
        let text = toml::to_string_pretty(&metadata)
            .map_err(|e| cleanup(Error::Bad(id.clone(), e.to_string())))?;
        atomic::write(&tmp.join("metadata.toml"), text.as_bytes(), 0o600)
            .map_err(|e| cleanup(e.into()))?;
        let final_dir = self.dir.join(&id);
        std::fs::rename(&tmp, &final_dir)
            .map_err(|e| cleanup(Error::io("rename into place", &final_dir)(e)))?;
        let _ = std::fs::remove_file(&lock_path);
        drop(guard);
        if let Some(a) = alias {
            self.set_alias(a, &id)?;
        }
        let found = self.by_id(&id)?;
        found.ok_or(Error::Unknown(id))
    }

    /// Replaces image `id`'s metadata (for what is known only once its files are in).
    pub fn rewrite_metadata(&self, id: &str, metadata: &Metadata) -> Result<(), Error> {
        let text = toml::to_string_pretty(metadata)
            .map_err(|e| Error::Bad(id.to_string(), e.to_string()))?;
        atomic::write(
            &self.dir.join(id).join("metadata.toml"),
            text.as_bytes(),
            0o600,
        )?;
        Ok(())
    }

    /// Refuses an alias that names an image already, unless `replace` (the name then moves
    /// to the new image; the old one stays, unnamed, until deleted).
    pub fn check_alias(&self, alias: &str, replace: bool) -> Result<(), Error> {
        validate::image_name(alias)?;
        match self.resolve(alias)? {
            Some(image) if !replace && image.aliases.iter().any(|a| a == alias) => Err(Error::Bad(
                alias.to_string(),
                format!(
                    "the name is taken (image {}): choose another, or --replace to move it",
                    image.id
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Points `alias` at image `id`.
    pub fn set_alias(&self, alias: &str, id: &str) -> Result<(), Error> {
        validate::image_name(alias)?;
        let lock = self.lock()?;
        let mut aliases = self.read_aliases()?;
        aliases.insert(alias.to_string(), id.to_string());
        self.write_aliases(aliases, &lock)
    }

    /// Deletes image `name` (all its names). `users` are the containers made from it: with
    /// any, it is refused unless `force`, which removes the names at once and the files when
    /// the last of them is deleted (see [`Images::prune`]).
    pub fn delete(&self, name: &str, users: &[String], force: bool) -> Result<Image, Error> {
        let image = self
            .resolve(name)?
            .ok_or_else(|| Error::Unknown(name.to_string()))?;
        if !users.is_empty() && !force {
            return Err(Error::InUse {
                name: name.to_string(),
                containers: users.join(", "),
            });
        }
        let lock = self.lock()?;
        let mut aliases = self.read_aliases()?;
        aliases.retain(|_, id| *id != image.id);
        self.write_aliases(aliases, &lock)?;
        if users.is_empty() {
            self.remove_files(&image.id)?;
        } else {
            // Deleted in name: its files go with its last container (see `prune`).
            let mark = self.dir.join(&image.id).join(DOOMED);
            std::fs::write(&mark, b"").map_err(Error::io("write", &mark))?;
        }
        Ok(image)
    }

    /// Removes the images deleted with --force (see [`Images::delete`]) that no container is
    /// made from any more (`used`: the ids containers are made from). Other images, unnamed
    /// ones included (an import without --alias, an image whose name moved), stay until
    /// deleted.
    pub fn prune(&self, used: &BTreeSet<String>) -> Result<Vec<String>, Error> {
        let _lock = self.lock()?;
        let mut removed = Vec::new();
        for image in self.list()? {
            let doomed = self.dir.join(&image.id).join(DOOMED).exists();
            if doomed && !used.contains(&image.id) {
                self.remove_files(&image.id)?;
                removed.push(image.id);
            }
        }
        Ok(removed)
    }

    /// Renames the image's directory away first (to a temporary name the sweep would also
    /// remove), so that a half-deleted image is never taken for a whole one.
    fn remove_files(&self, id: &str) -> Result<(), Error> {
        let dir = self.dir.join(id);
        let doomed = self.dir.join(format!(".tmp-deleted-{id}"));
        std::fs::rename(&dir, &doomed).map_err(Error::io("remove", &dir))?;
        // A concurrent sweep may finish the removal first.
        match std::fs::remove_dir_all(&doomed) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::io("remove", &doomed)(e))
            }
            _ => Ok(()),
        }
    }

    /// Removes what interrupted builds and deletions left: temporary directories whose
    /// builder no longer holds their lock.
    fn sweep(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix(".tmp-") else {
                continue;
            };
            if rest.ends_with(".lock") {
                continue;
            }
            let lock_path = self.dir.join(format!("{name}.lock"));
            let busy = File::options()
                .write(true)
                .open(&lock_path)
                .is_ok_and(|f| f.try_lock().is_err());
            if !busy {
                let _ = std::fs::remove_dir_all(entry.path());
                let _ = std::fs::remove_file(&lock_path);
            }
        }
    }
}

/// Image ids: 16 lower-case hex digits.
fn is_id(text: &str) -> bool {
    text.len() == 16 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn new_id() -> Result<String, Error> {
    let mut bytes = [0u8; 8];
    let path = Path::new("/dev/urandom");
    std::io::Read::read_exact(
        &mut File::open(path).map_err(Error::io("open", path))?,
        &mut bytes,
    )
    .map_err(Error::io("read", path))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Apparent size of the regular files under `dir` (hard links counted once), best effort.
pub fn tree_size(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = BTreeSet::new();
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() && (meta.nlink() == 1 || seen.insert((meta.dev(), meta.ino())))
            {
                total += meta.len();
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Images) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        let images = Images::open(&store).expect("images");
        (dir, images)
    }

    fn fill(rootfs: &Path) -> Result<Option<u64>, Error> {
        std::fs::create_dir_all(rootfs.join("etc")).map_err(Error::io("mkdir", rootfs))?;
        std::fs::write(rootfs.join("etc/hostname"), "x\n").map_err(Error::io("write", rootfs))?;
        Ok(None)
    }

    #[test]
    fn build_name_resolve_delete() {
        let (_d, images) = store();
        let a = images
            .build(Some("test/one"), Metadata::new("test", "first"), fill)
            .expect("build");
        assert_eq!(a.aliases, vec!["test/one".to_string()]);
        assert_eq!(a.metadata.size_bytes, 2);
        assert_eq!(
            images.resolve("test/one").expect("resolve"),
            Some(a.clone())
        );
        assert_eq!(
            images.resolve(&a.id).expect("by id").map(|i| i.id),
            Some(a.id.clone())
        );
        assert_eq!(images.resolve("nope").expect("resolve"), None);
        // A rebuild takes the name; the old image stays, unnamed.
        let b = images
            .build(Some("test/one"), Metadata::new("test", "second"), fill)
            .expect("build");
        assert_eq!(
            images.resolve("test/one").expect("resolve").map(|i| i.id),
            Some(b.id.clone())
        );
        assert!(
            images
                .by_id(&a.id)
                .expect("by id")
                .is_some_and(|i| i.aliases.is_empty())
        );
        // Unnamed but never deleted: kept by a prune.
        let used = BTreeSet::from([b.id.clone()]);
        assert!(images.prune(&used).expect("prune").is_empty());
        assert!(images.by_id(&a.id).expect("by id").is_some());
        images.delete(&a.id, &[], false).expect("delete by id");
        // In use: refused, then forced (name gone, files kept).
        let users = vec!["web".to_string()];
        assert!(matches!(
            images.delete("test/one", &users, false),
            Err(Error::InUse { .. })
        ));
        images.delete("test/one", &users, true).expect("forced");
        assert_eq!(images.resolve("test/one").expect("resolve"), None);
        assert!(images.by_id(&b.id).expect("by id").is_some());
        // Still used: kept; then no longer used: pruned.
        assert!(images.prune(&used).expect("prune").is_empty());
        assert_eq!(
            images.prune(&BTreeSet::new()).expect("prune"),
            vec![b.id.clone()]
        );
        assert!(images.list().expect("list").is_empty());
    }

    #[test]
    fn a_failed_build_leaves_nothing() {
        let (_d, images) = store();
        let err = images.build(Some("bad"), Metadata::new("test", ""), |rootfs| {
            fill(rootfs)?;
            Err(Error::Bad("bad".into(), "on purpose".into()))
        });
        assert!(err.is_err());
        assert!(images.list().expect("list").is_empty());
        let left: Vec<_> = std::fs::read_dir(images.dir())
            .expect("ls")
            .flatten()
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn an_interrupted_build_is_swept() {
        let (d, images) = store();
        // What a killed builder leaves: a temporary directory and a lock nobody holds.
        std::fs::create_dir_all(images.dir().join(".tmp-0123456789abcdef/rootfs")).expect("mkdir");
        std::fs::write(images.dir().join(".tmp-0123456789abcdef.lock"), "").expect("lock");
        let again = Images::open(&Store::open(d.path()).expect("store")).expect("images");
        let left: Vec<_> = std::fs::read_dir(again.dir())
            .expect("ls")
            .flatten()
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn bad_aliases_are_refused() {
        let (_d, images) = store();
        for bad in ["../x", "A", "a/b/c", ""] {
            assert!(
                images
                    .build(Some(bad), Metadata::new("test", ""), fill)
                    .is_err(),
                "{bad}"
            );
        }
        assert!(images.list().expect("list").is_empty());
    }
}
