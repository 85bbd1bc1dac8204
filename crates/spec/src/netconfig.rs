//! A container's network settings: its `[[net]]` interface and its `[[port]]` forwards,
//! checked before anything is written or made. Here only what a value must look like; the
//! manager checks what depends on the host (a bridge or parent interface that exists, an
//! address inside its network's subnet).

use crate::SpecError;
use crate::cidr::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// The network a system container gets when its config names none.
pub const DEFAULT_NETWORK: &str = "berth0";

/// One `[[net]]` entry: the container's eth0 (or its absence: `none`, `host`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetConfig {
    /// bridge | routed | macvlan | none | host.
    #[serde(rename = "type")]
    pub kind: String,
    /// `bridge`: a network managed by berth (`berth network create`), or a bridge the host
    /// already has (then berth only plugs the veth into it). Default: berth0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
    /// `macvlan`: the host interface it sits on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// "dhcp" (the guest asks; on a managed network berth reserves the address it gets),
    /// or an address with its prefix ("10.44.0.10/24"), set from the host before init.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<String>,
    /// The IPv4 gateway of a static address (default: the managed network's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// A static IPv6 address with its prefix; on a managed network the guest otherwise
    /// takes one by router advertisement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<String>,
    /// The interface's MAC (default: a stable one derived from the container's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

/// The interface types a `[[net]]` entry may have.
pub const NET_TYPES: &[&str] = &["bridge", "routed", "macvlan", "none", "host"];

impl NetConfig {
    /// An entry of type `kind` with every other key unset.
    pub fn of(kind: &str) -> NetConfig {
        NetConfig {
            kind: kind.to_string(),
            bridge: None,
            parent: None,
            ipv4: None,
            gateway: None,
            ipv6: None,
            mac: None,
        }
    }

    /// Sets `key` (a [[net]] key without its `net.` prefix) to `value`; an empty value
    /// unsets it. Setting `type` starts the entry afresh, since most other keys belong to
    /// one type. Not validated: see [`NetConfig::validate`].
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), SpecError> {
        let v = (!value.is_empty()).then(|| value.to_string());
        match key {
            "type" => *self = NetConfig::of(value),
            "bridge" => self.bridge = v,
            "parent" => self.parent = v,
            "ipv4" => self.ipv4 = v,
            "gateway" => self.gateway = v,
            "ipv6" => self.ipv6 = v,
            "mac" => self.mac = v,
            _ => {
                return Err(SpecError::Config(format!(
                    "unknown [[net]] key {key:?}: type, bridge, parent, ipv4, gateway, ipv6 or mac"
                )));
            }
        }
        Ok(())
    }

    /// What a system container with these entries gets: its one entry, or a bridge on the
    /// default network when there is none.
    pub fn effective(nets: &[NetConfig]) -> NetConfig {
        nets.first()
            .cloned()
            .unwrap_or_else(|| NetConfig::of("bridge"))
    }

    /// The bridge or managed network a `bridge` entry joins.
    pub fn bridge_name(&self) -> &str {
        self.bridge.as_deref().unwrap_or(DEFAULT_NETWORK)
    }

    /// The static IPv4 address, when one is set (None for DHCP or unset).
    pub fn static_ipv4(&self) -> Option<Ipv4Net> {
        let text = self.ipv4.as_deref().filter(|v| *v != "dhcp")?;
        parse_ipv4(&self.kind, text).ok()
    }

    pub fn static_ipv6(&self) -> Option<Ipv6Net> {
        self.ipv6.as_deref()?.parse().ok()
    }

    /// Checks every key of the entry for its type.
    pub fn validate(&self) -> Result<(), SpecError> {
        let bad = |key: &'static str, why: String| Err(SpecError::Key(key, why));
        if !NET_TYPES.contains(&self.kind.as_str()) {
            return bad(
                "net.type",
                format!("{:?} is not one of {}", self.kind, NET_TYPES.join(", ")),
            );
        }
        let only = |key: &'static str, set: bool, kinds: &[&str]| {
            if set && !kinds.contains(&self.kind.as_str()) {
                Err(SpecError::Key(
                    key,
                    format!(
                        "does not apply to a {} interface (only to {})",
                        self.kind,
                        kinds.join(", ")
                    ),
                ))
            } else {
                Ok(())
            }
        };
        only("net.bridge", self.bridge.is_some(), &["bridge"])?;
        only("net.parent", self.parent.is_some(), &["macvlan"])?;
        let addressed = &["bridge", "routed", "macvlan"];
        only("net.ipv4", self.ipv4.is_some(), addressed)?;
        only(
            "net.gateway",
            self.gateway.is_some(),
            &["bridge", "macvlan"],
        )?;
        only("net.ipv6", self.ipv6.is_some(), addressed)?;
        only("net.mac", self.mac.is_some(), addressed)?;
        for (key, name) in [("net.bridge", &self.bridge), ("net.parent", &self.parent)] {
            if let Some(n) = name {
                interface_name(n).map_err(|why| SpecError::Key(key, why))?;
            }
        }
        if self.kind == "macvlan" && self.parent.is_none() {
            return bad(
                "net.parent",
                "a macvlan interface needs the host interface it sits on, e.g. parent = \"eth0\""
                    .into(),
            );
        }
        match self.ipv4.as_deref() {
            Some("dhcp") if self.kind == "routed" => {
                return bad(
                    "net.ipv4",
                    "a routed interface needs a static address (no DHCP without a bridge), e.g. \"10.44.0.10\"".into(),
                );
            }
            None if self.kind == "routed" => {
                return bad(
                    "net.ipv4",
                    "a routed interface needs its address, e.g. ipv4 = \"10.44.0.10\"".into(),
                );
            }
            Some("dhcp") | None => {}
            Some(text) => {
                parse_ipv4(&self.kind, text).map_err(|why| SpecError::Key("net.ipv4", why))?;
            }
        }
        if let Some(g) = &self.gateway {
            if self.static_ipv4().is_none() {
                return bad(
                    "net.gateway",
                    "goes with a static ipv4 address (DHCP brings its own)".into(),
                );
            }
            if !matches!(g.parse::<IpAddr>(), Ok(IpAddr::V4(_))) {
                return bad("net.gateway", format!("{g:?} is not an IPv4 address"));
            }
        }
        if let Some(v6) = &self.ipv6 {
            v6.parse::<Ipv6Net>()
                .map_err(|e| SpecError::Key("net.ipv6", e.to_string()))?;
        }
        if let Some(mac) = &self.mac
            && !valid_mac(mac)
        {
            return bad(
                "net.mac",
                format!(
                    "{mac:?} is not a unicast MAC address (six hex pairs, e.g. 02:00:0a:2c:00:0a)"
                ),
            );
        }
        Ok(())
    }
}

/// A static IPv4 address: CIDR, or for a routed interface a bare address (a /32).
fn parse_ipv4(kind: &str, text: &str) -> Result<Ipv4Net, String> {
    if kind == "routed" && !text.contains('/') {
        return text
            .parse()
            .map(|addr| Ipv4Net { addr, prefix: 32 })
            .map_err(|_| format!("{text:?} is not an IPv4 address"));
    }
    let net: Ipv4Net = text
        .parse()
        .map_err(|e: crate::cidr::CidrError| e.to_string())?;
    if kind != "routed" && net.prefix > 30 {
        return Err(format!(
            "{text}: a /{} leaves no room for a gateway; use the network's prefix, e.g. /24",
            net.prefix
        ));
    }
    Ok(net)
}

/// A unicast MAC written as six hex pairs.
fn valid_mac(text: &str) -> bool {
    let parts: Vec<&str> = text.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
        && u8::from_str_radix(parts[0], 16).is_ok_and(|b| b & 1 == 0)
        && parts.iter().any(|p| *p != "00")
}

/// Linux interface names: 1 to 15 bytes, no '/', ':' or white space.
pub fn interface_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && !name.contains(|c: char| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
        && name != "."
        && name != "..";
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not an interface name (1 to 15 characters, no '/', ':' or spaces)"
        ))
    }
}

/// One `[[port]]` entry: traffic to the host's HOST_PORT goes to the container's
/// CONTAINER_PORT while the container runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortConfig {
    pub host_port: u16,
    pub container_port: u16,
    /// tcp (default) or udp.
    #[serde(default = "default_proto")]
    pub proto: String,
    /// Only traffic to this host address (default: any address of the host, loopback too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
}

fn default_proto() -> String {
    "tcp".to_string()
}

impl PortConfig {
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.host_port == 0 || self.container_port == 0 {
            return Err(SpecError::Key("port", "ports are 1 to 65535".into()));
        }
        if self.proto != "tcp" && self.proto != "udp" {
            return Err(SpecError::Key(
                "port.proto",
                format!("{:?} is not tcp or udp", self.proto),
            ));
        }
        match self.host_ip.as_deref().map(str::parse::<IpAddr>) {
            None | Some(Ok(IpAddr::V4(_))) => {}
            // Forwards go to the container's IPv4 address: an IPv6 one could not be
            // translated to it (and ::1 has no route_localnet).
            Some(Ok(IpAddr::V6(_))) => {
                return Err(SpecError::Key(
                    "port.host_ip",
                    "forwards are IPv4: give an IPv4 host address, e.g. 127.0.0.1".into(),
                ));
            }
            Some(Err(_)) => {
                return Err(SpecError::Key(
                    "port.host_ip",
                    format!(
                        "{:?} is not an IP address",
                        self.host_ip.as_deref().unwrap_or_default()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Whether the two forwards take the same host port (same protocol, overlapping
    /// addresses).
    pub fn clashes(&self, other: &PortConfig) -> bool {
        self.host_port == other.host_port
            && self.proto == other.proto
            && (self.host_ip.is_none() || other.host_ip.is_none() || self.host_ip == other.host_ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(kind: &str, f: impl FnOnce(&mut NetConfig)) -> NetConfig {
        let mut n = NetConfig::of(kind);
        f(&mut n);
        n
    }

    #[test]
    fn good_entries_pass() {
        for n in [
            NetConfig::of("bridge"),
            NetConfig::of("none"),
            NetConfig::of("host"),
            net("bridge", |n| n.ipv4 = Some("dhcp".into())),
            net("bridge", |n| {
                n.bridge = Some("lan0".into());
                n.ipv4 = Some("10.1.2.3/24".into());
                n.gateway = Some("10.1.2.1".into());
                n.ipv6 = Some("fd00:1::5/64".into());
                n.mac = Some("02:00:00:00:00:05".into());
            }),
            net("routed", |n| n.ipv4 = Some("10.9.9.9".into())),
            net("macvlan", |n| n.parent = Some("eth0".into())),
        ] {
            n.validate().unwrap_or_else(|e| panic!("{n:?}: {e}"));
        }
        assert_eq!(
            net("routed", |n| n.ipv4 = Some("10.9.9.9".into()))
                .static_ipv4()
                .map(|n| n.prefix),
            Some(32)
        );
    }

    #[test]
    fn bad_entries_name_their_key() {
        for (n, key) in [
            (NetConfig::of("wifi"), "net.type"),
            (
                net("bridge", |n| n.ipv4 = Some("10.1.2.3".into())),
                "net.ipv4",
            ),
            (
                net("bridge", |n| n.ipv4 = Some("10.1.2.3/32".into())),
                "net.ipv4",
            ),
            (net("routed", |n| n.ipv4 = Some("dhcp".into())), "net.ipv4"),
            (NetConfig::of("routed"), "net.ipv4"),
            (NetConfig::of("macvlan"), "net.parent"),
            (
                net("none", |n| n.ipv4 = Some("10.1.2.3/24".into())),
                "net.ipv4",
            ),
            (
                net("bridge", |n| n.parent = Some("eth0".into())),
                "net.parent",
            ),
            (
                net("bridge", |n| n.bridge = Some("a/b".into())),
                "net.bridge",
            ),
            (
                net("bridge", |n| n.gateway = Some("10.0.0.1".into())),
                "net.gateway",
            ),
            (
                net("bridge", |n| n.mac = Some("01:00:00:00:00:01".into())),
                "net.mac",
            ),
            (
                net("bridge", |n| n.ipv6 = Some("fd00::1".into())),
                "net.ipv6",
            ),
        ] {
            match n.validate() {
                Err(SpecError::Key(k, _)) => assert_eq!(k, key, "{n:?}"),
                other => panic!("{n:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn ports_are_checked_and_clashes_found() {
        let p = |hp, proto: &str, ip: Option<&str>| PortConfig {
            host_port: hp,
            container_port: 80,
            proto: proto.into(),
            host_ip: ip.map(String::from),
        };
        assert!(p(8080, "tcp", None).validate().is_ok());
        assert!(p(0, "tcp", None).validate().is_err());
        assert!(p(8080, "sctp", None).validate().is_err());
        assert!(p(8080, "tcp", Some("localhost")).validate().is_err());
        assert!(p(8080, "tcp", Some("::1")).validate().is_err());
        assert!(p(8080, "tcp", Some("127.0.0.1")).validate().is_ok());
        assert!(p(8080, "tcp", None).clashes(&p(8080, "tcp", Some("127.0.0.1"))));
        assert!(!p(8080, "tcp", None).clashes(&p(8080, "udp", None)));
        assert!(!p(8080, "tcp", Some("127.0.0.1")).clashes(&p(8080, "tcp", Some("10.0.0.1"))));
    }
}
