//! `berth doctor`: what containers that no longer run left on the host.

use super::*;

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
