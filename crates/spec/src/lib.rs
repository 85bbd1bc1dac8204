//! berth-spec: what a user asks for, in typed form, and the checks that turn it into a
//! [`Plan`] the runtime can execute without re-reading optional configuration.
//!
//! Pure: no syscalls and no filesystem access, so every rule here is unit-tested.

#![forbid(unsafe_code)]

pub mod cidr;
pub mod config;
pub mod limits;
pub mod netconfig;
pub mod passwd;
pub mod plan;
pub mod units;
pub mod validate;

pub use limits::{IoLimit, Limits, LimitsConfig, Rlimit};
pub use plan::{Bind, Dns, IdMap, Iface, IfaceKind, NetMode, Plan, User};
pub use units::{parse_cpus, parse_size};

/// Every way a piece of user input can be wrong. Each variant names the input and says what
/// would be right, because the message is shown to the user as it is.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpecError {
    #[error("invalid size {0:?}: use a number with an optional unit, e.g. 512MiB, 1G or 1048576")]
    Size(String),
    #[error(
        "invalid cpu count {0:?}: use a number from 0.01 to the host's number of cpus, such as 1 or 1.5"
    )]
    Cpus(String),
    #[error("invalid pids limit {0:?}: use a positive whole number")]
    Pids(String),
    #[error("invalid bind {0:?}: use SRC:DST or SRC:DST:ro with absolute paths")]
    Bind(String),
    #[error("invalid environment entry {0:?}: use KEY=VALUE")]
    Env(String),
    #[error(
        "invalid image name {0:?}: use NAME or NAME/RELEASE, with lower-case letters, digits, '-', '.' and '_'"
    )]
    ImageName(String),
    #[error("invalid user {0:?}: use UID or UID:GID (numbers)")]
    User(String),
    #[error("invalid hostname {0:?}: use letters, digits, '-' and '.', at most 64 characters")]
    Hostname(String),
    #[error("invalid path {0:?}: {1}")]
    Path(String, &'static str),
    #[error(
        "invalid name {0:?}: use lower-case letters, digits and '-', starting with a letter or digit, at most 63 characters"
    )]
    Name(String),
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A value's own message, shown as it is (inside a [`SpecError::Key`]).
    #[error("{0}")]
    Plain(String),
    #[error("invalid configuration: {0}: {1}")]
    Key(&'static str, String),
}
