//! berth-runtime: launching a container. The launcher (parent side) prepares what needs host
//! privileges while the child waits; the child (container side) builds the filesystem from a
//! table, pivots into it, drops privileges and execs. See DESIGN.md §3 for the sequence.

#![forbid(unsafe_code)]

pub mod attach;
pub mod caps;
mod child;
pub mod exec;
mod guestfiles;
mod init;
pub mod launcher;
pub mod mounts;
mod netdev;
mod preflight;
mod privileges;
pub mod pty;
pub mod relay;
pub mod resolve;
pub mod rlimits;
pub mod seccomp;
pub mod sync;

pub use launcher::{Host, LaunchError, Running, launch, run};

/// Whether `pid` is still the process that started at `start` (clock ticks since boot,
/// field 22 of /proc/PID/stat): pids are reused, start times are not.
pub fn proc_start_matches(pid: i32, start: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = s.get(s.rfind(')')? + 2..)?.to_string();
            rest.split(' ').nth(19)?.parse::<u64>().ok()
        })
        .is_some_and(|t| t == start)
}
