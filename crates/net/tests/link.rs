//! Links over rtnetlink on the real kernel: a veth pair made, found, brought up, one end
//! moved into a network namespace (of a process the test starts and ends by its pid) as
//! eth0, and deleted; refusals for a name taken and a bad name. Needs root.

use std::process::{Child, Command, Stdio};

mod common;
use berth_net::link::{LinkError, Netlink};
use common::root;

/// The test's links and process, removed on drop even when an assert failed.
struct Guard {
    names: Vec<String>,
    child: Option<Child>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = Command::new("ip").args(["link", "del", n]).output();
        }
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn a_veth_pair_is_made_found_moved_and_deleted() {
    if !root() {
        return;
    }
    let id = std::process::id();
    let host = format!("bl{id}h");
    let peer = format!("bl{id}c");
    let mut guard = Guard {
        names: vec![host.clone(), peer.clone()],
        child: None,
    };
    let mut nl = Netlink::open().expect("netlink");
    assert_eq!(nl.index(&host).expect("index"), None);
    nl.create_veth(&host, &peer).expect("create");
    let h = nl.index(&host).expect("index").expect("host end exists");
    let p = nl.index(&peer).expect("index").expect("peer exists");
    assert_ne!(h, p);
    // Taken: the kernel refuses (NLM_F_EXCL), and says so.
    match nl.create_veth(&host, &peer) {
        Err(LinkError::Kernel { source, .. }) => {
            assert_eq!(source.raw_os_error(), Some(17), "{source}")
        }
        other => panic!("expected EEXIST, got {other:?}"),
    }
    assert!(matches!(
        nl.create_veth("a/b", &peer),
        Err(LinkError::BadName(_))
    ));
    nl.set_up(h).expect("up");
    let show = Command::new("ip")
        .args(["-o", "link", "show", "dev", &host])
        .output()
        .expect("ip");
    assert!(
        String::from_utf8_lossy(&show.stdout).contains("UP"),
        "{}",
        String::from_utf8_lossy(&show.stdout)
    );

    // A process in a network namespace of its own stands in for a container.
    let child = Command::new("unshare")
        .args(["--net", "sleep", "60"])
        .stdin(Stdio::null())
        .spawn()
        .expect("unshare");
    let pid = child.id();
    guard.child = Some(child);
    // unshare has created the namespace once its net link differs from ours.
    let ours = std::fs::read_link("/proc/self/ns/net").expect("ns");
    for _ in 0..200 {
        if std::fs::read_link(format!("/proc/{pid}/ns/net")).is_ok_and(|n| n != ours) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    nl.move_to_pid(p, pid, "eth0").expect("move");
    assert_eq!(
        nl.index(&peer).expect("index"),
        None,
        "the peer is still here"
    );
    let inside = Command::new("nsenter")
        .args([
            "-t",
            &pid.to_string(),
            "-n",
            "ip",
            "-o",
            "link",
            "show",
            "dev",
            "eth0",
        ])
        .output()
        .expect("nsenter");
    assert!(
        inside.status.success(),
        "eth0 inside: {}",
        String::from_utf8_lossy(&inside.stderr)
    );

    // Deleting the host end takes the peer with it, wherever it is.
    nl.delete(h).expect("delete");
    assert_eq!(nl.index(&host).expect("index"), None);
    let gone = Command::new("nsenter")
        .args([
            "-t",
            &pid.to_string(),
            "-n",
            "ip",
            "link",
            "show",
            "dev",
            "eth0",
        ])
        .output()
        .expect("nsenter");
    assert!(!gone.status.success(), "eth0 survived its host end");
}
