//! One module per command.

pub mod chroot;
mod host;
pub mod run;
