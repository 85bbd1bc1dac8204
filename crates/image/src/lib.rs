//! berth-image: images, the read-only root filesystems containers are made from.
//!
//! An image lives in `images/ID/` (`rootfs/` and `metadata.toml`); names ("busybox",
//! "debian/bookworm") point at ids through `images/aliases.toml`. Every image is built in a
//! temporary directory and renamed into place when complete, so an interrupted build, import
//! or copy leaves no half image behind (see [`store`]). Builders: the built-in busybox image
//! ([`busybox`]).

pub mod busybox;
pub mod debian;
pub mod disk;
pub mod oci;
pub mod store;
pub mod tarball;

pub use store::{Image, Images, Metadata};

use std::path::PathBuf;

/// What went wrong with an image.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] berth_store::StoreError),
    #[error(transparent)]
    Spec(#[from] berth_spec::SpecError),
    #[error("no image {0:?}: `berth image list` shows the images; `berth image build` makes one")]
    Unknown(String),
    #[error("image {0:?}: {1}")]
    Bad(String, String),
    #[error("the container's disk: {0}")]
    Disk(String),
    #[error(
        "image {name:?} is used by {containers}: delete them first, or use --force (the image's name goes at once, its files when its last container is deleted)"
    )]
    InUse { name: String, containers: String },
    #[error(
        "{path} is not a static binary: install busybox-static (apt-get install busybox-static) for the built-in busybox image"
    )]
    NoStaticBusybox { path: PathBuf },
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: &std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.to_path_buf();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }
}
