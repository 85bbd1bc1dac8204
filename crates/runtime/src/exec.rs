//! Finding and executing the command inside the container, with chroot(8)'s exit codes:
//! 127 when the command does not exist, 126 when it exists but cannot be run.

use rustix::io::Errno;
use std::ffi::CString;

/// Default PATH when the environment has none (Debian's for root).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Why the command could not be executed.
#[derive(Debug)]
pub struct ExecFailure {
    pub code: u8,
    pub errno: Errno,
}

/// Executes `argv` with `env`, searching `PATH` (from `env`) when argv[0] has no '/', as
/// execvp(3) does. Returns only on failure.
pub fn exec(argv: &[String], env: &[std::ffi::OsString]) -> ExecFailure {
    use std::os::unix::ffi::OsStrExt;
    let fail = |errno: Errno| ExecFailure {
        code: if errno == Errno::NOENT || errno == Errno::NOTDIR {
            127
        } else {
            126
        },
        errno,
    };
    let Some(cmd) = argv.first() else {
        return fail(Errno::NOENT);
    };
    let cargs: Result<Vec<CString>, _> = argv.iter().map(|a| CString::new(a.as_bytes())).collect();
    let cenv: Result<Vec<CString>, _> = env.iter().map(|e| CString::new(e.as_bytes())).collect();
    let (Ok(cargs), Ok(cenv)) = (cargs, cenv) else {
        return fail(Errno::INVAL);
    };
    if cmd.contains('/') {
        let Ok(path) = CString::new(cmd.as_bytes()) else {
            return fail(Errno::INVAL);
        };
        return fail(berth_sys::exec::execve(&path, &cargs, &cenv));
    }
    let path_var = env
        .iter()
        .find_map(|e| e.as_bytes().strip_prefix(b"PATH="))
        .map(String::from_utf8_lossy)
        .unwrap_or(std::borrow::Cow::Borrowed(DEFAULT_PATH));
    let mut seen_eacces = false;
    for dir in path_var.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let Ok(full) = CString::new(format!("{dir}/{cmd}")) else {
            continue;
        };
        match berth_sys::exec::execve(&full, &cargs, &cenv) {
            Errno::ACCESS => seen_eacces = true,
            Errno::NOENT | Errno::NOTDIR | Errno::LOOP | Errno::NAMETOOLONG => {}
            other => return fail(other),
        }
    }
    fail(if seen_eacces {
        Errno::ACCESS
    } else {
        Errno::NOENT
    })
}
