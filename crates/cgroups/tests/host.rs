//! Privileged tests on the real kernel: create a cgroup in every hierarchy of this host, limit
//! it, put a process in, read back what the kernel reports, remove it.
//!
//! Run as root. Passes on a v1-hybrid host and, through `/work/shared/tools/cgroup2-vm`, on
//! pure cgroup v2. Without root the tests fail, unless `BERTH_TEST_ALLOW_SKIP=1`.

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_cgroups::{Cgroup, Error, Layout, Limits, Version};

const MIB: u64 = 1 << 20;

/// True when the test may run; panics for non-root unless skipping was allowed.
fn privileged() -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    if std::env::var_os("BERTH_TEST_ALLOW_SKIP").is_some_and(|v| v == "1") {
        eprintln!("skipped: needs root");
        return false;
    }
    panic!("this test needs root (set BERTH_TEST_ALLOW_SKIP=1 to skip it)");
}

/// A name no other test run or test in this run uses.
fn unique(tag: &str) -> String {
    format!("berth-test-{}-{tag}", std::process::id())
}

/// Owns what a test made, so a failed assert still kills its processes and removes its
/// cgroup. Children are killed by their own pid before the cgroup goes.
#[derive(Default)]
struct Guard {
    cgroup: Option<Cgroup>,
    children: Vec<Child>,
    raw_children: Vec<i32>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for &pid in &self.raw_children {
            if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
            }
        }
        // Dropping the cgroup removes it (and logs if it cannot).
        self.cgroup.take();
    }
}

fn sleeper() -> Child {
    Command::new("sleep")
        .arg("30")
        .spawn()
        .expect("spawn sleep 30")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .trim()
        .to_owned()
}

/// The directory of `cgroup` that belongs to the hierarchy holding `controller`.
fn dir_of(layout: &Layout, cgroup: &Cgroup, controller: &str) -> PathBuf {
    let hierarchy = if layout.version == Version::V2 {
        layout.unified.clone()
    } else {
        layout
            .v1
            .iter()
            .find(|h| h.controllers.iter().any(|c| c == controller))
            .map(|h| h.mount_point.clone())
    };
    let root = hierarchy.unwrap_or_else(|| panic!("no hierarchy has {controller}"));
    cgroup
        .paths()
        .iter()
        .find(|p| p.starts_with(&root))
        .unwrap_or_else(|| panic!("no directory under {}", root.display()))
        .clone()
}

fn assert_all_gone(paths: &[PathBuf]) {
    for path in paths {
        assert!(!path.exists(), "{} still exists", path.display());
    }
}

/// Checks `/proc/PID/cgroup` puts `pid` in `/name` in every hierarchy.
fn assert_member(pid: u32, name: &str, hierarchies: usize) {
    let text = read(Path::new(&format!("/proc/{pid}/cgroup")));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), hierarchies, "/proc/{pid}/cgroup:\n{text}");
    for line in lines {
        assert!(line.ends_with(&format!(":/{name}")), "{line} in\n{text}");
    }
}

#[test]
fn limits_attach_and_remove() {
    if !privileged() {
        return;
    }
    let layout = Layout::detect().expect("detect cgroup layout");
    eprintln!("layout: {layout:?}");
    let name = unique("limits");
    let mut guard = Guard::default();

    let started = Instant::now();
    let cgroup = guard
        .cgroup
        .insert(Cgroup::create(&layout, &name).expect("create cgroup"));
    let created = started.elapsed();
    let expected = layout.v1.len() + usize::from(layout.unified.is_some());
    assert_eq!(cgroup.paths().len(), expected);
    for path in cgroup.paths() {
        assert!(path.is_dir(), "{} missing", path.display());
        assert_eq!(
            path.file_name().and_then(|n| n.to_str()),
            Some(name.as_str())
        );
    }
    assert_eq!(cgroup.v2_fd().is_some(), layout.version == Version::V2);

    let limits = Limits {
        memory: Some(64 * MIB),
        pids: Some(64),
        cpus: Some(1.5),
        ..Limits::default()
    };
    cgroup.apply(&limits).expect("apply limits");

    let child = sleeper();
    let pid = child.id();
    guard.children.push(child);
    let started = Instant::now();
    let cgroup = guard.cgroup.as_ref().expect("created above");
    cgroup
        .attach(i32::try_from(pid).expect("pid fits i32"))
        .expect("attach");
    eprintln!(
        "create in {} hierarchies: {created:?}, attach: {:?}",
        expected,
        started.elapsed()
    );

    let memory = dir_of(&layout, cgroup, "memory");
    let pids = dir_of(&layout, cgroup, "pids");
    let cpu = dir_of(&layout, cgroup, "cpu");
    if layout.version == Version::V2 {
        assert_eq!(read(&memory.join("memory.max")), "67108864");
        assert_eq!(read(&pids.join("pids.max")), "64");
        assert_eq!(read(&cpu.join("cpu.max")), "150000 100000");
    } else {
        assert_eq!(read(&memory.join("memory.limit_in_bytes")), "67108864");
        assert_eq!(read(&pids.join("pids.max")), "64");
        assert_eq!(read(&cpu.join("cpu.cfs_period_us")), "100000");
        assert_eq!(read(&cpu.join("cpu.cfs_quota_us")), "150000");
        if let Some(cpuset) = layout.v1.iter().find(|h| h.name == "cpuset") {
            let dir = cpuset.mount_point.join(&name);
            for file in ["cpuset.cpus", "cpuset.mems"] {
                let own = read(&dir.join(file));
                assert!(!own.is_empty(), "{file} empty");
                assert_eq!(own, read(&cpuset.mount_point.join(file)), "{file}");
            }
        }
    }
    for path in cgroup.paths() {
        assert_eq!(read(&path.join("cgroup.procs")), pid.to_string());
    }
    assert_member(pid, &name, expected);

    // Killed by its own pid, then the cgroup is empty and goes at once.
    let mut child = guard.children.pop().expect("pushed above");
    child.kill().expect("kill sleep");
    child.wait().expect("wait sleep");
    let cgroup = guard.cgroup.take().expect("created above");
    let paths = cgroup.paths().to_vec();
    let started = Instant::now();
    cgroup.remove().expect("remove");
    eprintln!("remove: {:?}", started.elapsed());
    assert_all_gone(&paths);
}

/// `remove` must kill processes the container forked after it was attached, also when they
/// sit in a child cgroup the container made (as systemd inside a container does).
fn remove_kills_forked_processes(layout: &Layout, name: &str, nested: bool) {
    let mut guard = Guard::default();
    let cgroup = guard
        .cgroup
        .insert(Cgroup::create(layout, name).expect("create cgroup"));
    let mut shell = Command::new("sh")
        .args(["-c", "read go; sleep 30 & sleep 30 & wait"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn sh");
    let pid = shell.id();
    let mut stdin = shell.stdin.take().expect("piped stdin");
    guard.children.push(shell);
    cgroup
        .attach(i32::try_from(pid).expect("pid fits i32"))
        .expect("attach");
    let mut procs = cgroup.paths()[0].join("cgroup.procs");
    if nested {
        for path in cgroup.paths() {
            let inner = path.join("inner").join("deeper");
            std::fs::create_dir_all(&inner).expect("create child cgroups");
            for file in ["cpuset.cpus", "cpuset.mems"] {
                for dir in [path.join("inner"), inner.clone()] {
                    if dir.join(file).exists() {
                        std::fs::write(dir.join(file), read(&path.join(file))).expect(file);
                    }
                }
            }
            std::fs::write(inner.join("cgroup.procs"), pid.to_string()).expect("move sh");
        }
        procs = cgroup.paths()[0].join("inner/deeper/cgroup.procs");
    }
    stdin.write_all(b"go\n").expect("start the shell");

    let deadline = Instant::now() + Duration::from_secs(5);
    while read(&procs).lines().count() < 3 {
        assert!(
            Instant::now() < deadline,
            "sh did not fork: {}",
            read(&procs)
        );
        std::thread::sleep(Duration::from_millis(5));
    }

    let cgroup = guard.cgroup.take().expect("created above");
    let paths = cgroup.paths().to_vec();
    let started = Instant::now();
    cgroup
        .remove()
        .expect("remove a cgroup with live processes");
    eprintln!(
        "{name}: kill 3 processes and remove: {:?}",
        started.elapsed()
    );
    assert_all_gone(&paths);
    let status = guard.children[0].wait().expect("wait sh");
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
}

#[test]
fn remove_kills_what_is_inside() {
    if !privileged() {
        return;
    }
    let layout = Layout::detect().expect("detect cgroup layout");
    remove_kills_forked_processes(&layout, &unique("kill"), false);
    remove_kills_forked_processes(&layout, &unique("kill-nested"), true);
}

/// Without a cgroup2 directory, `remove` has no `cgroup.kill` and must kill pid by pid.
#[test]
fn remove_kills_by_pid_in_v1_hierarchies() {
    if !privileged() {
        return;
    }
    let mut layout = Layout::detect().expect("detect cgroup layout");
    if layout.v1.is_empty() {
        eprintln!("skipped: this host has no cgroup v1 hierarchy");
        return;
    }
    layout.unified = None;
    layout.version = Version::V1;
    remove_kills_forked_processes(&layout, &unique("kill-v1"), false);
    remove_kills_forked_processes(&layout, &unique("kill-v1-nested"), true);
}

/// A cgroup2 parent that has not enabled cpu, memory and pids for its children gets them
/// enabled by `create`, when it has them; when it does not (the hybrid host's unified
/// tree), a limit that needs one is refused by name.
#[test]
fn v2_parent_delegates_controllers() {
    if !privileged() {
        return;
    }
    let detected = Layout::detect().expect("detect cgroup layout");
    let Some(root) = detected.unified else {
        eprintln!("skipped: no cgroup2 mount here");
        return;
    };
    let parent = root.join(unique("parent"));
    std::fs::create_dir(&parent).expect("create parent cgroup");
    struct RemoveParent(PathBuf);
    impl Drop for RemoveParent {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    let _parent_guard = RemoveParent(parent.clone());
    assert_eq!(read(&parent.join("cgroup.subtree_control")), "");
    let available = read(&parent.join("cgroup.controllers"));
    let has = |c: &str| available.split_whitespace().any(|a| a == c);

    let layout = Layout {
        version: Version::V2,
        v1: Vec::new(),
        unified: Some(parent.clone()),
    };
    let cgroup = Cgroup::create(&layout, "child").expect("create child cgroup");
    let enabled = read(&parent.join("cgroup.subtree_control"));
    for controller in berth_cgroups::LIMIT_CONTROLLERS {
        assert_eq!(
            enabled.split_whitespace().any(|e| e == controller),
            has(controller),
            "{controller}: available {available:?}, enabled {enabled:?}"
        );
    }
    let limits = Limits {
        memory: Some(64 * MIB),
        pids: Some(64),
        cpus: Some(0.5),
        ..Limits::default()
    };
    let result = cgroup.apply(&limits);
    if has("memory") && has("pids") && has("cpu") {
        result.expect("apply limits");
        let dir = parent.join("child");
        assert_eq!(read(&dir.join("memory.max")), "67108864");
        assert_eq!(read(&dir.join("pids.max")), "64");
        assert_eq!(read(&dir.join("cpu.max")), "50000 100000");
    } else if !has("memory") {
        match result {
            Err(Error::MissingController { controller }) => assert_eq!(controller, "memory"),
            other => panic!("expected MissingController, got {other:?}"),
        }
    }
    cgroup.remove().expect("remove child cgroup");
}

#[test]
fn existing_directory_is_refused_and_nothing_is_left_behind() {
    if !privileged() {
        return;
    }
    let layout = Layout::detect().expect("detect cgroup layout");
    let name = unique("exists");
    // Taken in the last hierarchy create() reaches, so every other one is undone.
    let last = layout
        .unified
        .clone()
        .or_else(|| layout.v1.last().map(|h| h.mount_point.clone()))
        .expect("some hierarchy");
    let taken = last.join(&name);
    std::fs::create_dir(&taken).expect("pre-create a cgroup");
    let result = Cgroup::create(&layout, &name);
    let taken_still_there = taken.is_dir();
    std::fs::remove_dir(&taken).expect("remove the pre-created cgroup");

    match result {
        Err(Error::Exists { path }) => assert_eq!(path, taken),
        other => panic!("expected Exists, got {other:?}"),
    }
    assert!(
        taken_still_there,
        "create() removed a directory it did not make"
    );
    for hierarchy in &layout.v1 {
        let path = hierarchy.mount_point.join(&name);
        assert!(!path.exists(), "{} left behind", path.display());
    }
}

#[test]
fn limit_without_its_controller_is_refused() {
    if !privileged() {
        return;
    }
    let detected = Layout::detect().expect("detect cgroup layout");
    let Some(systemd) = detected.v1.iter().find(|h| h.controllers.is_empty()) else {
        eprintln!("skipped: no v1 hierarchy without controllers (name=systemd) here");
        return;
    };
    let layout = Layout {
        version: Version::V1,
        v1: vec![systemd.clone()],
        unified: None,
    };
    let cgroup = Cgroup::create(&layout, &unique("missing")).expect("create cgroup");
    let limits = Limits {
        memory: Some(64 * MIB),
        ..Limits::default()
    };
    match cgroup.apply(&limits) {
        Err(Error::MissingController { controller }) => assert_eq!(controller, "memory"),
        other => panic!("expected MissingController, got {other:?}"),
    }
    let path = cgroup.paths()[0].clone();
    drop(cgroup);
    assert!(!path.exists(), "drop left {}", path.display());
}

#[test]
fn invalid_limits_write_nothing() {
    if !privileged() {
        return;
    }
    let layout = Layout::detect().expect("detect cgroup layout");
    let cgroup = Cgroup::create(&layout, &unique("invalid")).expect("create cgroup");
    let limits = Limits {
        pids: Some(10),
        cpus: Some(f64::NAN),
        ..Limits::default()
    };
    assert!(matches!(
        cgroup.apply(&limits),
        Err(Error::InvalidLimits(_))
    ));
    let pids = dir_of(&layout, &cgroup, "pids");
    assert_eq!(read(&pids.join("pids.max")), "max");
    cgroup.remove().expect("remove");
}

/// `struct clone_args` (linux/sched.h), for the CLONE_INTO_CGROUP test.
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// What the launcher does on v2: the child starts inside the cgroup, no attach step.
#[test]
fn v2_fd_places_a_clone3_child_in_the_cgroup() {
    use std::os::fd::AsRawFd;

    if !privileged() {
        return;
    }
    let layout = Layout::detect().expect("detect cgroup layout");
    if layout.version != Version::V2 {
        eprintln!("skipped: CLONE_INTO_CGROUP needs a pure cgroup v2 host");
        return;
    }
    let name = unique("clone3");
    let mut guard = Guard::default();
    let cgroup = guard
        .cgroup
        .insert(Cgroup::create(&layout, &name).expect("create cgroup"));
    let fd = cgroup.v2_fd().expect("v2 fd on pure v2");
    let mut args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: u64::try_from(fd.as_raw_fd()).expect("fd is not negative"),
        ..CloneArgs::default()
    };
    // SAFETY: `args` is a complete clone_args of the size passed; with no stack given the
    // child runs on a copy of this one, like fork(2). The child only calls pause(2) and
    // _exit(2), both async-signal-safe, so the test harness's other threads do not matter.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if ret == 0 {
        // SAFETY: see above; the child waits to be killed and never returns into Rust code.
        unsafe {
            libc::pause();
            libc::_exit(0)
        }
    }
    assert!(ret > 0, "clone3: {}", std::io::Error::last_os_error());
    let pid = i32::try_from(ret).expect("pid fits i32");
    guard.raw_children.push(pid);

    let pid_u32 = u32::try_from(pid).expect("positive pid");
    assert_member(pid_u32, &name, 1);
    let cgroup = guard.cgroup.take().expect("created above");
    let paths = cgroup.paths().to_vec();
    cgroup.remove().expect("remove kills the clone3 child");
    assert_all_gone(&paths);
    let raw = rustix::process::Pid::from_raw(pid).expect("positive pid");
    let (_, status) = rustix::process::waitpid(Some(raw), rustix::process::WaitOptions::empty())
        .expect("waitpid")
        .expect("child status");
    guard.raw_children.clear();
    assert_eq!(status.terminating_signal(), Some(libc::SIGKILL));
}

/// A whole block device of this machine, as (path, major, minor), for the throttle keys.
fn some_disk() -> Option<(PathBuf, u32, u32)> {
    for entry in std::fs::read_dir("/sys/block").ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("loop") || name.starts_with("ram") {
            continue;
        }
        let dev = std::fs::read_to_string(entry.path().join("dev")).ok()?;
        let (major, minor) = dev.trim().split_once(':')?;
        let path = PathBuf::from(format!("/dev/{name}"));
        if path.exists() {
            return Some((path, major.parse().ok()?, minor.parse().ok()?));
        }
    }
    None
}

/// Every cgroup key lands in its file with its conversion, a changed set replaces it, and
/// unsetting gives the kernel's default back; on v1 here and on v2 in the VM.
#[test]
fn every_cgroup_limit_lands_changes_and_resets() {
    if !privileged() {
        return;
    }
    let layout = Layout::detect().expect("detect cgroup layout");
    let cgroup = Cgroup::create(&layout, &unique("every")).expect("create cgroup");
    let v2 = layout.version == Version::V2;
    let disk = some_disk();
    let mut limits = Limits {
        memory: Some(256 * MIB),
        memory_high: Some(200 * MIB),
        cpus: Some(0.5),
        cpu_weight: Some(200),
        cpuset: Some("0".into()),
        pids: Some(50),
        ..Limits::default()
    };
    let mem_dir = dir_of(&layout, &cgroup, "memory");
    let has_swap = mem_dir
        .join(if v2 {
            "memory.swap.max"
        } else {
            "memory.memsw.limit_in_bytes"
        })
        .exists();
    if has_swap {
        limits.swap = Some(64 * MIB);
    }
    if let Some((device, major, minor)) = &disk {
        limits.io.push(berth_spec::IoLimit {
            device: device.clone(),
            dev: (*major, *minor),
            read_bps: Some(MIB),
            write_iops: Some(100),
            ..Default::default()
        });
    }
    cgroup.apply(&limits).expect("apply every limit");
    let cpu = dir_of(&layout, &cgroup, "cpu");
    let pids = dir_of(&layout, &cgroup, "pids");
    let cpuset = dir_of(&layout, &cgroup, "cpuset");
    assert_eq!(read(&pids.join("pids.max")), "50");
    assert_eq!(read(&cpuset.join("cpuset.cpus")), "0");
    if v2 {
        assert_eq!(read(&mem_dir.join("memory.max")), (256 * MIB).to_string());
        assert_eq!(read(&mem_dir.join("memory.high")), (200 * MIB).to_string());
        assert_eq!(read(&cpu.join("cpu.max")), "50000 100000");
        assert_eq!(read(&cpu.join("cpu.weight")), "200");
        if has_swap {
            assert_eq!(
                read(&mem_dir.join("memory.swap.max")),
                (64 * MIB).to_string()
            );
        }
    } else {
        assert_eq!(
            read(&mem_dir.join("memory.limit_in_bytes")),
            (256 * MIB).to_string()
        );
        assert_eq!(
            read(&mem_dir.join("memory.soft_limit_in_bytes")),
            (200 * MIB).to_string()
        );
        assert_eq!(read(&cpu.join("cpu.cfs_quota_us")), "50000");
        assert_eq!(read(&cpu.join("cpu.shares")), "2048");
        if has_swap {
            assert_eq!(
                read(&mem_dir.join("memory.memsw.limit_in_bytes")),
                (320 * MIB).to_string()
            );
        }
    }
    if let Some((_, major, minor)) = &disk {
        let io = dir_of(&layout, &cgroup, if v2 { "io" } else { "blkio" });
        if v2 {
            let max = read(&io.join("io.max"));
            assert!(
                max.contains(&format!(
                    "{major}:{minor} rbps=1048576 wbps=max riops=max wiops=100"
                )),
                "io.max: {max}"
            );
        } else {
            assert_eq!(
                read(&io.join("blkio.throttle.read_bps_device")),
                format!("{major}:{minor} 1048576")
            );
            assert_eq!(
                read(&io.join("blkio.throttle.write_iops_device")),
                format!("{major}:{minor} 100")
            );
        }
    }

    // Live change: more memory (past the old memsw on v1), fewer pids.
    let mut changed = limits.clone();
    changed.memory = Some(512 * MIB);
    changed.pids = Some(20);
    cgroup.update(&limits, &changed).expect("change limits");
    assert_eq!(read(&pids.join("pids.max")), "20");
    let mem_file = if v2 {
        "memory.max"
    } else {
        "memory.limit_in_bytes"
    };
    assert_eq!(read(&mem_dir.join(mem_file)), (512 * MIB).to_string());

    // Unset everything: the kernel's defaults come back.
    cgroup
        .update(&changed, &Limits::default())
        .expect("reset limits");
    assert_eq!(read(&pids.join("pids.max")), "max");
    if v2 {
        assert_eq!(read(&mem_dir.join("memory.max")), "max");
        assert_eq!(read(&cpu.join("cpu.max")), "max 100000");
        assert_eq!(read(&cpu.join("cpu.weight")), "100");
        assert_eq!(read(&cpuset.join("cpuset.cpus")), "");
    } else {
        assert_eq!(read(&cpu.join("cpu.cfs_quota_us")), "-1");
        assert_eq!(read(&cpu.join("cpu.shares")), "1024");
        // v1: the parent's cpus again (v2's root has no cpuset.cpus to compare with).
        let parent_cpus = read(&cpuset.parent().expect("parent").join("cpuset.cpus"));
        assert_eq!(read(&cpuset.join("cpuset.cpus")), parent_cpus);
        assert!(
            read(&mem_dir.join("memory.limit_in_bytes"))
                .parse::<u64>()
                .expect("number")
                > 1 << 40
        );
    }
    if let Some((_, major, minor)) = &disk {
        let io = dir_of(&layout, &cgroup, if v2 { "io" } else { "blkio" });
        let file = if v2 {
            "io.max"
        } else {
            "blkio.throttle.read_bps_device"
        };
        let text = read(&io.join(file));
        assert!(
            !text.contains(&format!("{major}:{minor}")),
            "{file}: {text}"
        );
    }
    // An adopted cgroup (what `config set` on a running container gets) finds its files too.
    let adopted = Cgroup::adopt(cgroup.paths());
    let pids_only = Limits {
        pids: Some(7),
        ..Limits::default()
    };
    adopted
        .apply(&pids_only)
        .expect("apply through an adopted cgroup");
    assert_eq!(read(&pids.join("pids.max")), "7");
    cgroup.remove().expect("remove");
}
