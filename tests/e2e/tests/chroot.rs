//! `berth chroot`: GNU chroot(8)'s grammar, exit statuses and environment, with the command
//! isolated in its own mount, pid, ipc and uts namespaces.

use berth_e2e::{World, root_or_skip, text};
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};

fn chroot(w: &World, args: &[&str]) -> std::process::Output {
    w.berth()
        .arg("chroot")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run berth chroot")
}

#[test]
fn runs_the_command_and_returns_its_status() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let out = chroot(
        &w,
        &[w.rootfs_str(), "/bin/sh", "-c", "echo inside; exit 7"],
    );
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(text(&out.stdout), "inside\n");
    // A command ended by a signal gives 128+N, as under chroot(8).
    let out = chroot(&w, &[w.rootfs_str(), "sh", "-c", "kill -TERM $$"]);
    assert_eq!(out.status.code(), Some(143));
}

#[test]
fn exit_statuses_of_berth_itself_follow_chroot() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let r = w.rootfs_str();
    // 127: the command does not exist.
    let out = chroot(&w, &[r, "/no/such/command"]);
    assert_eq!(out.status.code(), Some(127), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("/no/such/command"));
    // 126: it exists but cannot be run.
    let out = chroot(&w, &[r, "/etc/passwd"]);
    assert_eq!(out.status.code(), Some(126), "{}", text(&out.stderr));
    // 125: berth itself fails (no such NEWROOT; an unknown option).
    let out = chroot(&w, &["/no/such/root", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(text(&out.stderr).contains("/no/such/root"));
    let out = chroot(&w, &["--bogus", r, "true"]);
    assert_eq!(out.status.code(), Some(125));
    // --skip-chdir is only allowed with NEWROOT = '/', as in GNU chroot.
    let out = chroot(&w, &["--skip-chdir", r, "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(text(&out.stderr).contains("--skip-chdir"));
}

#[test]
fn options_after_newroot_belong_to_the_command() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let out = chroot(&w, &[w.rootfs_str(), "echo", "--userspec=x", "-n", "ok"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "--userspec=x -n ok\n");
}

#[test]
fn default_command_is_the_shell_from_shell_with_dash_i() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let out = w
        .berth()
        .args(["chroot", w.rootfs_str()])
        .env("SHELL", "/bin/echo")
        .stdin(Stdio::null())
        .output()
        .expect("berth chroot");
    assert_eq!(text(&out.stdout), "-i\n", "{}", text(&out.stderr));
    // Without SHELL, /bin/sh -i reads its commands from stdin.
    let mut child = w
        .berth()
        .args(["chroot", w.rootfs_str()])
        .env_remove("SHELL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"echo from-sh\nexit 3\n").expect("write");
    }
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stdout).contains("from-sh"));
}

#[test]
fn environment_passes_through_unchanged() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let out = w
        .berth()
        .args(["chroot", w.rootfs_str(), "env"])
        .env_clear()
        .env("PATH", "/bin:/usr/bin")
        .env("BUILD_ID", "42 with spaces")
        .env("DEB_BUILD_OPTIONS", "nocheck parallel=2")
        .stdin(Stdio::null())
        .output()
        .expect("berth chroot env");
    let mut got: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
    got.sort();
    assert_eq!(
        got,
        [
            "BUILD_ID=42 with spaces",
            "DEB_BUILD_OPTIONS=nocheck parallel=2",
            "PATH=/bin:/usr/bin"
        ]
    );
}

#[test]
fn userspec_and_groups_resolve_inside_newroot() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let r = w.rootfs_str();
    // The host has no user "builder": the name resolves in NEWROOT/etc/passwd, and the
    // groups in NEWROOT/etc/group (sbuild lists builder as a member).
    let out = chroot(&w, &["--userspec=builder", r, "id"]);
    assert_eq!(
        text(&out.stdout).trim(),
        "uid=4242(builder) gid=4242(builder) groups=4242(builder),4343(sbuild)",
        "{}",
        text(&out.stderr)
    );
    let out = chroot(
        &w,
        &["--userspec=builder:sbuild", "--groups=builder", r, "id"],
    );
    assert_eq!(
        text(&out.stdout).trim(),
        "uid=4242(builder) gid=4343(sbuild) groups=4242(builder)"
    );
    let out = chroot(&w, &["--userspec=1234:5678", r, "id", "-u"]);
    assert_eq!(text(&out.stdout).trim(), "1234");
    let out = chroot(&w, &["--userspec=nosuchuser", r, "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(text(&out.stderr).contains("nosuchuser"));
}

#[test]
fn files_are_written_as_real_root_would_write_them() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let out = chroot(
        &w,
        &[
            w.rootfs_str(),
            "sh",
            "-c",
            "echo x > /root/by-root; chown 4242:4343 /root/by-root; echo y > /tmp/plain",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let m = std::fs::metadata(w.rootfs.join("root/by-root")).expect("written file");
    assert_eq!((m.uid(), m.gid()), (4242, 4343));
    let m = std::fs::metadata(w.rootfs.join("tmp/plain")).expect("written file");
    assert_eq!((m.uid(), m.gid()), (0, 0));
    let out = chroot(
        &w,
        &[
            "--userspec=builder:builder",
            w.rootfs_str(),
            "sh",
            "-c",
            "echo z > /home/builder/mine",
        ],
    );
    // builder cannot write in a root-owned home until it is given one.
    assert!(!out.status.success());
    std::os::unix::fs::chown(w.rootfs.join("home/builder"), Some(4242), Some(4242)).expect("chown");
    let out = chroot(
        &w,
        &[
            "--userspec=builder:builder",
            w.rootfs_str(),
            "sh",
            "-c",
            "echo z > /home/builder/mine",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let m = std::fs::metadata(w.rootfs.join("home/builder/mine")).expect("written file");
    assert_eq!((m.uid(), m.gid()), (4242, 4242));
}

#[test]
fn isolated_processes_proc_dev_and_hostname() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    let out = chroot(
        &w,
        &[
            w.rootfs_str(),
            "sh",
            "-c",
            "ls /proc | grep -E '^[0-9]+$' | sort -n | tr '\\n' ' '; echo; hostname; hostname changed-inside; hostname; ls /dev | tr '\\n' ' '",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    // Only the container's processes: its init (1), the shell (2) and what the shell runs.
    let pids: Vec<u32> = lines[0]
        .split_whitespace()
        .map(|p| p.parse().expect("pid"))
        .collect();
    assert_eq!(pids[..2], [1, 2], "{stdout}");
    assert!(
        pids.iter().all(|p| *p < 10),
        "host processes visible: {stdout}"
    );
    // The host's hostname, in a uts namespace of its own: changing it does not reach the host.
    assert_eq!(lines[1], host_name.trim());
    assert_eq!(lines[2], "changed-inside");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname"),
        host_name
    );
    for node in [
        "null", "zero", "full", "random", "urandom", "tty", "pts", "ptmx", "shm",
    ] {
        assert!(
            lines[3].split_whitespace().any(|n| n == node),
            "/dev/{node} missing: {}",
            lines[3]
        );
    }
    // The rootfs's own /dev (empty here) was not written to.
    assert_eq!(
        std::fs::read_dir(w.rootfs.join("dev")).expect("ls").count(),
        0
    );
}

#[test]
fn host_network_by_default_and_empty_with_no_network() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let host_net = std::fs::read_link("/proc/self/ns/net").expect("host netns");
    let out = chroot(&w, &[w.rootfs_str(), "readlink", "/proc/self/ns/net"]);
    assert_eq!(text(&out.stdout).trim(), host_net.to_string_lossy());
    let out = chroot(
        &w,
        &[
            "--no-network",
            w.rootfs_str(),
            "sh",
            "-c",
            "readlink /proc/self/ns/net; ls /sys/class/net 2>/dev/null || cat /proc/net/dev",
        ],
    );
    let stdout = text(&out.stdout);
    assert_ne!(
        stdout.lines().next().unwrap_or(""),
        host_net.to_string_lossy()
    );
    assert!(stdout.contains("lo"));
    assert!(!stdout.contains("eth0"), "{stdout}");
}

#[test]
fn mounts_under_newroot_stay_visible_and_new_ones_do_not_leak() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    // A build daemon often mounts things inside its chroot (a build tree, a package cache):
    // berth chroot takes NEWROOT with its submounts, as chroot(8) sees them.
    let build = w.rootfs.join("build");
    std::fs::create_dir_all(&build).expect("mkdir");
    let src = w.dir.path().join("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("hello.c"), "int main(){}\n").expect("write");
    let ok = Command::new("mount")
        .arg("--bind")
        .arg(&src)
        .arg(&build)
        .status()
        .expect("mount");
    assert!(ok.success());
    let out = chroot(
        &w,
        &[
            w.rootfs_str(),
            "sh",
            "-c",
            "cat /build/hello.c; mkdir -p /mnt && mount -t tmpfs none /mnt && echo mounted",
        ],
    );
    let _ = Command::new("umount").arg(&build).status();
    assert_eq!(
        text(&out.stdout),
        "int main(){}\nmounted\n",
        "{}",
        text(&out.stderr)
    );
    assert!(berth_e2e::mounts_under(w.dir.path()).is_empty());
}
