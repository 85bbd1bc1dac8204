//! Snapshots, restore, copy and publish of containers made from images; what an interrupted
//! snapshot or copy leaves (nothing), and refusals.

use berth_e2e::system::{info, ok};
use berth_e2e::{World, cgroups_of, root_or_skip, text, unique};
use std::process::Stdio;

fn sh(w: &World, name: &str, script: &str) -> String {
    ok(w, &["exec", name, "--", "sh", "-c", script])
}

#[test]
fn snapshot_restore_copy_and_publish() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let a = unique("snap");
    ok(&w, &["launch", "busybox", &a]);
    sh(&w, &a, "echo v1 > /root/f");
    // Taken while running (frozen for the copy), then named.
    assert_eq!(ok(&w, &["snapshot", &a]).trim(), "snap0");
    assert_eq!(
        info(&w, &a)["state"],
        "running",
        "the snapshot left it frozen"
    );
    sh(&w, &a, "echo v2 > /root/f; rm /bin/vi; mkdir -p /srv/x");
    assert_eq!(ok(&w, &["snapshot", &a, "later"]).trim(), "later");
    let list: serde_json::Value =
        serde_json::from_str(&ok(&w, &["snapshot", "list", &a, "--format", "json"])).expect("JSON");
    let names: Vec<&str> = list
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    // Restore: stopped only, then the files as they were.
    let out = w.run(&["restore", &a, "snap0"]);
    assert_eq!(out.status.code(), Some(1), "restored a running container");
    ok(&w, &["stop", &a]);
    ok(&w, &["restore", &a, "snap0"]);
    ok(&w, &["start", &a]);
    assert_eq!(
        sh(&w, &a, "cat /root/f; ls /bin/vi; ls -d /srv/x 2>&1 || true")
            .lines()
            .take(2)
            .collect::<Vec<_>>(),
        ["v1", "/bin/vi"]
    );
    // Copy: its own files and hostname.
    let b = unique("copy");
    ok(&w, &["copy", &a, &b]);
    ok(&w, &["start", &b]);
    assert_eq!(sh(&w, &b, "cat /root/f; hostname"), format!("v1\n{b}\n"));
    sh(&w, &b, "echo b > /root/f");
    assert_eq!(
        sh(&w, &a, "cat /root/f"),
        "v1\n",
        "the copy shares files with its source"
    );
    // Publish from a snapshot: its changes (a deletion included) merged over the image.
    let alias = format!("pub/{a}");
    ok(
        &w,
        &["publish", &a, "--snapshot", "later", "--alias", &alias],
    );
    let c = unique("pub");
    ok(&w, &["launch", &alias, &c]);
    assert_eq!(
        sh(
            &w,
            &c,
            "cat /root/f; ls /bin/vi 2>/dev/null || echo gone; ls -d /srv/x"
        ),
        "v2\ngone\n/srv/x\n"
    );
    ok(&w, &["snapshot", "delete", &a, "later"]);
    assert!(!ok(&w, &["snapshot", "list", &a]).contains("later"));
    for n in [&a, &b, &c] {
        ok(&w, &["delete", "--force", n]);
        assert!(cgroups_of(n).is_empty());
    }
}

#[test]
fn refusals_say_what_to_do_and_change_nothing() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let a = unique("ref");
    ok(&w, &["create", "busybox", &a]);
    ok(&w, &["snapshot", &a, "one"]);
    let path = unique("path");
    ok(&w, &["create", w.rootfs_str(), &path]);
    for args in [
        &["snapshot", &a, "one"][..],
        &["snapshot", &a, "../x"],
        &["snapshot", &path],
        &["restore", &a, "nope"],
        &["copy", &a, &a],
        &["copy", &a, "Bad/Name"],
        &["copy", "nosuch", "x"],
        &["publish", &a, "--alias", "../x"],
        &["publish", &a, "--snapshot", "nope", "--alias", "x"],
    ] {
        let out = w.run(args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert_eq!(
            text(&out.stderr).trim_end().lines().count(),
            1,
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let list = ok(&w, &["snapshot", "list", &a]);
    assert_eq!(list.lines().count(), 2, "{list}");
    ok(&w, &["delete", &a]);
    ok(&w, &["delete", &path]);
}

#[test]
fn an_interrupted_snapshot_or_copy_leaves_nothing() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let a = unique("big");
    ok(&w, &["create", "busybox", &a, "--storage", "copy"]);
    // Enough data for the copy to take a while.
    let big = w.state.join("containers").join(&a).join("rootfs/root/big");
    std::fs::write(&big, vec![7u8; 300 << 20]).expect("write");
    for args in [vec!["snapshot", &a, "s"], vec!["copy", &a, "b-copy"]] {
        let mut child = w
            .berth()
            .args(&args)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(std::time::Duration::from_millis(100));
        let _ = child.kill();
        let _ = child.wait();
    }
    // The next command on the container sets things right; no half snapshot, no half copy.
    let list = ok(&w, &["snapshot", "list", &a]);
    let snaps: Vec<&str> = list.lines().skip(1).collect();
    let dir = w.state.join("containers").join(&a).join("snapshots");
    assert!(
        snaps.is_empty()
            || snaps.iter().all(|s| dir
                .join(s.split_whitespace().next().unwrap_or(""))
                .join("files/root/big")
                .exists())
    );
    let listed: serde_json::Value =
        serde_json::from_str(&ok(&w, &["list", "--format", "json"])).expect("JSON");
    for c in listed.as_array().expect("list") {
        let n = c["name"].as_str().expect("name");
        assert!(
            w.state
                .join("containers")
                .join(n)
                .join("config.toml")
                .exists()
        );
    }
    ok(&w, &["snapshot", &a, "after"]);
    for e in std::fs::read_dir(&dir).expect("ls").flatten() {
        assert!(
            !e.file_name().to_string_lossy().starts_with(".tmp-"),
            "left: {:?}",
            e.file_name()
        );
    }
    let _ = w.run(&["delete", "b-copy"]);
    ok(&w, &["delete", &a]);
}

/// Second review of the images work: what must never be lost or broken.
#[test]
fn images_and_layers_are_never_lost_by_accident() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    // An image without a name is kept when a container is deleted.
    ok(&w, &["image", "build", "busybox"]);
    let tarball = w.dir.path().join("bb.tar");
    ok(
        &w,
        &[
            "image",
            "export",
            "busybox",
            tarball.to_str().expect("utf-8"),
        ],
    );
    ok(&w, &["image", "import", tarball.to_str().expect("utf-8")]);
    let other = unique("other");
    ok(&w, &["create", "busybox", &other]);
    ok(&w, &["delete", &other]);
    let list: serde_json::Value =
        serde_json::from_str(&ok(&w, &["image", "list", "--format", "json"])).expect("JSON");
    assert_eq!(
        list.as_array().expect("list").len(),
        2,
        "an unnamed image was removed"
    );
    // A name is not taken over unless asked.
    let out = w.run(&[
        "image",
        "import",
        tarball.to_str().expect("utf-8"),
        "--alias",
        "busybox",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("--replace"),
        "{}",
        text(&out.stderr)
    );
    // A container whose config cannot be read keeps its image.
    let a = unique("keep");
    ok(&w, &["create", "busybox", &a]);
    ok(&w, &["image", "delete", "busybox", "--force"]);
    let config = w.state.join("containers").join(&a).join("config.toml");
    let good = std::fs::read_to_string(&config).expect("read");
    std::fs::write(&config, format!("{good}\nthis is not toml =\n")).expect("write");
    let b = unique("gone");
    ok(&w, &["create", "busybox", &b]);
    let _ = w.run(&["delete", &b]);
    std::fs::write(&config, &good).expect("write");
    ok(&w, &["start", &a]);
    // The rootfs settings are fixed at create.
    let out = w.run(&["config", "set", &a, "rootfs.mode=copy"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("fixed"), "{}", text(&out.stderr));
    // A snapshot killed while the container runs (it is left frozen, with berth's mark
    // beside it): the next command thaws it.
    ok(&w, &["freeze", &a]);
    std::fs::write(
        w.state.join("containers").join(&a).join(".frozen-for-copy"),
        "",
    )
    .expect("mark");
    ok(&w, &["snapshot", &a]);
    assert_eq!(info(&w, &a)["state"], "running", "left frozen");
    // A restore cut between its renames: the next start puts the old files back.
    ok(&w, &["stop", &a]);
    ok(&w, &["start", &a]);
    sh(&w, &a, "echo kept > /root/f");
    ok(&w, &["stop", &a]);
    let layer = w.state.join("containers").join(&a).join("layer");
    std::fs::rename(layer.join("upper"), layer.join("upper.old")).expect("rename");
    ok(&w, &["start", &a]);
    assert_eq!(sh(&w, &a, "cat /root/f"), "kept\n");
    ok(&w, &["delete", "--force", &a]);
    assert!(cgroups_of(&a).is_empty());
}

/// A container made before berth had layers (a `rootfs/` copy, no `mode`) still starts.
#[test]
fn a_container_from_before_layers_still_starts() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let a = unique("old");
    ok(&w, &["create", "busybox", &a, "--storage", "copy"]);
    let config = w.state.join("containers").join(&a).join("config.toml");
    let text_now = std::fs::read_to_string(&config).expect("read");
    let old: String = text_now
        .lines()
        .filter(|l| !l.starts_with("mode") && !l.starts_with("image_id"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&config, old).expect("write");
    ok(&w, &["start", &a]);
    assert_eq!(sh(&w, &a, "echo ok"), "ok\n");
    assert_eq!(ok(&w, &["snapshot", &a]).trim(), "snap0");
    ok(&w, &["delete", "--force", &a]);
}
