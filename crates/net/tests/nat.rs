//! berth's nftables table on the real kernel: what `sync` leaves in it (read back with
//! `nft -j list table`), that a second sync replaces rather than adds, that removal is
//! idempotent, that bad names stop before nft runs, and that other tables are left alone.
//! One test sends real traffic through a port forward, between two network namespaces the
//! test makes itself. Needs root and nft; addresses from TEST-NET-1 (192.0.2.0/24, never
//! routed) and, for rule content only, 10.44.x and fd42:: subnets that carry no traffic.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

mod common;
use berth_net::nat::{self, Forward, Ipv4Net, Ipv6Net, NatError, Network, Proto, Ruleset};
use common::{root, sh};
use serde_json::Value;

/// A table name no other test (or test run) uses, deleted on drop even when a test failed.
struct TableGuard(String);

impl TableGuard {
    fn new() -> TableGuard {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        TableGuard(format!("berth_t{}_{n}", std::process::id()))
    }
}

impl Drop for TableGuard {
    fn drop(&mut self) {
        let _ = Command::new("nft")
            .args(["delete", "table", "inet", &self.0])
            .output();
    }
}

/// The rules of table `name`, each as (chain, its statements), as nft reports them.
fn listed_rules(name: &str) -> Vec<(String, Vec<Value>)> {
    let out = sh(&["nft", "-j", "list", "table", "inet", name]);
    let doc: Value = serde_json::from_slice(&out.stdout).expect("nft's JSON");
    doc["nftables"]
        .as_array()
        .expect("nftables array")
        .iter()
        .filter_map(|o| o.get("rule"))
        .map(|r| {
            let chain = r["chain"].as_str().expect("chain").to_string();
            (chain, r["expr"].as_array().expect("expr").clone())
        })
        .collect()
}

/// The chains of table `name`: (name, type, hook, priority, policy).
fn listed_chains(name: &str) -> Vec<(String, String, String, i64, String)> {
    let out = sh(&["nft", "-j", "list", "table", "inet", name]);
    let doc: Value = serde_json::from_slice(&out.stdout).expect("nft's JSON");
    let mut chains: Vec<_> = doc["nftables"]
        .as_array()
        .expect("nftables array")
        .iter()
        .filter_map(|o| o.get("chain"))
        .map(|c| {
            (
                c["name"].as_str().unwrap_or_default().to_string(),
                c["type"].as_str().unwrap_or_default().to_string(),
                c["hook"].as_str().unwrap_or_default().to_string(),
                c["prio"].as_i64().unwrap_or(i64::MIN),
                c["policy"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    chains.sort();
    chains
}

fn table_exists(name: &str) -> bool {
    let out = sh(&["nft", "-j", "list", "tables", "inet"]);
    let doc: Value = serde_json::from_slice(&out.stdout).expect("nft's JSON");
    doc["nftables"]
        .as_array()
        .expect("nftables array")
        .iter()
        .any(|o| o["table"]["name"] == name)
}

/// `{"match": {"left": {"payload": {protocol, field}}, "right": right}}` with `==`.
fn matches_payload(stmt: &Value, protocol: &str, field: &str, right: &Value) -> bool {
    let m = &stmt["match"];
    m["left"]["payload"]["protocol"] == protocol
        && m["left"]["payload"]["field"] == field
        && m["op"] == "=="
        && &m["right"] == right
}

fn matches_meta(stmt: &Value, key: &str, op: &str, right: &Value) -> bool {
    let m = &stmt["match"];
    m["left"]["meta"]["key"] == key && m["op"] == op && &m["right"] == right
}

fn prefix(addr: &str, len: u32) -> Value {
    serde_json::json!({"prefix": {"addr": addr, "len": len}})
}

fn has(rule: &[Value], pred: impl Fn(&Value) -> bool) -> bool {
    rule.iter().any(pred)
}

fn network(bridge: &str, v4: &str, v6: Option<&str>) -> Network {
    Network {
        bridge: bridge.into(),
        ipv4: Some(v4.parse::<Ipv4Net>().expect("cidr")),
        ipv6: v6.map(|s| s.parse::<Ipv6Net>().expect("cidr")),
        nat: true,
    }
}

fn forward(proto: Proto, host_port: u16, dest: &str, dest_port: u16, bridge: &str) -> Forward {
    Forward {
        proto,
        host_ip: None,
        host_port,
        dest: dest.parse().expect("ip"),
        dest_port,
        bridge: bridge.into(),
    }
}

fn masquerades_subnet(rules: &[(String, Vec<Value>)], l3: &str, net: &Value, br: &str) -> bool {
    rules.iter().any(|(c, r)| {
        c == "postrouting"
            && has(r, |s| matches_payload(s, l3, "saddr", net))
            && has(r, |s| matches_meta(s, "oifname", "!=", &br.into()))
            && has(r, |s| s.get("masquerade").is_some())
    })
}

/// The DNAT rules of `chain` as (l4 protocol, host port, dest addr, dest port).
fn dnats(rules: &[(String, Vec<Value>)], chain: &str) -> Vec<(String, u64, String, u64)> {
    let mut found: Vec<_> = rules
        .iter()
        .filter(|(c, _)| c == chain)
        .filter_map(|(_, r)| {
            let dnat = r.iter().find_map(|s| s.get("dnat"))?;
            let port = r.iter().find_map(|s| {
                let m = &s["match"];
                if m["left"]["payload"]["field"] != "dport" {
                    return None;
                }
                let proto = m["left"]["payload"]["protocol"].as_str()?;
                Some((proto.to_string(), m["right"].as_u64()?))
            })?;
            Some((
                port.0,
                port.1,
                dnat["addr"].as_str()?.to_string(),
                dnat["port"].as_u64()?,
            ))
        })
        .collect();
    found.sort();
    found
}

#[test]
fn sync_creates_the_chains_and_rules() {
    if !root() {
        return;
    }
    let t = TableGuard::new();
    let rules = Ruleset {
        networks: vec![network(
            "berthnt0",
            "10.44.3.1/24",
            Some("fd42:1:2:3::1/64"),
        )],
        forwards: vec![
            forward(Proto::Tcp, 8080, "10.44.3.7", 80, "berthnt0"),
            Forward {
                host_ip: Some("fd42:1:2:3::1".parse().expect("ip")),
                ..forward(Proto::Udp, 5353, "fd42:1:2:3::7", 53, "berthnt0")
            },
        ],
    };
    assert!(!nat::exists(&t.0).expect("exists"));
    nat::sync(&t.0, &rules).expect("sync");
    assert!(nat::exists(&t.0).expect("exists"));

    let s = |x: &str| x.to_string();
    assert_eq!(
        listed_chains(&t.0),
        vec![
            (s("forward"), s("filter"), s("forward"), 0, s("accept")),
            (s("guard"), s("filter"), s("prerouting"), -300, s("accept")),
            (s("input"), s("filter"), s("input"), 0, s("accept")),
            (s("output"), s("nat"), s("output"), -100, s("accept")),
            (
                s("postrouting"),
                s("nat"),
                s("postrouting"),
                100,
                s("accept")
            ),
            (
                s("prerouting"),
                s("nat"),
                s("prerouting"),
                -100,
                s("accept")
            ),
        ]
    );

    let rules = listed_rules(&t.0);
    assert!(masquerades_subnet(
        &rules,
        "ip",
        &prefix("10.44.3.0", 24),
        "berthnt0"
    ));
    assert!(masquerades_subnet(
        &rules,
        "ip6",
        &prefix("fd42:1:2:3::", 64),
        "berthnt0"
    ));
    let expected = vec![
        (s("tcp"), 8080, s("10.44.3.7"), 80),
        (s("udp"), 5353, s("fd42:1:2:3::7"), 53),
    ];
    assert_eq!(dnats(&rules, "prerouting"), expected);
    assert_eq!(dnats(&rules, "output"), expected);

    // The IPv4 forward takes any local address, for IPv4 packets only; the IPv6 one its
    // own address.
    let pre: Vec<&Vec<Value>> = rules
        .iter()
        .filter(|(c, _)| c == "prerouting")
        .map(|(_, r)| r)
        .collect();
    let v4 = pre
        .iter()
        .find(|r| has(r, |s| s["dnat"]["addr"] == "10.44.3.7"))
        .expect("v4 dnat");
    assert!(has(v4, |s| matches_meta(
        s,
        "nfproto",
        "==",
        &"ipv4".into()
    )));
    assert!(has(v4, |s| s["match"]["left"]["fib"]["result"] == "type"
        && s["match"]["right"] == "local"));
    let v6 = pre
        .iter()
        .find(|r| has(r, |s| s["dnat"]["addr"] == "fd42:1:2:3::7"))
        .expect("v6 dnat");
    // Bound to its address (which implies IPv6), not to every local one.
    assert!(!has(v6, |s| s["match"]["left"].get("fib").is_some()));
    assert!(has(v6, |s| matches_payload(
        s,
        "ip6",
        "daddr",
        &"fd42:1:2:3::1".into()
    )));

    // Loopback and hairpin masquerade for the IPv4 forward.
    let post = |pred: &dyn Fn(&[Value]) -> bool| {
        rules
            .iter()
            .filter(|(c, r)| c == "postrouting" && pred(r))
            .count()
    };
    assert_eq!(
        post(&|r| has(r, |s| matches_payload(
            s,
            "ip",
            "saddr",
            &prefix("127.0.0.0", 8)
        )) && has(r, |s| matches_meta(s, "oifname", "==", &"berthnt0".into()))),
        1
    );
    assert_eq!(
        post(&|r| has(r, |s| matches_payload(
            s,
            "ip",
            "daddr",
            &"10.44.3.7".into()
        )) && has(r, |s| s.get("masquerade").is_some())),
        1
    );

    // The bridge is accepted both ways in forward, and dnsmasq's ports in input.
    let in_chain = |chain: &str| {
        rules
            .iter()
            .filter(|(c, _)| c == chain)
            .map(|(_, r)| r)
            .collect::<Vec<_>>()
    };
    let fwd = in_chain("forward");
    assert_eq!(fwd.len(), 2);
    for key in ["iifname", "oifname"] {
        assert!(fwd.iter().any(
            |r| has(r, |s| matches_meta(s, key, "==", &"berthnt0".into()))
                && has(r, |s| s.get("accept").is_some())
        ));
    }
    let input = serde_json::to_string(&in_chain("input")).expect("json");
    for needle in [r#""set":[53,67,547]"#, r#""right":53"#] {
        assert!(input.contains(needle), "{needle} not in {input}");
    }
}

#[test]
fn a_second_sync_replaces_the_first() {
    if !root() {
        return;
    }
    let t = TableGuard::new();
    let first = Ruleset {
        networks: vec![network("berthnt1", "10.44.4.1/24", None)],
        forwards: vec![forward(Proto::Tcp, 8081, "10.44.4.7", 80, "berthnt1")],
    };
    nat::sync(&t.0, &first).expect("first sync");
    // The same content twice leaves it once.
    nat::sync(&t.0, &first).expect("same sync");
    assert_eq!(
        dnats(&listed_rules(&t.0), "prerouting"),
        vec![("tcp".to_string(), 8081, "10.44.4.7".to_string(), 80)]
    );

    let second = Ruleset {
        networks: vec![network("berthnt2", "10.44.5.1/24", None)],
        forwards: vec![forward(Proto::Udp, 9000, "10.44.5.9", 9001, "berthnt2")],
    };
    nat::sync(&t.0, &second).expect("second sync");
    let rules = listed_rules(&t.0);
    assert_eq!(
        dnats(&rules, "prerouting"),
        vec![("udp".to_string(), 9000, "10.44.5.9".to_string(), 9001)]
    );
    assert!(masquerades_subnet(
        &rules,
        "ip",
        &prefix("10.44.5.0", 24),
        "berthnt2"
    ));
    assert!(!masquerades_subnet(
        &rules,
        "ip",
        &prefix("10.44.4.0", 24),
        "berthnt1"
    ));
    let text = serde_json::to_string(&rules).expect("json");
    assert!(!text.contains("berthnt1"), "old network left: {text}");
    assert_eq!(listed_chains(&t.0).len(), 6);
}

#[test]
fn an_empty_ruleset_removes_the_table_and_remove_is_idempotent() {
    if !root() {
        return;
    }
    let t = TableGuard::new();
    // Nothing to remove yet: both are fine.
    nat::sync(&t.0, &Ruleset::default()).expect("empty sync of no table");
    nat::remove(&t.0).expect("remove of no table");
    assert!(!table_exists(&t.0));

    let rules = Ruleset {
        networks: vec![network("berthnt3", "10.44.6.1/24", None)],
        forwards: vec![],
    };
    nat::sync(&t.0, &rules).expect("sync");
    assert!(table_exists(&t.0));
    nat::sync(&t.0, &Ruleset::default()).expect("empty sync");
    assert!(!table_exists(&t.0));
    assert!(!nat::exists(&t.0).expect("exists"));

    nat::sync(&t.0, &rules).expect("sync again");
    nat::remove(&t.0).expect("remove");
    assert!(!table_exists(&t.0));
    nat::remove(&t.0).expect("second remove");
}

#[test]
fn bad_names_are_refused_before_nft_runs() {
    if !root() {
        return;
    }
    let t = TableGuard::new();
    let with_bridge = |bridge: &str| Ruleset {
        networks: vec![network(bridge, "10.44.7.1/24", None)],
        forwards: vec![],
    };
    for bad in ["", "sixteen_bytes_xx", "a/b", "a:b", "a b"] {
        let err = nat::sync(&t.0, &with_bridge(bad)).expect_err(bad);
        assert!(matches!(err, NatError::BadBridge(_)), "{bad}: {err}");
    }
    let mut bad_forward = with_bridge("berthnt4");
    bad_forward.forwards = vec![forward(Proto::Tcp, 80, "10.44.7.2", 80, "bad/name")];
    let err = nat::sync(&t.0, &bad_forward).expect_err("forward bridge");
    assert!(matches!(err, NatError::BadBridge(_)), "{err}");
    // Nothing was applied: the table was never made.
    assert!(!table_exists(&t.0));

    // Names that are not berth's are refused even for removal: "filter" might be the
    // host's own table.
    for bad in [
        "filter",
        "nat",
        "Berth",
        "berth-x",
        "berth x",
        "berth;flush",
        "xberth",
    ] {
        let err = nat::sync(bad, &with_bridge("berthnt4")).expect_err(bad);
        assert!(matches!(err, NatError::BadTable(_)), "{bad}: {err}");
        assert!(
            matches!(nat::remove(bad), Err(NatError::BadTable(_))),
            "{bad}"
        );
        assert!(
            matches!(nat::exists(bad), Err(NatError::BadTable(_))),
            "{bad}"
        );
    }
    let long = format!("berth{}", "x".repeat(28));
    assert!(matches!(nat::remove(&long), Err(NatError::BadTable(_))));
}

/// Another table (named like berth's, to be sure the name is matched whole), deleted on drop.
struct OtherTable(String);

impl Drop for OtherTable {
    fn drop(&mut self) {
        let _ = Command::new("nft")
            .args(["delete", "table", "inet", &self.0])
            .output();
    }
}

#[test]
fn other_tables_are_left_alone() {
    if !root() {
        return;
    }
    let other = OtherTable(format!("berth_other_{}", std::process::id()));
    sh(&["nft", "add", "table", "inet", &other.0]);
    sh(&[
        "nft",
        "add",
        "chain",
        "inet",
        &other.0,
        "c",
        "{ type filter hook input priority 10; policy accept; }",
    ]);
    sh(&[
        "nft", "add", "rule", "inet", &other.0, "c", "tcp", "dport", "9", "accept",
    ]);
    let before = sh(&["nft", "-j", "list", "table", "inet", &other.0]).stdout;

    let t = TableGuard::new();
    let rules = Ruleset {
        networks: vec![network("berthnt5", "10.44.8.1/24", None)],
        forwards: vec![forward(Proto::Tcp, 8085, "10.44.8.7", 80, "berthnt5")],
    };
    nat::sync(&t.0, &rules).expect("sync");
    nat::sync(&t.0, &Ruleset::default()).expect("empty sync");
    nat::sync(&t.0, &rules).expect("sync");
    nat::remove(&t.0).expect("remove");
    nat::remove(&t.0).expect("remove again");

    let after = sh(&["nft", "-j", "list", "table", "inet", &other.0]).stdout;
    assert_eq!(
        String::from_utf8_lossy(&before),
        String::from_utf8_lossy(&after)
    );
}

/// Two network namespaces standing in for the host and a container: "host" has a bridge
/// with 192.0.2.1/24, "container" the far end of a veth on it with 192.0.2.2/24. Removed on
/// drop, and the nft table with the host namespace.
struct Namespaces {
    host: String,
    container: String,
}

impl Namespaces {
    fn new() -> Namespaces {
        let id = std::process::id();
        let ns = Namespaces {
            host: format!("berth-nat-h-{id}"),
            container: format!("berth-nat-c-{id}"),
        };
        sh(&["ip", "netns", "add", &ns.host]);
        sh(&["ip", "netns", "add", &ns.container]);
        let (h, c) = (ns.host.as_str(), ns.container.as_str());
        for cmd in [
            vec!["ip", "-n", h, "link", "set", "lo", "up"],
            vec!["ip", "-n", c, "link", "set", "lo", "up"],
            vec!["ip", "-n", h, "link", "add", "br0", "type", "bridge"],
            vec!["ip", "-n", h, "addr", "add", "192.0.2.1/24", "dev", "br0"],
            vec!["ip", "-n", h, "link", "set", "br0", "up"],
            vec![
                "ip", "-n", h, "link", "add", "veth0", "type", "veth", "peer", "name", "eth0",
                "netns", c,
            ],
            vec!["ip", "-n", h, "link", "set", "veth0", "master", "br0", "up"],
            vec!["ip", "-n", c, "addr", "add", "192.0.2.2/24", "dev", "eth0"],
            vec!["ip", "-n", c, "link", "set", "eth0", "up"],
            vec!["ip", "-n", c, "route", "add", "default", "via", "192.0.2.1"],
            // What berth's caller sets for 127.0.0.1:port to reach a container.
            vec![
                "ip",
                "netns",
                "exec",
                h,
                "sysctl",
                "-qw",
                "net.ipv4.conf.br0.route_localnet=1",
            ],
        ] {
            sh(&cmd);
        }
        ns
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in [&self.host, &self.container] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// Runs `f` on a new thread that has joined network namespace `ns` (a thread's namespace
/// is its own, and the `nft` it spawns inherits it).
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let fd = std::fs::File::open(&path).expect("netns file");
        rustix::thread::move_into_link_name_space(
            std::os::fd::AsFd::as_fd(&fd),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .expect("setns");
        f()
    })
    .join()
    .expect("thread in netns")
}

/// Connects to `to` and returns what the far side wrote, with every step time-bounded.
fn fetch(to: SocketAddr) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(3))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    s.write_all(b"hi")?;
    let mut got = String::new();
    s.read_to_string(&mut got)?;
    Ok(got)
}

#[test]
fn a_forward_carries_traffic_from_the_host_to_the_container() {
    if !root() {
        return;
    }
    let ns = Namespaces::new();
    // The "container" answers each connection with the address it saw it from.
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let container = ns.container.clone();
    let server = std::thread::spawn(move || {
        in_netns(&container, move || {
            let l = TcpListener::bind("192.0.2.2:80").expect("bind");
            // Polled with a deadline, so that a forward that does not work fails the test
            // instead of leaving this thread waiting for ever.
            l.set_nonblocking(true).expect("nonblocking");
            ready_tx.send(()).expect("ready");
            let deadline = Instant::now() + Duration::from_secs(15);
            let mut peers = Vec::new();
            while peers.len() < 2 && Instant::now() < deadline {
                let Ok((mut s, peer)) = l.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                s.set_nonblocking(false).expect("blocking");
                s.set_read_timeout(Some(Duration::from_secs(3)))
                    .expect("timeout");
                let mut buf = [0u8; 2];
                let _ = s.read_exact(&mut buf);
                let _ = s.write_all(peer.ip().to_string().as_bytes());
                peers.push(peer.ip());
            }
            peers
        })
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("server ready");

    let rules = Ruleset {
        networks: vec![network("br0", "192.0.2.1/24", None)],
        forwards: vec![forward(Proto::Tcp, 8080, "192.0.2.2", 80, "br0")],
    };
    let table = format!("berth_e2e{}", std::process::id());
    let got = in_netns(&ns.host, move || {
        nat::sync(&table, &rules).expect("sync");
        let lo = fetch(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 8080));
        let bridge = fetch(SocketAddr::new(IpAddr::from([192, 0, 2, 1]), 8080));
        (
            lo.expect("via 127.0.0.1"),
            bridge.expect("via the host address"),
        )
    });
    // Both arrive from the host's bridge address: masqueraded, so the container can answer.
    assert_eq!(got, ("192.0.2.1".to_string(), "192.0.2.1".to_string()));
    let peers = server.join().expect("server");
    assert_eq!(peers.len(), 2);
}
