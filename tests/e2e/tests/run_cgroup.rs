//! The cgroup of a `berth run` container on a cgroup v1 (or hybrid) host: its own
//! directories while it runs, limits seen from inside through the cgroup namespace, and
//! nothing left afterwards. (Pure cgroup v2: see cgroup_v2.rs.)

use berth_e2e::{World, cgroups_of, root_or_skip, text, unique};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

/// Whether the host has the v1 hierarchies these tests look at.
fn v1_or_skip() -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let v1 = ["memory", "pids", "cpu"].iter().all(|c| {
        let mp = format!(" /sys/fs/cgroup/{c} ");
        info.lines()
            .any(|l| l.contains(&mp) && l.contains(" - cgroup "))
    });
    if !v1 {
        eprintln!("skipped: no cgroup v1 memory, pids and cpu hierarchies here");
    }
    v1
}

/// `berth run --name NAME [OPTS] ROOTFS -- CMD...` with stdin closed.
fn run_named(w: &World, name: &str, opts: &[&str], cmd: &[&str]) -> Output {
    let mut args = vec!["run", "--name", name];
    args.extend_from_slice(opts);
    args.push(w.rootfs_str());
    args.push("--");
    args.extend_from_slice(cmd);
    w.run(&args)
}

fn assert_no_cgroup_left(name: &str) {
    let left = cgroups_of(name);
    assert!(left.is_empty(), "cgroups left behind: {left:?}");
}

/// A background berth, killed (by its PID) if the test ends before it does.
struct Background(Child);

impl Drop for Background {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            // SIGTERM, not SIGKILL: berth then ends the container and removes its cgroup.
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(self.0.id().to_string())
                .status();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn the_container_has_its_own_cgroup_while_it_runs_and_none_after() {
    if !root_or_skip() || !v1_or_skip() {
        return;
    }
    let w = World::new();
    let name = unique("run-cg");
    // The container says it runs, then waits for a line on stdin: no timing involved.
    let child = w
        .berth()
        .args(["run", "--name", &name, w.rootfs_str(), "--"])
        .args(["sh", "-c", "echo running; read line; echo done"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn berth");
    let mut berth = Background(child);
    let mut stdout = BufReader::new(berth.0.stdout.take().expect("stdout is piped"));
    let mut line = String::new();
    stdout
        .read_line(&mut line)
        .expect("read the container's output");
    assert_eq!(line, "running\n");
    let berth_pid = berth.0.id().to_string();
    for c in ["memory", "pids", "cpu"] {
        let dir = Path::new("/sys/fs/cgroup")
            .join(c)
            .join(format!("berth-run.{name}"));
        assert!(
            dir.is_dir(),
            "{} is missing while the container runs",
            dir.display()
        );
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        // The container's processes are in it (berth itself need not be).
        assert!(
            procs.lines().any(|p| p != berth_pid),
            "{}: no container process in it ({procs:?})",
            dir.display()
        );
    }
    let mut stdin = berth.0.stdin.take().expect("stdin is piped");
    stdin
        .write_all(b"go\n")
        .expect("write the container's stdin");
    drop(stdin);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).expect("read the rest");
    let status = berth.0.wait().expect("wait for berth");
    assert_eq!(status.code(), Some(0), "berth: {status:?}");
    assert_eq!(rest, "done\n");
    assert_no_cgroup_left(&name);
}

#[test]
fn limits_show_inside_in_the_containers_own_cgroup() {
    if !root_or_skip() || !v1_or_skip() {
        return;
    }
    let w = World::new();
    let name = unique("run-lim");
    let out = run_named(
        &w,
        &name,
        &["--memory", "64MiB", "--pids", "50", "--cpus", "0.5"],
        &[
            "cat",
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/pids/pids.max",
            "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
            "/sys/fs/cgroup/cpu/cpu.cfs_period_us",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "67108864\n50\n50000\n100000\n");
    assert_no_cgroup_left(&name);
}

#[test]
fn the_container_sees_its_cgroup_as_the_root() {
    if !root_or_skip() || !v1_or_skip() {
        return;
    }
    let w = World::new();
    let name = unique("run-ns");
    let out = run_named(&w, &name, &[], &["cat", "/proc/self/cgroup"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let cgroups = text(&out.stdout);
    for c in ["memory", "pids"] {
        // "ID:CONTROLLERS:PATH", CONTROLLERS a comma-separated list.
        let path = cgroups.lines().find_map(|l| {
            let mut f = l.splitn(3, ':');
            let _id = f.next()?;
            let controllers = f.next()?;
            controllers.split(',').any(|x| x == c).then(|| f.next())?
        });
        assert_eq!(path, Some("/"), "{c} in /proc/self/cgroup:\n{cgroups}");
    }
    assert_no_cgroup_left(&name);
}

#[test]
fn the_cgroup_goes_away_whatever_the_command_did() {
    if !root_or_skip() || !v1_or_skip() {
        return;
    }
    let w = World::new();
    for (script, code) in [
        ("exit 7", 7),
        ("kill -9 $$", 137),
        // A child left running when the command exits.
        ("sleep 30 & exit 3", 3),
    ] {
        let name = unique("run-end");
        let out = run_named(&w, &name, &["--pids", "20"], &["sh", "-c", script]);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{script}: {}",
            text(&out.stderr)
        );
        assert_no_cgroup_left(&name);
    }
}
