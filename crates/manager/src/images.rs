//! Images as commands use them: found by name, built on first use when berth knows how
//! (the built-in `busybox`), and kept while containers are made from them.

use crate::Error;
use berth_image::{Image, Images};
use berth_store::Store;
use std::collections::BTreeSet;
use std::io::Write;

/// The image called `name`; the built-in ones are built on first use.
pub fn resolve_or_build(store: &Store, name: &str) -> Result<Image, Error> {
    berth_spec::validate::image_name(name)?;
    let images = Images::open(store)?;
    if let Some(image) = images.resolve(name)? {
        return Ok(image);
    }
    match name {
        berth_image::busybox::ALIAS => {
            // Two first uses at once: the second waits, then finds the first's image.
            let _lock = images.build_lock(name)?;
            match images.resolve(name)? {
                Some(image) => Ok(image),
                None => Ok(berth_image::busybox::build_image(&images, None)?),
            }
        }
        _ => match berth_image::debian::auto_options(name) {
            // Built once, on first use (minutes); later uses find it.
            Some(opts) => {
                let _lock = images.build_lock(name)?;
                if let Some(image) = images.resolve(name)? {
                    return Ok(image);
                }
                let mut err = std::io::stderr();
                let tty = rustix::termios::isatty(rustix::stdio::stderr());
                let _ = writeln!(
                    err,
                    "berth: building {name} with debootstrap from {} (once)",
                    opts.mirror
                );
                Ok(berth_image::debian::build(&images, &opts, &mut err, tty)?)
            }
            None => Err(berth_image::Error::Unknown(name.to_string()).into()),
        },
    }
}

/// The containers made from image `id` (their configs name it). A config that cannot be
/// read is an error: its container might be made from the image.
pub fn users(store: &Store, id: &str) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    for name in store.list()? {
        if image_of(store, &name)?.as_deref() == Some(id) {
            out.push(name);
        }
    }
    Ok(out)
}

/// `berth image delete NAME [--force]`: refused while containers are made from it, unless
/// `force`; returns the containers still using it (the image goes when the last does).
pub fn delete(store: &Store, name: &str, force: bool) -> Result<Vec<String>, Error> {
    let images = Images::open(store)?;
    let _users = images.users_lock(true)?;
    let image = images
        .resolve(name)?
        .ok_or_else(|| berth_image::Error::Unknown(name.to_string()))?;
    let users = users(store, &image.id)?;
    images.delete(name, &users, force)?;
    Ok(users)
}

/// Removes the images deleted with --force that no container is made from any more; none
/// while a container's config cannot be read.
pub fn prune(store: &Store) -> Result<(), Error> {
    let _users = Images::open(store)?.users_lock(true)?;
    let mut used = BTreeSet::new();
    for name in store.list()? {
        if let Some(id) = image_of(store, &name)? {
            used.insert(id);
        }
    }
    Images::open(store)?.prune(&used)?;
    Ok(())
}

/// The image id container `name` is made from, if any, read leniently: only
/// `rootfs.image_id` matters here, whatever else the file holds.
fn image_of(store: &Store, name: &str) -> Result<Option<String>, Error> {
    #[derive(serde::Deserialize)]
    struct Lenient {
        rootfs: Option<LenientRootfs>,
    }
    #[derive(serde::Deserialize)]
    struct LenientRootfs {
        image_id: Option<String>,
    }
    let text = store.read_config(name)?;
    let config: Lenient = toml::from_str(&text).map_err(|e| {
        berth_spec::SpecError::Config(format!(
            "container {name:?}'s config.toml is unreadable ({}): fix it (`berth config edit {name}`) before images can be deleted",
            e.message()
        ))
    })?;
    Ok(config.rootfs.and_then(|r| r.image_id))
}
