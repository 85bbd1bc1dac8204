//! The container's PID 1 for `run` and `chroot`: a tiny init (as tini and `docker --init`
//! are) that forwards signals to the command and reaps orphans. Without it the command itself
//! would be PID 1, which the kernel shields from every signal it has no handler for: `kill
//! -TERM` would do nothing and `abort()` would not end it with SIGABRT. With it, the command
//! behaves exactly as it would under chroot(8), exit statuses included.
//!
//! It stays non-dumpable and never execs, so nothing in the container can open
//! /proc/1/exe (the berth binary) for writing (CVE-2019-5736): that needs ptrace access to a
//! non-dumpable process, i.e. CAP_SYS_PTRACE in the host's user namespace.

use berth_sys::signal;
use rustix::process::WaitOptions;

/// Runs as PID 1 until `command` (our child) exits, then exits with its status (128+N for
/// death by signal N). Never returns.
pub fn run(command: i32) -> ! {
    let status = loop {
        let Ok(sig) = signal::wait_any() else {
            continue;
        };
        if sig.signo == libc::SIGCHLD {
            if let Some(code) = reap(command) {
                break code;
            }
            continue;
        }
        // A terminal's ^C reaches the command directly (it shares our process group); only
        // signals sent by a process (the launcher, or kill(1) inside) are passed on.
        if !sig.from_kernel() {
            forward(command, sig.signo);
        }
    };
    berth_sys::clone::exit_now(status)
}

fn forward(pid: i32, signo: i32) {
    let _ = berth_sys::signal::kill(pid, signo);
}

/// Reaps every exited child; returns the command's exit status once it has exited.
fn reap(command: i32) -> Option<i32> {
    let mut result = None;
    loop {
        // wait(2)-style (any child): waitpid(None) would be wait4(0), only our process
        // group, and a command that changes its group (setsid, an interactive shell) would
        // never be reaped.
        match rustix::process::wait(WaitOptions::NOHANG) {
            Ok(Some((pid, status))) => {
                if pid.as_raw_nonzero().get() == command {
                    result = Some(
                        status
                            .exit_status()
                            .or(status.terminating_signal().map(|s| 128 + s))
                            .unwrap_or(125),
                    );
                }
            }
            Ok(None) => return result,
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return result,
        }
    }
}
