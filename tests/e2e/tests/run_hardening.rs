//! Regressions found in review: ways a container could reach the host or leave things
//! behind, and bad input caught too late.

use berth_e2e::{World, cgroups_of, root_or_skip, text, unique};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

fn run(w: &World, args: &[&str]) -> std::process::Output {
    w.run(&[&["run"], args].concat())
}

#[test]
fn terminal_injection_is_denied() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    for mode in [&[][..], &["--privileged"][..]] {
        let out = run(
            &w,
            &[mode, &[w.rootfs_str(), "--", "/bin/berth-probe", "tiocsti"]].concat(),
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("probe JSON");
        assert_eq!(
            v["errno"], 1,
            "TIOCSTI not refused with EPERM ({mode:?}): {v}"
        );
    }
    // chroot too, which keeps the caller's terminal.
    let out = w.run(&["chroot", w.rootfs_str(), "/bin/berth-probe", "tiocsti"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("probe JSON");
    assert_eq!(v["errno"], 1, "chroot: {v}");
}

#[test]
fn run_has_no_controlling_terminal_of_the_caller() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    // In a session of its own, /dev/tty names no terminal.
    let out = run(
        &w,
        &[
            w.rootfs_str(),
            "--",
            "sh",
            "-c",
            "cat /dev/tty </dev/null 2>/dev/null && echo reached || echo none",
        ],
    );
    assert_eq!(text(&out.stdout), "none\n");
}

#[test]
fn ephemeral_has_room_for_real_work() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let out = run(
        &w,
        &[
            "--ephemeral",
            w.rootfs_str(),
            "--",
            "sh",
            "-c",
            "dd if=/dev/zero of=/root/big bs=1M count=8 2>/dev/null && ls -l /root/big",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("8388608"),
        "{}",
        text(&out.stdout)
    );
    assert!(!w.rootfs.join("root/big").exists());
}

#[test]
fn images_are_never_changed_by_a_run() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let out = run(
        &w,
        &[
            "busybox",
            "--",
            "sh",
            "-c",
            "echo changed > /etc/profile; rm /bin/ls",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(
        &w,
        &[
            "busybox",
            "--",
            "sh",
            "-c",
            "test -e /bin/ls && test ! -e /etc/profile && echo intact",
        ],
    );
    assert_eq!(text(&out.stdout), "intact\n", "{}", text(&out.stderr));
}

#[test]
fn small_limits_bind_the_container_not_berth() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    for (flag, value, word) in [
        ("--memory", "1", "4MiB"),
        ("--memory", "64k", "4MiB"),
        ("--pids", "1", "2"),
    ] {
        let name = unique("small");
        let out = run(
            &w,
            &["--name", &name, flag, value, w.rootfs_str(), "--", "true"],
        );
        assert_eq!(out.status.code(), Some(125), "{flag} {value}");
        assert!(
            text(&out.stderr).contains(word),
            "{flag} {value}: {}",
            text(&out.stderr)
        );
        assert!(cgroups_of(&name).is_empty());
    }
    // The smallest accepted limits work, and a fork beyond --pids fails inside only.
    let name = unique("small");
    let out = run(
        &w,
        &[
            "--name",
            &name,
            "--pids",
            "2",
            "--memory",
            "8MiB",
            w.rootfs_str(),
            "--",
            "sh",
            "-c",
            "echo started; /bin/true & wait",
        ],
    );
    assert_eq!(text(&out.stdout), "started\n");
    assert!(
        text(&out.stderr).contains("can't fork"),
        "{}",
        text(&out.stderr)
    );
    // The status is the shell's own, not berth's 125.
    assert_ne!(out.status.code(), Some(125));
    assert!(cgroups_of(&name).is_empty());
}

#[test]
fn a_closed_output_pipe_still_cleans_up() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let name = unique("pipe");
    let berth = berth_e2e::bin("berth");
    let line = format!(
        "{} --root {} run -t --name {name} {} -- sh -c 'yes | head -c 200000' | head -c 10 >/dev/null",
        berth.display(),
        w.state.display(),
        w.rootfs_str()
    );
    let status = Command::new("sh")
        .arg("-c")
        .arg(&line)
        .stdin(Stdio::null())
        .status()
        .expect("sh");
    assert!(status.success());
    // berth may still be finishing after head exited: wait for its cgroup to go.
    for _ in 0..100 {
        if cgroups_of(&name).is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        cgroups_of(&name).is_empty(),
        "left behind: {:?}",
        cgroups_of(&name)
    );
}

#[test]
fn a_fifo_as_etc_passwd_does_not_block_berth() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let passwd = w.rootfs.join("etc/passwd");
    std::fs::remove_file(&passwd).expect("rm");
    let ok = Command::new("mkfifo")
        .arg(&passwd)
        .status()
        .expect("mkfifo");
    assert!(ok.success());
    let out = run(&w, &[w.rootfs_str(), "--", "echo", "ran"]);
    assert_eq!(text(&out.stdout), "ran\n", "{}", text(&out.stderr));
    let out = w.run(&["chroot", "--userspec=0:0", w.rootfs_str(), "echo", "ran"]);
    assert_eq!(text(&out.stdout), "ran\n", "{}", text(&out.stderr));
}

#[test]
fn scripts_without_a_shebang_run_through_sh() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let script = w.rootfs.join("bin/plain-script");
    std::fs::write(&script, "echo from a plain script\n").expect("write");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let out = w.run(&["chroot", w.rootfs_str(), "plain-script"]);
    assert_eq!(
        text(&out.stdout),
        "from a plain script\n",
        "{}",
        text(&out.stderr)
    );
    let out = run(&w, &[w.rootfs_str(), "--", "/bin/plain-script"]);
    assert_eq!(
        text(&out.stdout),
        "from a plain script\n",
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn the_console_belongs_to_the_containers_root() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let out = run(
        &w,
        &[
            "-t",
            w.rootfs_str(),
            "--",
            "sh",
            "-c",
            "echo to-console > /dev/console && echo ok",
        ],
    );
    assert!(
        text(&out.stdout).contains("ok"),
        "{} {}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn bad_users_binds_and_public_rootfs_are_refused_up_front() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let name = unique("bad");
    let out = run(
        &w,
        &[
            "--name",
            &name,
            "--user",
            "70000",
            w.rootfs_str(),
            "--",
            "true",
        ],
    );
    assert_eq!(out.status.code(), Some(125));
    assert!(text(&out.stderr).contains("70000"), "{}", text(&out.stderr));
    let out = run(
        &w,
        &[
            "--name",
            &name,
            "--bind",
            "/var/tmp:/",
            w.rootfs_str(),
            "--",
            "true",
        ],
    );
    assert_eq!(out.status.code(), Some(125));
    assert!(text(&out.stderr).contains(":/"), "{}", text(&out.stderr));
    // A rootfs any user of the host can reach: container root's setuid files would be
    // setuid-root for them.
    std::fs::set_permissions(w.dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let out = run(&w, &["--name", &name, w.rootfs_str(), "--", "true"]);
    std::fs::set_permissions(w.dir.path(), std::fs::Permissions::from_mode(0o700)).expect("chmod");
    assert_eq!(out.status.code(), Some(125));
    assert!(
        text(&out.stderr).contains("reachable by every user"),
        "{}",
        text(&out.stderr)
    );
    assert!(cgroups_of(&name).is_empty());
}

#[test]
fn non_root_callers_are_told_berth_needs_root() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(berth_e2e::bin("berth"))
        .args([
            "--root",
            "/nonexistent-berth-state",
            "run",
            "busybox",
            "--",
            "true",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("setpriv");
    assert_eq!(out.status.code(), Some(125));
    assert!(
        text(&out.stderr).contains("must run as root"),
        "{}",
        text(&out.stderr)
    );
    drop(w);
}

#[test]
fn the_command_is_pid_2_under_berths_init_and_alone() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let v = w.probe(&[]);
    assert_eq!(v["pid"], 2);
    assert_eq!(v["procs"], serde_json::json!([1, 2]));
}

#[test]
fn a_command_that_leaves_its_process_group_is_reaped() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let out = run(&w, &[w.rootfs_str(), "--", "setsid", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn a_terminal_takes_more_input_than_its_queue_holds() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let line = format!(
        "seq 3000 | {} --root {} run -t {} -- cat | tail -n 1",
        berth_e2e::bin("berth").display(),
        w.state.display(),
        w.rootfs_str()
    );
    let out = Command::new("timeout")
        .args(["-k", "5", "60", "sh", "-c", &line])
        .stdin(Stdio::null())
        .output()
        .expect("sh");
    assert_eq!(text(&out.stdout).trim(), "3000", "{}", text(&out.stderr));
}
