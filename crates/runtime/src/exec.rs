//! Finding and executing the command inside the container, with chroot(8)'s exit codes:
//! 127 when the command does not exist, 126 when it exists but cannot be run.
//!
//! The command is started from the container's init with a child that shares the init's
//! memory until it execs (berth_sys::exec::ExecPlan::spawn): no page tables are copied,
//! which a fork would do for nothing since the child execs at once.

use berth_sys::signal::SavedMask;
use rustix::io::Errno;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;

/// Default PATH when the environment has none (Debian's for root).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Why the command could not be executed.
#[derive(Debug)]
pub struct ExecFailure {
    pub code: u8,
    pub errno: Errno,
}

impl ExecFailure {
    fn from_errno(errno: Errno) -> Self {
        let code = if errno == Errno::NOENT || errno == Errno::NOTDIR {
            127
        } else {
            126
        };
        ExecFailure { code, errno }
    }
}

/// A command ready to exec (see berth_sys::exec::ExecPlan).
pub struct Prepared(berth_sys::exec::ExecPlan);

/// Builds what [`spawn`] needs: the C strings of `argv` and `env`, and the paths to try
/// (argv[0] itself when it has a '/', otherwise each directory of `PATH` from `env`, as
/// execvp(3) searches). `mask` is the signal mask the command starts with.
pub fn prepare(
    argv: &[String],
    env: &[std::ffi::OsString],
    mask: SavedMask,
) -> Result<Prepared, ExecFailure> {
    let invalid = || ExecFailure::from_errno(Errno::INVAL);
    let cmd = argv
        .first()
        .ok_or_else(|| ExecFailure::from_errno(Errno::NOENT))?;
    let cargv: Vec<CString> = argv
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(|_| invalid())?;
    let cenv: Vec<CString> = env
        .iter()
        .map(|e| CString::new(e.as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(|_| invalid())?;
    let candidates = if cmd.contains('/') {
        vec![CString::new(cmd.as_bytes()).map_err(|_| invalid())?]
    } else {
        let path = env
            .iter()
            .find_map(|e| e.as_bytes().strip_prefix(b"PATH="))
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or_else(|| DEFAULT_PATH.to_string());
        path.split(':')
            .map(|d| if d.is_empty() { "." } else { d })
            .filter_map(|d| CString::new(format!("{d}/{cmd}")).ok())
            .collect()
    };
    Ok(Prepared(berth_sys::exec::ExecPlan::new(
        candidates, cargv, cenv, mask,
    )))
}

/// Starts the prepared command in a new process and returns its pid once it has exec'd, or
/// why it could not.
pub fn spawn(p: &Prepared) -> Result<i32, ExecFailure> {
    p.0.spawn().map_err(ExecFailure::from_errno)
}

/// Execs the prepared command in this process (a system container's init, which must be
/// PID 1 itself). Only returns on failure.
pub fn exec_here(p: &Prepared) -> ExecFailure {
    ExecFailure::from_errno(p.0.exec_here())
}
