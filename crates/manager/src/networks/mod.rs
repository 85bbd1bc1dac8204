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

mod bridge;
mod doctor;
mod firewall;
mod leases;

pub use bridge::*;
pub use doctor::*;
pub use firewall::*;
pub use leases::*;

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

/// Container `name`'s config as written, if it reads. The network checks skip one that
/// does not: the container's own commands report it.
pub(crate) fn config_of(store: &Store, name: &str) -> Option<Config> {
    store
        .read_config(name)
        .ok()
        .and_then(|t| toml::from_str::<Config>(&t).ok())
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
