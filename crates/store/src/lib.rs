//! berth-store: the on-disk layout under the state root (`/var/lib/berth` unless `--root`),
//! atomic writes, and the host's subordinate id ranges.
//!
//! Everything written here is written under a temporary name and renamed into place, so a
//! crash leaves either the old state or the new one, never half of either.

#![forbid(unsafe_code)]

pub mod atomic;
pub mod containers;
pub mod state;
pub mod subid;

use std::path::{Path, PathBuf};

/// Errors of the store; each names the path involved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("container {0:?} does not exist (see `berth list`)")]
    NoSuchContainer(String),
    #[error("container {0:?} already exists: choose another name or `berth delete` it first")]
    Exists(String),
    #[error("state of container {name:?} is unreadable ({path}): {reason}")]
    BadState {
        name: String,
        path: PathBuf,
        reason: String,
    },
    #[error("{path}: no range for root; {reason}")]
    SubId { path: PathBuf, reason: String },
}

impl StoreError {
    pub(crate) fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| StoreError::Io {
            action,
            path,
            source,
        }
    }
}

/// The state root when neither `--root` nor BERTH_ROOT says otherwise.
pub const DEFAULT_ROOT: &str = "/var/lib/berth";

/// The state root and the paths below it.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Opens (creating it if needed) the state root. The root is 0711: other users may reach
    /// a container's files only where its own permissions allow, as with LXC's /var/lib/lxc.
    ///
    /// The root is kept canonical (no `..`, no symlinks): locks, sockets and host-wide names
    /// (cgroups) derive from it, so two spellings of one root must give one store.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        atomic::create_dir_all_mode(root, 0o711)?;
        let root = std::fs::canonicalize(root).map_err(StoreError::io("resolve", root))?;
        Ok(Store { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn images_dir(&self) -> PathBuf {
        self.root.join("images")
    }
}
