//! Addresses of managed networks, as pure logic: subnets written as CIDR, the choice of a
//! private /24 and a ULA /64 that clash with none of the host's routes, the allocation of
//! container addresses inside them, and stable MAC addresses. Nothing here touches the
//! kernel, so every rule is unit-tested.

pub use berth_spec::cidr::{CidrError, Ipv4Net, Ipv6Net};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A route or address the host already has, as the subnets to stay out of.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Taken {
    V4(Ipv4Net),
    V6(Ipv6Net),
}

/// The FNV-1a hash that seeds every stable choice here (subnets, MACs): the same name on
/// the same root always gets the same answer, and different names spread out.
pub fn fnv(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.iter().chain(std::iter::once(&0u8)) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// A private IPv4 /24 for a new network that overlaps none of `taken` (the host's routes
/// and addresses, and the other networks berth knows): 10.X.Y.0/24 starting from a place
/// given by `seed`, then every /24 of 10/8 in turn. None when all 65536 are taken.
pub fn choose_ipv4(taken: &[Taken], seed: u64) -> Option<Ipv4Net> {
    let start = (seed % 65536) as u32;
    (0..65536u32)
        .map(|i| (start + i) % 65536)
        // 10.0.x.0 and 10.255.x.0 are left out: the first is where home routers and VPNs
        // most often live, the last is used by some cloud resolvers.
        .filter(|n| n >> 8 != 0 && n >> 8 != 255)
        .map(|n| Ipv4Net {
            addr: Ipv4Addr::from(0x0a00_0000 | (n << 8)),
            prefix: 24,
        })
        .find(|net| {
            !taken.iter().any(|t| match t {
                // The default route (0/0) overlaps everything and is not a clash.
                Taken::V4(r) => r.prefix != 0 && r.overlaps(net),
                Taken::V6(_) => false,
            })
        })
}

/// A unique local IPv6 /64 (fd00::/8, RFC 4193) with its 40-bit global id and subnet id
/// from `seed`, moved on while it overlaps one of `taken`.
pub fn choose_ipv6(taken: &[Taken], seed: u64) -> Option<Ipv6Net> {
    (0..1024u64).find_map(|i| {
        let bits = fnv(&[&seed.to_le_bytes(), &i.to_le_bytes()]);
        // fd + 40 bits of global id + 16 bits of subnet id, then a zero interface id.
        let top = (0xfdu128 << 120) | (u128::from(bits & 0x00ff_ffff_ffff_ffff) << 64);
        let net = Ipv6Net {
            addr: Ipv6Addr::from(top),
            prefix: 64,
        };
        let clash = taken.iter().any(|t| match t {
            Taken::V6(r) => r.prefix != 0 && r.overlaps(&net),
            Taken::V4(_) => false,
        });
        (!clash).then_some(net)
    })
}

/// The first free container address of `subnet`: from .2 up (.1 is the gateway, the last
/// is the broadcast), skipping `used`. None when the subnet is full.
pub fn allocate(subnet: &Ipv4Net, used: &[Ipv4Addr]) -> Option<Ipv4Addr> {
    let last = subnet.size().saturating_sub(2);
    (2..=last)
        .map(|n| subnet.host(n as u32))
        .find(|ip| !used.contains(ip))
}

/// A stable, locally administered unicast MAC for a container's interface: 02:xx from the
/// hash of its root and name, the same at every start (so DHCP hands out the same lease).
pub fn mac_for(seed: u64) -> [u8; 6] {
    // FNV's low bytes change little between similar names (web1, web2): mixed first
    // (splitmix64's finaliser), so that every byte of the MAC depends on the whole name.
    let mut z = seed;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    let b = z.to_be_bytes();
    // 0x02: locally administered, unicast.
    [0x02, b[3], b[4], b[5], b[6], b[7]]
}

/// The address a guest gives itself in `prefix` by SLAAC from `mac` (modified EUI-64, the
/// kernel's default): the MAC with its universal/local bit flipped and ff:fe in the middle.
/// berth puts it in DNS, so that NAME resolves to IPv6 too without asking the guest.
pub fn eui64(prefix: &Ipv6Net, mac: &[u8; 6]) -> Ipv6Addr {
    let id = [
        mac[0] ^ 0x02,
        mac[1],
        mac[2],
        0xff,
        0xfe,
        mac[3],
        mac[4],
        mac[5],
    ];
    prefix.host(u128::from(u64::from_be_bytes(id)))
}

/// A MAC as "02:ab:cd:ef:01:23".
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parses "02:ab:cd:ef:01:23"; refuses multicast MACs and the all-zero one, which no
/// interface can have.
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (dst, part) in mac.iter_mut().zip(&parts) {
        if part.len() != 2 {
            return None;
        }
        *dst = u8::from_str_radix(part, 16).ok()?;
    }
    (mac[0] & 1 == 0 && mac != [0; 6]).then_some(mac)
}

/// Whether `ip` is an address a container may be given inside `subnet`: in it, and neither
/// the network, the broadcast nor the gateway (.1) address.
pub fn usable(subnet: &Ipv4Net, ip: Ipv4Addr) -> bool {
    if !subnet.contains(ip) {
        return false;
    }
    let n = u64::from(u32::from(ip).wrapping_sub(u32::from(subnet.network().addr)));
    n != 0 && n != 1 && n != subnet.size() - 1
}

/// The address family of `ip`, for messages.
pub fn family(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() { "IPv4" } else { "IPv6" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> Ipv4Net {
        s.parse().expect("cidr")
    }

    #[test]
    fn the_chosen_subnet_avoids_the_hosts_routes() {
        let taken = [
            Taken::V4(v4("0.0.0.0/0")),
            Taken::V4(v4("10.7.0.0/16")),
            Taken::V4(v4("192.0.2.0/24")),
        ];
        for seed in 0..2000u64 {
            let net = choose_ipv4(&taken, fnv(&[&seed.to_le_bytes()])).expect("a free /24");
            assert_eq!(net.prefix, 24);
            assert!(!v4("10.7.0.0/16").overlaps(&net), "{net}");
            assert!(v4("10.0.0.0/8").contains(net.addr));
            assert_ne!(net.addr.octets()[1], 0);
        }
        // A host that routes all of 10/8 leaves nothing.
        assert_eq!(choose_ipv4(&[Taken::V4(v4("10.0.0.0/8"))], 3), None);
    }

    #[test]
    fn the_ula_is_unique_local_and_avoids_taken_ones() {
        let first = choose_ipv6(&[], 7).expect("ula");
        assert_eq!(first.prefix, 64);
        assert_eq!(first.addr.octets()[0], 0xfd);
        let second = choose_ipv6(&[Taken::V6(first)], 7).expect("another");
        assert_ne!(first, second);
        // The host's fd00::/64 and its ::/0 default route do not block everything.
        let host: Ipv6Net = "::/0".parse().expect("v6");
        assert!(choose_ipv6(&[Taken::V6(host)], 1).is_some());
    }

    #[test]
    fn allocation_skips_the_gateway_and_used_addresses() {
        let net = v4("10.9.8.0/24");
        let a = allocate(&net, &[]).expect("first");
        assert_eq!(a.to_string(), "10.9.8.2");
        let b = allocate(&net, &[a]).expect("second");
        assert_eq!(b.to_string(), "10.9.8.3");
        let all: Vec<Ipv4Addr> = (2..=254).map(|n| net.host(n)).collect();
        assert_eq!(allocate(&net, &all), None);
        assert!(usable(&net, "10.9.8.9".parse().expect("ip")));
        for bad in [
            "10.9.8.0",
            "10.9.8.1",
            "10.9.8.255",
            "10.9.9.4",
            "10.9.7.200",
            "9.0.0.1",
        ] {
            assert!(!usable(&net, bad.parse().expect("ip")), "{bad}");
        }
    }

    #[test]
    fn slaac_addresses_follow_the_mac() {
        let p: Ipv6Net = "fd8b:6861:9bfb:f2e3::1/64".parse().expect("v6");
        let mac = parse_mac("02:3e:5f:bf:2f:c7").expect("mac");
        assert_eq!(
            eui64(&p, &mac).to_string(),
            "fd8b:6861:9bfb:f2e3:3e:5fff:febf:2fc7"
        );
    }

    #[test]
    fn macs_are_stable_local_unicast() {
        let m = mac_for(fnv(&[b"/var/lib/berth", b"web"]));
        assert_eq!(m, mac_for(fnv(&[b"/var/lib/berth", b"web"])));
        assert_ne!(m, mac_for(fnv(&[b"/var/lib/berth", b"db"])));
        assert_eq!(m[0], 0x02);
        // Similar names differ early in the MAC, not only in its last byte.
        let a = mac_for(fnv(&[b"/r", b"web1"]));
        let b = mac_for(fnv(&[b"/r", b"web2"]));
        assert_ne!(a[1..4], b[1..4]);
        assert_eq!(parse_mac(&format_mac(&m)), Some(m));
        assert_eq!(parse_mac("01:00:5e:00:00:01"), None);
        assert_eq!(parse_mac("00:00:00:00:00:00"), None);
        assert_eq!(parse_mac("02:00:00:00:00"), None);
        assert_eq!(parse_mac("02:00:00:00:00:zz"), None);
    }
}
