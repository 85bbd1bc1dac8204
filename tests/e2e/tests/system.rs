//! System containers: create, start (under a supervisor), exec, list, info, freeze, stop,
//! delete, with busybox init as PID 1; robustness against killed supervisors and inits, and
//! bad input.

use berth_e2e::system::{Running, info, ok, wait_until};
use berth_e2e::{World, cgroups_of, root_or_skip, text, unique};
use serde_json::Value;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

#[test]
fn a_busybox_container_boots_runs_commands_and_stops() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let name = unique("sys");
    ok(&w, &["create", "busybox", &name]);
    let list: Value = serde_json::from_str(&ok(&w, &["list", "--format", "json"])).expect("JSON");
    assert_eq!(list[0]["name"], name.as_str());
    assert_eq!(list[0]["state"], "stopped");
    assert_eq!(list[0]["pid"], Value::Null);
    assert_eq!(list[0]["image"], "busybox");
    assert_eq!(list[0]["autostart"], false);
    assert!(list[0]["ipv4"].is_array());
    ok(&w, &["start", &name]);
    let c = Running {
        w: &w,
        name: name.clone(),
    };
    let i = info(&w, &name);
    assert_eq!(i["state"], "running");
    assert!(i["pid"].as_i64().is_some_and(|p| p > 1));
    assert!(i["supervisor_pid"].as_i64().is_some());
    assert!(i["started_at"].as_u64().is_some());
    assert!(!cgroups_of(&name).is_empty());
    // The init is busybox's, as PID 1, with the container's hostname.
    let out = ok(
        &w,
        &[
            "exec",
            &name,
            "--",
            "sh",
            "-c",
            "cat /proc/1/comm; hostname; cat /proc/self/uid_map",
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "init");
    assert_eq!(lines[1], name);
    assert!(
        lines[2].split_whitespace().collect::<Vec<_>>()[..2] == ["0", &root_subid()],
        "{out}"
    );
    // Exit status passes through.
    assert_eq!(
        w.run(&["exec", &name, "--", "sh", "-c", "exit 5"])
            .status
            .code(),
        Some(5)
    );
    assert_eq!(
        ok(
            &w,
            &["exec", &name, "--user", "1000:1000", "--", "id", "-u"]
        ),
        "1000\n"
    );
    ok(&w, &["stop", &name]);
    let i = info(&w, &name);
    assert_eq!(i["state"], "stopped");
    assert_eq!(i["pid"], Value::Null);
    assert!(cgroups_of(&name).is_empty());
    assert!(
        !w.state
            .join("containers")
            .join(&name)
            .join("state.json")
            .exists()
    );
    assert!(ok(&w, &["logs", &name]).contains("The system is going down"));
    drop(c);
}

fn root_subid() -> String {
    std::fs::read_to_string("/etc/subuid")
        .expect("subuid")
        .lines()
        .find_map(|l| {
            l.strip_prefix("root:")
                .map(|r| r.split(':').next().unwrap_or("").to_string())
        })
        .expect("root's range")
}

#[test]
fn freeze_and_unfreeze() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let c = Running::new(&w, &[]);
    ok(&w, &["freeze", &c.name]);
    assert_eq!(info(&w, &c.name)["state"], "frozen");
    ok(&w, &["unfreeze", &c.name]);
    assert_eq!(info(&w, &c.name)["state"], "running");
    assert_eq!(
        ok(&w, &["exec", &c.name, "--", "echo", "thawed"]),
        "thawed\n"
    );
}

#[test]
fn a_killed_supervisor_leaves_the_container_manageable() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let c = Running::new(&w, &[]);
    let sup = info(&w, &c.name)["supervisor_pid"]
        .as_i64()
        .expect("supervisor pid");
    let killed = Command::new("kill")
        .arg("-9")
        .arg(sup.to_string())
        .status()
        .expect("kill");
    assert!(killed.success());
    assert!(wait_until(|| !std::path::Path::new(&format!(
        "/proc/{sup}"
    ))
    .exists()));
    let i = info(&w, &c.name);
    assert_eq!(i["state"], "running");
    assert_eq!(
        ok(&w, &["exec", &c.name, "--", "echo", "still here"]),
        "still here\n"
    );
    ok(&w, &["stop", &c.name]);
    assert_eq!(info(&w, &c.name)["state"], "stopped");
    assert!(cgroups_of(&c.name).is_empty());
}

#[test]
fn a_killed_init_is_a_stopped_container() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let c = Running::new(&w, &[]);
    let pid = info(&w, &c.name)["pid"].as_i64().expect("pid");
    let killed = Command::new("kill")
        .arg("-9")
        .arg(pid.to_string())
        .status()
        .expect("kill");
    assert!(killed.success());
    assert!(wait_until(|| info(&w, &c.name)["state"] == "stopped"));
    assert!(wait_until(|| cgroups_of(&c.name).is_empty()));
    // And it starts again.
    ok(&w, &["start", &c.name]);
    assert_eq!(info(&w, &c.name)["state"], "running");
}

#[test]
fn restart_gives_a_new_init() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let c = Running::new(&w, &[]);
    let before = info(&w, &c.name)["pid"].clone();
    ok(&w, &["restart", &c.name]);
    let after = info(&w, &c.name)["pid"].clone();
    assert_ne!(before, after);
}

#[test]
fn privileged_containers_map_ids_to_themselves() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let c = Running::new(&w, &["-c", "privileged=true"]);
    let out = ok(&w, &["exec", &c.name, "--", "cat", "/proc/self/uid_map"]);
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["0", "0", "4294967295"]
    );
}

#[test]
fn two_starts_at_once_start_one_container() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let name = unique("sys");
    ok(&w, &["create", "busybox", &name]);
    let spawn = || {
        w.berth()
            .args(["start", &name])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    let (a, b) = (spawn(), spawn());
    let (a, b): (Output, Output) = (
        a.wait_with_output().expect("wait"),
        b.wait_with_output().expect("wait"),
    );
    let c = Running {
        w: &w,
        name: name.clone(),
    };
    let successes = [&a, &b].iter().filter(|o| o.status.success()).count();
    assert_eq!(successes, 1, "{} / {}", text(&a.stderr), text(&b.stderr));
    let loser = if a.status.success() { &b } else { &a };
    assert!(
        text(&loser.stderr).contains("already running"),
        "{}",
        text(&loser.stderr)
    );
    drop(c);
}

#[test]
fn bad_input_is_one_line_exit_1_and_changes_nothing() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let long = "a".repeat(200);
    for args in [
        &["start", "nosuch"][..],
        &["stop", "nosuch"],
        &["exec", "nosuch", "--", "true"],
        &["create", "busybox", "../x"],
        &["create", "busybox", "a/b"],
        &["create", "busybox", &long],
        &["create", "busybox", "ok-name", "-c", "bogus=1"],
        &["create", "busybox", "ok-name", "-c", "limits.memory=lots"],
        &["create", "nosuchimage", "ok-name"],
    ] {
        let out = w.run(args);
        let code = if args[0] == "exec" { 125 } else { 1 };
        assert_eq!(
            out.status.code(),
            Some(code),
            "{args:?}: {}",
            text(&out.stderr)
        );
        let err = text(&out.stderr);
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{args:?}: not one line: {err}"
        );
        assert!(err.starts_with("berth: "), "{err}");
    }
    // Nothing was created by the refused creates.
    assert_eq!(ok(&w, &["list", "--format", "json"]).trim(), "[]");
    let c = Running::new(&w, &[]);
    let out = w.run(&["start", &c.name]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("already running"));
    let out = w.run(&["delete", &c.name]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("--force"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(info(&w, &c.name)["state"], "running");
    // A bad value is refused and the config is unchanged.
    let before = ok(&w, &["config", "show", &c.name]);
    let out = w.run(&["config", "set", &c.name, "limits.memory=lots"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(ok(&w, &["config", "show", &c.name]), before);
    ok(&w, &["config", "set", &c.name, "limits.memory=64MiB"]);
    assert_eq!(
        ok(&w, &["config", "get", &c.name, "limits.memory"]),
        "64MiB\n"
    );
    ok(&w, &["delete", "--force", &c.name]);
    assert_eq!(ok(&w, &["list", "--format", "json"]).trim(), "[]");
}

#[test]
fn autostart_starts_and_stops_the_marked_containers_in_order() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let (a, b, off) = (unique("auto"), unique("auto"), unique("auto"));
    ok(
        &w,
        &[
            "create",
            "busybox",
            &a,
            "-c",
            "autostart.enabled=true",
            "-c",
            "autostart.order=2",
        ],
    );
    ok(
        &w,
        &[
            "create",
            "busybox",
            &b,
            "-c",
            "autostart.enabled=true",
            "-c",
            "autostart.order=1",
            "-c",
            "autostart.delay=10ms",
        ],
    );
    ok(&w, &["create", "busybox", &off]);
    let _guards = [&a, &b, &off].map(|n| Running {
        w: &w,
        name: n.to_string(),
    });
    let out = ok(&w, &["autostart"]);
    // Lowest order first.
    assert_eq!(out, format!("started {b}\nstarted {a}\n"));
    assert_eq!(info(&w, &a)["state"], "running");
    assert_eq!(info(&w, &b)["state"], "running");
    assert_eq!(info(&w, &off)["state"], "stopped");
    assert_eq!(info(&w, &a)["autostart"], true);
    let out = ok(&w, &["autostart", "--stop"]);
    assert_eq!(out, format!("stopped {a}\nstopped {b}\n"));
    assert_eq!(info(&w, &a)["state"], "stopped");
    assert_eq!(info(&w, &b)["state"], "stopped");
}

#[test]
fn the_console_attaches_and_detaches() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let c = Running::new(&w, &[]);
    // A terminal for `berth console`, driven by python3's pty module: press Enter (busybox
    // init's askfirst), run a command, detach with Ctrl-a q.
    let script = r#"
import os, pty, sys, time, select
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
out = b""
def pump(t):
    global out
    end = time.time() + t
    while time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            try:
                out += os.read(fd, 4096)
            except OSError:
                return
        if b"hi-42" in out and t > 1:
            return
pump(0.3); os.write(fd, b"\n"); pump(0.5)
os.write(fd, b"echo hi-$((40+2))\n"); pump(5)
os.write(fd, b"\x01q"); pump(0.5)
_, st = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(st))
"#;
    let berth = berth_e2e::bin("berth");
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(&berth)
        .args([
            "--root",
            w.state.to_str().expect("utf-8"),
            "console",
            &c.name,
        ])
        .stdin(Stdio::null())
        .output()
        .expect("python3");
    let screen = text(&out.stdout);
    assert!(out.status.success(), "{screen} {}", text(&out.stderr));
    assert!(screen.contains("hi-42"), "{screen}");
    assert!(screen.contains("detached"), "{screen}");
    // Still running after the detach.
    assert_eq!(info(&w, &c.name)["state"], "running");
}

#[test]
fn second_review_regressions() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let c = Running::new(&w, &[]);
    // A command that changes its process group is still reaped (wait on any child).
    let out = w.run(&["exec", &c.name, "--", "setsid", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3));
    // exec without a terminal has no controlling terminal of the caller's.
    let out = ok(
        &w,
        &[
            "exec",
            &c.name,
            "--",
            "sh",
            "-c",
            "echo x > /dev/tty 2>/dev/null && echo reached || echo none",
        ],
    );
    assert_eq!(out, "none\n");
    // exec into a frozen container is refused (it would freeze with it); stop --force works.
    ok(&w, &["freeze", &c.name]);
    let out = w.run(&["exec", &c.name, "--", "true"]);
    assert!(
        text(&out.stderr).contains("frozen"),
        "{}",
        text(&out.stderr)
    );
    ok(&w, &["stop", "--force", &c.name]);
    assert_eq!(info(&w, &c.name)["state"], "stopped");
    // The supervisor keeps none of the caller's descriptors: a pipe on fd 7 closes at once.
    let line = format!(
        "{} --root {} start {} 7>&1 | cat",
        berth_e2e::bin("berth").display(),
        w.state.display(),
        c.name
    );
    let started = Instant::now();
    let status = Command::new("sh")
        .arg("-c")
        .arg(&line)
        .stdin(Stdio::null())
        .status()
        .expect("sh");
    assert!(status.success());
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "start held the caller's pipe"
    );
    // A container made from an image never boots on the shared image itself: without its
    // own layer it does not start.
    ok(&w, &["stop", &c.name]);
    std::fs::remove_dir_all(w.state.join("containers").join(&c.name).join("layer")).expect("rm");
    let out = w.run(&["start", &c.name]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("rootfs"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_system_container_on_a_public_rootfs_is_refused() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let name = unique("pub");
    ok(&w, &["create", w.rootfs_str(), &name]);
    std::fs::set_permissions(
        w.dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let out = w.run(&["start", &name]);
    std::fs::set_permissions(
        w.dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .expect("chmod");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("reachable by every user"),
        "{}",
        text(&out.stderr)
    );
    assert!(cgroups_of(&name).is_empty());
    let _ = w.run(&["delete", &name]);
}

#[test]
fn logs_follow_prints_the_console_until_the_container_stops() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let c = Running::new(&w, &[]);
    let follower = w
        .berth()
        .args(["logs", "--follow", &c.name])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn logs --follow");
    ok(
        &w,
        &[
            "exec",
            &c.name,
            "--",
            "sh",
            "-c",
            "echo follow-marker-42 > /dev/console",
        ],
    );
    std::thread::sleep(Duration::from_millis(600));
    ok(&w, &["stop", &c.name]);
    let out = follower
        .wait_with_output()
        .expect("logs --follow ends when the container stops");
    assert!(out.status.success());
    assert!(
        text(&out.stdout).contains("follow-marker-42"),
        "{}",
        text(&out.stdout)
    );
}

/// The pids of `pid`'s descendants whose command is berth (the CLI's supervisor), found
/// through /proc before anything is killed (a killed parent's children are reparented).
fn berth_descendants(pid: u32) -> Vec<u32> {
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            // "PID (COMM) STATE PPID ..."; COMM may hold spaces ("berth: NAME").
            let Some((comm, rest)) = stat.split_once(" (").and_then(|(_, r)| r.rsplit_once(") "))
            else {
                continue;
            };
            let ppid = rest.split(' ').nth(1).and_then(|p| p.parse::<u32>().ok());
            if ppid == Some(parent) && comm.starts_with("berth") && !found.contains(&child) {
                found.push(child);
            }
        }
        i += 1;
    }
    found
}

/// `berth create` and `berth start` killed with SIGKILL at every moment of their work (the
/// start together with the supervisor it forked): the container is either whole or absent,
/// running or stopped, never half-made; the next command works; nothing is left behind.
#[test]
fn create_and_start_killed_half_way_leave_nothing_half_made() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    // How often each outcome came up: (create absent, present), (start stopped, running).
    let mut seen = [[0u32; 2]; 2];
    // How long each command takes here (the image built first), to spread the kills over it.
    let probe = unique("kill9");
    ok(&w, &["image", "build", "busybox"]);
    let t0 = Instant::now();
    ok(&w, &["create", "busybox", &probe]);
    let t1 = Instant::now();
    ok(&w, &["start", &probe]);
    let (create_took, start_took) = (t1 - t0, t1.elapsed());
    ok(&w, &["delete", "--force", &probe]);
    const STEPS: u32 = 24;
    for step in 0..STEPS {
        let name = unique("kill9");
        // From at once to well past the command's usual run (the machine may be busier
        // than when it was timed: tests run in parallel).
        let (create_delay, start_delay) = (
            create_took * step * 3 / STEPS,
            start_took * step * 3 / STEPS,
        );
        // create, killed after `delay`.
        let mut create = w
            .berth()
            .args(["create", "busybox", &name])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn create");
        std::thread::sleep(create_delay);
        let _ = create.kill();
        let _ = create.wait();
        let listed: Value =
            serde_json::from_str(&ok(&w, &["list", "--format", "json"])).expect("list JSON");
        let present = listed
            .as_array()
            .expect("array")
            .iter()
            .any(|c| c["name"] == name.as_str());
        seen[0][usize::from(present)] += 1;
        if present {
            // Whole: it starts, runs a command and stops.
            assert_eq!(info(&w, &name)["state"], "stopped");
        } else {
            // Absent, and its name is free again.
            ok(&w, &["create", "busybox", &name]);
        }
        // start, killed (with the supervisor it forked) after `delay`.
        let mut start = w
            .berth()
            .args(["start", &name])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn start");
        std::thread::sleep(start_delay);
        for pid in berth_descendants(start.id()) {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
        let _ = start.wait();
        let state = info(&w, &name)["state"].as_str().unwrap_or("").to_string();
        assert!(
            state == "running" || state == "stopped",
            "step {step}: state {state:?}"
        );
        seen[1][usize::from(state == "running")] += 1;
        if step % 2 == 0 {
            // The next start works (an orphan of the killed one is cleared first), or finds
            // the container running: a supervisor forked just before the kill goes on.
            let again = w.run(&["start", &name]);
            assert!(
                again.status.success() || text(&again.stderr).contains("already running"),
                "step {step}: {}",
                text(&again.stderr)
            );
            assert_eq!(ok(&w, &["exec", &name, "--", "echo", "up"]), "up\n");
            ok(&w, &["stop", "--force", &name]);
            ok(&w, &["delete", &name]);
        } else {
            // Or straight to delete: nothing of the container may survive it.
            ok(&w, &["delete", "--force", &name]);
        }
        assert!(
            cgroups_of(&name).is_empty(),
            "step {step}: cgroups left: {:?}",
            cgroups_of(&name)
        );
        assert!(
            !w.state.join("containers").join(&name).exists(),
            "step {step}: container directory left"
        );
    }
    eprintln!(
        "outcomes: create absent/present {:?}, start stopped/running {:?}",
        seen[0], seen[1]
    );
    // The kills landed both before and after each command's point of no return.
    assert!(seen.iter().all(|s| s[0] > 0 && s[1] > 0), "{seen:?}");
    // No temporary leftovers of interrupted creates in the store.
    let strays: Vec<_> = std::fs::read_dir(w.state.join("containers"))
        .expect("ls containers")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(strays.iter().all(|n| !n.starts_with("kill9")), "{strays:?}");
}

/// systemd's container interface, as far as a busybox init shows it: `container=berth` for
/// the init, a read-only copy of the host's os-release at /run/host/os-release, /sys read-only, a
/// private /dev, /dev/console a pty whose master the supervisor holds, the supervisor outside
/// that pty's session (no controlling terminal).
#[test]
fn the_container_interface() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let c = Running::new(&w, &[]);
    let sh = |script: &str| w.run(&["exec", &c.name, "--", "sh", "-c", script]);
    let env = sh("tr '\\0' '\\n' < /proc/1/environ");
    assert!(
        text(&env.stdout).lines().any(|l| l == "container=berth"),
        "{}",
        text(&env.stdout)
    );
    let host = ["/etc/os-release", "/usr/lib/os-release"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .expect("the host's os-release");
    assert_eq!(text(&sh("cat /run/host/os-release").stdout), host);
    // A read-only copy (a bind could be remounted writable by a privileged container).
    assert_eq!(
        text(&sh("stat -c %a /run/host/os-release").stdout).trim(),
        "444"
    );
    assert!(
        !sh("touch /sys/berth-test").status.success(),
        "/sys is writable"
    );
    let dev = text(&sh("grep ' /dev ' /proc/mounts").stdout);
    assert!(
        dev.starts_with("tmpfs /dev ") || dev.contains(" /dev tmpfs "),
        "{dev}"
    );
    // /dev/console: a pty slave (major 136..143), the init's terminal.
    let major = text(&sh("stat -L -c %t /dev/console").stdout);
    let major = u32::from_str_radix(major.trim(), 16).expect("hex major");
    assert!((136..=143).contains(&major), "console major {major}");
    let sup = info(&w, &c.name)["supervisor_pid"]
        .as_i64()
        .expect("supervisor");
    let stat = std::fs::read_to_string(format!("/proc/{sup}/stat")).expect("stat");
    let fields: Vec<&str> = stat.rsplit_once(") ").expect("stat").1.split(' ').collect();
    // Fields after the command: state ppid pgrp session tty_nr ...
    assert_eq!(fields[4], "0", "the supervisor has a controlling terminal");
    let init = info(&w, &c.name)["pid"].as_i64().expect("pid");
    let istat = std::fs::read_to_string(format!("/proc/{init}/stat")).expect("stat");
    let ifields: Vec<&str> = istat
        .rsplit_once(") ")
        .expect("stat")
        .1
        .split(' ')
        .collect();
    assert_ne!(fields[3], ifields[3], "supervisor and init share a session");
}
