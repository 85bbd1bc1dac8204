//! berth-sys: the few Linux interfaces berth needs that `rustix` does not wrap safely, each
//! behind a small typed function. This is the only crate of the workspace with `unsafe` code;
//! every block carries a `// SAFETY:` comment with the invariant it relies on.
//!
//! No policy lives here: callers decide what to call and in which order.

pub mod caps;
pub mod clone;
pub mod exec;
pub mod ids;
pub mod loopdev;
pub mod mount;
pub mod net;
pub mod ns;
pub mod proc;
pub mod seccomp;
pub mod signal;

pub use rustix::io::Errno;
