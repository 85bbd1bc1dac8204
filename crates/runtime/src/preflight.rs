//! Checks made before anything is created, so that bad input costs nothing and leaves
//! nothing behind: the rootfs, the command, bind sources, and mount targets that would lead
//! out of the rootfs.

use crate::launcher::LaunchError;
use crate::resolve::open_as_container;
use berth_spec::Plan;
use rustix::fd::AsFd;
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

/// Paths the mount table mounts on, checked for symlinks that leave the rootfs.
const TARGETS: &[&str] = &["/proc", "/dev", "/sys", "/run", "/tmp"];

pub fn check(plan: &Plan) -> Result<(), LaunchError> {
    let bad = |m: String| LaunchError {
        code: 125,
        message: m,
    };
    let root = rustix::fs::open(
        &plan.rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        bad(format!(
            "root filesystem {}: {}",
            plan.rootfs.display(),
            describe(e)
        ))
    })?;
    for t in TARGETS
        .iter()
        .copied()
        .chain(plan.binds.iter().map(|b| b.target.as_str()))
    {
        if plan.rootfs_recursive
            && !matches!(t, "/proc" | "/dev")
            && !plan.binds.iter().any(|b| b.target == t)
        {
            continue;
        }
        match crate::resolve::leads_out(root.as_fd(), t) {
            Ok(false) => {}
            Ok(true) => {
                return Err(bad(format!(
                    "root filesystem {}: {t} is a symlink that leads out of it; every path must resolve inside the rootfs",
                    plan.rootfs.display()
                )));
            }
            Err(e) => {
                return Err(bad(format!(
                    "root filesystem {}: {t}: {}",
                    plan.rootfs.display(),
                    describe(e)
                )));
            }
        }
    }
    // Where container root's writes land: the rootfs, or an instance's own layer.
    let written = match (&plan.overlay_rw, plan.ephemeral) {
        (Some(rw), _) => Some(rw),
        (None, false) => Some(&plan.rootfs),
        (None, true) => None,
    };
    if plan.id_map.is_some()
        && let Some(written) = written
        && !private_to_root(written)
    {
        return Err(bad(format!(
            "{} is reachable by every user of this host: a setuid program the container's root writes in it would be setuid-root on the host; make a directory above it private (chmod 700) or use --ephemeral",
            written.display()
        )));
    }
    for b in &plan.binds {
        if b.target == "/" {
            return Err(bad(format!(
                "bind {}:/ would hide the whole rootfs; bind to a directory inside it",
                b.source.display()
            )));
        }
        if let Err(e) = std::fs::metadata(&b.source) {
            return Err(bad(format!(
                "bind source {} does not exist or cannot be read: {e}",
                b.source.display()
            )));
        }
    }
    if let Some(cmd) = plan.command.first()
        && cmd.starts_with('/')
        && plan.command_is_default
        && open_as_container(root.as_fd(), cmd, OFlags::PATH).is_err()
    {
        return Err(bad(format!(
            "root filesystem {} has no {cmd} to run by default; give a command to run",
            plan.rootfs.display()
        )));
    }
    Ok(())
}

fn describe(e: Errno) -> String {
    std::io::Error::from_raw_os_error(e.raw_os_error()).to_string()
}

/// Whether some directory on the way to `path` (itself included) is root's and closed to
/// everyone else, so that no other user of the host can reach what is inside.
fn private_to_root(path: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    path.ancestors()
        .any(|a| std::fs::metadata(a).is_ok_and(|m| m.uid() == 0 && m.mode() & 0o011 == 0))
}
