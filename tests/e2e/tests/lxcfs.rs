//! What a container's users see of its limits (lxcfs): /proc/meminfo, /proc/cpuinfo,
//! /proc/uptime and the online cpus reflect the container, not the host; `lxcfs = false`
//! turns it off; an lxcfs that died is started again by the next container start. Skips
//! where the lxcfs package is missing.

use berth_e2e::system::{Running, ok};
use berth_e2e::{World, root_or_skip, text};
use std::path::Path;

fn have_lxcfs() -> bool {
    let have = Path::new("/usr/bin/lxcfs").exists() && Path::new("/dev/fuse").exists();
    if !have {
        eprintln!("skipped: lxcfs is not installed (apt-get install lxcfs)");
    }
    have
}

/// The MemTotal line of /proc/meminfo, in kB.
fn mem_total_kb(meminfo: &str) -> u64 {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no MemTotal in {meminfo:?}"))
}

#[test]
fn proc_files_show_the_containers_limits() {
    if !root_or_skip() || !have_lxcfs() {
        return;
    }
    let w = World::new();
    let c = Running::new(&w, &["--memory", "96MiB", "--cpuset", "0"]);
    let inside = |cmd: &str| ok(&w, &["exec", &c.name, "--", "sh", "-c", cmd]);
    assert_eq!(mem_total_kb(&inside("cat /proc/meminfo")), 96 * 1024);
    assert_eq!(inside("nproc").trim(), "1");
    assert_eq!(inside("grep -c ^processor /proc/cpuinfo").trim(), "1");
    assert_eq!(inside("cat /sys/devices/system/cpu/online").trim(), "0");
    // The container's uptime: it started a moment ago, whatever the host's is.
    let up: f64 = inside("cat /proc/uptime")
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .expect("uptime");
    assert!(up < 60.0, "uptime {up} s is the host's");
    // A live change shows at once (lxcfs reads the cgroup on every read).
    ok(&w, &["config", "set", &c.name, "limits.memory=128MiB"]);
    assert_eq!(mem_total_kb(&inside("cat /proc/meminfo")), 128 * 1024);
}

#[test]
fn lxcfs_false_shows_the_hosts_figures() {
    if !root_or_skip() || !have_lxcfs() {
        return;
    }
    let w = World::new();
    let c = Running::new(&w, &["--memory", "96MiB", "-c", "lxcfs=false"]);
    let host = mem_total_kb(&std::fs::read_to_string("/proc/meminfo").expect("meminfo"));
    let out = ok(&w, &["exec", &c.name, "--", "cat", "/proc/meminfo"]);
    assert_eq!(mem_total_kb(&out), host);
}

#[test]
fn a_dead_lxcfs_is_started_again_by_the_next_start() {
    if !root_or_skip() || !have_lxcfs() {
        return;
    }
    if Path::new("/var/lib/lxcfs/proc/meminfo").exists() {
        eprintln!("skipped: the host's own lxcfs (/var/lib/lxcfs) serves the containers here");
        return;
    }
    let w = World::new();
    let first = Running::new(&w, &["--memory", "96MiB"]);
    let run = w.state.join("run");
    let pid: i32 = std::fs::read_to_string(run.join("lxcfs.pid"))
        .expect("lxcfs pid file")
        .trim()
        .parse()
        .expect("pid");
    // End it as a crash would (its pid, which berth recorded; never by name).
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .output()
        .expect("kill");
    assert!(killed.status.success(), "{}", text(&killed.stderr));
    drop(first);
    let second = Running::new(&w, &["--memory", "64MiB"]);
    let out = ok(&w, &["exec", &second.name, "--", "cat", "/proc/meminfo"]);
    assert_eq!(mem_total_kb(&out), 64 * 1024);
    let new_pid: i32 = std::fs::read_to_string(run.join("lxcfs.pid"))
        .expect("lxcfs pid file")
        .trim()
        .parse()
        .expect("pid");
    assert_ne!(new_pid, pid, "the dead lxcfs was not replaced");
}
