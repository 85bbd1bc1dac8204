//! System containers, the finer points of the lifecycle: the configured halt signal, the
//! stop timeout, `kill --signal`, exec's options, the bounded console log, info's figures,
//! limits in force before the init runs, parallel commands, several state roots, a relative
//! root, and a start that fails after the clone.

use berth_e2e::system::{Running, info, ok, wait_until};
use berth_e2e::{World, cgroups_of, root_or_skip, text, unique};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// An init (a shell) that reports on the console, traps `trap`'s signals with `on_signal`,
/// and otherwise sleeps forever.
fn shell_init(w: &World, name: &str, trap: &str, extra_toml: &str) {
    let script = format!(
        "{trap} echo init-ready > /dev/console; while :; do sleep 0.05; done",
        trap = trap
    );
    let toml = format!(
        "init = [\"/bin/sh\", \"-c\", {script:?}]\n{extra_toml}\n[rootfs]\npath = {:?}\n",
        w.rootfs_str()
    );
    let file = w.dir.path().join(format!("{name}.toml"));
    std::fs::write(&file, toml).expect("write config");
    ok(
        w,
        &[
            "create",
            w.rootfs_str(),
            name,
            "--config",
            file.to_str().expect("utf-8"),
        ],
    );
}

fn console_log(w: &World, name: &str) -> String {
    std::fs::read_to_string(w.state.join("containers").join(name).join("console.log"))
        .unwrap_or_default()
}

fn cleanup(w: &World, name: &str) {
    let _ = w.run(&["delete", "--force", name]);
    assert!(
        cgroups_of(name).is_empty(),
        "cgroups left: {:?}",
        cgroups_of(name)
    );
}

#[test]
fn stop_uses_the_configured_signal_and_kill_sends_any() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let name = unique("sig");
    let trap = "trap 'echo got-USR1 > /dev/console; exit 0' USR1; \
                trap 'echo got-HUP > /dev/console' HUP;";
    shell_init(&w, &name, trap, "stop_signal = \"SIGUSR1\"");
    ok(&w, &["start", &name]);
    assert!(wait_until(|| console_log(&w, &name).contains("init-ready")));
    // `kill --signal` reaches the init's handler; the container keeps running.
    ok(&w, &["kill", &name, "--signal", "HUP"]);
    assert!(wait_until(|| console_log(&w, &name).contains("got-HUP")));
    assert_eq!(info(&w, &name)["state"], "running");
    // `stop` sends the configured halt signal, and the init's own exit ends it.
    ok(&w, &["stop", &name, "--timeout", "20"]);
    assert!(
        console_log(&w, &name).contains("got-USR1"),
        "{}",
        console_log(&w, &name)
    );
    assert_eq!(info(&w, &name)["state"], "stopped");
    assert!(cgroups_of(&name).is_empty());
    cleanup(&w, &name);
}

#[test]
fn stop_kills_what_ignores_its_signal_after_the_timeout() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let name = unique("deaf");
    // No handler: PID 1 of a pid namespace ignores the halt signal.
    shell_init(&w, &name, "", "stop_signal = \"SIGUSR1\"");
    ok(&w, &["start", &name]);
    assert!(wait_until(|| console_log(&w, &name).contains("init-ready")));
    let t0 = Instant::now();
    ok(&w, &["stop", &name, "--timeout", "1"]);
    // Not a performance check: the timeout was waited out before the kill.
    assert!(t0.elapsed() >= Duration::from_secs(1));
    assert_eq!(info(&w, &name)["state"], "stopped");
    assert!(cgroups_of(&name).is_empty());
    cleanup(&w, &name);
}

#[test]
fn exec_options_status_and_signals() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let c = Running::new(&w, &[]);
    let run = |args: &[&str]| w.run(&[&["exec", &c.name][..], args].concat());
    let out = run(&[
        "--cwd",
        "/tmp",
        "--env",
        "GREETING=hi",
        "--",
        "sh",
        "-c",
        "pwd; echo $GREETING",
    ]);
    assert_eq!(text(&out.stdout), "/tmp\nhi\n", "{}", text(&out.stderr));
    let out = run(&["--user", "1000:1001", "--", "sh", "-c", "id -u; id -g"]);
    assert_eq!(text(&out.stdout), "1000\n1001\n", "{}", text(&out.stderr));
    assert_eq!(run(&["--", "sh", "-c", "exit 7"]).status.code(), Some(7));
    // A signal that ends the command comes back as 128+N, as from a shell.
    assert_eq!(
        run(&["--", "sh", "-c", "kill -TERM $$"]).status.code(),
        Some(143)
    );
    // -t: a pseudo-terminal even when stdin is not one.
    let out = run(&["-t", "--", "tty"]);
    assert!(
        text(&out.stdout).trim_end().starts_with("/dev/pts/"),
        "{} {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let out = run(&["--", "tty"]);
    assert!(!out.status.success(), "no terminal was asked for");
}

#[test]
fn the_console_log_is_bounded() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let c = Running::new(&w, &[]);
    // 2.5 MiB through the console, in lines.
    let out = w.run(&[
        "exec",
        &c.name,
        "--",
        "sh",
        "-c",
        "i=0; while [ $i -lt 40000 ]; do echo 0123456789012345678901234567890123456789012345678901234567890123; i=$((i+1)); done > /dev/console",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dir = w.state.join("containers").join(&c.name);
    assert!(wait_until(|| dir.join("console.log.1").exists()));
    for f in ["console.log", "console.log.1"] {
        let len = std::fs::metadata(dir.join(f)).expect("log").len();
        assert!(len <= 1 << 20, "{f}: {len} bytes");
    }
    // `logs` still reads it.
    assert!(!ok(&w, &["logs", &c.name]).is_empty());
}

#[test]
fn info_shows_memory_and_cpu_use() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let c = Running::new(&w, &[]);
    ok(
        &w,
        &[
            "exec",
            &c.name,
            "--",
            "sh",
            "-c",
            "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done",
        ],
    );
    let i = info(&w, &c.name);
    assert!(i["memory_bytes"].as_u64().is_some_and(|m| m > 0), "{i}");
    assert!(i["cpu_seconds"].as_f64().is_some_and(|s| s > 0.0), "{i}");
    assert!(i["started_at"].as_u64().is_some_and(|s| s > 0), "{i}");
}

#[test]
fn limits_bind_before_the_init_runs() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let name = unique("lim");
    // The init's first act: print the pids limit of its own cgroup (v1 or v2 layout).
    let trap = "cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/pids.max 2>/dev/null \
                | sed 's/^/pids-max=/' > /dev/console;";
    shell_init(&w, &name, trap, "[limits]\npids = 57");
    ok(&w, &["start", &name]);
    assert!(wait_until(|| console_log(&w, &name).contains("init-ready")));
    assert!(
        console_log(&w, &name).contains("pids-max=57"),
        "{}",
        console_log(&w, &name)
    );
    cleanup(&w, &name);
}

#[test]
fn commands_on_different_containers_do_not_wait_for_each_other() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let slow = unique("slow");
    shell_init(&w, &slow, "", "stop_signal = \"SIGUSR1\"");
    ok(&w, &["start", &slow]);
    let other = Running::new(&w, &[]);
    // `stop` holds the slow container's lock for 3 s (its init ignores the signal)...
    let mut stopping = w
        .berth()
        .args(["stop", &slow, "--timeout", "3"])
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn stop");
    std::thread::sleep(Duration::from_millis(300));
    // ...while the other container answers at once.
    ok(&w, &["exec", &other.name, "--", "true"]);
    ok(&w, &["stop", &other.name]);
    ok(&w, &["start", &other.name]);
    assert!(
        stopping.try_wait().expect("wait").is_none(),
        "the slow stop ended before the other container's commands"
    );
    assert!(stopping.wait().expect("wait").success());
    cleanup(&w, &slow);
}

#[test]
fn two_state_roots_may_each_have_a_container_of_the_same_name() {
    if !root_or_skip() {
        return;
    }
    let a = World::new();
    let b = World::new();
    let name = unique("twin");
    ok(&a, &["launch", "busybox", &name]);
    ok(&b, &["launch", "busybox", &name]);
    assert_eq!(info(&a, &name)["state"], "running");
    assert_eq!(info(&b, &name)["state"], "running");
    ok(&b, &["stop", &name]);
    assert_eq!(
        info(&a, &name)["state"],
        "running",
        "b's stop reached a's container"
    );
    assert_eq!(ok(&a, &["exec", &name, "--", "echo", "a"]), "a\n");
    ok(&b, &["delete", &name]);
    cleanup(&a, &name);
}

#[test]
fn a_relative_state_root_works() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let name = unique("rel");
    let berth = |args: &[&str]| {
        Command::new(berth_e2e::bin("berth"))
            .current_dir(w.dir.path())
            .args(["--root", "relative-state"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("berth")
    };
    let out = berth(&["launch", "busybox", &name]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = berth(&["exec", &name, "--", "echo", "ok"]);
    assert_eq!(text(&out.stdout), "ok\n", "{}", text(&out.stderr));
    // The supervisor opens the console log as it settles into its loop, a moment after
    // the start returned.
    let log = w
        .dir
        .path()
        .join("relative-state/containers")
        .join(&name)
        .join("console.log");
    assert!(
        berth_e2e::system::wait_until(|| log.exists()),
        "no {}",
        log.display()
    );
    let out = berth(&["delete", "--force", &name]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(cgroups_of(&name).is_empty());
}

/// A failure after the clone (here: the rootfs's filesystem, overlayfs, cannot be idmapped)
/// is reported, as the error it is, and leaves nothing behind; the launcher is not caught in
/// the cleanup of the cgroup it stepped into.
#[test]
fn a_start_that_fails_after_the_clone_reports_and_cleans_up() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let base = w.dir.path().join("ovl");
    for d in ["upper", "work", "merged"] {
        std::fs::create_dir_all(base.join(d)).expect("mkdir");
    }
    let mounted = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o"])
        .arg(format!(
            "lowerdir={},upperdir={},workdir={}",
            w.rootfs.display(),
            base.join("upper").display(),
            base.join("work").display()
        ))
        .arg(base.join("merged"))
        .status()
        .expect("mount");
    assert!(mounted.success());
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let merged = Unmount(base.join("merged"));
    let rootfs = merged.0.to_str().expect("utf-8");
    let probe = Command::new(berth_e2e::bin("berth"))
        .args(["--root"])
        .arg(&w.state)
        .args(["run", rootfs, "--", "true"])
        .output()
        .expect("run");
    if probe.status.success() {
        eprintln!("skipped: this kernel idmaps overlayfs mounts; nothing fails after the clone");
        return;
    }
    assert_eq!(probe.status.code(), Some(125), "{}", text(&probe.stderr));
    assert!(
        text(&probe.stderr).contains("idmap"),
        "{}",
        text(&probe.stderr)
    );
    let name = unique("ovl");
    ok(&w, &["create", rootfs, &name]);
    let out = w.run(&["start", &name]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("idmap"), "{}", text(&out.stderr));
    assert_eq!(info(&w, &name)["state"], "stopped");
    assert!(cgroups_of(&name).is_empty(), "{:?}", cgroups_of(&name));
    ok(&w, &["delete", &name]);
}

/// A rootfs chowned into the container's ids runs unprivileged without an idmapped mount
/// (what filesystems without idmap support need), and what container root writes in it is
/// owned by the container's ids on disk.
#[test]
fn a_rootfs_in_the_containers_ids_needs_no_idmap() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let rootfs = w.dir.path().join("shifted");
    berth_e2e::copy_rootfs(&w.rootfs, &rootfs);
    let base = berth_e2e::subid_base();
    berth_e2e::shift_ids(&rootfs, base);
    let name = unique("shift");
    ok(&w, &["create", rootfs.to_str().expect("utf-8"), &name]);
    ok(&w, &["start", &name]);
    ok(&w, &["exec", &name, "--", "touch", "/root/made-inside"]);
    assert_eq!(
        ok(
            &w,
            &["exec", &name, "--", "stat", "-c", "%u:%g", "/bin/busybox"]
        ),
        "0:0\n"
    );
    let made = std::fs::metadata(rootfs.join("root/made-inside")).expect("stat");
    use std::os::unix::fs::MetadataExt;
    assert_eq!((made.uid(), made.gid()), base);
    cleanup(&w, &name);
}
