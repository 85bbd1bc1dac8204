//! Bad input to `berth run` is refused before anything is created: exit status 125, a
//! message that names what is wrong, and no cgroup or mount left behind.

use berth_e2e::{World, cgroups_of, mounts_under, root_or_skip, text, unique};
use std::os::unix::fs::symlink;
use std::path::Path;

/// Runs `berth run --name NAME ARGS...` and checks that it was refused: status 125, stderr
/// naming each of `named`, nothing run, and nothing left behind.
fn assert_refused(w: &World, args: &[&str], named: &[&str]) {
    let name = unique("run-bad");
    let mut all = vec!["run", "--name", &name];
    all.extend_from_slice(args);
    let out = w.run(&all);
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(125),
        "berth {all:?}: stdout {:?}, stderr {stderr}",
        text(&out.stdout)
    );
    for n in named {
        assert!(
            stderr.contains(n),
            "berth {all:?}: the message does not name {n:?}: {stderr}"
        );
    }
    assert_eq!(text(&out.stdout), "", "berth {all:?} ran something");
    let left = cgroups_of(&name);
    assert!(left.is_empty(), "berth {all:?} left cgroups: {left:?}");
    let mounts = mounts_under(w.dir.path());
    assert!(mounts.is_empty(), "berth {all:?} left mounts: {mounts:?}");
}

#[test]
fn a_rootfs_path_that_does_not_exist() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let missing = w.dir.path().join("no-such-rootfs");
    let missing = missing.to_str().expect("utf-8 path");
    assert_refused(&w, &[missing, "--", "true"], &[missing]);
}

#[test]
fn an_unknown_image_name() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    assert_refused(&w, &["nosuchimage", "--", "true"], &["nosuchimage"]);
}

#[test]
fn a_rootfs_without_bin_sh_and_no_command() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    std::fs::remove_file(w.rootfs.join("bin/sh")).expect("remove bin/sh");
    assert_refused(&w, &[w.rootfs_str()], &["/bin/sh"]);
}

#[test]
fn a_bad_memory_size() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    assert_refused(
        &w,
        &["--memory", "12XB", w.rootfs_str(), "--", "true"],
        &["12XB"],
    );
}

#[test]
fn an_unknown_option() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    assert_refused(&w, &["--bogus", w.rootfs_str(), "--", "true"], &["--bogus"]);
}

#[test]
fn a_bind_source_that_does_not_exist() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let missing = w.dir.path().join("no-such-dir");
    let bind = format!("{}:/data", missing.display());
    let missing = missing.to_str().expect("utf-8 path");
    assert_refused(
        &w,
        &["--bind", &bind, w.rootfs_str(), "--", "true"],
        &[missing],
    );
    // The target was not created in the rootfs either.
    assert!(
        !w.rootfs.join("data").exists(),
        "/data created for a refused bind"
    );
}

#[test]
fn more_cpus_than_the_host_has() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_default();
    // "0-3,8-11": the highest cpu number + 1 is at least the count.
    let highest = online
        .trim()
        .split([',', '-'])
        .filter_map(|n| n.parse::<usize>().ok())
        .max()
        .unwrap_or(0);
    let available = std::thread::available_parallelism().map_or(1, |n| n.get());
    let too_many = (highest + 1).max(available) + 1;
    let cpus = too_many.to_string();
    assert_refused(
        &w,
        &["--cpus", &cpus, w.rootfs_str(), "--", "true"],
        &["cpu", &cpus],
    );
}

/// Mount points on the host at `path`, as lines of /proc/self/mountinfo.
fn host_mounts_at(path: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.split(' ').nth(4) == Some(path))
        .map(str::to_string)
        .collect()
}

/// A rootfs whose `entry` (a directory berth mounts on) is a symlink to `target` out of the
/// rootfs is refused, naming the entry, and the host's `host_dir` is left as it was: no
/// mount on it, and `witness`, a file in it, still visible.
fn assert_symlink_out_refused(entry: &str, target: &str, host_dir: &str, witness: &Path) {
    let w = World::new();
    let link = w.rootfs.join(entry.trim_start_matches('/'));
    std::fs::remove_dir(&link).expect("remove the directory");
    symlink(target, &link).expect("make the symlink");
    assert!(
        witness.exists(),
        "{} is missing before the run",
        witness.display()
    );
    let before = host_mounts_at(host_dir);
    assert_refused(&w, &[w.rootfs_str(), "--", "true"], &[entry]);
    assert_eq!(
        host_mounts_at(host_dir),
        before,
        "host {host_dir} was mounted over"
    );
    assert!(witness.exists(), "host {host_dir} was hidden");
    // The symlink is still a symlink: nothing was created through it.
    let meta = std::fs::symlink_metadata(&link).expect("stat the symlink");
    assert!(meta.file_type().is_symlink());
}

#[test]
fn a_rootfs_whose_tmp_leads_out_of_it() {
    if !root_or_skip() {
        return;
    }
    let witness = tempfile::Builder::new()
        .prefix("berth-e2e-witness-")
        .tempfile_in("/tmp")
        .expect("a file in the host's /tmp");
    assert_symlink_out_refused("/tmp", "../../../../../../tmp", "/tmp", witness.path());
}

/// An absolute symlink is read as a chrooted process reads it, from the rootfs's top: it
/// does not lead out, and whatever it names inside is what gets mounted on. The host's own
/// directory of that name is never touched.
#[test]
fn a_rootfs_whose_proc_is_an_absolute_symlink_stays_inside() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let link = w.rootfs.join("proc");
    std::fs::remove_dir(&link).expect("remove the directory");
    std::fs::create_dir(w.rootfs.join("kernel")).expect("mkdir");
    symlink("/kernel", &link).expect("make the symlink");
    let before = host_mounts_at("/kernel");
    let out = w.run(&[
        "run",
        w.rootfs_str(),
        "--",
        "sh",
        "-c",
        "test -e /proc/self/status && test -e /kernel/self/status && echo inside",
    ]);
    assert_eq!(text(&out.stdout), "inside\n", "{}", text(&out.stderr));
    assert_eq!(host_mounts_at("/kernel"), before);
    // Nothing was created on the host at /kernel.
    assert!(!Path::new("/kernel").exists() || before.is_empty());
}
