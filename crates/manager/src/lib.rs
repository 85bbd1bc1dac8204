//! berth-manager: what the commands on system containers do. Each operation takes the
//! container's lock, reads its validated config and state, and composes the store, the
//! runtime and the cgroups. The CLI only parses arguments and prints.

#![forbid(unsafe_code)]

mod disks;
pub mod images;
mod layers;
mod live;
pub mod lower;
pub mod lxcfs;
pub mod networks;
pub mod ops;
pub mod snapshots;
pub mod status;
pub mod supervisor;
pub mod top;

pub use supervisor::console_socket;

pub use ops::{CreateSource, ExecOptions, Manager, StopOptions};
pub use status::{ContainerInfo, RunState};

use berth_runtime::LaunchError;
use berth_spec::SpecError;
use berth_store::StoreError;
use rustix::io::Errno;

/// Everything that can go wrong, each saying what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Image(#[from] berth_image::Error),
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error("{}", .0.message)]
    Launch(LaunchError),
    #[error(transparent)]
    Cgroups(#[from] berth_cgroups::Error),
    #[error("container {0:?} is already running")]
    Running(String),
    #[error("container {0:?} is not running (start it with `berth start {0}`)")]
    NotRunning(String),
    #[error("container {0:?} is frozen: `berth unfreeze {0}` first")]
    Frozen(String),
    #[error("the rootfs of container {0:?} is missing ({1}); recreate the container")]
    RootfsMissing(String, String),
    #[error(
        "container {0:?} is running: stop it first (`berth stop {0}`) or delete it with --force"
    )]
    DeleteRunning(String),
    #[error("container {0:?} did not stop within {1} s; `berth stop --force {0}` kills it")]
    StopTimeout(String, u64),
    #[error("starting {name:?}: {reason}")]
    Start { name: String, reason: String },
    #[error("container {name:?}: {reason}")]
    Container { name: String, reason: String },
    #[error("{0}")]
    Net(String),
    #[error("{what}: {errno}")]
    Sys { what: &'static str, errno: Errno },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

impl From<LaunchError> for Error {
    fn from(e: LaunchError) -> Self {
        Error::Launch(e)
    }
}

/// The exit status this error stands for, when it is a command's own (exec).
impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Launch(e) => e.code,
            _ => 1,
        }
    }
}
