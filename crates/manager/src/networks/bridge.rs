//! A managed network's bridge: its subnets chosen against the host's routes, brought up
//! (addresses, sysctls, dnsmasq, the firewall table) and taken down, created and deleted.

use super::*;

/// The subnets the host already routes or has addresses in (its own, and every other
/// root's bridges, whose routes are there too), from /proc.
pub(super) fn host_taken() -> Vec<Taken> {
    let mut taken = Vec::new();
    let v4 = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    taken.extend(parse_route4(&v4).into_iter().map(Taken::V4));
    let v6 = std::fs::read_to_string("/proc/net/ipv6_route").unwrap_or_default();
    taken.extend(parse_route6(&v6).into_iter().map(Taken::V6));
    taken
}

/// /proc/net/route: destination and mask as the hex of their in-memory (network order)
/// value read as a native integer.
pub(super) fn parse_route4(text: &str) -> Vec<Ipv4Net> {
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
pub(super) fn parse_route6(text: &str) -> Vec<Ipv6Net> {
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

/// `berth network create`: writes the network and brings it up. The subnet is chosen (or
/// checked) under a host-wide lock, so that two roots creating networks at once never get
/// the same one, and the bridge is up (its route visible to the next) before the lock goes.
pub fn create(store: &Store, name: &str, opts: &CreateOptions) -> Result<Network, Error> {
    check_name(name)?;
    let _lock = lock(store)?;
    create_locked(store, name, opts)
}

/// [`create`], under the networks lock already.
pub(super) fn create_locked(
    store: &Store,
    name: &str,
    opts: &CreateOptions,
) -> Result<Network, Error> {
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
pub(super) fn reserved_v4(net: &Ipv4Net) -> Option<&'static str> {
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
pub(super) fn load_or_default(store: &Store, name: &str) -> Result<Network, Error> {
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
            // Made again (after a reboot, say): the host may have gained a route into the
            // subnet meanwhile (a VPN), which the bridge's would fight.
            if let Some(Taken::V4(r)) = host_taken().iter().find(
                |t| matches!(t, Taken::V4(r) if r.prefix != 0 && r.overlaps(&net.ipv4.network())),
            ) {
                return Err(net_err(format!(
                    "network {}'s subnet {} now overlaps the host's route to {r}: delete the network and create it with another --subnet",
                    net.name,
                    net.ipv4.network()
                )));
            }
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
pub(super) fn tell_resolved(net: &Network) {
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

pub(super) fn sysctl(key: &str, value: &str) -> Result<(), Error> {
    std::fs::write(Path::new("/proc/sys").join(key), value).map_err(|e| Error::Io {
        what: format!("set {} to {value}", key.replace('/', ".")),
        source: e,
    })
}

/// Takes the network down: its dnsmasq stopped and its bridge deleted (the file stays).
pub(super) fn down(net: &Network) -> Result<(), Error> {
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
pub(super) fn users(store: &Store, name: &str) -> Vec<String> {
    store
        .list()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| {
            config_of(store, c).is_some_and(|cfg| {
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
    let mut users = users(store, name);
    // A `berth run` on it holds a lease while it lives.
    users.extend(
        net.file
            .leases
            .keys()
            .filter(|k| k.starts_with("run.") && !stale_lease(k, &[]))
            .map(|k| format!("berth run (pid {})", &k[4..])),
    );
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
