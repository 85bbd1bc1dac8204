//! Facts about the host that several commands need.

use anyhow::Context;
use std::path::Path;

/// The runtime's view of the host: the cgroup layout, restricted to the hierarchies of
/// `controllers` (read only when the container gets a cgroup), and the seccomp cache.
pub fn runtime_host(
    state_root: &Path,
    controllers: Option<&[&str]>,
) -> anyhow::Result<berth_runtime::Host> {
    Ok(berth_runtime::Host {
        cgroups: match controllers {
            Some(c) => Some(
                berth_cgroups::Layout::detect()
                    .context("detect the cgroup layout")?
                    .only(c),
            ),
            None => None,
        },
        cache_dir: state_root.join("cache"),
    })
}

/// Host cpus available to this process (see `berth_manager::ops::host_cpus`).
pub fn cpus() -> usize {
    berth_manager::ops::host_cpus()
}
