//! The root's nftables table as running containers need it (NAT, port forwards), and the
//! host-side traffic shaping of a container's veth.

use super::*;

/// Rewrites the root's firewall table: NAT for every network, and the port forwards of
/// every running container (less `stopping`, whose record may not be cleared yet). Under
/// the networks lock, so that parallel starts and stops each write a table that holds the
/// others'.
pub fn sync_firewall(store: &Store, stopping: Option<&str>) -> Result<(), Error> {
    nat::sync(&table(store), &desired(store, stopping)?).map_err(net_err)
}

/// What the root's table should hold (see [`sync_firewall`]). A container counts as
/// running once its supervisor recorded it, which happens before `start` returns.
pub(super) fn desired(store: &Store, stopping: Option<&str>) -> Result<nat::Ruleset, Error> {
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
        let Some(cfg) = config_of(store, &c) else {
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
pub(super) fn forwards_in_table(store: &Store) -> Vec<String> {
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

/// A running container's forwards changed: the table is rewritten.
pub fn ports_changed(store: &Store) -> Result<(), Error> {
    let _lock = lock(store)?;
    sync_firewall(store, None)
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
