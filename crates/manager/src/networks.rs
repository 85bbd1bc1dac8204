//! Managed networks: a bridge with a private IPv4 /24 and an IPv6 ULA /64, NAT to the
//! outside in berth's one nftables table, and a dnsmasq for DHCP and names. Each is
//! `networks/NAME.toml` (its addresses and the leases berth reserved for containers); the
//! bridge, table rules and dnsmasq are brought up from it on first use and again after a
//! reboot or a crash, so the file is the truth and everything else can be remade.

use crate::Error;
use berth_net::addr::{self, Ipv4Net, Ipv6Net, Taken};
use berth_net::dnsmasq::{Dnsmasq, Host};
use berth_net::link::Netlink;
use berth_net::nat;
use berth_spec::config::Config;
use berth_spec::config::NetConfig;
use berth_spec::{Iface, IfaceKind};
use berth_store::Store;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

/// `networks/NAME.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkFile {
    /// The bridge's interface name on the host.
    pub bridge: String,
    /// The gateway (the bridge's own address) with the subnet's prefix: "10.44.3.1/24".
    pub ipv4: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<String>,
    pub nat: bool,
    /// Container name → its reserved address and MAC.
    #[serde(default)]
    pub leases: BTreeMap<String, Lease>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lease {
    pub ipv4: String,
    pub mac: String,
}

/// A network file, parsed.
#[derive(Debug, Clone)]
pub struct Network {
    pub name: String,
    pub file: NetworkFile,
    pub ipv4: Ipv4Net,
    pub ipv6: Option<Ipv6Net>,
}

/// What `berth network create` asks for.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// The subnet ("10.50.0.0/24"); chosen when None.
    pub subnet: Option<Ipv4Net>,
    pub nat: bool,
    /// None: a ULA chosen; Some(None): no IPv6; Some(Some(net)): that prefix.
    pub ipv6: Option<Option<Ipv6Net>>,
}

fn net_err(what: impl std::fmt::Display) -> Error {
    Error::Net(what.to_string())
}

fn dir(store: &Store) -> PathBuf {
    store.root().join("networks")
}

fn path(store: &Store, name: &str) -> PathBuf {
    dir(store).join(format!("{name}.toml"))
}

/// The directory of a network's dnsmasq (pid, leases, hosts files), named by its bridge
/// (unique on the host): outside the state root, which only root may enter, because
/// dnsmasq rereads its hosts files after dropping to nobody.
fn dnsmasq_dir(net: &Network) -> PathBuf {
    Path::new("/run/berth-net").join(&net.file.bridge)
}

fn is_default_root(store: &Store) -> bool {
    store.run_dir() == Path::new("/run/berth")
}

fn root_hash(store: &Store, what: &[u8]) -> u64 {
    addr::fnv(&[store.root().as_os_str().as_encoded_bytes(), what])
}

/// berth's nftables table for this state root: `berth` for the default root, one of its
/// own for every other (each test's), so that two roots never rewrite each other's rules.
pub fn table(store: &Store) -> String {
    if is_default_root(store) {
        "berth".to_string()
    } else {
        format!("berth_{:08x}", root_hash(store, b"table") as u32)
    }
}

/// A new network's bridge name: the network's own name for the default root (berth0),
/// a name derived from the root otherwise (interface names are host-wide, roots are not).
fn bridge_name(store: &Store, name: &str) -> String {
    if is_default_root(store) {
        name.to_string()
    } else {
        format!("bt{:08x}", root_hash(store, name.as_bytes()) as u32)
    }
}

/// The host end of a container's veth: named after the root and the container, so that
/// `doctor` knows this root's from any other's.
fn host_link(store: &Store, container: &str) -> String {
    format!("vb{:08x}", root_hash(store, container.as_bytes()) as u32)
}

/// The MAC a container's eth0 gets unless its config sets one.
pub fn mac_of(store: &Store, container: &str, net: &NetConfig) -> [u8; 6] {
    net.mac
        .as_deref()
        .and_then(addr::parse_mac)
        .unwrap_or_else(|| addr::mac_for(root_hash(store, container.as_bytes())))
}

impl Network {
    fn parse(name: &str, file: NetworkFile) -> Result<Network, Error> {
        let bad = |what: &str| {
            net_err(format!(
                "network {name}: {what} in {} is not valid; fix or delete the file",
                "networks/".to_string() + name + ".toml"
            ))
        };
        let ipv4: Ipv4Net = file.ipv4.parse().map_err(|_| bad("ipv4"))?;
        let ipv6 = match &file.ipv6 {
            Some(t) => Some(t.parse::<Ipv6Net>().map_err(|_| bad("ipv6"))?),
            None => None,
        };
        berth_net::link::check_name(&file.bridge).map_err(|_| bad("bridge"))?;
        Ok(Network {
            name: name.to_string(),
            file,
            ipv4,
            ipv6,
        })
    }

    fn dnsmasq<'a>(&'a self, dir: &'a Path) -> Dnsmasq<'a> {
        Dnsmasq {
            bridge: &self.file.bridge,
            ipv4: self.ipv4,
            ipv6: self.ipv6,
            dir,
        }
    }
}

/// The network called `name`, if it exists.
pub fn load(store: &Store, name: &str) -> Result<Option<Network>, Error> {
    let p = path(store, name);
    let text = match std::fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::Io {
                what: format!("read {}", p.display()),
                source: e,
            });
        }
    };
    let file: NetworkFile =
        toml::from_str(&text).map_err(|e| net_err(format!("{}: {}", p.display(), e.message())))?;
    Network::parse(name, file).map(Some)
}

/// Every network of the root, by name.
pub fn list(store: &Store) -> Result<Vec<Network>, Error> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir(store)) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => {
            return Err(Error::Io {
                what: format!("read {}", dir(store).display()),
                source: e,
            });
        }
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".toml")
                .map(String::from)
        })
        .collect();
    names.sort();
    for n in names {
        if let Some(net) = load(store, &n)? {
            out.push(net);
        }
    }
    Ok(out)
}

fn save(store: &Store, net: &NetworkFile, name: &str) -> Result<(), Error> {
    let text = toml::to_string(net).map_err(|e| net_err(format!("network {name}: {e}")))?;
    berth_store::atomic::create_dir_all_mode(&dir(store), 0o755)?;
    berth_store::atomic::write(&path(store, name), text.as_bytes(), 0o644)?;
    Ok(())
}

/// The lock every change of a root's networks and leases takes.
fn lock(store: &Store) -> Result<std::fs::File, Error> {
    berth_store::atomic::create_dir_all_mode(&dir(store), 0o755)?;
    Ok(berth_store::atomic::lock_file(
        &dir(store).join(".lock"),
        true,
    )?)
}

/// The subnets the host already routes or has addresses in (its own, and every other
/// root's bridges, whose routes are there too), from /proc.
fn host_taken() -> Vec<Taken> {
    let mut taken = Vec::new();
    let v4 = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    taken.extend(parse_route4(&v4).into_iter().map(Taken::V4));
    let v6 = std::fs::read_to_string("/proc/net/ipv6_route").unwrap_or_default();
    taken.extend(parse_route6(&v6).into_iter().map(Taken::V6));
    taken
}

/// /proc/net/route: destination and mask as the hex of their in-memory (network order)
/// value read as a native integer.
fn parse_route4(text: &str) -> Vec<Ipv4Net> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dest = u32::from_str_radix(f.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(f.get(7)?, 16).ok()?;
            Some(Ipv4Net {
                addr: Ipv4Addr::from(dest.to_ne_bytes()),
                prefix: mask.count_ones() as u8,
            })
        })
        .collect()
}

/// /proc/net/ipv6_route: destination as 32 hex digits, then its prefix length in hex.
fn parse_route6(text: &str) -> Vec<Ipv6Net> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dest = u128::from_str_radix(f.first()?, 16).ok()?;
            let prefix = u8::from_str_radix(f.get(1)?, 16).ok()?;
            Some(Ipv6Net {
                addr: dest.into(),
                prefix,
            })
        })
        .collect()
}

/// Checks a network name: a container-style name, short enough to be a bridge's name.
pub fn check_name(name: &str) -> Result<(), Error> {
    berth_spec::validate::name(name)?;
    if name.len() > 15 {
        return Err(net_err(format!(
            "network name {name:?} is too long: at most 15 characters (it names the bridge)"
        )));
    }
    Ok(())
}

/// `berth network create`: writes the network and brings it up. The subnet is chosen (or
/// checked) under a host-wide lock, so that two roots creating networks at once never get
/// the same one, and the bridge is up (its route visible to the next) before the lock goes.
pub fn create(store: &Store, name: &str, opts: &CreateOptions) -> Result<Network, Error> {
    check_name(name)?;
    let _lock = lock(store)?;
    create_locked(store, name, opts)
}

/// [`create`], under the networks lock already.
fn create_locked(store: &Store, name: &str, opts: &CreateOptions) -> Result<Network, Error> {
    if load(store, name)?.is_some() {
        return Err(net_err(format!(
            "network {name} already exists (`berth network show {name}`)"
        )));
    }
    let bridge = bridge_name(store, name);
    if Path::new("/sys/class/net").join(&bridge).exists() {
        return Err(net_err(format!(
            "an interface named {bridge} already exists on this host: choose another network name"
        )));
    }
    let _host = berth_store::atomic::lock_file(Path::new("/run/berth-networks.lock"), true)?;
    let mut taken = host_taken();
    for other in list(store)? {
        taken.push(Taken::V4(other.ipv4));
        if let Some(v6) = other.ipv6 {
            taken.push(Taken::V6(v6));
        }
    }
    let seed = root_hash(store, name.as_bytes());
    let subnet = match opts.subnet {
        Some(s) => {
            if !(8..=30).contains(&s.prefix) {
                return Err(net_err(format!(
                    "--subnet {s}: the prefix must be between /8 and /30"
                )));
            }
            if let Some(why) = reserved_v4(&s) {
                return Err(net_err(format!(
                    "--subnet {s} is {why}: use a private range (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16)"
                )));
            }
            if let Some(Taken::V4(r)) = taken
                .iter()
                .find(|t| matches!(t, Taken::V4(r) if r.prefix != 0 && r.overlaps(&s)))
            {
                return Err(net_err(format!(
                    "--subnet {s} overlaps {r}, which this host already routes: choose another"
                )));
            }
            s.network()
        }
        None => addr::choose_ipv4(&taken, seed)
            .ok_or_else(|| net_err("no free 10.x.y.0/24 left on this host: give --subnet"))?,
    };
    let ipv6 = match opts.ipv6 {
        Some(Some(n)) => {
            let ula: Ipv6Net = Ipv6Net {
                addr: std::net::Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0),
                prefix: 7,
            };
            if n.prefix != 64 || !ula.overlaps(&n) {
                return Err(net_err(format!(
                    "--ipv6 {n}: give a unique local /64 (inside fc00::/7, e.g. fd42:1:2:3::/64), or none"
                )));
            }
            if let Some(Taken::V6(r)) = taken
                .iter()
                .find(|t| matches!(t, Taken::V6(r) if r.prefix != 0 && r.overlaps(&n)))
            {
                return Err(net_err(format!(
                    "--ipv6 {n} overlaps {r}, which this host already routes: choose another"
                )));
            }
            Some(Ipv6Net {
                addr: n.network().host(1),
                prefix: n.prefix,
            })
        }
        Some(None) => None,
        None => addr::choose_ipv6(&taken, seed).map(|n| Ipv6Net {
            addr: n.host(1),
            prefix: n.prefix,
        }),
    };
    let file = NetworkFile {
        bridge,
        ipv4: Ipv4Net {
            addr: subnet.host(1),
            prefix: subnet.prefix,
        }
        .to_string(),
        ipv6: ipv6.map(|n| n.to_string()),
        nat: opts.nat,
        leases: BTreeMap::new(),
    };
    let net = Network::parse(name, file)?;
    save(store, &net.file, name)?;
    if let Err(e) = up(store, &net) {
        let _ = down(&net);
        let _ = std::fs::remove_file(path(store, name));
        return Err(e);
    }
    Ok(net)
}

/// Why `net` cannot be a network's subnet: ranges with a meaning of their own (this host,
/// loopback, link-local, multicast, reserved).
fn reserved_v4(net: &Ipv4Net) -> Option<&'static str> {
    const RESERVED: [([u8; 4], u8, &str); 5] = [
        ([0, 0, 0, 0], 8, "\"this network\" (0.0.0.0/8)"),
        ([127, 0, 0, 0], 8, "loopback (127.0.0.0/8)"),
        ([169, 254, 0, 0], 16, "link-local (169.254.0.0/16)"),
        ([224, 0, 0, 0], 4, "multicast (224.0.0.0/4)"),
        ([240, 0, 0, 0], 4, "reserved (240.0.0.0/4)"),
    ];
    RESERVED.iter().find_map(|(a, p, why)| {
        Ipv4Net {
            addr: Ipv4Addr::from(*a),
            prefix: *p,
        }
        .overlaps(net)
        .then_some(*why)
    })
}

/// The network `name`, made if it is the default network and does not exist yet (under
/// the networks lock).
fn load_or_default(store: &Store, name: &str) -> Result<Network, Error> {
    if let Some(net) = load(store, name)? {
        return Ok(net);
    }
    if name == berth_spec::netconfig::DEFAULT_NETWORK {
        let opts = CreateOptions {
            nat: true,
            ..CreateOptions::default()
        };
        return create_locked(store, name, &opts);
    }
    Err(net_err(format!(
        "network {name} does not exist: create it with `berth network create {name}`"
    )))
}

/// Brings the network up: the bridge with its addresses, NAT, dnsmasq. Cheap when all is
/// there already (two lookups), so every start calls it.
pub fn up(store: &Store, net: &Network) -> Result<(), Error> {
    let mut nl = Netlink::open().map_err(net_err)?;
    let fresh = match nl.index(&net.file.bridge).map_err(net_err)? {
        Some(_) => false,
        None => {
            nl.create_bridge(&net.file.bridge).map_err(|e| {
                if e.is_errno(95 /* EOPNOTSUPP */) {
                    net_err(format!(
                        "{e}: this kernel has no bridge support (modprobe bridge); without it use --net none, host or macvlan"
                    ))
                } else {
                    net_err(e)
                }
            })?;
            true
        }
    };
    let index = nl
        .index(&net.file.bridge)
        .map_err(net_err)?
        .ok_or_else(|| net_err(format!("bridge {} vanished", net.file.bridge)))?;
    if fresh {
        nl.add_address(index, IpAddr::V4(net.ipv4.addr), net.ipv4.prefix)
            .map_err(net_err)?;
        if let Some(v6) = net.ipv6 {
            nl.add_address(index, IpAddr::V6(v6.addr), v6.prefix)
                .map_err(net_err)?;
        }
        nl.set_up(index).map_err(net_err)?;
        // Port forwards reach containers from the host's own 127.0.0.1 only if packets
        // from loopback may be routed out of the bridge (after DNAT).
        sysctl(
            &format!("net/ipv4/conf/{}/route_localnet", net.file.bridge),
            "1",
        )?;
        tell_resolved(net);
    }
    if net.file.nat
        && std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").is_ok_and(|v| v.trim() != "1")
    {
        // What LXC's lxc-net and Incus do for NAT: the host routes between interfaces.
        sysctl("net/ipv4/ip_forward", "1")?;
    }
    let dm_dir = dnsmasq_dir(net);
    let dm = net.dnsmasq(&dm_dir);
    let restarted = dm.running().is_none();
    if restarted {
        write_hosts(net)?;
        dm.ensure().map_err(net_err)?;
    }
    // A new bridge (first use, or after a reboot) or a dnsmasq that had died: the table is
    // written again. Checking it at every start would cost an nft process each time; a
    // table flushed by hand is put back by `berth doctor`.
    if fresh || restarted {
        sync_firewall(store, None)?;
    }
    Ok(())
}

/// Where the host resolves names with systemd-resolved, NAME.berth is sent to the
/// network's dnsmasq (per-link DNS with a routing-only domain, as Incus does), so that the
/// host resolves containers by name. Elsewhere the host asks the network's DNS address
/// itself (`berth network show`). Best effort: a network works without it.
fn tell_resolved(net: &Network) {
    if !Path::new("/run/systemd/resolve/io.systemd.Resolve").exists() {
        return;
    }
    let bridge = &net.file.bridge;
    let dns = net.ipv4.addr.to_string();
    let domain = format!("~{}", berth_net::dnsmasq::DOMAIN);
    for args in [
        vec!["dns", bridge.as_str(), dns.as_str()],
        vec!["domain", bridge.as_str(), domain.as_str()],
    ] {
        let ran = std::process::Command::new("resolvectl")
            .args(&args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        if !ran.is_ok_and(|s| s.success()) {
            tracing::warn!(
                "resolvectl {}: the host will not resolve .berth names",
                args.join(" ")
            );
        }
    }
}

fn sysctl(key: &str, value: &str) -> Result<(), Error> {
    std::fs::write(Path::new("/proc/sys").join(key), value).map_err(|e| Error::Io {
        what: format!("set {} to {value}", key.replace('/', ".")),
        source: e,
    })
}

/// Takes the network down: its dnsmasq stopped and its bridge deleted (the file stays).
fn down(net: &Network) -> Result<(), Error> {
    let dm_dir = dnsmasq_dir(net);
    net.dnsmasq(&dm_dir).stop();
    let _ = std::fs::remove_dir_all(&dm_dir);
    let mut nl = Netlink::open().map_err(net_err)?;
    if let Some(index) = nl.index(&net.file.bridge).map_err(net_err)? {
        nl.delete(index).map_err(net_err)?;
    }
    Ok(())
}

/// Which containers' configs join network `name` (explicitly, or by default).
fn users(store: &Store, name: &str) -> Vec<String> {
    store
        .list()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| {
            store
                .read_config(c)
                .ok()
                .and_then(|t| toml::from_str::<Config>(&t).ok())
                .is_some_and(|cfg| {
                    let n = NetConfig::effective(&cfg.nets);
                    n.kind == "bridge" && n.bridge_name() == name
                })
        })
        .collect()
}

/// `berth network delete`: refused while containers use it.
pub fn delete(store: &Store, name: &str) -> Result<(), Error> {
    check_name(name)?;
    let _lock = lock(store)?;
    let net = load(store, name)?.ok_or_else(|| {
        net_err(format!(
            "network {name} does not exist (`berth network list`)"
        ))
    })?;
    let users = users(store, name);
    if !users.is_empty() {
        return Err(net_err(format!(
            "network {name} is used by {}: delete them or move them to another network first",
            users.join(", ")
        )));
    }
    down(&net)?;
    std::fs::remove_file(path(store, name)).map_err(|e| Error::Io {
        what: format!("remove {}", path(store, name).display()),
        source: e,
    })?;
    sync_firewall(store, None)
}

/// Everything of every network of the root taken down and its firewall table removed
/// (the files stay): what `berth doctor --down` and the test harness use.
pub fn down_all(store: &Store) -> Result<(), Error> {
    let _lock = lock(store)?;
    for net in list(store)? {
        down(&net)?;
    }
    nat::remove(&table(store)).map_err(net_err)
}

fn write_hosts(net: &Network) -> Result<(), Error> {
    let dm_dir = dnsmasq_dir(net);
    std::fs::create_dir_all(&dm_dir).map_err(|e| Error::Io {
        what: format!("create {}", dm_dir.display()),
        source: e,
    })?;
    let leases: Vec<(String, Ipv4Addr, String)> = net
        .file
        .leases
        .iter()
        .filter_map(|(n, l)| Some((n.clone(), l.ipv4.parse().ok()?, l.mac.clone())))
        .collect();
    // A run's lease has no name to resolve (its key is not a hostname).
    let hosts: Vec<Host<'_>> = leases
        .iter()
        .filter(|(n, _, _)| !n.starts_with("run."))
        .map(|(n, ip, mac)| Host {
            name: n,
            ipv4: *ip,
            ipv6: net
                .ipv6
                .zip(addr::parse_mac(mac))
                .map(|(p, m)| addr::eui64(&p, &m)),
            mac,
        })
        .collect();
    net.dnsmasq(&dm_dir).set_hosts(&hosts).map_err(net_err)
}

/// The interface a container's start needs, its network brought up and its address
/// reserved first. None for `none` and `host`.
pub fn attach(store: &Store, container: &str, config: &Config) -> Result<Option<Iface>, Error> {
    let n = NetConfig::effective(&config.nets);
    let host_name = host_link(store, container);
    let mac = mac_of(store, container, &n);
    let mut iface = Iface {
        kind: IfaceKind::Routed,
        host_name,
        mac,
        ipv4: n.static_ipv4(),
        gateway4: n.gateway.as_deref().and_then(|g| g.parse().ok()),
        ipv6: n.static_ipv6(),
        gateway6: None,
        dns: None,
        guest_static: n.static_ipv4().is_some(),
    };
    match n.kind.as_str() {
        "none" | "host" => return Ok(None),
        "routed" => {}
        "macvlan" => iface.kind = IfaceKind::Macvlan(n.parent.clone().unwrap_or_default()),
        _ => {
            let name = n.bridge_name();
            let managed =
                load(store, name)?.is_some() || name == berth_spec::netconfig::DEFAULT_NETWORK;
            if !managed {
                // A bridge of the host's own: plugged in, nothing else managed.
                if !Path::new("/sys/class/net")
                    .join(name)
                    .join("bridge")
                    .exists()
                {
                    return Err(net_err(format!(
                        "{name} is neither a berth network nor a bridge on this host (`berth network create {name}` makes one)"
                    )));
                }
                iface.kind = IfaceKind::Bridge(name.to_string());
                return Ok(Some(iface));
            }
            let _lock = lock(store)?;
            let mut net = load_or_default(store, name)?;
            let before = net.file.leases.get(container).cloned();
            let ip = reserve(&mut net, container, &n, &mac)?;
            up(store, &net)?;
            if net.file.leases.get(container) != before.as_ref() {
                save(store, &net.file, &net.name)?;
                write_hosts(&net)?;
            }
            iface.kind = IfaceKind::Bridge(net.file.bridge.clone());
            iface.dns = Some(berth_spec::Dns {
                server: IpAddr::V4(net.ipv4.addr),
                search: berth_net::dnsmasq::DOMAIN.to_string(),
                host_copy: std::fs::read_to_string("/etc/resolv.conf").ok(),
            });
            // Unless the guest is to ask by DHCP, the address is set from the host before
            // init: every guest has it at once (DHCP still hands out the same one).
            if n.ipv4.as_deref() != Some("dhcp") {
                iface.ipv4 = Some(Ipv4Net {
                    addr: ip,
                    prefix: net.ipv4.prefix,
                });
                iface.gateway4 = iface.gateway4.or(Some(net.ipv4.addr));
            }
        }
    }
    Ok(Some(iface))
}

/// The lease key of a `berth run` (not a container name: it holds a '.'): this process's
/// pid, so that `doctor` can tell a live run's lease from a dead one's.
pub fn run_key() -> String {
    format!("run.{}", std::process::id())
}

/// eth0 for a `berth run` on managed network `network`: its address reserved under `key`
/// (see [`run_key`]) and set before the command starts.
pub fn attach_run(store: &Store, key: &str, network: &str) -> Result<Iface, Error> {
    let mut config = Config::new(berth_spec::config::Rootfs::default());
    let mut n = NetConfig::of("bridge");
    n.bridge = Some(network.to_string());
    config.nets = vec![n];
    if load(store, network)?.is_none() && network != berth_spec::netconfig::DEFAULT_NETWORK {
        return Err(net_err(format!(
            "--net bridge={network}: no such network (`berth network list`, `berth network create {network}`)"
        )));
    }
    attach(store, key, &config)?
        .ok_or_else(|| net_err("a bridge interface was asked for but none was made"))
}

/// Whether lease `key` belongs to nobody any more: a deleted container, or a `berth run`
/// whose process is gone.
fn stale_lease(key: &str, containers: &[String]) -> bool {
    match key.strip_prefix("run.") {
        Some(pid) => !Path::new("/proc").join(pid).exists(),
        None => !containers.iter().any(|c| c == key),
    }
}

/// The container's lease on `net`: kept if it has one that still fits its config, the
/// static address if it asks for one (refused if another container holds it), otherwise
/// the first free address.
fn reserve(
    net: &mut Network,
    container: &str,
    n: &NetConfig,
    mac: &[u8; 6],
) -> Result<Ipv4Addr, Error> {
    let mac = addr::format_mac(mac);
    let others: Vec<Ipv4Addr> = net
        .file
        .leases
        .iter()
        .filter(|(c, _)| c.as_str() != container)
        .filter_map(|(_, l)| l.ipv4.parse().ok())
        .collect();
    let ip = match n.static_ipv4() {
        Some(want) => {
            if !addr::usable(&net.ipv4.network(), want.addr) || want.prefix != net.ipv4.prefix {
                return Err(net_err(format!(
                    "ipv4 {want} is not an address for a container on network {} ({}): use one inside it, other than the gateway {}",
                    net.name,
                    net.ipv4.network(),
                    net.ipv4.addr
                )));
            }
            if others.contains(&want.addr) {
                return Err(net_err(format!(
                    "ipv4 {} is already reserved for another container on network {}",
                    want.addr, net.name
                )));
            }
            want.addr
        }
        None => {
            let kept = net
                .file
                .leases
                .get(container)
                .and_then(|l| l.ipv4.parse::<Ipv4Addr>().ok())
                .filter(|ip| addr::usable(&net.ipv4.network(), *ip) && !others.contains(ip));
            match kept {
                Some(ip) => ip,
                None => addr::allocate(&net.ipv4.network(), &others)
                    .ok_or_else(|| {
                        net_err(format!(
                            "network {} has no free address left: release some or use a bigger --subnet",
                            net.name
                        ))
                    })?,
            }
        }
    };
    net.file.leases.insert(
        container.to_string(),
        Lease {
            ipv4: ip.to_string(),
            mac,
        },
    );
    Ok(ip)
}

/// Drops container `name`'s leases (it is deleted): its address is free and its name
/// resolves no more.
pub fn release(store: &Store, container: &str) -> Result<(), Error> {
    if !dir(store).exists() {
        return Ok(());
    }
    let _lock = lock(store)?;
    for mut net in list(store)? {
        if net.file.leases.remove(container).is_some() {
            save(store, &net.file, &net.name)?;
            if net.dnsmasq(&dnsmasq_dir(&net)).running().is_some() {
                write_hosts(&net)?;
            }
        }
    }
    Ok(())
}

/// The IPv4 addresses of a running container, as `list` shows them: its static address,
/// or its lease on a managed network (for a DHCP guest, once dnsmasq has handed it out).
pub fn addresses(store: &Store, container: &str, config: &Config) -> Vec<String> {
    let n = NetConfig::effective(&config.nets);
    match n.kind.as_str() {
        "none" | "host" => Vec::new(),
        "routed" | "macvlan" => n
            .static_ipv4()
            .map(|a| vec![a.addr.to_string()])
            .unwrap_or_default(),
        _ => {
            let Ok(Some(net)) = load(store, n.bridge_name()) else {
                return n
                    .static_ipv4()
                    .map(|a| vec![a.addr.to_string()])
                    .unwrap_or_default();
            };
            let Some(lease) = net.file.leases.get(container) else {
                return Vec::new();
            };
            if n.ipv4.as_deref() == Some("dhcp") {
                let dm_dir = dnsmasq_dir(&net);
                let handed = net
                    .dnsmasq(&dm_dir)
                    .leases()
                    .into_iter()
                    .any(|(mac, ip)| mac == lease.mac && ip.to_string() == lease.ipv4);
                if !handed {
                    return Vec::new();
                }
            }
            vec![lease.ipv4.clone()]
        }
    }
}

/// Rewrites the root's firewall table: NAT for every network, and the port forwards of
/// every running container (less `stopping`, whose record may not be cleared yet). Under
/// the networks lock, so that parallel starts and stops each write a table that holds the
/// others'.
pub fn sync_firewall(store: &Store, stopping: Option<&str>) -> Result<(), Error> {
    nat::sync(&table(store), &desired(store, stopping)?).map_err(net_err)
}

/// What the root's table should hold (see [`sync_firewall`]). A container counts as
/// running once its supervisor recorded it, which happens before `start` returns.
fn desired(store: &Store, stopping: Option<&str>) -> Result<nat::Ruleset, Error> {
    let networks = list(store)?;
    let mut rules = nat::Ruleset {
        networks: networks
            .iter()
            .map(|n| nat::Network {
                bridge: n.file.bridge.clone(),
                ipv4: Some(n.ipv4.network()),
                ipv6: n.ipv6.map(|v| v.network()),
                nat: n.file.nat,
            })
            .collect(),
        forwards: Vec::new(),
    };
    for c in store.list().unwrap_or_default() {
        if Some(c.as_str()) == stopping {
            continue;
        }
        let running = store
            .read_state(&c)
            .ok()
            .flatten()
            .is_some_and(|s| s.init_alive());
        if !running {
            continue;
        }
        let Some(cfg) = store
            .read_config(&c)
            .ok()
            .and_then(|t| toml::from_str::<Config>(&t).ok())
        else {
            continue;
        };
        if cfg.ports.is_empty() {
            continue;
        }
        let n = NetConfig::effective(&cfg.nets);
        // The address reserved for it (a DHCP guest is handed that one too), or its static
        // one off a managed network.
        let reserved = (n.kind == "bridge")
            .then(|| load(store, n.bridge_name()).ok().flatten())
            .flatten()
            .and_then(|net| net.file.leases.get(&c).and_then(|l| l.ipv4.parse().ok()));
        let Some(dest) = reserved.or_else(|| n.static_ipv4().map(|a| a.addr)) else {
            continue;
        };
        let bridge = match n.kind.as_str() {
            "bridge" => load(store, n.bridge_name())
                .ok()
                .flatten()
                .map(|net| net.file.bridge)
                .unwrap_or_else(|| n.bridge_name().to_string()),
            _ => host_link(store, &c),
        };
        for p in &cfg.ports {
            rules.forwards.push(nat::Forward {
                proto: if p.proto == "udp" {
                    nat::Proto::Udp
                } else {
                    nat::Proto::Tcp
                },
                host_ip: p.host_ip.as_deref().and_then(|ip| ip.parse().ok()),
                host_port: p.host_port,
                dest: IpAddr::V4(dest),
                dest_port: p.container_port,
                bridge: bridge.clone(),
            });
        }
    }
    Ok(rules)
}

/// The port forwards the root's table holds now, as "HOST_PORT -> ADDRESS:PORT" (from `nft
/// list table`: what doctor compares with what should be there).
fn forwards_in_table(store: &Store) -> Vec<String> {
    let out = std::process::Command::new("nft")
        .args(["list", "table", "inet", &table(store)])
        .output();
    let text = out
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let mut found: Vec<String> = text
        .lines()
        .filter_map(|l| {
            let port = l.split("dport ").nth(1)?.split_whitespace().next()?;
            let to = l.split("dnat ip to ").nth(1)?.split_whitespace().next()?;
            Some(format!("{port} -> {to}"))
        })
        .collect();
    found.sort();
    found.dedup();
    found
}

/// Checks what a container's network settings need of the host and of the other
/// containers, before they are written: the network or bridge or parent exists, a static
/// address fits its network and is nobody else's, no other container forwards the same
/// host port.
pub fn check_config(store: &Store, container: &str, config: &Config) -> Result<(), Error> {
    let n = NetConfig::effective(&config.nets);
    let exists = |name: &str| Path::new("/sys/class/net").join(name).exists();
    match n.kind.as_str() {
        "bridge" => {
            let name = n.bridge_name();
            match load(store, name)? {
                Some(net) => {
                    if n.static_ipv4().is_some() {
                        reserve(
                            &mut net.clone(),
                            container,
                            &n,
                            &mac_of(store, container, &n),
                        )?;
                    }
                }
                None if name == berth_spec::netconfig::DEFAULT_NETWORK => {}
                None if Path::new("/sys/class/net")
                    .join(name)
                    .join("bridge")
                    .exists() => {}
                None => {
                    return Err(net_err(format!(
                        "net.bridge: {name} is neither a berth network nor a bridge on this host (`berth network create {name}` makes one)"
                    )));
                }
            }
        }
        "macvlan" => {
            let parent = n.parent.as_deref().unwrap_or_default();
            if !exists(parent) {
                return Err(net_err(format!(
                    "net.parent: there is no interface {parent} on this host"
                )));
            }
        }
        _ => {}
    }
    if n.kind == "routed"
        && let Some(a) = n.static_ipv4()
    {
        let single = Ipv4Net {
            addr: a.addr,
            prefix: 32,
        };
        if let Some(why) = reserved_v4(&single) {
            return Err(net_err(format!(
                "net.ipv4: {} is {why}, not an address for a container",
                a.addr
            )));
        }
        if let Some(net) = list(store)?.iter().find(|net| net.ipv4.contains(a.addr)) {
            return Err(net_err(format!(
                "net.ipv4: {} is inside network {} ({}): a routed address must be outside berth's networks",
                a.addr,
                net.name,
                net.ipv4.network()
            )));
        }
    }
    let mine = addressing(&n);
    let my_mac = mac_of(store, container, &n);
    for other in store.list().unwrap_or_default() {
        if other == container {
            continue;
        }
        let Some(cfg) = store
            .read_config(&other)
            .ok()
            .and_then(|t| toml::from_str::<Config>(&t).ok())
        else {
            continue;
        };
        let theirs_net = NetConfig::effective(&cfg.nets);
        // Two containers may not be given one static address (on the same network, or
        // routed), nor one MAC.
        if let (Some(m), Some(t)) = (&mine, addressing(&theirs_net))
            && m.0 == t.0
            && m.1 == t.1
        {
            return Err(net_err(format!(
                "net.ipv4: {} is already given to container {other}",
                m.1
            )));
        }
        if n.mac.is_some() && mac_of(store, &other, &theirs_net) == my_mac {
            return Err(net_err(format!(
                "net.mac: {} is already container {other}'s",
                addr::format_mac(&my_mac)
            )));
        }
        for p in &config.ports {
            if cfg.ports.iter().any(|q| q.clashes(p)) {
                return Err(net_err(format!(
                    "host port {}/{} is already forwarded to container {other}",
                    p.host_port, p.proto
                )));
            }
        }
    }
    Ok(())
}

/// Where a static address lives and what it is: (network or "routed", address), for
/// finding two containers given the same one.
fn addressing(n: &NetConfig) -> Option<(String, Ipv4Addr)> {
    let a = n.static_ipv4()?.addr;
    let place = match n.kind.as_str() {
        "bridge" => n.bridge_name().to_string(),
        "routed" => "routed".to_string(),
        other => format!("{other}:{}", n.parent.as_deref().unwrap_or_default()),
    };
    Some((place, a))
}

/// A running container's forwards changed: the table is rewritten.
pub fn ports_changed(store: &Store) -> Result<(), Error> {
    let _lock = lock(store)?;
    sync_firewall(store, None)
}

/// `berth doctor`: finds what containers that no longer run left behind on the host, and
/// removes it when `fix`: interfaces of this root's stopped or deleted containers, leases
/// of deleted containers, forwards of stopped ones, networks not up (bridge, dnsmasq).
/// Returns one line per finding.
pub fn doctor(store: &Store, fix: bool) -> Result<Vec<String>, Error> {
    let mut found = Vec::new();
    let containers = store.list().unwrap_or_default();
    let running: Vec<&String> = containers
        .iter()
        .filter(|c| {
            store
                .read_state(c)
                .ok()
                .flatten()
                .is_some_and(|s| s.init_alive())
        })
        .collect();
    // Host-side links named after a container of this root that does not run.
    let mut nl = Netlink::open().map_err(net_err)?;
    for c in &containers {
        if running.contains(&c) {
            continue;
        }
        let link = host_link(store, c);
        if let Some(index) = nl.index(&link).map_err(net_err)? {
            found.push(format!("interface {link} of stopped container {c}"));
            if fix {
                nl.delete(index).map_err(net_err)?;
            }
        }
    }
    let _lock = lock(store)?;
    for mut net in list(store)? {
        let stale: Vec<String> = net
            .file
            .leases
            .keys()
            .filter(|c| stale_lease(c, &containers))
            .cloned()
            .collect();
        for c in &stale {
            found.push(format!("lease on {} of {c}, which is gone", net.name));
            net.file.leases.remove(c);
        }
        if fix && !stale.is_empty() {
            save(store, &net.file, &net.name)?;
            write_hosts(&net)?;
        }
        // A network in use whose dnsmasq died: DHCP and names are down until the next
        // start; brought back now.
        let bridge_up = Path::new("/sys/class/net").join(&net.file.bridge).exists();
        if bridge_up && net.dnsmasq(&dnsmasq_dir(&net)).running().is_none() {
            found.push(format!("dnsmasq of network {} not running", net.name));
            if fix {
                up(store, &net)?;
            }
        }
    }
    // Forwards in the table that no running container asks for (a container killed with
    // its supervisor, say).
    let wanted: Vec<String> = desired(store, None)?
        .forwards
        .iter()
        .map(|f| format!("{} -> {}:{}", f.host_port, f.dest, f.dest_port))
        .collect();
    for f in forwards_in_table(store) {
        if !wanted.contains(&f) {
            found.push(format!("port forward {f} of a container that does not run"));
        }
    }
    if fix {
        // The table as it should be: forwards of running containers only.
        sync_firewall(store, None)?;
    }
    Ok(found)
}

/// What `berth info` shows of a container's interface.
#[derive(Debug, Clone, Serialize)]
pub struct NetInfo {
    #[serde(rename = "type")]
    pub kind: String,
    pub mac: Option<String>,
    /// The managed network or host bridge of a bridge interface.
    pub bridge: Option<String>,
    /// The veth's host end (bridge and routed interfaces).
    pub host_interface: Option<String>,
}

/// The interface of `container` as its config says it (present whether it runs or not).
pub fn info(store: &Store, container: &str, config: &Config) -> NetInfo {
    let n = NetConfig::effective(&config.nets);
    let addressed = !matches!(n.kind.as_str(), "none" | "host");
    NetInfo {
        mac: addressed.then(|| addr::format_mac(&mac_of(store, container, &n))),
        bridge: (n.kind == "bridge").then(|| n.bridge_name().to_string()),
        host_interface: matches!(n.kind.as_str(), "bridge" | "routed")
            .then(|| host_link(store, container)),
        kind: n.kind,
    }
}

/// Holds a running container's traffic to its `net_ingress` / `net_egress` rates, on the
/// host end of its veth where root inside cannot lift them (a None rate lifts a limit).
pub fn shape(
    store: &Store,
    container: &str,
    config: &Config,
    limits: &berth_spec::Limits,
) -> Result<(), Error> {
    let Some(host_if) = info(store, container, config).host_interface else {
        return Ok(());
    };
    let shaping = berth_net::Shaping {
        ingress_bps: limits.net_ingress,
        egress_bps: limits.net_egress,
    };
    berth_net::shaping::apply(&host_if, &shaping).map_err(net_err)?;
    if shaping.egress_bps.is_none() {
        berth_net::shaping::remove_ifb(&host_if);
    }
    Ok(())
}

/// After a container stopped: its port forwards go, and the ifb that shaped its egress.
pub fn stopped(store: &Store, container: &str, config: &Config) {
    if config.limits.net_egress.is_some()
        && let Some(host_if) = info(store, container, config).host_interface
    {
        berth_net::shaping::remove_ifb(&host_if);
    }
    if config.ports.is_empty() {
        return;
    }
    if let Ok(_lock) = lock(store)
        && let Err(e) = sync_firewall(store, Some(container))
    {
        tracing::warn!("removing the port forwards of {container}: {e}");
    }
}

/// After a container started: its port forwards come.
pub fn started(store: &Store, config: &Config) -> Result<(), Error> {
    if config.ports.is_empty() {
        return Ok(());
    }
    let _lock = lock(store)?;
    sync_firewall(store, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse() {
        let v4 = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                  eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                  eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        let r = parse_route4(v4);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].prefix, 0);
        assert_eq!(r[1].to_string(), "192.0.2.0/24");
        let v6 = "fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0\n";
        let r = parse_route6(v6);
        assert_eq!(r[0].to_string(), "fd00::/64");
    }
}
