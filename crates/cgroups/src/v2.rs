//! What the unified (v2) tree needs beyond `mkdir`: controllers delegated from the parent,
//! and the kernel's own kill switch.

use std::io;
use std::path::Path;

use crate::Error;
use crate::fsio::{read_file, write};

/// Makes the controllers of `wanted` that `parent` has (its `cgroup.controllers`) enabled in
/// its `cgroup.subtree_control`, which is what gives a child directory the files of those
/// controllers (cgroup-v2.rst, "Enabling and Disabling"). Returns the controllers a child of
/// `parent` gets. Controllers are left enabled afterwards: other children may rely on them.
pub(crate) fn delegate_controllers(parent: &Path, wanted: &[&str]) -> Result<Vec<String>, Error> {
    let available = read_file(&parent.join("cgroup.controllers"))?;
    let subtree_control = parent.join("cgroup.subtree_control");
    let mut enabled: Vec<String> = read_file(&subtree_control)?
        .split_ascii_whitespace()
        .map(str::to_owned)
        .collect();
    let missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|c| available.split_ascii_whitespace().any(|a| a == *c))
        .filter(|c| !enabled.iter().any(|e| e == c))
        .collect();
    if missing.is_empty() {
        return Ok(enabled);
    }
    // One write for all of them: "+cpu +memory +pids".
    let request: Vec<String> = missing.iter().map(|c| format!("+{c}")).collect();
    let request = request.join(" ");
    write(&subtree_control, &request).map_err(|source| Error::EnableControllers {
        path: subtree_control.clone(),
        controllers: request,
        source,
    })?;
    enabled.extend(missing.into_iter().map(str::to_owned));
    Ok(enabled)
}

/// Asks the kernel to SIGKILL every process in `dir` and its descendants, race-free against
/// forks (`cgroup.kill`, Linux 5.14). Returns `false` when the kernel is older and has no
/// such file, so the caller must kill by pid instead.
pub(crate) fn kill_all(dir: &Path) -> Result<bool, Error> {
    let path = dir.join("cgroup.kill");
    match write(&path, "1") {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        // Removed between the open and the write (by the container's supervisor, say):
        // nothing is left to kill.
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NODEV.raw_os_error()) => Ok(true),
        Err(source) => Err(Error::Write { path, source }),
    }
}
