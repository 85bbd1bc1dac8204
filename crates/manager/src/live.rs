//! Limits changed on a running container (`berth config set NAME limits.KEY=VALUE`): what
//! the kernel can change in place is changed at once; the rest is named, to take effect at
//! the next start.

use berth_cgroups::Cgroup;
use berth_spec::Limits;
use berth_spec::config::Config;
use berth_store::state::State;

use crate::Error;

/// Puts `new`'s limits in place of `old`'s in the running container's cgroup. On a failure
/// half-way, what was written is put back, so the container keeps the limits its config
/// still says. Returns notes on changed settings that wait for the next start.
pub(crate) fn apply(
    state: &State,
    old_limits: &Limits,
    new_limits: &Limits,
) -> Result<Vec<String>, Error> {
    let cgroup = Cgroup::adopt(&crate::ops::paths(state));
    // A memory limit below what the container holds would make v2 OOM-kill it (v1 refuses
    // with EBUSY): refuse before writing, with the figure.
    if let Some(new_memory) = new_limits.memory
        && old_limits.memory.is_none_or(|old| new_memory < old)
        && let Some(used) = cgroup.usage().memory_bytes
        && new_memory < used
    {
        cgroup.release();
        return Err(Error::Spec(berth_spec::SpecError::Key(
            "limits.memory",
            format!(
                "the container uses {used} bytes now, more than {new_memory}: free memory in it \
                 (or stop it) first, or set at least {used}"
            ),
        )));
    }
    let result = cgroup.update(old_limits, new_limits);
    if result.is_err()
        && let Err(e) = cgroup.update(new_limits, old_limits)
    {
        tracing::warn!("could not put the old limits back: {e}");
    }
    cgroup.release();
    result?;
    Ok(deferred(old_limits, new_limits))
}

/// The changed settings a running container does not take: rlimits are inherited per
/// process, so changing the init's would not reach the processes already running.
fn deferred(old: &Limits, new: &Limits) -> Vec<String> {
    let mut notes = Vec::new();
    if old.rlimits != new.rlimits {
        notes.push(
            "process limits (nofile, nproc, ...) apply from the next start: running processes keep theirs"
                .to_string(),
        );
    }
    if old.disk_inodes != new.disk_inodes {
        notes.push("limits.disk_inodes applies from the next start".to_string());
    }
    notes
}

/// The limits a container's current config put in place, as the cgroup holds them. A device
/// of that config which is gone now cannot be reset anyway, so its throttle is left out
/// rather than failing the change.
pub(crate) fn in_force(old: &Config) -> Limits {
    crate::lower::limits(old).unwrap_or_else(|_| {
        let mut l = old
            .limits
            .resolve(crate::ops::host_cpus())
            .unwrap_or_default();
        l.io.clear();
        l
    })
}
