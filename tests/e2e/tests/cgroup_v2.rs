//! The same container cgroup on a pure cgroup v2 host. This host is v1 hybrid, so these
//! tests run inside the VM of `tests/run.sh` (../shared/tools/cgroup2-vm), which boots a
//! kernel with only the unified hierarchy; on a host without it they say so and skip.
//!
//! The VM's writable filesystem is a tmpfs on Linux 6.1, which cannot carry idmapped
//! mounts (tmpfs gained them in 6.3), so the containers here are --privileged: what is
//! under test is the cgroup, not the user namespace (tested on the host).

use berth_e2e::{World, cgroups_of, root_or_skip, text, unique};
use std::process::Stdio;

/// Whether /sys/fs/cgroup is a pure cgroup v2 mount.
fn pure_v2() -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let v2 = info
        .lines()
        .any(|l| l.contains(" /sys/fs/cgroup ") && l.contains(" - cgroup2 "));
    if !v2 {
        eprintln!(
            "skipped: /sys/fs/cgroup is not a pure cgroup v2 mount here (run through tests/run.sh)"
        );
    }
    v2
}

#[test]
fn limits_apply_and_the_cgroup_goes_away() {
    if !root_or_skip() || !pure_v2() {
        return;
    }
    let w = World::new();
    let name = unique("v2");
    let out = w.run(&[
        "run", "--privileged", "--name", &name, "--memory", "64MiB", "--pids", "20", "--cpus", "0.5",
        w.rootfs_str(), "--", "sh", "-c",
        "cat /proc/self/cgroup /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max /sys/fs/cgroup/cpu.max",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The cgroup namespace makes the container's own cgroup its root.
    assert_eq!(text(&out.stdout), "0::/\n67108864\n20\n50000 100000\n");
    assert!(
        cgroups_of(&name).is_empty(),
        "left behind: {:?}",
        cgroups_of(&name)
    );
}

#[test]
fn the_container_runs_in_its_own_cgroup_while_it_lives() {
    if !root_or_skip() || !pure_v2() {
        return;
    }
    let w = World::new();
    let name = unique("v2live");
    let mut child = w
        .berth()
        .args([
            "run",
            "--privileged",
            "--name",
            &name,
            w.rootfs_str(),
            "--",
            "sleep",
            "3",
        ])
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn berth");
    let dir = std::path::Path::new("/sys/fs/cgroup").join(format!("berth-run.{name}"));
    let mut procs = String::new();
    for _ in 0..100 {
        procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        if procs.lines().count() >= 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = rustix_kill(child.id());
    let status = child.wait().expect("wait");
    // The init and `sleep` were inside; berth itself was not.
    assert!(procs.lines().count() >= 2, "cgroup.procs: {procs:?}");
    assert!(!procs.lines().any(|p| p == child.id().to_string()));
    assert_eq!(status.code(), Some(143));
    assert!(cgroups_of(&name).is_empty());
}

#[test]
fn chroot_works_on_v2() {
    if !root_or_skip() || !pure_v2() {
        return;
    }
    let w = World::new();
    let out = w.run(&["chroot", w.rootfs_str(), "sh", "-c", "echo ok; exit 4"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "ok\n");
}

/// SIGTERM to the berth process we started (by its PID).
fn rustix_kill(pid: u32) -> std::io::Result<()> {
    let status = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other("kill failed"))
    }
}

/// Debian 12 with systemd on pure cgroup v2: the delegated cgroup2 tree lets systemd boot
/// to `running`; exec joins the init's own leaf (init.scope), the only place a process may
/// go once systemd has enabled controllers below the container's cgroup. Uses the rootfs the
/// host's boot tests cached (tests/run.sh runs them first).
#[test]
fn debian_with_systemd_boots_on_v2() {
    boot_debian_on_v2(true);
}

/// The same, unprivileged (the default). The VM's filesystems (tmpfs on Linux 6.1, 9p) have
/// no idmapped mounts, so the rootfs is chowned into the container's ids first, as LXC's
/// unprivileged containers are; berth then mounts it as it is.
#[test]
fn debian_with_systemd_boots_unprivileged_on_v2() {
    boot_debian_on_v2(false);
}

fn boot_debian_on_v2(privileged: bool) {
    if !root_or_skip() || !pure_v2() {
        return;
    }
    let cached = std::path::Path::new(berth_e2e::DEBIAN_CACHE).join("bookworm-systemd");
    if !cached.join("etc/debian_version").exists() {
        eprintln!("skipped: no cached Debian rootfs (run the host's boot tests first)");
        return;
    }
    let w = World::new();
    let rootfs = w.dir.path().join("debian");
    berth_e2e::copy_rootfs(&cached, &rootfs);
    if !privileged {
        berth_e2e::shift_ids(&rootfs, berth_e2e::subid_base());
    }
    let name = unique("v2deb");
    let r = rootfs.to_str().expect("utf-8");
    let privileged = format!("privileged={privileged}");
    // No network: the VM's kernel has no bridge support, and cgroups are what is tested.
    let out = w.run(&["create", r, &name, "-c", &privileged, "--net", "none"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = w.run(&["start", &name]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut state = String::new();
    for _ in 0..600 {
        state = text(
            &w.run(&["exec", &name, "--", "systemctl", "is-system-running"])
                .stdout,
        )
        .trim()
        .to_string();
        if state == "running" || state == "degraded" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let failed = text(
        &w.run(&["exec", &name, "--", "systemctl", "--failed", "--no-legend"])
            .stdout,
    );
    let cg = text(
        &w.run(&["exec", &name, "--", "cat", "/proc/self/cgroup"])
            .stdout,
    );
    let stop = w.run(&["stop", &name, "--timeout", "60"]);
    let _ = w.run(&["delete", "--force", &name]);
    assert_eq!(state, "running", "{privileged}: failed units: {failed}");
    assert_eq!(cg.trim(), "0::/init.scope");
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    assert!(cgroups_of(&name).is_empty());
}

/// The limits of the quotas issue on v2, through `berth run`: a memory hog is OOM-killed
/// and a fork bomb fails at pids (the container itself goes on to report both), and every
/// key lands in its v2 file with v2's units.
#[test]
fn limits_hold_and_land_converted_on_v2() {
    if !root_or_skip() || !pure_v2() {
        return;
    }
    let w = World::new();
    let name = unique("v2lim");
    // One shell runs it all, with builtins only after the bomb (its sleeps hold every pid
    // left, so nothing more can be forked); `berth run` kills them when the shell exits.
    // The hog marks itself as the OOM killer's first choice: without that the kernel now
    // and then (1 run in 10 in the VM) killed the outer shell after the hog.
    let script = "\
        sh -c 'echo 1000 > /proc/self/oom_score_adj; a=$(head -c 80000000 /dev/zero | tr \"\\0\" a); echo survived'; echo \"hog=$?\"; \
        while read k v; do [ \"$k\" = oom_kill ] && echo \"oom_kill=$v\"; done < /sys/fs/cgroup/memory.events; \
        sh -c 'for i in $(seq 1 30); do sleep 30 >/dev/null 2>&1 & done; echo all-forked'; echo \"bomb=$?\"; \
        while read k v; do [ \"$k\" = max ] && echo \"pids_max_hit=$v\"; done < /sys/fs/cgroup/pids.events; \
        read n < /sys/fs/cgroup/pids.current; echo \"pids=$n\"";
    let out = w.run(&[
        "run",
        "--privileged",
        "--name",
        &name,
        "--memory",
        "32MiB",
        "--pids",
        "10",
        w.rootfs_str(),
        "--",
        "sh",
        "-c",
        script,
    ]);
    let (log, err) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{:?}: {log} {err}", out.status);
    let value = |key: &str| -> u64 {
        log.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {log} {err}"))
    };
    // The hog was killed (SIGKILL: 128 + 9) and counted in memory.events.
    assert!(!log.contains("survived"), "{log}");
    assert_eq!(value("hog"), 137, "{log}");
    assert!(value("oom_kill") >= 1, "{log}");
    // The bomb failed to fork, the limit was hit and held.
    assert!(!log.contains("all-forked"), "{log}");
    assert_ne!(value("bomb"), 0, "{log}");
    assert!(
        err.contains("can't fork") || err.contains("Resource temporarily unavailable"),
        "{err}"
    );
    assert!(value("pids_max_hit") >= 1, "{log}");
    assert!(value("pids") <= 10, "{log}");
    assert!(
        cgroups_of(&name).is_empty(),
        "left behind: {:?}",
        cgroups_of(&name)
    );

    // Every key in its v2 file: bytes, swap on its own (not memory + swap as v1's memsw),
    // the cpu cap as quota and period, the weight on v2's own scale, the cpu list as given.
    let out = w.run(&[
        "run",
        "--privileged",
        "--name",
        &name,
        "--memory",
        "64MiB",
        "--memory-high",
        "48MiB",
        "--swap",
        "16MiB",
        "--cpus",
        "0.5",
        "--cpu-weight",
        "200",
        "--cpuset",
        "0",
        "--pids",
        "30",
        w.rootfs_str(),
        "--",
        "sh",
        "-c",
        "cd /sys/fs/cgroup && cat memory.max memory.high memory.swap.max cpu.max cpu.weight \
         cpuset.cpus pids.max",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!(
            "{}\n{}\n{}\n50000 100000\n200\n0\n30\n",
            64u64 << 20,
            48u64 << 20,
            16u64 << 20
        )
    );
    assert!(
        cgroups_of(&name).is_empty(),
        "left behind: {:?}",
        cgroups_of(&name)
    );
}
