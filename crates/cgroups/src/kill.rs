//! Killing the processes of a cgroup by pid, for v1 hierarchies and kernels without
//! `cgroup.kill`.
//!
//! A pid read from `cgroup.procs` may belong to a process that exits and whose number is
//! reused by an unrelated one before the signal goes out. To never kill that stranger, each
//! process is first pinned with a pidfd, then the list is read again: a pid still listed
//! after its pidfd was opened is either the pinned process (signal it) or a new process in
//! our cgroup while the pinned one is gone (the pidfd signal fails with ESRCH, harmlessly).

use std::path::Path;

use rustix::fd::OwnedFd;
use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags, Signal};

use crate::Error;

/// A process pinned for signalling.
enum Target {
    Pidfd(OwnedFd),
    /// Linux < 5.3 has no pidfd_open; the second read still narrows the race to microseconds.
    Pid(Pid),
}

/// Sends SIGKILL to every process listed in `dir`'s `cgroup.procs` and returns how many were
/// listed (0: the cgroup was empty). Processes forked meanwhile are caught by calling again.
pub(crate) fn kill_listed(dir: &Path) -> Result<usize, Error> {
    let procs = dir.join("cgroup.procs");
    let Some(text) = read_procs(&procs)? else {
        return Ok(0);
    };
    // Never the caller: a launcher that could not step out of the cgroup must live to
    // report why.
    let me = rustix::process::getpid().as_raw_nonzero().get();
    let listed: Vec<i32> = parse_pids(&text).into_iter().filter(|&p| p != me).collect();
    if listed.is_empty() {
        return Ok(0);
    }
    let mut targets = Vec::with_capacity(listed.len());
    for &pid in &listed {
        if let Some(target) = pin(pid).map_err(|e| kill_error(&procs, pid, e))? {
            targets.push((pid, target));
        }
    }
    let Some(still) = read_procs(&procs)? else {
        return Ok(listed.len());
    };
    let still_listed = parse_pids(&still);
    for (pid, target) in targets {
        if still_listed.binary_search(&pid).is_ok() {
            signal(&target).map_err(|e| kill_error(&procs, pid, e))?;
        }
    }
    Ok(listed.len())
}

/// `cgroup.procs`, or `None` when the cgroup was removed meanwhile (by a container's
/// supervisor, say): gone before the open (ENOENT) or between the open and the read (ENODEV).
fn read_procs(procs: &Path) -> Result<Option<String>, Error> {
    match std::fs::read_to_string(procs) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.raw_os_error() == Some(Errno::NODEV.raw_os_error()) => Ok(None),
        Err(source) => Err(Error::Read {
            path: procs.to_path_buf(),
            source,
        }),
    }
}

/// Pins `pid`; `None` when it has already gone.
fn pin(pid: i32) -> Result<Option<Target>, Errno> {
    let Some(raw) = Pid::from_raw(pid) else {
        return Ok(None);
    };
    match rustix::process::pidfd_open(raw, PidfdFlags::empty()) {
        Ok(fd) => Ok(Some(Target::Pidfd(fd))),
        Err(Errno::SRCH) => Ok(None),
        Err(Errno::NOSYS) => Ok(Some(Target::Pid(raw))),
        Err(e) => Err(e),
    }
}

/// SIGKILL; a process that has exited meanwhile counts as killed.
fn signal(target: &Target) -> Result<(), Errno> {
    let sent = match target {
        Target::Pidfd(fd) => rustix::process::pidfd_send_signal(fd, Signal::KILL),
        Target::Pid(pid) => rustix::process::kill_process(*pid, Signal::KILL),
    };
    match sent {
        Err(Errno::SRCH) => Ok(()),
        other => other,
    }
}

fn kill_error(procs: &Path, pid: i32, errno: Errno) -> Error {
    Error::Kill {
        path: procs.to_owned(),
        pid,
        source: errno.into(),
    }
}

/// The pids of a `cgroup.procs` text, sorted and without duplicates (v1 does not promise
/// either).
fn parse_pids(text: &str) -> Vec<i32> {
    let mut pids: Vec<i32> = text
        .split_ascii_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pids_are_sorted_and_unique() {
        assert_eq!(parse_pids("30\n4\n30\n17\n"), [4, 17, 30]);
        assert_eq!(parse_pids(""), Vec::<i32>::new());
        assert_eq!(parse_pids("12\nx\n"), [12]);
    }
}
