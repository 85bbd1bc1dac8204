//! A container's files as a whole: snapshots (`snapshot`, `restore`), copies (`copy`) and
//! images made from them (`publish`). They concern containers made from an image, whose
//! files berth owns: the container's own layer over the image (`layer/upper`), or its full
//! copy (`rootfs/`). A container on a directory of the user's is left to the user.
//!
//! Every result is written under a temporary name and renamed when complete; a restore swaps
//! directories with renames and [`recover`] finishes or undoes a swap that was interrupted.
//! A running container is frozen while its files are copied, so that the copy is of one
//! moment.

use crate::ops::Manager;
use crate::{Error, lower};
use berth_spec::config::Config;
use berth_spec::validate;
use berth_store::Store;
use std::path::{Path, PathBuf};

/// One snapshot of a container.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SnapshotInfo {
    pub name: String,
    /// Seconds since the epoch.
    pub created_at: u64,
}

/// Where a container's own files are, as one directory to copy.
struct Files {
    /// `layer/upper` or `rootfs`, inside the container's directory.
    rel: &'static str,
}

fn files_of(store: &Store, name: &str, config: &Config) -> Result<Files, Error> {
    match (&config.rootfs.image, lower::is_overlay(store, name, config)) {
        (Some(_), true) => Ok(Files { rel: "layer/upper" }),
        (Some(_), false) => Ok(Files { rel: "rootfs" }),
        (None, _) => Err(Error::Container {
            name: name.to_string(),
            reason: "its files are a directory of yours (rootfs.path), not berth's: snapshots, copies and publishing need a container made from an image".into(),
        }),
    }
}

fn io(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let what = format!("{what} {}", path.display());
    move |source| Error::Io { what, source }
}

/// Copies the tree `src` to `dst` (which must not exist) as it is: owners, modes, hard
/// links, xattrs (overlayfs keeps its own in the upper layer), device nodes and whiteouts.
/// GNU cp -a does exactly this, with reflinks where the filesystem has them.
pub(crate) fn copy_all(src: &Path, dst: &Path) -> Result<(), Error> {
    let mut cp = std::process::Command::new("cp");
    cp.args(["-a", "--reflink=auto", "--"])
        .arg(src)
        .arg(dst)
        .stdin(std::process::Stdio::null());
    // Killed with berth: a copy must not go on writing into what the next command removes.
    berth_sys::proc::die_with_parent(&mut cp);
    let out = cp.output().map_err(io("run cp for", src))?;
    if out.status.success() {
        Ok(())
    } else {
        let _ = std::fs::remove_dir_all(dst);
        Err(Error::Io {
            what: format!("copy {} to {}", src.display(), dst.display()),
            source: std::io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_string()),
        })
    }
}

/// Finishes or undoes what an interrupted operation left in container `name`'s directory
/// (the caller holds its lock): temporary copies go; a restore cut between its two renames
/// gets its old files back.
pub(crate) fn recover(store: &Store, name: &str) {
    let dir = store.container_dir(name);
    // Frozen for a copy by a berth that was killed: thawed.
    let mark = dir.join(FROZEN_MARK);
    if mark.exists() {
        if let Ok(Some(state)) = store.read_state(name)
            && state.init_alive()
        {
            let cgroup = berth_cgroups::Cgroup::adopt(&crate::ops::paths(&state));
            let _ = cgroup.set_frozen(false);
            cgroup.release();
        }
        let _ = std::fs::remove_file(&mark);
    }
    for rel in ["layer/upper", "rootfs"] {
        let current = dir.join(rel);
        let old = dir.join(format!("{rel}.old"));
        if old.exists() {
            if current.exists() {
                let _ = std::fs::remove_dir_all(&old);
            } else {
                let _ = std::fs::rename(&old, &current);
            }
        }
        let tmp = dir.join(format!("{rel}.tmp"));
        if tmp.exists() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
    }
    if let Ok(entries) = std::fs::read_dir(dir.join("snapshots")) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(".tmp-") {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// In a container's directory while berth has frozen it for a copy: if berth is killed
/// meanwhile, the next command thaws it (see [`recover`]).
const FROZEN_MARK: &str = ".frozen-for-copy";

impl Manager {
    /// Runs `work` with container `name` frozen when it runs (thawed afterwards, whatever
    /// `work` did; by the next command if berth is killed meanwhile).
    fn frozen<T>(&self, name: &str, work: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
        let Some(state) = self.running_state(name)? else {
            return work();
        };
        let cgroup = berth_cgroups::Cgroup::adopt(&crate::ops::paths(&state));
        let was = cgroup.is_frozen();
        let mark = self.store.container_dir(name).join(FROZEN_MARK);
        if !was {
            std::fs::write(&mark, b"").map_err(io("write", &mark))?;
            if let Err(e) = cgroup.set_frozen(true) {
                let _ = std::fs::remove_file(&mark);
                cgroup.release();
                return Err(e.into());
            }
        }
        let result = work();
        if !was {
            let thawed = cgroup.set_frozen(false);
            let _ = std::fs::remove_file(&mark);
            thawed?;
        }
        cgroup.release();
        result
    }

    /// `berth snapshot NAME [SNAP]`: the container's files now, under SNAP (default: the
    /// next free `snapN`). Returns the snapshot's name.
    pub fn snapshot(&self, name: &str, snap: Option<&str>) -> Result<String, Error> {
        validate::name(name)?;
        crate::disks::refuse_layer_copy(&self.store, name, "snapshot")?;
        validate::name(name)?;
        let _lock = self.store.lock(name)?;
        let config = self.config(name)?;
        let files = files_of(&self.store, name, &config)?;
        recover(&self.store, name);
        let dir = self.store.container_dir(name).join("snapshots");
        std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        let snap = match snap {
            Some(s) => validate::name(s)?.to_string(),
            None => (0..)
                .map(|i| format!("snap{i}"))
                .find(|s| !dir.join(s).exists())
                .unwrap_or_default(),
        };
        if dir.join(&snap).exists() {
            return Err(Error::Container {
                name: name.to_string(),
                reason: format!(
                    "snapshot {snap:?} exists already: choose another name or delete it"
                ),
            });
        }
        let tmp = dir.join(format!(".tmp-{snap}"));
        std::fs::create_dir(&tmp).map_err(io("create", &tmp))?;
        let src = self.store.container_dir(name).join(files.rel);
        let copied = self.frozen(name, || copy_all(&src, &tmp.join("files")));
        if let Err(e) = copied {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        berth_store::atomic::write(&tmp.join("created_at"), now.to_string().as_bytes(), 0o600)?;
        std::fs::rename(&tmp, dir.join(&snap)).map_err(io("rename into place", &tmp))?;
        Ok(snap)
    }

    /// `berth snapshot list NAME`, oldest first.
    pub fn snapshots(&self, name: &str) -> Result<Vec<SnapshotInfo>, Error> {
        validate::name(name)?;
        self.config(name)?;
        let dir = self.store.container_dir(name).join("snapshots");
        let mut out = Vec::new();
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let snap = e.file_name().to_string_lossy().into_owned();
            if snap.starts_with('.') || !e.path().join("files").is_dir() {
                continue;
            }
            let created_at = std::fs::read_to_string(e.path().join("created_at"))
                .ok()
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or(0);
            out.push(SnapshotInfo {
                name: snap,
                created_at,
            });
        }
        out.sort_by(|a, b| (a.created_at, &a.name).cmp(&(b.created_at, &b.name)));
        Ok(out)
    }

    fn snapshot_dir(&self, name: &str, snap: &str) -> Result<PathBuf, Error> {
        validate::name(snap)?;
        let dir = self.store.container_dir(name).join("snapshots").join(snap);
        if dir.join("files").is_dir() {
            Ok(dir)
        } else {
            Err(Error::Container {
                name: name.to_string(),
                reason: format!("no snapshot {snap:?} (see `berth snapshot list {name}`)"),
            })
        }
    }

    /// `berth snapshot delete NAME SNAP`.
    pub fn delete_snapshot(&self, name: &str, snap: &str) -> Result<(), Error> {
        validate::name(name)?;
        let _lock = self.store.lock(name)?;
        self.config(name)?;
        let dir = self.snapshot_dir(name, snap)?;
        // Renamed away first: a half-deleted snapshot is never listed.
        let doomed = dir.with_file_name(format!(".tmp-deleted-{snap}"));
        std::fs::rename(&dir, &doomed).map_err(io("remove", &dir))?;
        std::fs::remove_dir_all(&doomed).map_err(io("remove", &doomed))
    }

    /// `berth restore NAME SNAP`: the container's files as they were in SNAP (stopped only).
    pub fn restore(&self, name: &str, snap: &str) -> Result<(), Error> {
        validate::name(name)?;
        crate::disks::refuse_layer_copy(&self.store, name, "restore")?;
        validate::name(name)?;
        let _lock = self.store.lock(name)?;
        let config = self.config(name)?;
        let files = files_of(&self.store, name, &config)?;
        if self.running_state(name)?.is_some() {
            return Err(Error::Container {
                name: name.to_string(),
                reason: format!("it is running: stop it first (`berth stop {name}`)"),
            });
        }
        recover(&self.store, name);
        let from = self.snapshot_dir(name, snap)?.join("files");
        let current = self.store.container_dir(name).join(files.rel);
        let tmp = current.with_file_name(format!("{}.tmp", file_name(&current)));
        let old = current.with_file_name(format!("{}.old", file_name(&current)));
        copy_all(&from, &tmp)?;
        std::fs::rename(&current, &old).map_err(io("move aside", &current))?;
        std::fs::rename(&tmp, &current).map_err(io("rename into place", &tmp))?;
        let _ = std::fs::remove_dir_all(&old);
        // overlayfs's scratch space belonged to the old upper layer.
        if files.rel == "layer/upper" {
            let work = self.store.container_dir(name).join("layer/work");
            let _ = std::fs::remove_dir_all(&work);
            std::fs::create_dir(&work).map_err(io("create", &work))?;
        }
        Ok(())
    }

    /// `berth copy SRC DST`: a new container with SRC's settings and a copy of its files (a
    /// running SRC is frozen meanwhile), named and hostnamed DST.
    pub fn copy(&self, src: &str, dst: &str) -> Result<(), Error> {
        validate::name(src)?;
        crate::disks::refuse_layer_copy(&self.store, src, "copy")?;
        validate::name(src)?;
        validate::name(dst)?;
        // Locks in name order: two crossed copies cannot wait for each other.
        let (first, second) = if src < dst { (src, dst) } else { (dst, src) };
        let _l1 = self.store.lock(first)?;
        let _l2 = (first != second)
            .then(|| self.store.lock(second))
            .transpose()?;
        let mut config = self.config(src)?;
        let files = files_of(&self.store, src, &config)?;
        let _users = berth_image::Images::open(&self.store)?.users_lock(false)?;
        recover(&self.store, src);
        config.hostname = None;
        config.autostart.enabled = false;
        let from = self.store.container_dir(src).join(files.rel);
        self.store
            .create_container_with(dst, &config.to_toml()?, |dir| {
                let to = dir.join(files.rel);
                if let Some(parent) = to.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| berth_store::StoreError::Io {
                        action: "create",
                        path: parent.to_path_buf(),
                        source: e,
                    })?;
                }
                self.frozen(src, || copy_all(&from, &to)).map_err(|e| {
                    berth_store::StoreError::Io {
                        action: "copy",
                        path: from.clone(),
                        source: std::io::Error::other(e.to_string()),
                    }
                })?;
                if files.rel == "layer/upper" {
                    let work = dir.join("layer/work");
                    std::fs::create_dir_all(&work).map_err(|e| berth_store::StoreError::Io {
                        action: "create",
                        path: work.clone(),
                        source: e,
                    })?;
                }
                Ok(())
            })?;
        let layers = lower::container_layers(&self.store, dst, &config)?;
        lower::write_hostname(&layers, dst);
        Ok(())
    }

    /// `berth publish NAME [--snapshot SNAP] --alias A`: an image of the container's files
    /// as it sees them (its layer merged over its image), from now or from SNAP.
    pub fn publish(
        &self,
        name: &str,
        snap: Option<&str>,
        alias: &str,
        replace: bool,
    ) -> Result<berth_image::Image, Error> {
        validate::name(name)?;
        crate::disks::refuse_layer_copy(&self.store, name, "publish")?;
        berth_image::Images::open(&self.store)?.check_alias(alias, replace)?;
        let _lock = self.store.lock(name)?;
        let config = self.config(name)?;
        let files = files_of(&self.store, name, &config)?;
        recover(&self.store, name);
        let own = match snap {
            Some(s) => self.snapshot_dir(name, s)?.join("files"),
            None => self.store.container_dir(name).join(files.rel),
        };
        let lower = (files.rel == "layer/upper")
            .then(|| lower::image_of(&self.store, &config))
            .transpose()?;
        let images = berth_image::Images::open(&self.store)?;
        let described = match snap {
            Some(s) => format!("container {name}, snapshot {s}"),
            None => format!("container {name}"),
        };
        let mut meta = berth_image::Metadata::new("publish", &described);
        if let Some(l) = &lower {
            meta.os = l.metadata.os.clone();
            meta.release = l.metadata.release.clone();
        }
        let image = self.frozen(name, || {
            images
                .build(Some(alias), meta, |rootfs| {
                    match &lower {
                        Some(l) => merged_copy(&own, &l.rootfs, rootfs),
                        None => copy_all(&own, rootfs),
                    }
                    .map_err(|e| berth_image::Error::Bad(alias.to_string(), e.to_string()))?;
                    Ok(None)
                })
                .map_err(Error::from)
        })?;
        Ok(image)
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Copies the merged view of `upper` over `lower` into `dst`: mounted as a read-only overlay
/// (both as lower layers, so whiteouts and opaque directories apply) in a mount namespace of
/// a child process of its own, never visible on the host.
fn merged_copy(upper: &Path, lower: &Path, dst: &Path) -> Result<(), Error> {
    let stage = dst.with_file_name("merged");
    std::fs::create_dir(&stage).map_err(io("create", &stage))?;
    let result = match berth_sys::clone::fork_checked().map_err(|errno| Error::Sys {
        what: "fork",
        errno,
    })? {
        None => {
            // Not a moment longer than the berth that needs it.
            let _ = rustix::process::set_parent_process_death_signal(Some(
                rustix::process::Signal::KILL,
            ));
            let ok = merged_copy_child(upper, lower, &stage, dst);
            berth_sys::clone::exit_now(if ok { 0 } else { 1 })
        }
        Some(pid) => {
            let status = rustix::process::waitpid(
                rustix::process::Pid::from_raw(pid),
                rustix::process::WaitOptions::empty(),
            )
            .ok()
            .flatten()
            .map(|(_, s)| s);
            if status.is_some_and(|s| s.exit_status() == Some(0)) {
                Ok(())
            } else {
                Err(Error::Io {
                    what: format!("copy the merged files of {}", upper.display()),
                    source: std::io::Error::other("mounting or copying failed"),
                })
            }
        }
    };
    let _ = std::fs::remove_dir(&stage);
    result
}

/// In the child: a private mount namespace, the overlay, `cp -a`.
fn merged_copy_child(upper: &Path, lower: &Path, stage: &Path, dst: &Path) -> bool {
    use rustix::mount::{MountFlags, MountPropagationFlags};
    if berth_sys::clone::unshare(berth_sys::clone::flags::NEWNS).is_err()
        || rustix::mount::mount_change(
            "/",
            MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
        )
        .is_err()
    {
        return false;
    }
    // The layers through descriptors: a ',' or ':' in a path would split the options.
    let open = |p: &Path| {
        rustix::fs::open(
            p,
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
    };
    let (Ok(up), Ok(lo)) = (open(upper), open(lower)) else {
        return false;
    };
    let Ok(opts) = std::ffi::CString::new(format!(
        "lowerdir={}:{},userxattr",
        berth_runtime::resolve::fd_path(&up),
        berth_runtime::resolve::fd_path(&lo)
    )) else {
        return false;
    };
    if rustix::mount::mount(
        "overlay",
        stage,
        "overlay",
        MountFlags::RDONLY,
        Some(opts.as_c_str()),
    )
    .is_err()
    {
        return false;
    }
    // The merged root becomes `dst`, its own owner and mode included.
    copy_all(stage, dst).is_ok()
}
