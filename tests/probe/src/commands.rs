//! The small subcommands used by exit-status, signal, file and terminal tests.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::json;

use crate::syscalls;

fn print(value: &serde_json::Value) {
    println!("{value}");
}

fn fail(err: &std::io::Error) -> ExitCode {
    print(&json!({"ok": false, "errno": err.raw_os_error()}));
    ExitCode::FAILURE
}

pub fn sleep(secs: f64) -> ExitCode {
    std::thread::sleep(Duration::from_secs_f64(secs.max(0.0)));
    ExitCode::SUCCESS
}

/// Dies by `sig`. If still alive after raising it (a default-ignored signal, or PID 1 of a
/// PID namespace, which the kernel shields from its own default-disposition signals), says
/// so on stderr and exits 1.
pub fn kill_self(sig: i32) -> ExitCode {
    if let Err(e) = syscalls::raise_default(sig) {
        eprintln!("berth-probe: raise({sig}): {e}");
        return ExitCode::from(2);
    }
    eprintln!("berth-probe: still alive after raising signal {sig}");
    ExitCode::FAILURE
}

/// Exits 42 on SIGTERM, else 0 after `secs`.
pub fn trap_sleep(secs: f64) -> ExitCode {
    if let Err(e) = syscalls::exit_42_on_sigterm() {
        eprintln!("berth-probe: signal(SIGTERM): {e}");
        return ExitCode::from(2);
    }
    sleep(secs)
}

pub fn write(path: &str, text: &str) -> ExitCode {
    match std::fs::write(path, text) {
        Ok(()) => {
            print(&json!({"ok": true}));
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

pub fn stat(path: &str) -> ExitCode {
    match std::fs::symlink_metadata(path) {
        Ok(m) => {
            print(&json!({"ok": true, "uid": m.uid(), "gid": m.gid(), "mode": m.mode()}));
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

pub fn cat(path: &str) -> ExitCode {
    let copied = std::fs::File::open(path)
        .and_then(|mut f| std::io::copy(&mut f, &mut std::io::stdout().lock()))
        .and_then(|_| std::io::stdout().flush());
    match copied {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth-probe: cat {path}: {e}");
            ExitCode::FAILURE
        }
    }
}

pub fn winsize() -> ExitCode {
    match syscalls::winsize(0) {
        Ok((rows, cols)) => {
            print(&json!({"rows": rows, "cols": cols}));
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}
