//! Booting a real Debian 12 with systemd as a system container's init, unprivileged (the
//! default) and privileged, on this host's cgroup layout: to `systemctl is-system-running`
//! = `running` with no failed unit, then a clean power-off with `berth stop`.
//!
//! The rootfs comes from debootstrap (the Debian mirror), cached between runs under
//! /var/cache/berth-test; the first run takes a couple of minutes to build it.

use berth_e2e::{World, cgroups_of, copy_rootfs, debian_rootfs, root_or_skip, text, unique};
use std::time::{Duration, Instant};

fn boot_and_stop(privileged: bool) {
    let w = World::new();
    let cached = debian_rootfs("bookworm-systemd", "systemd-sysv,iproute2,ifupdown,dbus");
    let rootfs = w.dir.path().join("debian");
    copy_rootfs(&cached, &rootfs);
    let name = unique("deb");
    let rootfs_arg = rootfs.to_str().expect("utf-8 path");
    let mut create = vec!["create", rootfs_arg, name.as_str()];
    if privileged {
        create.extend(["-c", "privileged=true"]);
    }
    let out = w.run(&create);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = w.run(&["start", &name]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut state = String::new();
    while Instant::now() < deadline {
        let out = w.run(&["exec", &name, "--", "systemctl", "is-system-running"]);
        state = text(&out.stdout).trim().to_string();
        if state != "starting" && state != "initializing" && !state.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let failed = text(
        &w.run(&[
            "exec",
            &name,
            "--",
            "systemctl",
            "--failed",
            "--no-legend",
            "--plain",
        ])
        .stdout,
    );
    let stop = w.run(&["stop", &name, "--timeout", "60"]);
    let log = text(&w.run(&["logs", &name]).stdout);
    let _ = w.run(&["delete", "--force", &name]);
    assert_eq!(state, "running", "failed units: {failed}\nconsole:\n{log}");
    assert_eq!(failed.trim(), "", "failed units");
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    // systemd powered off by itself on its halt signal (SIGRTMIN+3), not killed.
    assert!(
        log.contains("Halting system") || log.contains("Powering off"),
        "console:\n{log}"
    );
    assert!(cgroups_of(&name).is_empty(), "{:?}", cgroups_of(&name));
}

#[test]
fn debian_with_systemd_boots_unprivileged() {
    if !root_or_skip() {
        return;
    }
    boot_and_stop(false);
}

#[test]
fn debian_with_systemd_boots_privileged() {
    if !root_or_skip() {
        return;
    }
    boot_and_stop(true);
}
