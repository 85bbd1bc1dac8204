//! Helpers the berth-net tests share (each test file includes this module).

use std::process::{Command, Output};

/// Root, or a skip when BERTH_TEST_ALLOW_SKIP=1 (running as non-root is an error otherwise).
pub fn root() -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    if std::env::var("BERTH_TEST_ALLOW_SKIP").as_deref() == Ok("1") {
        eprintln!("skipped: needs root");
        return false;
    }
    panic!("this test needs root (set BERTH_TEST_ALLOW_SKIP=1 to skip it)");
}

/// Runs `cmd`, which must succeed; its output.
#[allow(dead_code)] // not every test file runs commands
pub fn sh(cmd: &[&str]) -> Output {
    let out = Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
