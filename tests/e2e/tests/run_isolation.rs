//! What `berth run` isolates: namespaces, the network, user ids and file ownership, and the
//! filesystem the container sees (/proc, /sys, /dev, /run, /tmp, binds, --ephemeral).

use berth_e2e::{World, root_or_skip, text};
use serde_json::Value;
use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Output;

/// `berth run [OPTS] ROOTFS -- CMD...` with stdin closed.
fn run(w: &World, opts: &[&str], cmd: &[&str]) -> Output {
    let mut args = vec!["run"];
    args.extend_from_slice(opts);
    args.push(w.rootfs_str());
    args.push("--");
    args.extend_from_slice(cmd);
    w.run(&args)
}

/// Like `run`, asserting that the command succeeded; returns its stdout.
fn run_ok(w: &World, opts: &[&str], cmd: &[&str]) -> String {
    let out = run(w, opts, cmd);
    assert!(
        out.status.success(),
        "berth run {opts:?} -- {cmd:?}: {:?}\n{}",
        out.status,
        text(&out.stderr)
    );
    text(&out.stdout)
}

const NAMESPACES: &[&str] = &["user", "mnt", "pid", "uts", "ipc", "cgroup", "net"];

/// The container's namespaces by type, as `readlink /proc/self/ns/TYPE` shows them inside.
fn namespaces_inside(w: &World, opts: &[&str]) -> Vec<(String, String)> {
    let script = NAMESPACES
        .iter()
        .map(|ns| format!("echo {ns} $(readlink /proc/self/ns/{ns})"))
        .collect::<Vec<_>>()
        .join("; ");
    let out = run_ok(w, opts, &["sh", "-c", &script]);
    let found: Vec<(String, String)> = out
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(ns, link)| (ns.to_string(), link.to_string()))
        .collect();
    assert_eq!(found.len(), NAMESPACES.len(), "inside: {out}");
    found
}

fn host_namespace(ns: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{ns}"))
        .expect("read the host's namespace link")
        .to_string_lossy()
        .into_owned()
}

#[test]
fn every_namespace_is_new_by_default() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    for (ns, inside) in namespaces_inside(&w, &[]) {
        assert!(inside.starts_with(&format!("{ns}:[")), "{ns}: {inside:?}");
        assert_ne!(inside, host_namespace(&ns), "{ns} namespace is the host's");
    }
}

#[test]
fn net_host_shares_only_the_network_namespace() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    for (ns, inside) in namespaces_inside(&w, &["--net", "host"]) {
        if ns == "net" {
            assert_eq!(inside, host_namespace(&ns), "--net host: net namespace");
        } else {
            assert_ne!(inside, host_namespace(&ns), "--net host: {ns} namespace");
        }
    }
    let mut host: Vec<String> = std::fs::read_dir("/sys/class/net")
        .expect("list host interfaces")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    host.sort();
    let r = w.probe(&["--net", "host"]);
    let inside: Vec<&str> = r["net"]
        .as_array()
        .expect("net is an array")
        .iter()
        .filter_map(|i| i["name"].as_str())
        .collect();
    assert_eq!(inside, host, "interfaces seen with --net host");
}

#[test]
fn the_default_network_is_loopback_only_and_up() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let r = w.probe(&[]);
    let net = r["net"].as_array().expect("net is an array");
    assert_eq!(net.len(), 1, "interfaces: {net:?}");
    assert_eq!(net[0]["name"], "lo", "interfaces: {net:?}");
    assert_eq!(net[0]["up"], true, "interfaces: {net:?}");
}

/// START of root's range in /etc/subuid or /etc/subgid ("root:START:COUNT").
fn root_subid_start(file: &str) -> u64 {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("read {file}: {e}"));
    text.lines()
        .find_map(|l| {
            let mut f = l.split(':');
            (f.next() == Some("root")).then(|| f.next()?.parse().ok())?
        })
        .unwrap_or_else(|| panic!("no range for root in {file}"))
}

/// The fields of an id map, whitespace-normalised: "0 1000000 65536".
fn id_map(v: &Value) -> String {
    v.as_str()
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn by_default_root_inside_is_roots_subordinate_range() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let r = w.probe(&[]);
    let uid = root_subid_start("/etc/subuid");
    let gid = root_subid_start("/etc/subgid");
    assert_eq!(id_map(&r["uid_map"]), format!("0 {uid} 65536"));
    assert_eq!(id_map(&r["gid_map"]), format!("0 {gid} 65536"));
}

#[test]
fn privileged_maps_ids_to_themselves() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let r = w.probe(&["--privileged"]);
    assert_eq!(id_map(&r["uid_map"]), "0 0 4294967295");
    assert_eq!(id_map(&r["gid_map"]), "0 0 4294967295");
}

/// `berth-probe stat PATH` inside: (uid, gid).
fn owner_inside(w: &World, path: &str) -> (u64, u64) {
    let out = run_ok(w, &[], &["/bin/berth-probe", "stat", path]);
    let v: Value = serde_json::from_str(out.trim()).expect("stat JSON");
    (
        v["uid"].as_u64().expect("uid"),
        v["gid"].as_u64().expect("gid"),
    )
}

fn owner_on_disk(p: &Path) -> (u32, u32) {
    let m = std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (m.uid(), m.gid())
}

#[test]
fn the_rootfs_is_idmapped_and_nothing_is_chowned() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let home = w.rootfs.join("home/builder");
    std::os::unix::fs::chown(&home, Some(4242), Some(4242)).expect("chown home/builder");
    // Host root's files are root's inside, and 4242's are 4242's.
    assert_eq!(owner_inside(&w, "/bin/busybox"), (0, 0));
    assert_eq!(owner_inside(&w, "/etc/passwd"), (0, 0));
    assert_eq!(owner_inside(&w, "/home/builder"), (4242, 4242));
    // What the container's users write lands on disk with the same ids.
    run_ok(&w, &[], &["sh", "-c", "echo by-root > /root/by-root"]);
    run_ok(
        &w,
        &["--user", "4242:4242"],
        &["sh", "-c", "echo by-builder > /home/builder/by-builder"],
    );
    assert_eq!(owner_on_disk(&w.rootfs.join("root/by-root")), (0, 0));
    assert_eq!(
        owner_on_disk(&home.join("by-builder")),
        (4242, 4242),
        "file written by --user 4242"
    );
    // The rootfs itself was not shifted.
    assert_eq!(owner_on_disk(&w.rootfs.join("bin/busybox")), (0, 0));
    assert_eq!(owner_on_disk(&w.rootfs.join("etc")), (0, 0));
    assert_eq!(owner_on_disk(&home), (4242, 4242));
}

#[test]
fn proc_tunables_are_read_only_and_secrets_masked() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let sysrq = Path::new("/proc/sysrq-trigger").exists();
    for opts in [&[][..], &["--privileged"][..]] {
        let r = w.probe(opts);
        let ro = &r["readonly"];
        for p in ["/proc/sys", "/proc/irq", "/proc/bus", "/sys"] {
            assert_eq!(ro[p], true, "{opts:?}: {p} is not read-only: {ro}");
        }
        // This kernel may lack /proc/sysrq-trigger; then there is nothing to protect.
        if sysrq {
            assert_eq!(ro["/proc/sysrq-trigger"], true, "{opts:?}: {ro}");
        }
        for p in ["/proc/kcore", "/proc/keys", "/proc/timer_list"] {
            let m = &r["masked"][p];
            let hidden = m["exists"] == false || m["readable_bytes"] == 0;
            assert!(hidden, "{opts:?}: {p} is not masked: {m}");
        }
    }
}

/// The standard device nodes and their numbers (Documentation/admin-guide/devices.txt).
const DEV_NODES: &[(&str, &str)] = &[
    ("null", "char 1:3"),
    ("zero", "char 1:5"),
    ("full", "char 1:7"),
    ("random", "char 1:8"),
    ("urandom", "char 1:9"),
    ("tty", "char 5:0"),
];

#[test]
fn dev_is_a_tmpfs_with_only_the_standard_nodes() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    for opts in [&[][..], &["--privileged"][..]] {
        let r = w.probe(opts);
        let dev = r["dev"].as_object().expect("dev is an object");
        let names: BTreeSet<&str> = dev
            .keys()
            .map(String::as_str)
            .filter(|n| !n.contains('/'))
            .collect();
        let want: BTreeSet<&str> = [
            "null", "zero", "full", "random", "urandom", "tty", "console", "ptmx", "pts", "shm",
            "mqueue", "fd", "stdin", "stdout", "stderr",
        ]
        .into_iter()
        .collect();
        assert_eq!(names, want, "{opts:?}: /dev holds {dev:?}");
        for (name, kind) in DEV_NODES {
            assert_eq!(dev[*name], *kind, "{opts:?}: /dev/{name}");
        }
        let console = dev["console"].as_str().unwrap_or_default();
        assert!(console.starts_with("char "), "{opts:?}: console {console}");
        let ptmx = dev["ptmx"].as_str().unwrap_or_default();
        assert!(
            ptmx == "symlink -> pts/ptmx" || ptmx == "char 5:2",
            "{opts:?}: ptmx {ptmx}"
        );
        for d in ["pts", "shm", "mqueue"] {
            assert_eq!(dev[d], "dir", "{opts:?}: /dev/{d}");
        }
        assert_eq!(dev["fd"], "symlink -> /proc/self/fd", "{opts:?}");
        for (i, s) in ["stdin", "stdout", "stderr"].iter().enumerate() {
            assert_eq!(dev[*s], format!("symlink -> /proc/self/fd/{i}"), "{opts:?}");
        }
        assert_eq!(fstype_at(&r, "/dev").as_deref(), Some("tmpfs"), "{opts:?}");
    }
}

/// The type of the filesystem mounted last at `mount_point` in the probe's mount list.
fn fstype_at(r: &Value, mount_point: &str) -> Option<String> {
    mounts(r)
        .into_iter()
        .rev()
        .find(|(mp, _)| mp == mount_point)
        .map(|(_, t)| t)
}

/// (mount point, fstype) of every mount in the container.
fn mounts(r: &Value) -> Vec<(String, String)> {
    r["mounts"]
        .as_array()
        .expect("mounts is an array")
        .iter()
        .map(|m| {
            (
                m["mount_point"].as_str().unwrap_or_default().to_string(),
                m["fstype"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn run_and_tmp_are_private_tmpfs() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let r = w.probe(&[]);
    assert_eq!(fstype_at(&r, "/run").as_deref(), Some("tmpfs"));
    assert_eq!(fstype_at(&r, "/tmp").as_deref(), Some("tmpfs"));
    // Writes to /tmp stay in the container.
    run_ok(&w, &[], &["sh", "-c", "echo x > /tmp/in-container"]);
    assert!(!w.rootfs.join("tmp/in-container").exists());
}

/// Whether `p` is `dir` or below it.
fn under(p: &str, dir: &str) -> bool {
    p == dir || p.starts_with(&format!("{dir}/"))
}

#[test]
fn nothing_of_the_hosts_tree_is_visible() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let r = w.probe(&[]);
    let inside: Vec<String> = mounts(&r).into_iter().map(|(mp, _)| mp).collect();
    // Only the container's own filesystems: its root and what berth mounts.
    let own = ["/proc", "/sys", "/dev", "/run", "/tmp"];
    for mp in &inside {
        assert!(
            mp == "/" || own.iter().any(|d| under(mp, d)),
            "mount point {mp} inside the container: {inside:?}"
        );
    }
    // In particular none of the host's other mount points, nor the test's own tree.
    let host_info = std::fs::read_to_string("/proc/self/mountinfo").expect("host mountinfo");
    let test_dir = w.dir.path().to_string_lossy().into_owned();
    let host: Vec<&str> = host_info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|mp| *mp != "/" && !own.iter().any(|d| under(mp, d)))
        .chain([
            "/work",
            "/var/tmp",
            "/var",
            "/home",
            "/mnt",
            test_dir.as_str(),
        ])
        .collect();
    for mp in host {
        assert!(
            !inside.iter().any(|i| under(i, mp)),
            "host path {mp} is a mount point inside: {inside:?}"
        );
    }
}

#[test]
fn a_bind_mount_shares_a_host_directory() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let shared = w.dir.path().join("shared");
    std::fs::create_dir(&shared).expect("mkdir shared");
    // Host root's directory is "nobody"'s inside: let every user write, as one would to share
    // a directory with an unprivileged container.
    std::fs::set_permissions(&shared, std::os::unix::fs::PermissionsExt::from_mode(0o777))
        .expect("chmod 777");
    std::fs::write(shared.join("from-host"), "written on the host\n").expect("write");
    let bind = format!("{}:/data", shared.display());
    let out = run_ok(
        &w,
        &["--bind", &bind],
        &[
            "sh",
            "-c",
            "cat /data/from-host && echo written inside > /data/from-container",
        ],
    );
    assert_eq!(out, "written on the host\n");
    let back = std::fs::read_to_string(shared.join("from-container")).expect("read back");
    assert_eq!(back, "written inside\n");
    // A bind is not idmapped: container root writes as its own host id, never as host root
    // (otherwise it could leave setuid-root programs in a host directory).
    let (uid, gid) = owner_on_disk(&shared.join("from-container"));
    assert_ne!(uid, 0);
    assert_eq!(
        (u64::from(uid), u64::from(gid)),
        (
            root_subid_start("/etc/subuid"),
            root_subid_start("/etc/subgid")
        )
    );
}

#[test]
fn a_read_only_bind_mount_refuses_writes() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let shared = w.dir.path().join("shared");
    std::fs::create_dir(&shared).expect("mkdir shared");
    std::fs::write(shared.join("from-host"), "written on the host\n").expect("write");
    let bind = format!("{}:/data:ro", shared.display());
    let out = run_ok(&w, &["--bind", &bind], &["cat", "/data/from-host"]);
    assert_eq!(out, "written on the host\n");
    let out = run(
        &w,
        &["--bind", &bind],
        &["/bin/berth-probe", "write", "/data/new", "text"],
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "probe write JSON ({e}): {:?} {}",
            text(&out.stdout),
            text(&out.stderr)
        )
    });
    assert_eq!(v["ok"], false, "write into a :ro bind: {v}");
    assert_eq!(v["errno"], 30, "write into a :ro bind: {v} (want EROFS)");
    assert_eq!(out.status.code(), Some(1));
    assert!(!shared.join("new").exists());
}

#[test]
fn ephemeral_changes_never_reach_the_rootfs() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    std::fs::write(w.rootfs.join("etc/keep"), "kept\n").expect("write etc/keep");
    let out = run_ok(
        &w,
        &["--ephemeral"],
        &[
            "sh",
            "-c",
            "echo new > /etc/new && rm /etc/keep && test ! -e /etc/keep && cat /etc/new",
        ],
    );
    // The changes were made, inside.
    assert_eq!(out, "new\n");
    assert!(
        !w.rootfs.join("etc/new").exists(),
        "a written file reached the rootfs"
    );
    assert_eq!(
        std::fs::read_to_string(w.rootfs.join("etc/keep"))
            .ok()
            .as_deref(),
        Some("kept\n"),
        "a deleted file is gone from the rootfs"
    );
    // Without --ephemeral the same changes do land.
    run_ok(
        &w,
        &[],
        &["sh", "-c", "echo new > /etc/new && rm /etc/keep"],
    );
    assert!(w.rootfs.join("etc/new").exists());
    assert!(!w.rootfs.join("etc/keep").exists());
}
