//! The last steps before a container's process runs its command, shared by a launch and by
//! `exec`: capability bounding set, seccomp, credentials, working directory.

use crate::caps;
use berth_spec::User;
use rustix::io::Errno;

/// What the process ends up as.
pub struct Target<'a> {
    /// The process has a network namespace of its own (CAP_NET_ADMIN may stay).
    pub private_net: bool,
    /// The process is in a user namespace of its own (CAP_SYS_PTRACE may stay).
    pub userns: bool,
    /// Apply the default capability set (and the seccomp profile, when given).
    pub confine: bool,
    pub seccomp: Option<&'a [u8]>,
    pub user: &'a User,
    pub cwd: &'a str,
}

/// Applies `t`. The order matters: the bounding set and seccomp need CAP_SETPCAP and
/// CAP_SYS_ADMIN, which a non-root user loses at setresuid; the working directory is entered
/// with the final credentials, so that a user cannot start in a directory closed to it.
pub fn drop_to(t: &Target<'_>) -> Result<(), (Errno, String)> {
    let keep = caps::kept(t.private_net, t.userns);
    if t.confine {
        caps::apply_bounding(&keep)
            .map_err(|e| (e, format!("drop capabilities from the bounding set: {e}")))?;
    }
    if let Some(bpf) = t.seccomp {
        berth_sys::seccomp::load_filter(bpf)
            .map_err(|e| (e, format!("load the seccomp profile: {e}")))?;
    }
    let u = t.user;
    berth_sys::ids::setgroups(&u.groups)
        .map_err(|e| (e, format!("set supplementary groups: {e}")))?;
    berth_sys::ids::setresgid(u.gid).map_err(|e| (e, format!("set group id {}: {e}", u.gid)))?;
    berth_sys::ids::setresuid(u.uid).map_err(|e| (e, format!("set user id {}: {e}", u.uid)))?;
    if t.confine && u.uid == 0 {
        caps::apply_process_sets(&keep)
            .map_err(|e| (Errno::PERM, format!("set capabilities: {e}")))?;
    }
    rustix::process::chdir(t.cwd).map_err(|e| {
        let text = std::io::Error::from_raw_os_error(e.raw_os_error()).to_string();
        (
            e,
            format!(
                "cannot change to directory {}: {}",
                t.cwd,
                text.split(" (os error").next().unwrap_or("")
            ),
        )
    })
}
