//! NAT and port forwards of berth's networks, held in one nftables table that berth owns
//! (family `inet`, one per state root, named by the caller).
//!
//! The table is never edited in place: [`sync`] regenerates all of it from the desired
//! [`Ruleset`] and hands `nft` one JSON batch, "add table; delete table; add table, chains,
//! rules", which the kernel applies as a single transaction. So there is no diff to get
//! wrong, a failure leaves the previous table whole, and nothing outside the table (the
//! host's firewall, Docker's tables) is read or touched. Connections already running keep
//! their translation across a rewrite: conntrack fixes NAT on a connection's first packet.
//!
//! The nftables crate gives the JSON schema; `nft` itself is run here rather than through
//! `nftables::helper`, whose runner lets `nft`'s stderr through to ours instead of into the
//! error, and panics where this module returns errors.

use std::borrow::Cow;
use std::collections::HashSet;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};

use nftables::batch::Batch;
use nftables::expr::{
    Expression, Fib, FibFlag, FibResult, Meta, MetaKey, NamedExpression, Payload, PayloadField,
    Prefix, SetItem,
};
use nftables::schema::{Chain, NfListObject, NfObject, Nftables, Rule, Table};
use nftables::stmt::{Accept, Match, NAT, NATFamily, Operator, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};

pub use crate::addr::{Ipv4Net, Ipv6Net};

#[derive(Debug, thiserror::Error)]
pub enum NatError {
    #[error(
        "nftables table name {0:?} is not one of berth's (lowercase letters, digits and '_', \
         starting with \"berth\", at most 32 bytes)"
    )]
    BadTable(String),
    #[error(
        "bridge name {0:?} is not one this host can have (1 to 15 bytes, no '/', ':' or space)"
    )]
    BadBridge(String),
    #[error("prefix length /{prefix} is too long for {addr} (at most 32 for IPv4, 128 for IPv6)")]
    BadPrefix { addr: IpAddr, prefix: u8 },
    #[error("port forward {host_port} -> {dest}:{dest_port}: port 0 cannot be forwarded")]
    BadPort {
        host_port: u16,
        dest: IpAddr,
        dest_port: u16,
    },
    #[error(
        "port forward {host_port} -> {dest}: the host address {host_ip} is of another family \
         than the destination (forward IPv4 to IPv4 and IPv6 to IPv6)"
    )]
    MixedFamilies {
        host_ip: IpAddr,
        host_port: u16,
        dest: IpAddr,
    },
    #[error("run nft: {0} (install the nftables package)")]
    NftMissing(std::io::Error),
    #[error("run nft to {step} table inet {table}: {source}")]
    NftIo {
        step: &'static str,
        table: String,
        source: std::io::Error,
    },
    #[error("nft could not {step} table inet {table}: {stderr}")]
    NftFailed {
        step: &'static str,
        table: String,
        stderr: String,
    },
    #[error("encode the rules of table inet {table} as JSON: {source}")]
    Encode {
        table: String,
        source: serde_json::Error,
    },
    #[error("read `nft -j list tables` (is nft built with JSON support?): {0}")]
    Parse(serde_json::Error),
}

/// One managed network: the bridge its containers hang off and the subnets behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    pub bridge: String,
    pub ipv4: Option<Ipv4Net>,
    pub ipv6: Option<Ipv6Net>,
    /// Whether traffic from the subnets leaving through another interface is masqueraded
    /// (false for a network whose addresses the upstream routes itself).
    pub nat: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// A published port: packets to the host's `host_ip` (or any of its addresses when None)
/// at `host_port` go to `dest:dest_port`, a container on `bridge`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    pub proto: Proto,
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub dest: IpAddr,
    pub dest_port: u16,
    pub bridge: String,
}

/// Everything the table should hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ruleset {
    pub networks: Vec<Network>,
    pub forwards: Vec<Forward>,
}

/// The base chains: (name, type, hook, priority). The priorities are nft's named ones
/// (nft(8), "CHAINS"): dstnat = -100, srcnat = 100, filter = 0. Every policy is accept:
/// this table only adds, and filtering stays with the host's own tables.
const CHAINS: [(&str, NfChainType, NfHook, i32); 6] = [
    // raw (-300): before conntrack and routing, where route_localnet's hole is closed.
    ("guard", NfChainType::Filter, NfHook::Prerouting, -300),
    ("prerouting", NfChainType::NAT, NfHook::Prerouting, -100),
    ("output", NfChainType::NAT, NfHook::Output, -100),
    ("postrouting", NfChainType::NAT, NfHook::Postrouting, 100),
    ("forward", NfChainType::Filter, NfHook::Forward, 0),
    ("input", NfChainType::Filter, NfHook::Input, 0),
];

/// What containers ask the host's dnsmasq on their bridge, accepted in `input` for hosts
/// whose own firewall drops by default: DNS (53, RFC 1035: UDP and TCP), DHCPv4 server
/// (67, RFC 2131), DHCPv6 server (547, RFC 8415).
const DNSMASQ_PORTS: [(Proto, &[u32]); 2] = [(Proto::Udp, &[53, 67, 547]), (Proto::Tcp, &[53])];

/// ICMPv6 (IANA protocol 58): router solicitations and neighbour discovery for the
/// bridge's address. A number, not "ipv6-icmp", so that no /etc/protocols is needed.
const ICMPV6: u32 = 58;

/// Replaces the table `table` with the rules for `rules`, atomically. With neither networks
/// nor forwards there is nothing to hold, and the table is deleted instead.
pub fn sync(table: &str, rules: &Ruleset) -> Result<(), NatError> {
    let _span = tracing::debug_span!("nat_sync", table).entered();
    let doc = if rules.networks.is_empty() && rules.forwards.is_empty() {
        deletion(table)?
    } else {
        replacement(table, rules)?
    };
    apply(table, "replace", &doc)
}

/// Deletes the table; Ok when it is already gone.
pub fn remove(table: &str) -> Result<(), NatError> {
    let _span = tracing::debug_span!("nat_remove", table).entered();
    apply(table, "delete", &deletion(table)?)
}

/// Whether the table exists in the current network namespace.
pub fn exists(table: &str) -> Result<bool, NatError> {
    check_table(table)?;
    let out = nft(table, "look for", &["-j", "list", "tables", "inet"], None)?;
    let doc: Nftables = serde_json::from_str(&out).map_err(NatError::Parse)?;
    Ok(doc.objects.iter().any(|o| {
        matches!(o, NfObject::ListObject(NfListObject::Table(t))
            if t.family == NfFamily::INet && t.name == table)
    }))
}

/// Table names berth may own: its own prefix keeps it off every table it did not make,
/// and the charset keeps the name a plain nft identifier.
fn check_table(table: &str) -> Result<(), NatError> {
    let ok = table.starts_with("berth")
        && table.len() <= 32
        && table
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(NatError::BadTable(table.to_string()))
    }
}

fn check_bridge(name: &str) -> Result<(), NatError> {
    crate::link::check_name(name).map_err(|_| NatError::BadBridge(name.to_string()))
}

/// Checks everything in `rules` that nft would otherwise refuse half-way, or accept and
/// get wrong (a prefix past the address length, a family mix nft cannot translate).
fn check(table: &str, rules: &Ruleset) -> Result<(), NatError> {
    check_table(table)?;
    for net in &rules.networks {
        check_bridge(&net.bridge)?;
        if let Some(v4) = net.ipv4.filter(|n| n.prefix > 32) {
            return Err(NatError::BadPrefix {
                addr: v4.addr.into(),
                prefix: v4.prefix,
            });
        }
        if let Some(v6) = net.ipv6.filter(|n| n.prefix > 128) {
            return Err(NatError::BadPrefix {
                addr: v6.addr.into(),
                prefix: v6.prefix,
            });
        }
    }
    for f in &rules.forwards {
        check_bridge(&f.bridge)?;
        if f.host_port == 0 || f.dest_port == 0 {
            return Err(NatError::BadPort {
                host_port: f.host_port,
                dest: f.dest,
                dest_port: f.dest_port,
            });
        }
        if let Some(host_ip) = f.host_ip.filter(|ip| ip.is_ipv4() != f.dest.is_ipv4()) {
            return Err(NatError::MixedFamilies {
                host_ip,
                host_port: f.host_port,
                dest: f.dest,
            });
        }
    }
    Ok(())
}

fn table_object(table: &str) -> NfListObject<'static> {
    NfListObject::Table(Table {
        family: NfFamily::INet,
        name: Cow::Owned(table.to_string()),
        handle: None,
    })
}

/// "add table; delete table": deletes the table whether or not it exists (nft 1.0.6 has
/// no `destroy`), in one transaction.
fn deletion(table: &str) -> Result<Nftables<'static>, NatError> {
    check_table(table)?;
    let mut batch = Batch::new();
    batch.add(table_object(table));
    batch.delete(table_object(table));
    Ok(batch.to_nftables())
}

/// The whole batch for `rules`: the deletion of the old table, then the new one.
fn replacement(table: &str, rules: &Ruleset) -> Result<Nftables<'static>, NatError> {
    check(table, rules)?;
    let mut batch = Batch::new();
    batch.add(table_object(table));
    batch.delete(table_object(table));
    batch.add(table_object(table));
    for (name, kind, hook, prio) in CHAINS {
        batch.add(NfListObject::Chain(Chain {
            family: NfFamily::INet,
            table: Cow::Owned(table.to_string()),
            name: Cow::Borrowed(name),
            _type: Some(kind),
            hook: Some(hook),
            prio: Some(prio),
            policy: Some(NfChainPolicy::Accept),
            ..Chain::default()
        }));
    }
    for (chain, expr) in plan(rules) {
        batch.add(NfListObject::Rule(Rule {
            family: NfFamily::INet,
            table: Cow::Owned(table.to_string()),
            chain: Cow::Borrowed(chain),
            expr: Cow::Owned(expr),
            handle: None,
            index: None,
            comment: None,
        }));
    }
    Ok(batch.to_nftables())
}

/// Rules to add, each as (chain, statements).
type Planned = Vec<(&'static str, Vec<Statement<'static>>)>;

/// The rules for a checked ruleset.
fn plan(rules: &Ruleset) -> Planned {
    let mut out = Vec::new();
    for net in &rules.networks {
        network_rules(net, &mut out);
    }
    forward_rules(rules, &mut out);
    out
}

fn network_rules(net: &Network, out: &mut Planned) {
    let br = net.bridge.as_str();
    if net.nat {
        // Masquerade what leaves for anywhere but the bridge itself: traffic between two
        // containers of the network keeps its addresses.
        for subnet in subnets(net) {
            let (l3, _) = family_of(subnet.0);
            let rule = vec![
                eq(payload(l3, "saddr"), prefix(subnet.0, subnet.1)),
                cmp(meta(MetaKey::Oifname), Operator::NEQ, text(br)),
                masquerade(),
            ];
            out.push(("postrouting", rule));
        }
    }
    // The bridge has route_localnet (so that the host's 127.0.0.1 reaches forwards), which
    // would also let a container send to 127.0.0.0/8 through the bridge and reach services
    // the host binds to loopback only (CVE-2020-8558 in Kubernetes): such packets are
    // dropped as they arrive. The forwards' own replies go to the bridge's address.
    out.push((
        "guard",
        vec![
            eq(meta(MetaKey::Iifname), text(br)),
            eq(
                payload("ip", "daddr"),
                prefix(Ipv4Addr::new(127, 0, 0, 0).into(), 8),
            ),
            Statement::Drop(Some(nftables::stmt::Drop {})),
        ],
    ));
    // Accepts here only matter for this table; a host table that drops still decides.
    out.push((
        "forward",
        vec![eq(meta(MetaKey::Iifname), text(br)), accept()],
    ));
    out.push((
        "forward",
        vec![eq(meta(MetaKey::Oifname), text(br)), accept()],
    ));
    for (proto, ports) in DNSMASQ_PORTS {
        let ports = ports
            .iter()
            .map(|p| SetItem::Element(Expression::Number(*p)));
        out.push((
            "input",
            vec![
                eq(meta(MetaKey::Iifname), text(br)),
                eq(
                    payload(proto.name(), "dport"),
                    Expression::Named(NamedExpression::Set(ports.collect())),
                ),
                accept(),
            ],
        ));
    }
    out.push((
        "input",
        vec![
            eq(meta(MetaKey::Iifname), text(br)),
            eq(meta(MetaKey::L4proto), Expression::Number(ICMPV6)),
            accept(),
        ],
    ));
}

/// The subnets of a network whose prefix is valid, as (address, prefix) with host bits
/// cleared (nft refuses a prefix with host bits set).
fn subnets(net: &Network) -> Vec<(IpAddr, u8)> {
    let v4 = net
        .ipv4
        .map(|n| n.network())
        .map(|n| (n.addr.into(), n.prefix));
    let v6 = net
        .ipv6
        .map(|n| n.network())
        .map(|n| (n.addr.into(), n.prefix));
    v4.into_iter().chain(v6).collect()
}

/// The header and meta nfproto value of `ip`'s family, and its NAT family.
fn family_of(ip: IpAddr) -> (&'static str, NATFamily) {
    match ip {
        IpAddr::V4(_) => ("ip", NATFamily::IP),
        IpAddr::V6(_) => ("ip6", NATFamily::IP6),
    }
}

fn nfproto(ip: IpAddr) -> Statement<'static> {
    let name = if ip.is_ipv4() { "ipv4" } else { "ipv6" };
    eq(meta(MetaKey::Nfproto), text(name))
}

fn forward_rules(rules: &Ruleset, out: &mut Planned) {
    let mut loopback_done = HashSet::new();
    for f in &rules.forwards {
        let (l3, nat_family) = family_of(f.dest);
        // Only packets for the host itself: a container's own traffic to port 80 of some
        // other machine must pass untouched. `ip daddr` already implies the family; the fib
        // lookup does not, and without `meta nfproto` an IPv4 forward would also catch
        // IPv6 packets to the same port and fail to translate them.
        let to_host = match f.host_ip {
            Some(ip) => vec![eq(payload(l3, "daddr"), addr(ip))],
            None => vec![
                nfproto(f.dest),
                eq(
                    Expression::Named(NamedExpression::Fib(Fib {
                        result: FibResult::Type,
                        flags: HashSet::from([FibFlag::Daddr]),
                    })),
                    text("local"),
                ),
            ],
        };
        let mut dnat = to_host;
        dnat.extend([
            eq(
                payload(f.proto.name(), "dport"),
                Expression::Number(f.host_port.into()),
            ),
            Statement::DNAT(Some(NAT {
                addr: Some(addr(f.dest)),
                family: Some(nat_family),
                port: Some(Expression::Number(f.dest_port.into())),
                flags: None,
            })),
        ]);
        // prerouting for packets from outside and from containers, output for the host's
        // own connections.
        out.push(("prerouting", dnat.clone()));
        out.push(("output", dnat));
        // The host connecting to 127.0.0.1:port: after DNAT the packet leaves through the
        // bridge with a loopback source (allowed by route_localnet, which the caller sets),
        // which the container could never answer. IPv6 has no route_localnet: ::1 stays
        // local, so there is no such rule for it.
        if f.dest.is_ipv4() && loopback_done.insert(f.bridge.as_str()) {
            out.push((
                "postrouting",
                vec![
                    eq(
                        payload("ip", "saddr"),
                        prefix(Ipv4Addr::new(127, 0, 0, 0).into(), 8),
                    ),
                    eq(meta(MetaKey::Oifname), text(&f.bridge)),
                    masquerade(),
                ],
            ));
        }
        hairpin(rules, f, out);
    }
}

/// A container reaching a forward of its own network through the host's address: its
/// packet comes back out of the bridge it came from, and without masquerade the
/// destination would answer it directly, from an address it did not ask.
fn hairpin(rules: &Ruleset, f: &Forward, out: &mut Planned) {
    let (l3, _) = family_of(f.dest);
    let nets = rules.networks.iter().filter(|n| n.bridge == f.bridge);
    let same_family = nets
        .flat_map(subnets)
        .filter(|(a, _)| a.is_ipv4() == f.dest.is_ipv4());
    for (subnet, len) in same_family {
        out.push((
            "postrouting",
            vec![
                eq(payload(l3, "saddr"), prefix(subnet, len)),
                eq(payload(l3, "daddr"), addr(f.dest)),
                eq(meta(MetaKey::Oifname), text(&f.bridge)),
                eq(
                    payload(f.proto.name(), "dport"),
                    Expression::Number(f.dest_port.into()),
                ),
                masquerade(),
            ],
        ));
    }
}

fn text(s: &str) -> Expression<'static> {
    Expression::String(Cow::Owned(s.to_string()))
}

fn addr(ip: IpAddr) -> Expression<'static> {
    text(&ip.to_string())
}

fn prefix(ip: IpAddr, len: u8) -> Expression<'static> {
    Expression::Named(NamedExpression::Prefix(Prefix {
        addr: Box::new(addr(ip)),
        len: len.into(),
    }))
}

fn payload(protocol: &'static str, field: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: Cow::Borrowed(protocol),
            field: Cow::Borrowed(field),
        },
    )))
}

fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

fn cmp(left: Expression<'static>, op: Operator, right: Expression<'static>) -> Statement<'static> {
    Statement::Match(Match { left, right, op })
}

fn eq(left: Expression<'static>, right: Expression<'static>) -> Statement<'static> {
    cmp(left, Operator::EQ, right)
}

fn accept() -> Statement<'static> {
    Statement::Accept(Some(Accept {}))
}

fn masquerade() -> Statement<'static> {
    Statement::Masquerade(None)
}

fn apply(table: &str, step: &'static str, doc: &Nftables) -> Result<(), NatError> {
    let json = serde_json::to_string(doc).map_err(|source| NatError::Encode {
        table: table.to_string(),
        source,
    })?;
    tracing::debug!(bytes = json.len(), "apply nft batch");
    nft(table, step, &["-j", "-f", "-"], Some(&json)).map(drop)
}

/// Runs `nft` with `args` (and `input` on its stdin), returning its stdout.
fn nft(
    table: &str,
    step: &'static str,
    args: &[&str],
    input: Option<&str>,
) -> Result<String, NatError> {
    let io = |source| NatError::NftIo {
        step,
        table: table.to_string(),
        source,
    };
    let mut child = Command::new("nft")
        .args(args)
        .env("LC_ALL", "C")
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => NatError::NftMissing(e),
            _ => io(e),
        })?;
    // nft reads all of its input before it writes anything, so writing first and reading
    // after cannot deadlock; dropping stdin is the end of the input.
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(text.as_bytes()).map_err(io)?;
    }
    let out = child.wait_with_output().map_err(io)?;
    if !out.status.success() {
        return Err(NatError::NftFailed {
            step,
            table: table.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net() -> Network {
        Network {
            bridge: "berthbr0".into(),
            ipv4: Some("10.44.3.1/24".parse().expect("cidr")),
            ipv6: Some("fd42:1:2:3::1/64".parse().expect("cidr")),
            nat: true,
        }
    }

    fn fwd() -> Forward {
        Forward {
            proto: Proto::Tcp,
            host_ip: None,
            host_port: 8080,
            dest: "10.44.3.7".parse().expect("ip"),
            dest_port: 80,
            bridge: "berthbr0".into(),
        }
    }

    fn ruleset() -> Ruleset {
        Ruleset {
            networks: vec![net()],
            forwards: vec![fwd()],
        }
    }

    #[test]
    fn table_names_are_berths_own() {
        for good in [
            "berth",
            "berth_1a2b3c4d",
            "berth0",
            &format!("berth{}", "_".repeat(27)),
        ] {
            assert!(check_table(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "filter",
            "nat",
            "docker",
            "Berth",
            "berth-x",
            "berth x",
            "berth;flush ruleset",
            "berthé",
            "xberth",
            &format!("berth{}", "_".repeat(28)),
        ] {
            assert!(
                matches!(check_table(bad), Err(NatError::BadTable(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn bad_names_and_values_are_refused_before_any_json() {
        let mut r = ruleset();
        r.networks[0].bridge = "a/b".into();
        assert!(matches!(
            replacement("berth_t", &r),
            Err(NatError::BadBridge(_))
        ));
        let mut r = ruleset();
        r.forwards[0].bridge = "sixteen_bytes_xx".into();
        assert!(matches!(
            replacement("berth_t", &r),
            Err(NatError::BadBridge(_))
        ));
        let mut r = ruleset();
        r.networks[0].bridge = String::new();
        assert!(matches!(
            replacement("berth_t", &r),
            Err(NatError::BadBridge(_))
        ));
        let mut r = ruleset();
        r.networks[0].ipv4 = Some(Ipv4Net {
            addr: Ipv4Addr::new(10, 0, 0, 0),
            prefix: 33,
        });
        assert!(matches!(
            replacement("berth_t", &r),
            Err(NatError::BadPrefix { .. })
        ));
        let mut r = ruleset();
        r.forwards[0].host_port = 0;
        assert!(matches!(
            replacement("berth_t", &r),
            Err(NatError::BadPort { .. })
        ));
        let mut r = ruleset();
        r.forwards[0].host_ip = Some("::1".parse().expect("ip"));
        assert!(matches!(
            replacement("berth_t", &r),
            Err(NatError::MixedFamilies { .. })
        ));
        assert!(matches!(
            replacement("filter", &ruleset()),
            Err(NatError::BadTable(_))
        ));
        assert!(matches!(deletion("filter"), Err(NatError::BadTable(_))));
        // And through the public entry points, which must stop before running nft.
        assert!(matches!(
            sync("nat", &ruleset()),
            Err(NatError::BadTable(_))
        ));
        assert!(matches!(remove("nat"), Err(NatError::BadTable(_))));
        assert!(matches!(exists("nat"), Err(NatError::BadTable(_))));
    }

    #[test]
    fn the_batch_replaces_the_table_in_one_document() {
        let doc = replacement("berth_t", &ruleset()).expect("batch");
        let json = serde_json::to_value(&doc).expect("json");
        let cmds = json["nftables"].as_array().expect("array");
        let first: Vec<String> = cmds.iter().take(3).map(|c| c.to_string()).collect();
        assert!(first[0].starts_with(r#"{"add":{"table":"#), "{}", first[0]);
        assert!(
            first[1].starts_with(r#"{"delete":{"table":"#),
            "{}",
            first[1]
        );
        assert!(first[2].starts_with(r#"{"add":{"table":"#), "{}", first[2]);
        let chains = cmds
            .iter()
            .filter(|c| c["add"]["chain"].is_object())
            .count();
        assert_eq!(chains, CHAINS.len());
        // The subnet goes out with its host bits cleared.
        assert!(json.to_string().contains(r#""addr":"10.44.3.0","len":24"#));
        assert!(
            json.to_string()
                .contains(r#""addr":"fd42:1:2:3::","len":64"#)
        );
    }

    #[test]
    fn rules_per_chain() {
        let count = |r: &Ruleset, chain: &str| plan(r).iter().filter(|(c, _)| *c == chain).count();
        let r = ruleset();
        // Masquerade v4 + v6, loopback, hairpin v4.
        assert_eq!(count(&r, "postrouting"), 4);
        assert_eq!(count(&r, "prerouting"), 1);
        assert_eq!(count(&r, "output"), 1);
        assert_eq!(count(&r, "forward"), 2);
        assert_eq!(count(&r, "input"), 3);
        // Two forwards on one bridge share the loopback rule; nat = false drops masquerade.
        let mut r = ruleset();
        r.networks[0].nat = false;
        r.forwards.push(Forward {
            host_port: 8443,
            dest_port: 443,
            ..fwd()
        });
        assert_eq!(count(&r, "postrouting"), 3);
        assert_eq!(count(&r, "prerouting"), 2);
    }
}
