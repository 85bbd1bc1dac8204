//! cgroups for berth containers on v1, hybrid and v2 hosts.
//!
//! [`Layout::detect`] reads the mount table once; [`Cgroup::create`] makes one directory per
//! hierarchy, [`Cgroup::apply`] writes [`Limits`], [`Cgroup::attach`] (or, on pure v2,
//! `clone3(CLONE_INTO_CGROUP)` with [`Cgroup::v2_fd`]) puts the container in, and
//! [`Cgroup::remove`] (or dropping the [`Cgroup`]) kills what is left and removes it all.
//!
//! Everything here sits on a container's start path, so it spawns no process, re-reads no
//! mount table and writes each control file with a single `write(2)`.
#![forbid(unsafe_code)]

mod cgroup;
mod devices;
mod error;
mod fsio;
mod kill;
mod layout;
mod limits;
mod usage;
mod v1;
mod v2;

pub use cgroup::{Cgroup, V1Stay};
pub use devices::resolve_devices;
pub use error::Error;
pub use layout::{Layout, V1Hierarchy, Version};
pub use limits::{
    CPU_PERIOD_US, CpuQuota, LIMIT_CONTROLLERS, LimitError, Limits, Row, TABLE, cpu_quota,
    validate, weight_to_bfq, weight_to_shares,
};
pub use usage::Usage;
