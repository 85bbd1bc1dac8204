//! A container's own disk (`limits.disk`) from the manager's side: made from the
//! container's layer when the key is set, resized when it changes (online while running:
//! grown only), and kept out of the commands that copy a layer as host files.

use std::path::Path;

use berth_image::disk;
use berth_spec::Limits;
use berth_spec::config::Config;
use berth_store::Store;

use crate::Error;

fn refuse(why: String) -> Error {
    Error::Spec(berth_spec::SpecError::Key("limits.disk", why))
}

/// A disk error as one about the key `limits.disk`.
fn as_key(e: Error) -> Error {
    match e {
        Error::Image(berth_image::Error::Disk(why)) => refuse(why),
        other => other,
    }
}

/// Whether `limits.disk` can hold this container's files: only an instance's own layer
/// over an image moves into a disk (a copied rootfs or a host directory stays where it is).
pub(crate) fn check_config(config: &Config, limits: &Limits) -> Result<(), Error> {
    if limits.disk.is_some() && !config.rootfs.is_overlay() {
        return Err(refuse(
            "holds an image container's own layer: use an image with the default storage \
             (overlay); a copied rootfs or a directory is not moved into a disk"
                .into(),
        ));
    }
    Ok(())
}

/// Makes the disk of a container whose layer is `layer` (layer/{upper,work}): the layer's
/// files move into the new filesystem, and the host's directories are left empty.
pub(crate) fn make(dir: &Path, limits: &Limits) -> Result<(), Error> {
    let Some(size) = limits.disk else {
        return Ok(());
    };
    let layer = dir.join("layer");
    disk::create(&dir.join(disk::DISK_FILE), size, limits.disk_inodes, &layer)?;
    for sub in ["upper", "work"] {
        let p = layer.join(sub);
        let meta = std::fs::metadata(&p).map_err(|e| Error::Io {
            what: format!("read {}", p.display()),
            source: e,
        })?;
        std::fs::remove_dir_all(&p)
            .and_then(|()| std::fs::create_dir(&p))
            .and_then(|()| {
                std::os::unix::fs::chown(
                    &p,
                    Some(std::os::unix::fs::MetadataExt::uid(&meta)),
                    Some(std::os::unix::fs::MetadataExt::gid(&meta)),
                )
            })
            .map_err(|e| Error::Io {
                what: format!("empty {} (its files are in the disk now)", p.display()),
                source: e,
            })?;
    }
    Ok(())
}

/// Puts a changed `limits.disk` in place, before the config saying so is written.
pub(crate) fn change(
    store: &Store,
    name: &str,
    old: &Limits,
    new: &Limits,
    running: bool,
) -> Result<(), Error> {
    if old.disk == new.disk && old.disk_inodes == new.disk_inodes {
        return Ok(());
    }
    let dir = store.container_dir(name);
    let Some(image) = disk::of(&dir) else {
        if new.disk.is_none() {
            return Ok(());
        }
        if running {
            return Err(refuse(
                "a running container cannot move into a disk: stop it, set the key, start it"
                    .into(),
            ));
        }
        return make(&dir, new).map_err(as_key);
    };
    let Some(size) = new.disk else {
        return Err(refuse(
            "the container has a disk; it can grow or shrink but not go (its files stay in it)"
                .into(),
        ));
    };
    if old.disk_inodes != new.disk_inodes {
        return Err(Error::Spec(berth_spec::SpecError::Key(
            "limits.disk_inodes",
            "is fixed when the disk is made (ext4 grows its inodes with its size)".into(),
        )));
    }
    let current = disk::size(&image)?;
    if size == current {
        return Ok(());
    }
    if !running {
        // Never resize a filesystem that is mounted somewhere: a container that has just
        // stopped may still hold it for a moment, and a leaked mount would hold it longer.
        if let Some(dev) =
            berth_sys::loopdev::attached_after(&image, std::time::Duration::from_secs(2))
        {
            return Err(refuse(format!(
                "the disk is still attached to {} (a process keeps the container's old mount namespace, or a file in it, open): `grep -l {} /proc/*/mountinfo` finds it",
                dev.display(),
                dev.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            )));
        }
        return disk::resize_offline(&image, size).map_err(|e| as_key(e.into()));
    }
    if size < current {
        return Err(refuse(
            "a mounted disk can only grow: stop the container to shrink it".into(),
        ));
    }
    let device = berth_sys::loopdev::find(&image).ok_or_else(|| {
        refuse("the running container's disk is not attached to a loop device".into())
    })?;
    disk::grow_online(&image, &device, size).map_err(|e| as_key(e.into()))
}

/// Refuses a command that copies a container's layer as host files when the layer lives in
/// a disk (snapshot, restore, copy, publish handle host directories only, for now).
pub(crate) fn refuse_layer_copy(store: &Store, name: &str, what: &str) -> Result<(), Error> {
    if disk::of(&store.container_dir(name)).is_some() {
        return Err(Error::Container {
            name: name.to_string(),
            reason: format!(
                "its files are in its own disk (limits.disk), which `berth {what}` does not handle yet"
            ),
        });
    }
    Ok(())
}
