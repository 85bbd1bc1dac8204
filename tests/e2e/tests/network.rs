//! Container networking on real bridges, veths, nftables and dnsmasq: two containers on the
//! default network reach each other by name and address, the host reaches them and they
//! the host, a port forward from 127.0.0.1 reaches a server inside, DHCP hands out the
//! address `berth list` shows, routed and macvlan interfaces reach the host (or the test's
//! own namespace), `none` has only lo, and nothing is left after stop and delete.
//!
//! Traffic stays between the host, the test's bridges, namespaces and containers.

use berth_e2e::system::{Running, ok, one_line_refusal, wait_until};
use berth_e2e::{World, root_or_skip, text, unique};
use serde_json::Value;
use std::process::Command;

/// `berth exec NAME -- sh -c SCRIPT`: its output, and whether it succeeded.
fn sh(w: &World, name: &str, script: &str) -> (bool, String) {
    let out = w.run(&["exec", name, "--", "sh", "-c", script]);
    (out.status.success(), text(&out.stdout) + &text(&out.stderr))
}

fn network(w: &World, name: &str) -> Value {
    serde_json::from_str(&ok(w, &["network", "show", name, "--format", "json"]))
        .expect("network JSON")
}

fn ipv4_of(w: &World, name: &str) -> Vec<String> {
    let list: Value = serde_json::from_str(&ok(w, &["list", "--format", "json"])).expect("JSON");
    list.as_array()
        .expect("array")
        .iter()
        .find(|c| c["name"] == name)
        .map(|c| {
            c["ipv4"]
                .as_array()
                .expect("ipv4 list")
                .iter()
                .filter_map(|a| a.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Interfaces on the host whose name starts with `prefix`.
fn host_links(prefix: &str) -> Vec<String> {
    std::fs::read_dir("/sys/class/net")
        .expect("/sys/class/net")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

fn nft_table(table: &str) -> String {
    let out = Command::new("nft")
        .args(["list", "table", "inet", table])
        .output()
        .expect("nft");
    text(&out.stdout)
}

#[test]
fn two_containers_reach_each_other_the_host_and_are_named() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let a = Running::new(&w, &[]);
    let b = Running::new(&w, &[]);
    let net = network(&w, "berth0");
    let gw = net["dns"].as_str().expect("gateway").to_string();
    let subnet = net["subnet"].as_str().expect("subnet").to_string();
    assert!(
        subnet.starts_with("10.") && subnet.ends_with("/24"),
        "{net}"
    );
    assert!(
        net["ipv6"].as_str().is_some_and(|v| v.starts_with("fd")),
        "{net}"
    );
    let a_ip = ipv4_of(&w, &a.name);
    let b_ip = ipv4_of(&w, &b.name);
    assert_eq!(a_ip.len(), 1, "{a_ip:?}");
    assert_ne!(a_ip, b_ip);
    // eth0 inside has the listed address, a stable MAC, and the default route.
    let (_, addr) = sh(&w, &a.name, "ip -4 -o addr show eth0; ip route");
    assert!(addr.contains(&format!("{}/24", a_ip[0])), "{addr}");
    assert!(addr.contains(&format!("default via {gw}")), "{addr}");
    // By address, by name and by NAME.berth.
    for target in [b_ip[0].clone(), b.name.clone(), format!("{}.berth", b.name)] {
        let (ok_, out) = sh(&w, &a.name, &format!("ping -c1 -W3 {target}"));
        assert!(ok_, "ping {target}: {out}");
    }
    // The host reaches the container, and the container the host.
    let ping = Command::new("busybox")
        .args(["ping", "-c1", "-W3", &a_ip[0]])
        .output()
        .expect("ping");
    assert!(
        ping.status.success(),
        "host → container: {}",
        text(&ping.stdout)
    );
    let (ok_, out) = sh(&w, &a.name, &format!("ping -c1 -W3 {gw}"));
    assert!(ok_, "container → host: {out}");
    // The host resolves NAME.berth through the network's DNS.
    let look = Command::new("busybox")
        .args(["nslookup", &format!("{}.berth", a.name), &gw])
        .output()
        .expect("nslookup");
    assert!(
        text(&look.stdout).contains(&a_ip[0]),
        "{}",
        text(&look.stdout)
    );
    // IPv6: the guest takes an address in the network's ULA by router advertisement
    // (SLAAC), which its name resolves to as well.
    let ula = net["ipv6"].as_str().expect("ipv6").to_string();
    let prefix = ula.split("::").next().expect("prefix").to_string();
    // Both ends need theirs (and the prefix's route that comes with it).
    for c in [&a.name, &b.name] {
        let mut v6 = String::new();
        assert!(
            wait_until(|| {
                v6 = sh(&w, c, "ip -6 -o addr show dev eth0 scope global").1;
                v6.contains(&prefix) && !v6.contains("tentative")
            }),
            "{c}: no SLAAC address in {ula}: {v6}"
        );
    }
    let (ok_, out) = sh(&w, &a.name, &format!("ping6 -c1 -W3 {}.berth", b.name));
    assert!(ok_, "ping6 by name: {out}");
}

/// An HTTP GET of /index.html from HOST:PORT, with a time limit: the response's text.
fn http_get(host: &str, port: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let addr: std::net::SocketAddr = format!("{host}:{port}")
        .parse()
        .map_err(std::io::Error::other)?;
    let mut s = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(3))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(3)))?;
    s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n")?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    Ok(body)
}

#[test]
fn a_port_forward_from_loopback_reaches_a_server_inside_while_it_runs() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let c = Running::new(&w, &[]);
    // A host port from the test's pid: unlikely to be taken, and parallel tests differ.
    let port = (20000 + std::process::id() % 20000).to_string();
    ok(&w, &["port", "add", &c.name, &port, "80"]);
    let serve = "echo hello-from-inside > /tmp/index.html; httpd -h /tmp -p 80";
    assert!(sh(&w, &c.name, serve).0);
    let fetch = |host: &str| http_get(host, &port);
    // httpd listens a moment after exec returns.
    assert!(
        wait_until(|| fetch("127.0.0.1").is_ok_and(|b| b.contains("hello-from-inside"))),
        "{:?}",
        fetch("127.0.0.1")
    );
    let listed = ok(&w, &["port", "list", &c.name, "--format", "json"]);
    assert!(listed.contains(&port), "{listed}");
    // Gone while stopped, back when it starts.
    ok(&w, &["stop", &c.name, "--timeout", "5"]);
    let table = network(&w, "berth0")["firewall_table"]
        .as_str()
        .expect("table")
        .to_string();
    assert!(
        !nft_table(&table).contains(&format!("dport {port}")),
        "{}",
        nft_table(&table)
    );
    assert!(fetch("127.0.0.1").is_err());
    ok(&w, &["start", &c.name]);
    assert!(nft_table(&table).contains(&format!("dport {port}")));
    assert!(sh(&w, &c.name, serve).0);
    assert!(wait_until(
        || fetch("127.0.0.1").is_ok_and(|b| b.contains("hello-from-inside"))
    ));
    // The same host port twice is refused, naming the taker.
    let other = Running::new(&w, &[]);
    let out = w.run(&["port", "add", &other.name, &port, "81"]);
    let err = one_line_refusal(&out, "a taken host port");
    assert!(err.contains(&c.name), "{err}");
    ok(&w, &["port", "remove", &c.name, &port]);
    // A forward for one host address is removed by it.
    ok(
        &w,
        &[
            "port",
            "add",
            &c.name,
            &port,
            "80",
            "--host-ip",
            "127.0.0.1",
        ],
    );
    let out = w.run(&["port", "remove", &c.name, &port, "--host-ip", "127.0.0.2"]);
    assert!(one_line_refusal(&out, "another host ip").contains("no forward"));
    ok(
        &w,
        &["port", "remove", &c.name, &port, "--host-ip", "127.0.0.1"],
    );
    assert!(!nft_table(&table).contains(&format!("dport {port}")));
}

#[test]
fn dhcp_hands_out_the_address_berth_list_shows() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let c = Running::new(&w, &["--net", "bridge,ipv4=dhcp"]);
    // The guest's job: eth0 is up without an address until it asks.
    let (_, before) = sh(&w, &c.name, "ip -4 -o addr show eth0");
    assert!(!before.contains("inet "), "{before}");
    assert!(ipv4_of(&w, &c.name).is_empty(), "listed before any lease");
    let script = "printf '#!/bin/sh\\n[ \"$1\" = bound ] && ip addr add $ip/$mask dev $interface\\nexit 0\\n' > /tmp/dhcp.sh; \
                  chmod +x /tmp/dhcp.sh; udhcpc -i eth0 -n -q -t 5 -s /tmp/dhcp.sh >/dev/null 2>&1; \
                  ip -4 -o addr show eth0";
    let (ok_, got) = sh(&w, &c.name, script);
    assert!(ok_, "{got}");
    let listed = ipv4_of(&w, &c.name);
    assert_eq!(listed.len(), 1, "{got}");
    assert!(
        got.contains(&format!("inet {}/24", listed[0])),
        "{got} vs {listed:?}"
    );
}

#[test]
fn static_addresses_are_set_before_init_and_checked() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let name = unique("net-static");
    ok(
        &w,
        &[
            "network",
            "create",
            "tnet",
            "--subnet",
            &format!("10.{}.77.0/24", 100 + std::process::id() % 100),
        ],
    );
    let net = network(&w, "tnet");
    let subnet = net["subnet"].as_str().expect("subnet").to_string();
    let base = subnet.trim_end_matches("0/24");
    let addr = format!("{base}42/24");
    ok(
        &w,
        &[
            "create",
            "busybox",
            &name,
            "--net",
            &format!("bridge=tnet,ipv4={addr}"),
        ],
    );
    ok(&w, &["start", &name]);
    let (_, got) = sh(&w, &name, "ip -4 -o addr show eth0");
    assert!(got.contains(&format!("inet {addr}")), "{got}");
    assert_eq!(ipv4_of(&w, &name), vec![format!("{base}42")]);
    // Taken by another, outside the subnet, the gateway: refused before anything is made.
    for (bad, what) in [
        (format!("bridge=tnet,ipv4={addr}"), "reserved"),
        (
            "bridge=tnet,ipv4=172.31.9.9/24".to_string(),
            "not an address for a container",
        ),
        (
            format!("bridge=tnet,ipv4={base}1/24"),
            "not an address for a container",
        ),
        ("bridge=nosuchnet".to_string(), "neither a berth network"),
        ("wifi".to_string(), "net.type"),
    ] {
        let other = unique("net-bad");
        let out = w.run(&["create", "busybox", &other, "--net", &bad]);
        let err = one_line_refusal(&out, &bad);
        assert!(err.contains(what), "{bad}: {err}");
        assert!(!w.state.join("containers").join(&other).exists());
    }
    // A network in use is not deleted.
    let out = w.run(&["network", "delete", "tnet"]);
    assert!(one_line_refusal(&out, "network in use").contains(&name));
    ok(&w, &["delete", "--force", &name]);
    ok(&w, &["network", "delete", "tnet"]);
}

#[test]
fn none_has_only_loopback() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let c = Running::new(&w, &["--net", "none"]);
    let (_, links) = sh(&w, &c.name, "ls /sys/class/net");
    assert_eq!(links.split_whitespace().collect::<Vec<_>>(), vec!["lo"]);
    assert!(ipv4_of(&w, &c.name).is_empty());
    // No network was made for it.
    let list = ok(&w, &["network", "list", "--format", "json"]);
    assert_eq!(list.trim(), "[]");
}

/// A network namespace and veth pair the test makes (for routed and macvlan peers),
/// removed on drop.
struct TestNs {
    ns: String,
    host_end: String,
}

impl TestNs {
    /// A namespace holding `peer_addr` on one end of a veth pair; the other end stays on the
    /// host, up, without an address.
    fn new(tag: &str, peer_addr: &str) -> TestNs {
        let id = std::process::id() % 100_000;
        let t = TestNs {
            ns: format!("berth-{tag}-{id}"),
            host_end: format!("{tag}h{id}"),
        };
        let peer = format!("{tag}p{id}");
        let run = |args: &[&str]| {
            let out = Command::new("ip").args(args).output().expect("ip");
            assert!(out.status.success(), "ip {args:?}: {}", text(&out.stderr));
        };
        run(&["netns", "add", &t.ns]);
        run(&[
            "link",
            "add",
            &t.host_end,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
        ]);
        run(&["link", "set", &peer, "netns", &t.ns]);
        run(&["link", "set", &t.host_end, "up"]);
        run(&["-n", &t.ns, "addr", "add", peer_addr, "dev", &peer]);
        run(&["-n", &t.ns, "link", "set", &peer, "up"]);
        run(&["-n", &t.ns, "link", "set", "lo", "up"]);
        t
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_end])
            .output();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
    }
}

#[test]
fn macvlan_reaches_its_parents_network() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let o = 100 + std::process::id() % 100;
    let ns = TestNs::new("mv", &format!("10.{o}.99.1/24"));
    let addr = format!("10.{o}.99.20/24");
    let c = Running::new(
        &w,
        &["--net", &format!("macvlan={},ipv4={addr}", ns.host_end)],
    );
    let (ok_, out) = sh(&w, &c.name, &format!("ping -c1 -W3 10.{o}.99.1"));
    assert!(ok_, "macvlan → the parent's network: {out}");
    let (_, mac) = sh(&w, &c.name, "cat /sys/class/net/eth0/address");
    assert!(mac.trim().starts_with("02:"), "{mac}");
    let _ = w.run(&["delete", "--force", &c.name]);
    drop(ns);
}

#[test]
fn routed_reaches_the_host_without_a_bridge() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let o = 100 + std::process::id() % 100;
    let addr = format!("10.{o}.98.7");
    let c = Running::new(&w, &["--net", &format!("routed={addr}")]);
    let (_, route) = sh(&w, &c.name, "ip -4 -o addr show eth0; ip route");
    assert!(route.contains(&format!("inet {addr}/32")), "{route}");
    assert!(route.contains("default dev eth0"), "{route}");
    // The host reaches it through its host route, and it reaches the host's addresses.
    let ping = Command::new("busybox")
        .args(["ping", "-c1", "-W3", &addr])
        .output()
        .expect("ping");
    assert!(
        ping.status.success(),
        "host → routed: {}",
        text(&ping.stdout)
    );
    let host_addr = Command::new("ip")
        .args(["-4", "-o", "route", "get", "1.1.1.1"])
        .output()
        .expect("ip route get");
    let src = text(&host_addr.stdout)
        .split_whitespace()
        .skip_while(|w| *w != "src")
        .nth(1)
        .map(String::from);
    if let Some(src) = src {
        let (ok_, out) = sh(&w, &c.name, &format!("ping -c1 -W3 {src}"));
        assert!(ok_, "routed → host {src}: {out}");
    }
    assert!(ipv4_of(&w, &c.name).contains(&addr));
}

#[test]
fn nothing_is_left_after_stop_and_delete() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let name = unique("net-clean");
    ok(&w, &["create", "busybox", &name]);
    ok(&w, &["start", &name]);
    let port = (40000 + std::process::id() % 20000).to_string();
    ok(&w, &["port", "add", &name, &port, "80"]);
    let net = network(&w, "berth0");
    let table = net["firewall_table"].as_str().expect("table").to_string();
    let bridge = net["bridge"].as_str().expect("bridge").to_string();
    let ip = ipv4_of(&w, &name)[0].clone();
    let veths = |w: &World| {
        // The host end of this container's veth is the one port of the bridge.
        let _ = w;
        std::fs::read_dir(format!("/sys/class/net/{bridge}/brif"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    assert_eq!(veths(&w), 1);
    ok(&w, &["stop", &name, "--timeout", "5"]);
    // The veth pair goes with the network namespace (the kernel removes it).
    assert!(wait_until(|| veths(&w) == 0), "a veth is left on {bridge}");
    assert!(!nft_table(&table).contains(&format!("dport {port}")));
    // Deleted: its lease goes, the address is free again and the name resolves no more.
    ok(&w, &["delete", &name]);
    let leases = network(&w, "berth0")["leases"].clone();
    assert!(leases.get(&name).is_none(), "{leases}");
    let gw = net["dns"].as_str().expect("dns").to_string();
    let look = Command::new("busybox")
        .args(["nslookup", &format!("{name}.berth"), &gw])
        .output()
        .expect("nslookup");
    assert!(!text(&look.stdout).contains(&ip), "{}", text(&look.stdout));
    let doctor = ok(&w, &["doctor", "--dry-run"]);
    assert!(doctor.contains("nothing left behind"), "{doctor}");
    // And the network itself: bridge, dnsmasq, firewall table.
    ok(&w, &["network", "delete", "berth0"]);
    assert!(
        !std::path::Path::new("/sys/class/net")
            .join(&bridge)
            .exists()
    );
    assert!(nft_table(&table).is_empty(), "{}", nft_table(&table));
    assert!(
        !std::path::Path::new("/run/berth-net")
            .join(&bridge)
            .exists()
    );
}

#[test]
fn doctor_removes_what_a_crash_left() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let name = unique("net-doc");
    ok(&w, &["create", "busybox", &name]);
    let info: Value =
        serde_json::from_str(&ok(&w, &["info", &name, "--format", "json"])).expect("info");
    let host_end = info["net"]["host_interface"]
        .as_str()
        .expect("host end")
        .to_string();
    assert!(
        info["net"]["mac"]
            .as_str()
            .is_some_and(|m| m.starts_with("02:")),
        "{info}"
    );
    // What a crash between making the veth and moving it in leaves: the pair, both ends on
    // the host, under the names berth gives this container.
    let peer = format!("vp{}", &host_end[2..]);
    let out = Command::new("ip")
        .args([
            "link", "add", &host_end, "type", "veth", "peer", "name", &peer,
        ])
        .output()
        .expect("ip");
    assert!(out.status.success(), "{}", text(&out.stderr));
    // And another root's (or anybody's) interface that only looks like berth's.
    let foreign = format!("vb{:08x}", std::process::id());
    let out = Command::new("ip")
        .args([
            "link",
            "add",
            &foreign,
            "type",
            "veth",
            "peer",
            "name",
            &format!("vq{:08x}", std::process::id()),
        ])
        .output()
        .expect("ip");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let found = ok(&w, &["doctor", "--dry-run"]);
    assert!(found.contains(&host_end), "{found}");
    assert!(!host_links(&host_end).is_empty(), "a dry run removed it");
    let fixed = ok(&w, &["doctor"]);
    assert!(
        fixed.contains(&format!("fixed: interface {host_end}")),
        "{fixed}"
    );
    assert!(host_links(&host_end).is_empty());
    assert!(!host_links(&foreign).is_empty(), "doctor removed {foreign}");
    let _ = Command::new("ip").args(["link", "del", &foreign]).output();
    // The container starts as if nothing had happened.
    ok(&w, &["start", &name]);
    // A network whose dnsmasq died: found, and started again. Ours: this World's
    // network's dnsmasq, by the pid it recorded.
    let net = network(&w, "berth0");
    let bridge = net["bridge"].as_str().expect("bridge").to_string();
    let pid_file = std::path::Path::new("/run/berth-net")
        .join(&bridge)
        .join("pid");
    let pid = std::fs::read_to_string(&pid_file).expect("dnsmasq pid");
    let pid = pid.trim().to_string();
    let _ = Command::new("kill").arg(&pid).status();
    assert!(wait_until(|| {
        std::fs::read(format!("/proc/{pid}/cmdline")).map_or(true, |c| c.is_empty())
    }));
    let fixed = ok(&w, &["doctor"]);
    assert!(fixed.contains("dnsmasq of network berth0"), "{fixed}");
    let gw = net["dns"].as_str().expect("dns").to_string();
    let look = Command::new("busybox")
        .args(["nslookup", &format!("{name}.berth"), &gw])
        .output()
        .expect("nslookup");
    assert!(
        text(&look.stdout).contains("Name:"),
        "{}",
        text(&look.stdout)
    );
    ok(&w, &["delete", "--force", &name]);
    assert!(ok(&w, &["doctor"]).contains("nothing left behind"));
}

/// `tc -j qdisc show dev DEV`, as text.
fn qdiscs(dev: &str) -> String {
    let out = Command::new("tc")
        .args(["qdisc", "show", "dev", dev])
        .output()
        .expect("tc");
    text(&out.stdout)
}

#[test]
fn bandwidth_limits_shape_the_host_end_and_follow_live_changes() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let c = Running::new(&w, &["-c", "limits.net_ingress=8mbit"]);
    let info: Value =
        serde_json::from_str(&ok(&w, &["info", &c.name, "--format", "json"])).expect("info");
    let host_if = info["net"]["host_interface"]
        .as_str()
        .expect("host end")
        .to_string();
    let ip = ipv4_of(&w, &c.name)[0].clone();
    assert!(qdiscs(&host_if).contains("tbf"), "{}", qdiscs(&host_if));
    // A transfer into the container runs at about the rate: 1 MB at 8 mbit/s is 1 s.
    let port = "5001";
    let listen = format!("nc -l -p {port} > /dev/null 2>&1 &");
    assert!(sh(&w, &c.name, &listen).0);
    let sent = wait_until(|| {
        std::net::TcpStream::connect_timeout(
            &format!("{ip}:{port}").parse().expect("addr"),
            std::time::Duration::from_secs(1),
        )
        .is_ok_and(|mut s| {
            use std::io::Write;
            let start = std::time::Instant::now();
            let chunk = vec![0u8; 64 * 1024];
            for _ in 0..16 {
                if s.write_all(&chunk).is_err() {
                    return false;
                }
            }
            drop(s);
            let secs = start.elapsed().as_secs_f64();
            // Into the socket buffers, a little runs ahead of the shaper: generous bounds.
            assert!(
                (0.4..3.0).contains(&secs),
                "1 MiB in {secs:.2} s at 8 mbit/s"
            );
            true
        })
    });
    assert!(sent, "no transfer to {ip}:{port}");
    // Live: the egress limit comes (an ifb), then both go.
    ok(&w, &["config", "set", &c.name, "limits.net_egress=4mbit"]);
    let ifb = || {
        std::fs::read_dir("/sys/class/net")
            .expect("net")
            .flatten()
            .filter(|e| {
                std::fs::read_link(e.path().join("device")).is_err()
                    && qdiscs(&e.file_name().to_string_lossy()).contains("rate 4Mbit")
            })
            .count()
    };
    assert_eq!(ifb(), 1, "no ifb shaping at 4mbit");
    ok(&w, &["stop", &c.name, "--timeout", "5"]);
    assert_eq!(ifb(), 0, "the ifb is left after stop");
    // On a container without a veth, the keys are refused.
    let out = w.run(&[
        "create",
        "busybox",
        &unique("net-shape"),
        "--net",
        "none",
        "-c",
        "limits.net_egress=1mbit",
    ]);
    assert!(one_line_refusal(&out, "shaping without a veth").contains("net.type"));
}

#[test]
fn a_run_joins_a_bridge_and_gives_its_address_back() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    // A container first, so that the network exists and its gateway is known.
    let c = Running::new(&w, &[]);
    let net = network(&w, "berth0");
    let gw = net["dns"].as_str().expect("gateway").to_string();
    let out = w.run(&[
        "run",
        "--net",
        "bridge",
        "busybox",
        "--",
        "sh",
        "-c",
        &format!("ip -4 -o addr show eth0 && ping -c1 -W3 {gw} >/dev/null && ping -c1 -W3 {} >/dev/null && echo reached", c.name),
    ]);
    let got = text(&out.stdout);
    assert!(out.status.success(), "{got} {}", text(&out.stderr));
    assert!(got.contains("inet 10.") && got.contains("reached"), "{got}");
    // The run's lease is given back: only the container's is left.
    let leases = network(&w, "berth0")["leases"].clone();
    assert_eq!(leases.as_object().map(|l| l.len()), Some(1), "{leases}");
    // The other interface types too: a routed run gets its address.
    let routed = format!("10.{}.97.9", 100 + std::process::id() % 100);
    let out = w.run(&[
        "run",
        "--net",
        &format!("routed={routed}"),
        "busybox",
        "--",
        "ip",
        "-4",
        "-o",
        "addr",
        "show",
        "eth0",
    ]);
    assert!(
        text(&out.stdout).contains(&format!("inet {routed}/32")),
        "{} {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let out = w.run(&["run", "--net", "bridge=nosuchnet", "busybox", "--", "true"]);
    assert_eq!(out.status.code(), Some(125), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("nosuchnet"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn the_hosts_loopback_services_are_out_of_a_containers_reach() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let c = Running::new(&w, &[]);
    let gw = network(&w, "berth0")["dns"]
        .as_str()
        .expect("gw")
        .to_string();
    let pid = berth_e2e::system::info(&w, &c.name)["pid"].to_string();
    // A service the host binds to loopback only.
    let sock = std::net::UdpSocket::bind("127.0.0.2:0").expect("bind");
    sock.set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .expect("timeout");
    let port = sock.local_addr().expect("addr").port();
    // What root in the container can do in its own namespace (it could also send raw
    // frames): route 127.0.0.2 to the gateway, and send there. Done from the host with
    // nsenter, the container's /proc/sys being read-only.
    let inside = |script: &str| {
        Command::new("nsenter")
            .args(["-t", &pid, "-n", "sh", "-c", script])
            .output()
            .expect("nsenter")
    };
    let setup = inside(&format!(
        "sysctl -qw net.ipv4.conf.eth0.route_localnet=1 && ip route add 127.0.0.2/32 via {gw} dev eth0"
    ));
    assert!(setup.status.success(), "{}", text(&setup.stderr));
    let _ = inside(&format!(
        "echo leak | busybox nc -u -w1 127.0.0.2 {port}; echo leak | busybox nc -u -w1 127.0.0.2 {port}"
    ));
    let mut buf = [0u8; 64];
    let got = sock.recv_from(&mut buf);
    assert!(
        got.is_err(),
        "the host's loopback service got {:?}",
        got.map(|(n, a)| (String::from_utf8_lossy(&buf[..n]).to_string(), a))
    );
}

#[test]
fn hostile_guest_files_neither_lead_out_nor_hang_a_start() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let name = unique("net-hostile");
    ok(&w, &["network", "create", "thost"]);
    let subnet = network(&w, "thost")["subnet"]
        .as_str()
        .expect("subnet")
        .to_string();
    let addr = format!("{}77/24", subnet.trim_end_matches("0/24"));
    // Privileged: the worst case, root inside is root outside.
    ok(
        &w,
        &[
            "create",
            "busybox",
            &name,
            "-c",
            "privileged=true",
            "--net",
            &format!("bridge=thost,ipv4={addr}"),
        ],
    );
    ok(&w, &["start", &name]);
    let escape = format!("/tmp/berth-escape-{}", std::process::id());
    let (ok_, out) = sh(
        &w,
        &name,
        &format!(
            "rm -f /etc/resolv.conf && mkfifo /etc/resolv.conf && \
             mkdir -p /etc/systemd/network && mkfifo /etc/systemd/network/10-berth-eth0.network && \
             ln -s /proc/self/fd/3/../../../../../../..{escape} /etc/.resolv.conf.berth-tmp && \
             ln -s /dev/zero /etc/systemd/network/.10-berth-eth0.network.berth-tmp"
        ),
    );
    assert!(ok_, "{out}");
    ok(&w, &["stop", &name, "--timeout", "5"]);
    // The start neither blocks on a FIFO nor writes through a link.
    let mut start = w
        .berth()
        .args(["start", &name])
        .stdin(std::process::Stdio::null())
        .spawn()
        .expect("start");
    let done = wait_until(|| start.try_wait().ok().flatten().is_some());
    if !done {
        let _ = start.kill();
        let _ = start.wait();
    }
    assert!(done, "start hung on the guest's files");
    assert!(start.wait().expect("status").success());
    assert!(
        !std::path::Path::new(&escape).exists(),
        "berth wrote {escape} on the host"
    );
    let (_, kinds) = sh(
        &w,
        &name,
        "ls -l /etc/resolv.conf /etc/systemd/network/10-berth-eth0.network",
    );
    assert!(
        kinds.lines().all(|l| l.starts_with('p')),
        "the FIFOs were replaced: {kinds}"
    );
    ok(&w, &["delete", "--force", &name]);
    ok(&w, &["network", "delete", "thost"]);
}

#[test]
fn bad_network_input_is_refused_and_changes_nothing() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    for (args, what) in [
        (
            vec!["network", "create", "tbad", "--subnet", "127.0.0.0/24"],
            "loopback",
        ),
        (
            vec!["network", "create", "tbad", "--subnet", "224.1.0.0/24"],
            "multicast",
        ),
        (
            vec!["network", "create", "tbad", "--subnet", "10.1.2.3"],
            "--subnet",
        ),
        (
            vec!["network", "create", "tbad", "--ipv6", "fd00::/64"],
            "overlaps",
        ),
        (
            vec!["network", "create", "tbad", "--ipv6", "2001:db8::/64"],
            "unique local",
        ),
        (
            vec!["network", "create", "tbad", "--ipv6", "::/0"],
            "unique local",
        ),
        (vec!["network", "create", "Bad/Name"], "name"),
        (vec!["network", "delete", "nosuch"], "does not exist"),
    ] {
        let out = w.run(&args);
        let err = one_line_refusal(&out, &format!("{args:?}"));
        assert!(err.contains(what), "{args:?}: {err}");
    }
    assert_eq!(
        ok(&w, &["network", "list", "--format", "json"]).trim(),
        "[]"
    );
    // Static addresses: one per container; routed ones outside berth's networks.
    let a = Running::new(&w, &[]);
    let taken = ipv4_of(&w, &a.name)[0].clone();
    let fixed = format!("{}.200/24", taken.rsplit_once('.').expect("dotted").0);
    let b = unique("net-bad");
    ok(
        &w,
        &[
            "create",
            "busybox",
            &b,
            "--net",
            &format!("bridge,ipv4={fixed}"),
        ],
    );
    for (net, what) in [
        (format!("bridge,ipv4={fixed}"), "already given"),
        (format!("routed={taken}"), "inside network"),
        ("routed=0.0.0.0".to_string(), "not an address"),
        ("routed=127.0.0.5".to_string(), "loopback"),
        ("bridge,mac=ff:ff:ff:ff:ff:ff".to_string(), "net.mac"),
    ] {
        let c = unique("net-bad");
        let out = w.run(&["create", "busybox", &c, "--net", &net]);
        let err = one_line_refusal(&out, &net);
        assert!(err.contains(what), "{net}: {err}");
        assert!(!w.state.join("containers").join(&c).exists());
    }
    // An IPv6 host address for a forward is refused, and the config stays as it was.
    let before = ok(&w, &["config", "show", &a.name]);
    let out = w.run(&["port", "add", &a.name, "18099", "80", "--host-ip", "::1"]);
    assert!(one_line_refusal(&out, "ipv6 host ip").contains("IPv4"));
    assert_eq!(ok(&w, &["config", "show", &a.name]), before);
    ok(&w, &["delete", &b]);
}

#[test]
fn doctor_finds_the_forwards_of_a_container_killed_with_its_supervisor() {
    if !root_or_skip() {
        return;
    }
    let w = World::new();
    let c = Running::new(&w, &[]);
    let port = (30000 + std::process::id() % 20000).to_string();
    ok(&w, &["port", "add", &c.name, &port, "80"]);
    let info = berth_e2e::system::info(&w, &c.name);
    let table = network(&w, "berth0")["firewall_table"]
        .as_str()
        .expect("table")
        .to_string();
    assert!(nft_table(&table).contains(&format!("dport {port}")));
    // Both of ours, by the pids berth recorded: the supervisor first, so nobody cleans up.
    for key in ["supervisor_pid", "pid"] {
        let pid = info[key].to_string();
        assert!(
            Command::new("kill")
                .args(["-9", &pid])
                .status()
                .expect("kill")
                .success()
        );
    }
    assert!(wait_until(
        || berth_e2e::system::info(&w, &c.name)["state"] == "stopped"
    ));
    let found = ok(&w, &["doctor", "--dry-run"]);
    assert!(
        found.contains(&format!("port forward {port} ->")),
        "{found}"
    );
    assert!(
        nft_table(&table).contains(&format!("dport {port}")),
        "a dry run changed the table"
    );
    let fixed = ok(&w, &["doctor"]);
    assert!(
        fixed.contains(&format!("fixed: port forward {port}")),
        "{fixed}"
    );
    assert!(!nft_table(&table).contains(&format!("dport {port}")));
    assert!(ok(&w, &["doctor"]).contains("nothing left behind"));
}
