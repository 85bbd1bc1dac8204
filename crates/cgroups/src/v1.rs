//! What a new v1 cgroup needs beyond `mkdir`.

use std::path::Path;

use crate::Error;
use crate::fsio::{read_file, write_file};

/// cpuset files a v1 cgroup starts with empty (unless the hierarchy has `clone_children`).
/// The kernel refuses to attach a task to a cpuset with no CPUs or no memory nodes (ENOSPC),
/// so they are copied from the parent. Source: Documentation/admin-guide/cgroup-v1/cpusets.rst.
const CPUSET_INHERITED: [&str; 2] = ["cpuset.cpus", "cpuset.mems"];

/// Copies `cpuset.cpus` and `cpuset.mems` from `parent` to `dir` where `dir`'s are empty.
pub(crate) fn inherit_cpuset(parent: &Path, dir: &Path) -> Result<(), Error> {
    for file in CPUSET_INHERITED {
        let own = dir.join(file);
        if !read_file(&own)?.trim().is_empty() {
            continue;
        }
        let inherited = read_file(&parent.join(file))?;
        write_file(&own, inherited.trim())?;
    }
    Ok(())
}

/// A file that only a directory of the controller's hierarchy has, per controller.
const MARKERS: [(&str, &str); 7] = [
    ("memory", "memory.limit_in_bytes"),
    ("cpu", "cpu.shares"),
    ("cpuacct", "cpuacct.usage"),
    ("cpuset", "cpuset.cpus"),
    ("pids", "pids.max"),
    ("blkio", "blkio.throttle.read_bps_device"),
    ("freezer", "freezer.state"),
];

/// The controllers of the v1 hierarchy `dir` belongs to, from the files it has (an adopted
/// cgroup's hierarchy is not looked up in the mount table again).
pub(crate) fn controllers_of(dir: &Path) -> Vec<String> {
    MARKERS
        .iter()
        .filter(|(_, file)| dir.join(file).exists())
        .map(|(c, _)| (*c).to_string())
        .collect()
}
