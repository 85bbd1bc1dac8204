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
        // "offline" and "initializing" come before systemd answers for the whole system.
        if matches!(
            state.as_str(),
            "running" | "degraded" | "maintenance" | "stopping"
        ) {
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
    // The container's name, not the one the rootfs came with (systemd reads /etc/hostname).
    let host = text(&w.run(&["exec", &name, "--", "hostname"]).stdout);
    let began = Instant::now();
    let stop = w.run(&["stop", &name, "--timeout", "120"]);
    let took = began.elapsed();
    let log = text(&w.run(&["logs", &name]).stdout);
    let _ = w.run(&["delete", "--force", &name]);
    assert_eq!(state, "running", "failed units: {failed}\nconsole:\n{log}");
    assert_eq!(failed.trim(), "", "failed units");
    assert_eq!(host.trim(), name);
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    // systemd powered off by itself on its halt signal (SIGRTMIN+3), not killed.
    assert!(
        log.contains("Halting system") || log.contains("Powering off"),
        "stop took {took:?}; console:\n{log}"
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

/// Debian with sysvinit: boots to runlevel 2; `berth stop` sends SIGPWR, which halts
/// through the powerfail entry berth adds to /etc/inittab at create.
#[test]
fn debian_with_sysvinit_boots_and_halts() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let cached = debian_rootfs("bookworm-sysvinit", "sysvinit-core,iproute2,ifupdown");
    let rootfs = w.dir.path().join("debian");
    copy_rootfs(&cached, &rootfs);
    let name = unique("sysv");
    let out = w.run(&["create", rootfs.to_str().expect("utf-8"), &name]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let inittab = std::fs::read_to_string(rootfs.join("etc/inittab")).expect("inittab");
    assert!(inittab.contains("p0::powerfail:/sbin/init 0"));
    let out = w.run(&["start", &name]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut level = String::new();
    while Instant::now() < deadline {
        level = text(&w.run(&["exec", &name, "--", "runlevel"]).stdout)
            .trim()
            .to_string();
        if level == "N 2" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let stop = w.run(&["stop", &name, "--timeout", "60"]);
    let log = text(&w.run(&["logs", &name]).stdout);
    let _ = w.run(&["delete", "--force", &name]);
    assert_eq!(level, "N 2", "console:\n{log}");
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    assert!(log.contains("Will now halt"), "console:\n{log}");
    assert!(cgroups_of(&name).is_empty());
}
