//! Shaping on the real kernel: a veth pair the test makes itself, its far end in a network
//! namespace the test makes itself (standing in for a container until berth makes container
//! interfaces), a transfer each way, and the rate it ran at. Needs root, iproute2 and
//! python3; addresses from TEST-NET-1 (192.0.2.0/24, never routed).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use berth_net::shaping::{Shaping, apply, ifb_name, remove_ifb};
use common::{root, sh};

/// The test's veth pair and namespace, removed on drop (even when an assert failed).
struct Pair {
    host: String,
    ns: String,
    host_ip: String,
    ns_ip: String,
}

impl Pair {
    fn new() -> Pair {
        let id = std::process::id();
        let net = 4 * (id % 60);
        let p = Pair {
            host: format!("bt{id}h"),
            ns: format!("berth-test-{id}"),
            host_ip: format!("192.0.2.{}", net + 1),
            ns_ip: format!("192.0.2.{}", net + 2),
        };
        let peer = format!("bt{id}c");
        sh(&["ip", "netns", "add", &p.ns]);
        sh(&[
            "ip", "link", "add", &p.host, "type", "veth", "peer", "name", &peer,
        ]);
        sh(&["ip", "link", "set", &peer, "netns", &p.ns]);
        sh(&[
            "ip",
            "addr",
            "add",
            &format!("{}/30", p.host_ip),
            "dev",
            &p.host,
        ]);
        sh(&["ip", "link", "set", &p.host, "up"]);
        let inside = |args: &[&str]| {
            let mut v = vec!["ip", "netns", "exec", &p.ns];
            v.extend_from_slice(args);
            sh(&v);
        };
        inside(&[
            "ip",
            "addr",
            "add",
            &format!("{}/30", p.ns_ip),
            "dev",
            &peer,
        ]);
        inside(&["ip", "link", "set", &peer, "up"]);
        inside(&["ip", "link", "set", "lo", "up"]);
        p
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        remove_ifb(&self.host);
        let _ = Command::new("ip")
            .args(["link", "del", &self.host])
            .output();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
    }
}

/// A receiver that counts bytes until the sender closes and prints them; the sender sends
/// `bytes` zeros. Returns the rate in bits per second, timed by the sender from connect to
/// the receiver's answer (so queued bytes count).
const RECEIVER: &str = r#"
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1); s.settimeout(60)
print("ready", flush=True)
c, _ = s.accept(); n = 0
while True:
    b = c.recv(65536)
    if not b: break
    n += len(b)
c.sendall(str(n).encode()); c.close()
"#;

const SENDER: &str = r#"
import socket, sys, time
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=60)
t = time.monotonic(); left = int(sys.argv[3]); buf = b"\0" * 65536
while left > 0:
    k = c.send(buf[:min(left, len(buf))]); left -= k
c.shutdown(socket.SHUT_WR)
got = int(c.recv(64)); dt = time.monotonic() - t
print(got * 8 / dt)
"#;

fn transfer(recv_ns: Option<&str>, send_ns: Option<&str>, to: &str, bytes: u64) -> f64 {
    let port = 20_000 + (std::process::id() % 20_000);
    let wrap = |ns: Option<&str>, script: &str, args: Vec<String>| {
        let mut c = match ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "python3", "-c", script]);
                c
            }
            None => {
                let mut c = Command::new("python3");
                c.args(["-c", script]);
                c
            }
        };
        c.args(args);
        c
    };
    let mut receiver = wrap(recv_ns, RECEIVER, vec![to.into(), port.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("receiver");
    // Wait for "ready".
    let mut stdout = receiver.stdout.take().expect("stdout");
    let mut first = [0u8; 6];
    std::io::Read::read_exact(&mut stdout, &mut first).expect("receiver ready");
    let out = wrap(
        send_ns,
        SENDER,
        vec![to.into(), port.to_string(), bytes.to_string()],
    )
    .output()
    .expect("sender");
    let _ = receiver.wait();
    assert!(
        out.status.success(),
        "sender: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("rate")
}

#[test]
fn each_direction_runs_at_about_its_rate_and_lifting_it_frees_it() {
    if !root() {
        return;
    }
    let p = Pair::new();
    let rate = 20_000_000; // 20 Mbit/s: 2.5 MB take about a second
    apply(
        &p.host,
        &Shaping {
            ingress_bps: Some(rate),
            egress_bps: Some(rate / 2),
        },
    )
    .expect("apply");
    // Into the "container": host sends to the namespace.
    let t = Instant::now();
    let into = transfer(Some(&p.ns), None, &p.ns_ip, 5_000_000);
    assert!(t.elapsed() < Duration::from_secs(30));
    let ratio = into / rate as f64;
    assert!(
        (0.6..1.2).contains(&ratio),
        "into the container: {into:.0} bit/s, {ratio:.2}x of {rate}"
    );
    // Out of it: the namespace sends to the host, through the ifb at half the rate.
    let out = transfer(None, Some(&p.ns), &p.host_ip, 2_500_000);
    let ratio = out / (rate / 2) as f64;
    assert!(
        (0.6..1.2).contains(&ratio),
        "out of the container: {out:.0} bit/s, {ratio:.2}x of {}",
        rate / 2
    );
    // A live change: a higher rate takes the place of the lower one.
    apply(
        &p.host,
        &Shaping {
            ingress_bps: Some(rate * 2),
            egress_bps: Some(rate),
        },
    )
    .expect("change");
    let into2 = transfer(Some(&p.ns), None, &p.ns_ip, 10_000_000);
    assert!(
        into2 > into * 1.4,
        "the change did not take: {into2:.0} after {into:.0}"
    );
    // Lifted: no qdisc of ours is left, and the ifb is gone.
    apply(&p.host, &Shaping::default()).expect("lift");
    let qdiscs =
        String::from_utf8_lossy(&sh(&["tc", "qdisc", "show", "dev", &p.host]).stdout).into_owned();
    assert!(
        !qdiscs.contains("tbf") && !qdiscs.contains("ingress"),
        "{qdiscs}"
    );
    let ifb = Command::new("ip")
        .args(["link", "show", "dev", &ifb_name(&p.host)])
        .output()
        .expect("ip");
    assert!(!ifb.status.success(), "the ifb is still there");
    let free = transfer(Some(&p.ns), None, &p.ns_ip, 20_000_000);
    assert!(
        free > (rate * 4) as f64,
        "still shaped after lifting: {free:.0} bit/s"
    );
}
