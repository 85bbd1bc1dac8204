//! Facts about the host that several commands need.

use anyhow::Context;
use std::path::Path;

/// The runtime's view of the host: cgroup layout and the seccomp cache directory.
pub fn runtime_host(state_root: &Path) -> anyhow::Result<berth_runtime::Host> {
    Ok(berth_runtime::Host {
        cgroups: berth_cgroups::Layout::detect().context("detect the cgroup layout")?,
        cache_dir: state_root.join("cache"),
    })
}

/// Host cpus available to this process.
pub fn cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}
