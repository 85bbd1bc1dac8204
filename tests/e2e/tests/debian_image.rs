//! `debian/bookworm` as a user meets it: built with debootstrap on first use (into a state
//! root kept under /var/cache/berth-test between runs, like the boot tests' rootfs), then
//! instant; a container of it boots systemd to `running` with no failed unit, unprivileged,
//! with its own hostname and machine id, systemd-networkd ready for eth0 and root logged in
//! on the console.

use berth_e2e::{DEBIAN_CACHE, cgroups_of, root_or_skip, text, unique};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn berth(root: &PathBuf, args: &[&str]) -> Output {
    Command::new(berth_e2e::bin("berth"))
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("berth")
}

fn ok(root: &PathBuf, args: &[&str]) -> String {
    let out = berth(root, args);
    assert!(
        out.status.success(),
        "berth {args:?}: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

#[test]
fn debian_bookworm_builds_once_and_boots() {
    if !root_or_skip() {
        return;
    }
    let root = PathBuf::from(DEBIAN_CACHE).join("image-store");
    std::fs::create_dir_all(&root).expect("mkdir");
    std::fs::set_permissions(DEBIAN_CACHE, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let name = unique("deb");
    let second = unique("deb");
    // Deleted whatever happens: the store outlives the test.
    struct Delete<'a>(&'a PathBuf, [String; 2]);
    impl Drop for Delete<'_> {
        fn drop(&mut self) {
            for n in &self.1 {
                let _ = berth(self.0, &["delete", "--force", n]);
            }
            // So do the network it made (bridge, dnsmasq, firewall table) and the lxcfs a
            // start under this store began.
            let _ = berth(self.0, &["network", "delete", "berth0"]);
            berth_e2e::stop_lxcfs_under(self.0);
        }
    }
    let _cleanup = Delete(&root, [name.clone(), second.clone()]);
    ok(&root, &["create", "debian/bookworm", &name]);
    let images = ok(&root, &["image", "list", "--format", "json"]);
    let id_before: serde_json::Value = serde_json::from_str(&images).expect("JSON");
    // A second container: no second build.
    ok(&root, &["create", "debian/bookworm", &second]);
    let id_after: serde_json::Value =
        serde_json::from_str(&ok(&root, &["image", "list", "--format", "json"])).expect("JSON");
    assert_eq!(id_before, id_after);
    ok(&root, &["start", &name]);
    let mut state = String::new();
    for _ in 0..600 {
        state = text(
            &berth(
                &root,
                &["exec", &name, "--", "systemctl", "is-system-running"],
            )
            .stdout,
        )
        .trim()
        .to_string();
        if state == "running" || state == "degraded" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let failed = text(
        &berth(
            &root,
            &["exec", &name, "--", "systemctl", "--failed", "--no-legend"],
        )
        .stdout,
    );
    let hostname = ok(&root, &["exec", &name, "--", "hostname"]);
    let machine_id = ok(&root, &["exec", &name, "--", "cat", "/etc/machine-id"]);
    let networkd = text(
        &berth(
            &root,
            &[
                "exec",
                &name,
                "--",
                "systemctl",
                "is-active",
                "systemd-networkd",
            ],
        )
        .stdout,
    );
    // The console's autologin may print a moment after systemd reports "running".
    let log = root.join("containers").join(&name).join("console.log");
    let mut console = String::new();
    for _ in 0..100 {
        console = std::fs::read_to_string(&log).unwrap_or_default();
        if console.contains("root@") || console.contains("Automatic login") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // eth0: the address `berth list` shows, which networkd's DHCP keeps.
    let eth0 = ok(
        &root,
        &[
            "exec", &name, "--", "ip", "-4", "-o", "addr", "show", "eth0",
        ],
    );
    let list: serde_json::Value =
        serde_json::from_str(&ok(&root, &["list", "--format", "json"])).expect("JSON");
    let listed = list
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == name.as_str()))
        .and_then(|c| c["ipv4"][0].as_str())
        .unwrap_or_default()
        .to_string();
    // The guest's own DHCP client (networkd) asked too, out of the box, and dnsmasq
    // handed it the reserved address: its MAC is in the network's lease file.
    let net: serde_json::Value = serde_json::from_str(&ok(
        &root,
        &["network", "show", "berth0", "--format", "json"],
    ))
    .expect("network JSON");
    let mac = net["leases"][name.as_str()]["mac"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let lease_file = std::path::Path::new("/run/berth-net")
        .join(net["bridge"].as_str().unwrap_or_default())
        .join("leases");
    let mut handed = String::new();
    for _ in 0..100 {
        handed = std::fs::read_to_string(&lease_file).unwrap_or_default();
        if !mac.is_empty() && handed.contains(&format!("{mac} {listed} ")) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // apt-get update through the NAT, where the mirror answers the host.
    let apt = apt_update(&root, &name);
    let stop = berth(&root, &["stop", &name, "--timeout", "60"]);
    // The second container with a static address: set before init, written for networkd
    // (and ifupdown), and the guest boots with no failed unit and keeps it.
    let subnet = listed
        .rsplit_once('.')
        .map(|(a, _)| a.to_string())
        .unwrap_or_default();
    let fixed = format!("{subnet}.200/24");
    ok(
        &root,
        &["config", "set", &second, &format!("net.ipv4={fixed}")],
    );
    ok(&root, &["start", &second]);
    let mut second_state = String::new();
    for _ in 0..600 {
        second_state = text(
            &berth(
                &root,
                &["exec", &second, "--", "systemctl", "is-system-running"],
            )
            .stdout,
        )
        .trim()
        .to_string();
        if second_state == "running" || second_state == "degraded" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let second_failed = text(
        &berth(
            &root,
            &[
                "exec",
                &second,
                "--",
                "systemctl",
                "--failed",
                "--no-legend",
            ],
        )
        .stdout,
    );
    // networkd has configured the link by now: the address is still the one asked for.
    let second_eth0 = ok(
        &root,
        &[
            "exec", &second, "--", "ip", "-4", "-o", "addr", "show", "eth0",
        ],
    );
    let networkd_file = ok(
        &root,
        &[
            "exec",
            &second,
            "--",
            "cat",
            "/etc/systemd/network/10-berth-eth0.network",
        ],
    );
    let _ = berth(&root, &["delete", "--force", &name]);
    let _ = berth(&root, &["delete", "--force", &second]);
    assert_eq!(state, "running", "failed units: {failed}");
    assert!(
        !listed.is_empty() && eth0.contains(&format!("inet {listed}/")),
        "{eth0} vs {listed:?}"
    );
    assert!(
        !mac.is_empty() && handed.contains(&format!("{mac} {listed} ")),
        "networkd's DHCP lease for {mac} {listed} is not in {handed:?}"
    );
    assert_eq!(
        second_state, "running",
        "static: failed units: {second_failed}"
    );
    assert!(
        second_eth0.contains(&format!("inet {fixed}")),
        "{second_eth0}"
    );
    assert!(
        networkd_file.contains(&format!("Address={fixed}")),
        "{networkd_file}"
    );
    if let Some((ok_, out)) = apt {
        assert!(ok_, "apt-get update inside, through the NAT: {out}");
    }
    assert_eq!(hostname.trim(), name);
    assert_eq!(machine_id.trim().len(), 32, "{machine_id:?}");
    assert_eq!(networkd.trim(), "active");
    assert!(
        console.contains("root@") || console.contains("Automatic login"),
        "{console}"
    );
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    assert!(cgroups_of(&name).is_empty());
}

/// `apt-get update` in container `name`, if the host itself reaches the image's mirror
/// (port 80 of the first http:// host in its apt sources); None (with a note) when not.
fn apt_update(root: &PathBuf, name: &str) -> Option<(bool, String)> {
    let sources = text(
        &berth(
            root,
            &[
                "exec",
                name,
                "--",
                "sh",
                "-c",
                "cat /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null",
            ],
        )
        .stdout,
    );
    let host = sources
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split(['/', ' ', ':']).next())
        .map(String::from)?;
    use std::net::ToSocketAddrs;
    let reachable = (host.as_str(), 80)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| {
            a.find(|a| {
                std::net::TcpStream::connect_timeout(a, std::time::Duration::from_secs(3)).is_ok()
            })
        });
    if reachable.is_none() {
        eprintln!("note: the mirror {host} does not answer this host; apt-get update skipped");
        return None;
    }
    let out = berth(root, &["exec", name, "--", "apt-get", "update", "-q"]);
    Some((out.status.success(), text(&out.stdout) + &text(&out.stderr)))
}

/// `berth image build debian` killed half-way (debootstrap downloading or unpacking): its
/// processes go with it, nothing stays mounted, and the next image command removes the
/// partial build.
#[test]
fn a_killed_debian_build_leaves_nothing() {
    if !root_or_skip() {
        return;
    }
    let w = berth_e2e::World::new();
    let mut child = w
        .berth()
        .args([
            "image",
            "build",
            "debian",
            "--release",
            "bookworm",
            "--alias",
            "killed/build",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    // Well into the work (the first packages arrive within seconds from the mirror).
    let images = w.state.join("images");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        let busy = std::fs::read_dir(&images)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                e.file_name().to_string_lossy().starts_with(".tmp-")
                    && e.path().join("rootfs/var").exists()
            });
        if busy {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let _ = child.kill();
    let _ = child.wait();
    // debootstrap dies with berth (its namespace's init is killed): give the kernel a moment.
    std::thread::sleep(std::time::Duration::from_secs(1));
    let out = w.run(&["image", "list", "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "[]");
    let left: Vec<String> = std::fs::read_dir(&images)
        .expect("ls")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp-"))
        .collect();
    assert!(left.is_empty(), "left over: {left:?}");
    assert!(berth_e2e::mounts_under(w.dir.path()).is_empty());
}
