//! Addresses with prefix lengths (CIDR), as a config writes them: "10.44.0.10/24" for an
//! interface address or a subnet. Here, below every crate that reads configs or builds
//! networks, so that both parse them one way.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IPv4 address with its prefix length: a subnet ("10.44.3.0/24") or an interface
/// address ("10.44.3.7/24").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Net {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

/// An IPv6 address with its prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Net {
    pub addr: Ipv6Addr,
    pub prefix: u8,
}

/// A CIDR that does not parse, with what was wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{text:?} is not {what} (e.g. {example})")]
pub struct CidrError {
    pub text: String,
    what: &'static str,
    example: &'static str,
}

fn split_cidr(text: &str, max: u8) -> Option<(&str, u8)> {
    let (a, p) = text.split_once('/')?;
    let prefix: u8 = p.parse().ok().filter(|p| *p <= max)?;
    // "010" or "+8" parse as numbers but are not how anyone writes a prefix.
    if p.len() > 1 && p.starts_with('0') || p.starts_with('+') {
        return None;
    }
    Some((a, prefix))
}

impl FromStr for Ipv4Net {
    type Err = CidrError;
    fn from_str(text: &str) -> Result<Self, CidrError> {
        split_cidr(text, 32)
            .and_then(|(a, prefix)| {
                Some(Ipv4Net {
                    addr: a.parse().ok()?,
                    prefix,
                })
            })
            .ok_or_else(|| CidrError {
                text: text.to_string(),
                what: "an IPv4 address with its prefix length",
                example: "10.44.0.10/24",
            })
    }
}

impl FromStr for Ipv6Net {
    type Err = CidrError;
    fn from_str(text: &str) -> Result<Self, CidrError> {
        split_cidr(text, 128)
            .and_then(|(a, prefix)| {
                Some(Ipv6Net {
                    addr: a.parse().ok()?,
                    prefix,
                })
            })
            .ok_or_else(|| CidrError {
                text: text.to_string(),
                what: "an IPv6 address with its prefix length",
                example: "fd42:1:2:3::/64",
            })
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl fmt::Display for Ipv6Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn mask4(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

fn mask6(prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(prefix))
    }
}

impl Ipv4Net {
    /// The subnet this address is in (host bits cleared).
    pub fn network(&self) -> Ipv4Net {
        Ipv4Net {
            addr: Ipv4Addr::from(u32::from(self.addr) & mask4(self.prefix)),
            prefix: self.prefix,
        }
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask4(self.prefix) == u32::from(self.addr) & mask4(self.prefix)
    }

    /// Whether the two ranges share any address.
    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        let p = self.prefix.min(other.prefix);
        u32::from(self.addr) & mask4(p) == u32::from(other.addr) & mask4(p)
    }

    /// The `n`th address of the subnet (n = 1 is the gateway of a managed network).
    pub fn host(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from((u32::from(self.addr) & mask4(self.prefix)) | n)
    }

    /// How many addresses the subnet has, network and broadcast included.
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    /// This address with another prefix length ("10.0.0.7" as "10.0.0.7/32").
    pub fn with_prefix(addr: Ipv4Addr, prefix: u8) -> Ipv4Net {
        Ipv4Net { addr, prefix }
    }
}

impl Ipv6Net {
    pub fn network(&self) -> Ipv6Net {
        Ipv6Net {
            addr: Ipv6Addr::from(u128::from(self.addr) & mask6(self.prefix)),
            prefix: self.prefix,
        }
    }

    pub fn overlaps(&self, other: &Ipv6Net) -> bool {
        let p = self.prefix.min(other.prefix);
        u128::from(self.addr) & mask6(p) == u128::from(other.addr) & mask6(p)
    }

    /// The `n`th address of the subnet.
    pub fn host(&self, n: u128) -> Ipv6Addr {
        Ipv6Addr::from((u128::from(self.addr) & mask6(self.prefix)) | n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> Ipv4Net {
        s.parse().expect("cidr")
    }

    #[test]
    fn cidrs_parse_and_print() {
        assert_eq!(v4("10.1.2.3/24").to_string(), "10.1.2.3/24");
        assert_eq!(v4("10.1.2.3/24").network().to_string(), "10.1.2.0/24");
        for bad in [
            "10.1.2.3",
            "10.1.2.3/33",
            "10.1.2/24",
            "x/24",
            "10.1.2.3/024",
            "10.1.2.3/+8",
        ] {
            assert!(bad.parse::<Ipv4Net>().is_err(), "{bad}");
        }
        let n: Ipv6Net = "fd42::1/64".parse().expect("v6");
        assert_eq!(n.network().to_string(), "fd42::/64");
        assert!("fd42::1/129".parse::<Ipv6Net>().is_err());
    }

    #[test]
    fn overlap_and_membership() {
        assert!(v4("10.0.0.0/8").overlaps(&v4("10.3.4.0/24")));
        assert!(v4("10.3.4.0/24").overlaps(&v4("10.0.0.0/8")));
        assert!(!v4("10.3.4.0/24").overlaps(&v4("10.3.5.0/24")));
        assert!(v4("10.3.4.0/24").contains("10.3.4.200".parse().expect("ip")));
        assert_eq!(v4("10.3.4.0/24").host(1).to_string(), "10.3.4.1");
    }
}
