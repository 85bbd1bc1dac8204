//! Harness for berth's end-to-end tests: each test gets its own state directory and its
//! own copy of a busybox-static root filesystem with the probe inside, drives the `berth`
//! binary as a user would, and checks that nothing is left behind.
//!
//! These tests need root (real namespaces, cgroups and mounts). Run as another user they
//! fail, unless BERTH_TEST_ALLOW_SKIP=1 is set, in which case they are skipped.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// Whether the test may run: true as root; false (skip) for others only when
/// BERTH_TEST_ALLOW_SKIP=1; a panic otherwise.
pub fn root_or_skip() -> bool {
    // /proc/self belongs to the process's effective uid.
    use std::os::unix::fs::MetadataExt;
    let euid = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX);
    if euid == 0 {
        return true;
    }
    if std::env::var("BERTH_TEST_ALLOW_SKIP").as_deref() == Ok("1") {
        eprintln!("skipped: needs root");
        return false;
    }
    panic!("berth's end-to-end tests need root (or set BERTH_TEST_ALLOW_SKIP=1 to skip them)");
}

/// A name unique to this test process and call, valid as a container name.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Path of a binary of this workspace (built by cargo next to the test binary).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<triple>/debug/deps/test-xxx -> target/<triple>/debug/NAME
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} not built: run `cargo build --workspace` first",
        p.display()
    );
    p
}

/// One test's world: a state directory and a root filesystem, removed on drop.
pub struct World {
    pub dir: tempfile::TempDir,
    pub state: PathBuf,
    pub rootfs: PathBuf,
}

impl World {
    /// A fresh state directory and a busybox rootfs with the probe at /bin/berth-probe, a user
    /// `builder` (4242) in groups `builder` (4242) and `sbuild` (4343).
    pub fn new() -> World {
        // /var/tmp: on disk, where idmapped mounts work (tmpfs supports them only from
        // Linux 6.3). BERTH_E2E_TMP overrides it (the cgroup v2 VM has only /tmp writable).
        let base = std::env::var("BERTH_E2E_TMP").unwrap_or_else(|_| "/var/tmp".into());
        let dir = tempfile::Builder::new()
            .prefix("berth-e2e-")
            .tempdir_in(base)
            .expect("tempdir");
        // Private, as berth requires of an unprivileged container's rootfs (a setuid file
        // that container root writes in it is setuid-root on disk).
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
            .expect("chmod 700 the test directory");
        let state = dir.path().join("state");
        let rootfs = dir.path().join("rootfs");
        make_rootfs(&rootfs);
        World { dir, state, rootfs }
    }

    /// `berth --root STATE ARGS...`
    pub fn berth(&self) -> Command {
        let mut c = Command::new(bin("berth"));
        c.arg("--root").arg(&self.state);
        c
    }

    /// `berth --root ROOT`: another state root.
    pub fn berth_at(&self, root: &Path) -> Command {
        let mut c = Command::new(bin("berth"));
        c.arg("--root").arg(root);
        c
    }

    /// Runs `berth --root STATE run [OPTS...] ROOTFS -- berth-probe report` and parses the report.
    pub fn probe(&self, opts: &[&str]) -> serde_json::Value {
        let out = self
            .berth()
            .arg("run")
            .args(opts)
            .arg(&self.rootfs)
            .args(["--", "/bin/berth-probe", "report"])
            .output()
            .expect("run berth");
        assert!(out.status.success(), "probe failed: {}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("probe JSON")
    }

    /// Runs `berth --root STATE ARGS...` with stdin closed and returns its output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.berth()
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run berth")
    }

    pub fn rootfs_str(&self) -> &str {
        self.rootfs.to_str().expect("utf-8 path")
    }
}

impl Default for World {
    fn default() -> Self {
        World::new()
    }
}

impl World {
    /// Deletes every network of the World's root (after its containers): their bridges,
    /// dnsmasqs and firewall rules go with them.
    pub fn delete_networks(&self) {
        clear_root(&self.state, false);
    }
}

/// Deletes what a test left in state root `root`: its containers (with `containers`) and
/// then its networks.
fn clear_root(root: &Path, containers: bool) {
    let berth = |args: &[&str]| {
        Command::new(bin("berth"))
            .arg("--root")
            .arg(root)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
    };
    if containers {
        for entry in std::fs::read_dir(root.join("containers"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') {
                let _ = berth(&["delete", "--force", &name]);
            }
        }
    }
    let Ok(out) = berth(&["network", "list", "--format", "json"]) else {
        return;
    };
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    for n in list.as_array().into_iter().flatten() {
        if let Some(name) = n["name"].as_str() {
            let _ = berth(&["network", "delete", name]);
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        // Whatever a test made and did not delete (it failed half-way, say) goes: containers
        // (their processes, their cgroups) and networks (bridges, dnsmasqs, the firewall
        // table), of the World's root and of any other root a test made in its directory.
        clear_root(&self.state, true);
        for entry in std::fs::read_dir(self.dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let dir = entry.path();
            if dir != self.state
                && (dir.join("containers").is_dir() || dir.join("networks").is_dir())
            {
                clear_root(&dir, true);
            }
        }
        // The lxcfs berth started for a state root of this test (the World's, or another
        // under its directory) ends with its mount.
        stop_lxcfs_under(self.dir.path());
        // Nothing of a container may stay mounted on the host.
        let leaked = mounts_under(self.dir.path());
        if !leaked.is_empty() && !std::thread::panicking() {
            panic!(
                "mounts left behind under {}: {leaked:?}",
                self.dir.path().display()
            );
        }
    }
}

/// Unmounts every lxcfs mount under `dir` and ends its lxcfs (by the pid in the pid file
/// next to it, which berth wrote).
pub fn stop_lxcfs_under(dir: &Path) {
    for mount in mounts_under(dir) {
        let m = Path::new(&mount);
        if m.file_name().is_some_and(|n| n == "lxcfs") {
            let _ = Command::new("umount").arg("-l").arg(m).output();
            // lxcfs ends with its mount; one that lingers is ended by its pid, once its
            // command line shows it is this lxcfs (a pid may have been reused).
            if let Some(pid) = m
                .parent()
                .and_then(|run| std::fs::read_to_string(run.join("lxcfs.pid")).ok())
                .and_then(|p| p.trim().parse::<i32>().ok())
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                if String::from_utf8_lossy(&cmdline).contains(&*mount) {
                    let _ = Command::new("kill").arg(pid.to_string()).output();
                }
            }
        }
    }
}

/// Mount points on the host under `dir`.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let d = dir.to_string_lossy();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(d.as_ref()))
        .map(str::to_string)
        .collect()
}

/// The cgroup directories of container NAME still present on the host: a system
/// container's (berth-NAME) or a `run --name NAME` container's (berth-run.NAME).
pub fn cgroups_of(name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") else {
        return found;
    };
    let roots: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .chain([PathBuf::from("/sys/fs/cgroup")])
        .collect();
    // berth-NAME (the default state root), berth-run.NAME (berth run), berth.HASH-NAME (a
    // container of another state root, as every test's is).
    let plain = [format!("berth-{name}"), format!("berth-run.{name}")];
    let suffix = format!("-{name}");
    for root in &roots {
        for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            let of_a_root = file.strip_prefix("berth.").is_some_and(|rest| {
                rest.strip_suffix(&suffix)
                    .is_some_and(|h| h.len() == 8 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            });
            if plain.contains(&file) || of_a_root {
                found.push(entry.path());
            }
        }
    }
    found
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Builds a busybox-static root filesystem at `root`.
pub fn make_rootfs(root: &Path) {
    for d in [
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "etc",
        "proc",
        "sys",
        "dev",
        "run",
        "tmp",
        "root",
        "home/builder",
        "var/tmp",
    ] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777))
        .expect("chmod");
    std::fs::copy("/bin/busybox", root.join("bin/busybox"))
        .expect("copy busybox (install busybox-static)");
    let list = Command::new("/bin/busybox")
        .arg("--list-full")
        .output()
        .expect("busybox --list-full");
    for applet in text(&list.stdout).lines() {
        let rel = applet.trim_start_matches('/');
        if rel.is_empty() || rel == "bin/busybox" {
            continue;
        }
        let depth = rel.matches('/').count();
        let _ = symlink(
            format!("{}bin/busybox", "../".repeat(depth)),
            root.join(rel),
        );
    }
    std::fs::copy(bin("berth-probe"), root.join("bin/berth-probe")).expect("copy probe");
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nbuilder:x:4242:4242:builder:/home/builder:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    .expect("passwd");
    std::fs::write(
        root.join("etc/group"),
        "root:x:0:\ntty:x:5:\nbuilder:x:4242:\nsbuild:x:4343:builder\nnogroup:x:65534:\n",
    )
    .expect("group");
}

/// Where boot tests keep Debian root filesystems between runs (DESIGN.md §7).
pub const DEBIAN_CACHE: &str = "/var/cache/berth-test";

/// A Debian 12 rootfs made with debootstrap from the Debian mirror, with `include`d
/// packages, cached under [`DEBIAN_CACHE`] (built once, under a lock, and renamed into
/// place when complete). The cache directory is closed to other users, as berth requires.
pub fn debian_rootfs(name: &str, include: &str) -> PathBuf {
    let cache = Path::new(DEBIAN_CACHE);
    std::fs::create_dir_all(cache).expect("create the Debian cache");
    std::fs::set_permissions(cache, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let done = cache.join(name);
    let lock = std::fs::File::create(cache.join(format!(".{name}.lock"))).expect("lock file");
    lock.lock().expect("lock the Debian cache");
    if !done.join("etc/debian_version").exists() {
        let tmp = cache.join(format!(".{name}.tmp"));
        let _ = std::fs::remove_dir_all(&tmp);
        let mirror = std::env::var("BERTH_DEBIAN_MIRROR")
            .unwrap_or_else(|_| "http://deb.debian.org/debian".into());
        let out = Command::new("debootstrap")
            .args([
                "--variant=minbase",
                &format!("--include={include}"),
                "bookworm",
            ])
            .arg(&tmp)
            .arg(&mirror)
            .output()
            .expect("run debootstrap (apt-get install debootstrap)");
        assert!(
            out.status.success(),
            "debootstrap failed: {}",
            text(&out.stdout)
        );
        std::fs::rename(&tmp, &done).expect("rename the rootfs into place");
    }
    done
}

/// Where root's subordinate uids and gids start (/etc/subuid, /etc/subgid: `root:START:N`),
/// that is, the host ids of an unprivileged container's root.
pub fn subid_base() -> (u32, u32) {
    let start = |file: &str| {
        std::fs::read_to_string(file)
            .expect("read the subordinate id file")
            .lines()
            .find_map(|l| l.strip_prefix("root:")?.split(':').next()?.parse().ok())
            .expect("a range for root")
    };
    (start("/etc/subuid"), start("/etc/subgid"))
}

/// Adds the given ids to the owner and group of every entry under `root` (its top
/// included), keeping the setuid and setgid bits that chown clears: a rootfs already in an
/// unprivileged container's ids, as LXC's are, for filesystems without idmapped mounts.
pub fn shift_ids(root: &Path, (uid_by, gid_by): (u32, u32)) {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(root).expect("stat");
    std::os::unix::fs::lchown(root, Some(meta.uid() + uid_by), Some(meta.gid() + gid_by))
        .expect("lchown");
    if meta.file_type().is_symlink() {
        return;
    }
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(meta.mode() & 0o7777))
        .expect("chmod");
    if meta.is_dir() {
        for entry in std::fs::read_dir(root).expect("ls") {
            shift_ids(&entry.expect("entry").path(), (uid_by, gid_by));
        }
    }
}

/// Copies a cached rootfs into `dest` (cp -a: owners, modes, links as they are).
pub fn copy_rootfs(src: &Path, dest: &Path) {
    let ok = Command::new("cp")
        .arg("-a")
        .arg(src)
        .arg(dest)
        .status()
        .expect("cp");
    assert!(ok.success(), "cp -a {} {}", src.display(), dest.display());
}

/// Helpers for system-container tests: commands that must succeed, `info`, a started busybox
/// container that is deleted on drop.
pub mod system {
    use crate::{World, cgroups_of, text, unique};
    use serde_json::Value;
    use std::time::{Duration, Instant};

    pub fn ok(w: &World, args: &[&str]) -> String {
        let out = w.run(args);
        assert!(
            out.status.success(),
            "berth {args:?}: {}",
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// stderr of a refused command: exit 1, one line, berth's prefix.
    pub fn one_line_refusal(out: &std::process::Output, what: &str) -> String {
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {err}");
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{what}: not one line: {err}"
        );
        assert!(err.starts_with("berth: "), "{what}: {err}");
        err
    }

    /// Names in `berth list`.
    pub fn listed(w: &World) -> Vec<String> {
        let list: Value =
            serde_json::from_str(&ok(w, &["list", "--format", "json"])).expect("JSON");
        list.as_array()
            .expect("list array")
            .iter()
            .filter_map(|c| c["name"].as_str().map(str::to_string))
            .collect()
    }

    pub fn info(w: &World, name: &str) -> Value {
        serde_json::from_str(&ok(w, &["info", name, "--format", "json"])).expect("info JSON")
    }

    /// A started busybox container, stopped and deleted on drop (even when a test fails).
    pub struct Running<'a> {
        pub w: &'a World,
        pub name: String,
    }

    impl<'a> Running<'a> {
        pub fn new(w: &'a World, extra: &[&str]) -> Running<'a> {
            let name = unique("sys");
            ok(w, &[&["create", "busybox", &name][..], extra].concat());
            ok(w, &["start", &name]);
            Running { w, name }
        }
    }

    impl Drop for Running<'_> {
        fn drop(&mut self) {
            let _ = self.w.run(&["delete", "--force", &self.name]);
            if !std::thread::panicking() {
                assert!(
                    cgroups_of(&self.name).is_empty(),
                    "cgroups left: {:?}",
                    cgroups_of(&self.name)
                );
            }
        }
    }

    pub fn wait_until(mut f: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if f() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}
