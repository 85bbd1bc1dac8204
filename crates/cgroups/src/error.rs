//! The one error type of this crate. Each variant names the step that failed and carries the
//! file or directory it failed on, so that a caller's message reads like
//! "write /sys/fs/cgroup/pids/berth-web/pids.max: Invalid argument".

use std::io;
use std::path::PathBuf;

use crate::limits::LimitError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("read the mount table {path}")]
    ReadMountinfo { path: PathBuf, source: io::Error },

    #[error("no cgroup file system is mounted (looked in {path})")]
    NoCgroupMounts { path: PathBuf },

    #[error(
        "invalid cgroup name {name:?}: it must be one path component without control characters"
    )]
    InvalidName { name: String },

    #[error("cgroup {path} already exists")]
    Exists { path: PathBuf },

    #[error("create cgroup directory {path}")]
    CreateDir { path: PathBuf, source: io::Error },

    #[error("read {path}")]
    Read { path: PathBuf, source: io::Error },

    #[error("write {path}")]
    Write { path: PathBuf, source: io::Error },

    #[error("enable controllers {controllers:?} in {path}")]
    EnableControllers {
        path: PathBuf,
        controllers: String,
        source: io::Error,
    },

    #[error("open cgroup directory {path}")]
    OpenDir { path: PathBuf, source: io::Error },

    #[error("invalid limits")]
    InvalidLimits(#[from] LimitError),

    #[error(
        "the {controller} controller is not available on this host, so its limit cannot be set"
    )]
    MissingController { controller: &'static str },

    #[error(
        "limits.{key} cannot be set on this host: none of {files} exists in {path} (the kernel lacks that feature)"
    )]
    Unsupported {
        key: &'static str,
        files: String,
        path: PathBuf,
    },

    #[error("limits.{key}: write {value:?} to {path}")]
    Limit {
        key: &'static str,
        path: PathBuf,
        value: String,
        source: io::Error,
    },

    #[error("move process {pid} into {path}")]
    Attach {
        path: PathBuf,
        pid: i32,
        source: io::Error,
    },

    #[error("kill process {pid} listed in {path}")]
    Kill {
        path: PathBuf,
        pid: i32,
        source: io::Error,
    },

    #[error("list the child cgroups of {path}")]
    ListChildren { path: PathBuf, source: io::Error },

    #[error("remove cgroup directory {path}")]
    Remove { path: PathBuf, source: io::Error },
}
