//! Container addresses on managed networks: the interface a start needs, the leases
//! reserved for containers and runs, and the checks a config's network settings get.

use super::*;

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

/// eth0 for a `berth run` as `net` asks (bridge, routed, macvlan): on a managed network its
/// address is reserved under `key` (see [`run_key`]); set before the command starts.
pub fn attach_run(store: &Store, key: &str, net: &NetConfig) -> Result<Iface, Error> {
    let mut config = Config::new(berth_spec::config::Rootfs::default());
    config.nets = vec![net.clone()];
    let name = net.bridge_name();
    if net.kind == "bridge"
        && load(store, name)?.is_none()
        && name != berth_spec::netconfig::DEFAULT_NETWORK
        && !Path::new("/sys/class/net")
            .join(name)
            .join("bridge")
            .exists()
    {
        return Err(net_err(format!(
            "--net bridge={name}: no such network (`berth network list`, `berth network create {name}`)"
        )));
    }
    check_config(store, key, &config)?;
    attach(store, key, &config)?
        .ok_or_else(|| net_err("an interface was asked for but none was made"))
}

/// Whether lease `key` belongs to nobody any more: a deleted container, or a `berth run`
/// whose process is gone.
pub(super) fn stale_lease(key: &str, containers: &[String]) -> bool {
    match key.strip_prefix("run.") {
        Some(pid) => !Path::new("/proc").join(pid).exists(),
        None => !containers.iter().any(|c| c == key),
    }
}

/// The container's lease on `net`: kept if it has one that still fits its config, the
/// static address if it asks for one (refused if another container holds it), otherwise
/// the first free address.
pub(super) fn reserve(
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
            if parent == "lo" {
                return Err(net_err(
                    "net.parent: a macvlan sits on an Ethernet interface (e.g. eth0), not on lo",
                ));
            }
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
        let Some(cfg) = config_of(store, &other) else {
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
pub(super) fn addressing(n: &NetConfig) -> Option<(String, Ipv4Addr)> {
    let a = n.static_ipv4()?.addr;
    let place = match n.kind.as_str() {
        "bridge" => n.bridge_name().to_string(),
        "routed" => "routed".to_string(),
        other => format!("{other}:{}", n.parent.as_deref().unwrap_or_default()),
    };
    Some((place, a))
}
