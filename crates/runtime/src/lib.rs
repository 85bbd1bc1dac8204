//! berth-runtime: launching a container. The launcher (parent side) prepares what needs host
//! privileges while the child waits; the child (container side) builds the filesystem from a
//! table, pivots into it, drops privileges and execs. See DESIGN.md §3 for the sequence.

pub mod caps;
mod child;
pub mod exec;
mod init;
pub mod launcher;
pub mod mounts;
mod preflight;
mod privileges;
pub mod pty;
pub mod relay;
pub mod resolve;
pub mod seccomp;
pub mod sync;

pub use launcher::{Host, LaunchError, Running, launch, run};
