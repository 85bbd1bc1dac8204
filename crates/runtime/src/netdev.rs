//! The container's eth0, over netlink from the launcher's own process (no `ip` spawned):
//! the host side is checked before clone, the interface made after it with its container
//! end created directly in the new network namespace (moving a link between namespaces
//! waits for RCU grace periods: 30 ms here), and configured by the child inside before
//! init runs.
//!
//! Nothing is deleted at stop: when the container's network namespace goes, the kernel
//! removes its veth pair (and so the host end, its routes and its bridge port) or macvlan
//! in the background, which is cheaper than deleting it and also happens after a crash.

use crate::guestfiles::{self, Existing};
use berth_net::link::{LinkError, Netlink};
use berth_spec::{Iface, IfaceKind};
use std::net::IpAddr;

const ENODEV: i32 = 19;
const EEXIST: i32 = 17;

/// The host side of a container interface: what it plugs into, found before clone.
pub struct HostSide<'a> {
    iface: &'a Iface,
    nl: Netlink,
    /// The bridge (bridge) or parent (macvlan) link, by index.
    upper: Option<u32>,
}

fn err(e: LinkError) -> String {
    format!("container network: {e}")
}

/// Checks the host side of `iface` before any process exists: the bridge or parent link
/// is there (a missing one fails the start at no cost), and the host end's name is free.
pub fn prepare(iface: &Iface) -> Result<HostSide<'_>, String> {
    let mut nl = Netlink::open().map_err(err)?;
    let upper = match &iface.kind {
        IfaceKind::Macvlan(parent) => Some(nl.index(parent).map_err(err)?.ok_or_else(|| {
            format!("the macvlan parent interface {parent} does not exist on this host")
        })?),
        IfaceKind::Bridge(bridge) => Some(nl.index(bridge).map_err(err)?.ok_or_else(|| {
            format!(
                "the bridge {bridge} does not exist on this host (berth network list shows the managed ones)"
            )
        })?),
        IfaceKind::Routed => None,
    };
    Ok(HostSide { iface, nl, upper })
}

impl HostSide<'_> {
    /// Makes eth0 in the network namespace of `pid` (a veth whose host end joins the
    /// bridge, or a macvlan), then what the host end needs: up, and for a routed interface
    /// proxy ARP, forwarding and the host routes to the container's addresses. If this
    /// fails the caller kills the child, and its namespace takes eth0 with it.
    pub fn create_into(&mut self, pid: i32) -> Result<(), String> {
        let pid = u32::try_from(pid).map_err(|_| format!("bad child pid {pid}"))?;
        let iface = self.iface;
        if let IfaceKind::Macvlan(_) = iface.kind {
            let parent = self.upper.unwrap_or_default();
            return self
                .nl
                .create_macvlan("eth0", parent, Some(iface.mac), Some(pid))
                .map_err(err);
        }
        make_veth(&mut self.nl, iface, pid)?;
        let host = self
            .nl
            .index(&iface.host_name)
            .map_err(err)?
            .ok_or_else(|| format!("the veth end {} vanished", iface.host_name))?;
        match iface.kind {
            IfaceKind::Bridge(_) => {
                let master = self.upper.unwrap_or_default();
                self.nl.set_master(host, master).map_err(err)?;
            }
            IfaceKind::Routed => {
                // The host answers ARP for every address on the container's behalf and
                // forwards what the container sends: the container sees no other MAC.
                let name = &iface.host_name;
                for key in ["proxy_arp", "forwarding"] {
                    std::fs::write(format!("/proc/sys/net/ipv4/conf/{name}/{key}"), "1")
                        .map_err(|e| format!("container network: set {key} on {name}: {e}"))?;
                }
            }
            IfaceKind::Macvlan(_) => {}
        }
        self.nl.set_up(host).map_err(err)?;
        if let IfaceKind::Routed = iface.kind {
            if let Some(v4) = iface.ipv4 {
                self.nl
                    .add_route(Some((IpAddr::V4(v4.addr), 32)), None, host)
                    .map_err(err)?;
            }
            if let Some(v6) = iface.ipv6 {
                self.nl
                    .add_route(Some((IpAddr::V6(v6.addr), 128)), None, host)
                    .map_err(err)?;
            }
        }
        Ok(())
    }
}

/// The veth pair of `iface`, its container end created as eth0 in the namespace of `pid`.
/// The host end of this container's last run may still be there: the kernel removes it in
/// the background once the old network namespace is gone (a `stop` followed at once by a
/// `start`), or a crash left it. It is deleted, or waited for, for up to a second.
fn make_veth(nl: &mut Netlink, iface: &Iface, pid: u32) -> Result<(), String> {
    let mut tries = 0;
    loop {
        if let Some(old) = nl.index(&iface.host_name).map_err(err)? {
            match nl.delete(old) {
                Err(e) if !e.is_errno(ENODEV) => return Err(err(e)),
                _ => {}
            }
        }
        match nl.create_veth_into(&iface.host_name, "eth0", Some(iface.mac), Some(pid)) {
            Err(e) if e.is_errno(EEXIST) && tries < 500 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            other => return other.map_err(err),
        }
    }
}

/// The first line of a resolv.conf berth wrote: the next start may write it again.
const RESOLV_MARK: &str = "# written by berth at each start (remove this line to keep your own)";

/// Points the guest at its network's resolver unless it has its own: /etc/resolv.conf is
/// written when it is missing, empty, berth's, or a copy of the host's made when the rootfs
/// was built; never through or over a symlink (systemd-resolved's stub, a guest's own
/// choice). Inside the container, after pivot_root; see [`crate::guestfiles`].
fn write_resolv_conf(dns: &berth_spec::Dns) {
    let Some(etc) = guestfiles::dir("etc") else {
        return;
    };
    let replace = match guestfiles::existing(&etc, "resolv.conf") {
        Existing::Missing => true,
        Existing::Other => false,
        Existing::Regular(t) => {
            t.trim().is_empty()
                || t.starts_with(RESOLV_MARK)
                || dns.host_copy.as_deref() == Some(t.as_str())
        }
    };
    if replace {
        let text = format!(
            "{RESOLV_MARK}\nnameserver {}\nsearch {}\n",
            dns.server, dns.search
        );
        guestfiles::replace(&etc, "resolv.conf", &text);
    }
}

/// systemd-networkd's file for a static eth0: sorts before any other .network file that
/// matches eth0 (the Debian image's DHCP one is 80-container-eth0.network).
const NETWORKD: (&str, &str) = ("etc/systemd/network", "10-berth-eth0.network");
/// ifupdown's, sourced by Debian's /etc/network/interfaces.
const IFUPDOWN: (&str, &str) = ("etc/network/interfaces.d", "berth-eth0");
const GUEST_MARK: &str = "# written by berth from the container's config at each start";

/// A static address written where the guest's own network manager looks (networkd,
/// ifupdown), so that it keeps the address instead of asking DHCP; berth's files are
/// removed again when the config no longer asks for one. A file of the same name that
/// berth did not write is left alone. Inside the container, after pivot_root.
fn write_guest_config(iface: &Iface) {
    let ours = |e: &Existing| matches!(e, Existing::Regular(t) if t.starts_with(GUEST_MARK));
    let (Some(v4), true) = (iface.ipv4, iface.guest_static) else {
        for (d, name) in [NETWORKD, IFUPDOWN] {
            if let Some(dir) = guestfiles::dir(d)
                && ours(&guestfiles::existing(&dir, name))
            {
                guestfiles::remove(&dir, name);
            }
        }
        return;
    };
    let free = |e: &Existing| ours(e) || matches!(e, Existing::Missing);
    if let Some(dir) = guestfiles::dir(NETWORKD.0)
        && free(&guestfiles::existing(&dir, NETWORKD.1))
    {
        let mut text = format!("{GUEST_MARK}\n[Match]\nName=eth0\n\n[Network]\nAddress={v4}\n");
        if let Some(gw) = iface.gateway4 {
            text += &format!("Gateway={gw}\n");
        }
        if let Some(v6) = iface.ipv6 {
            text += &format!("Address={v6}\n");
        }
        if let Some(d) = &iface.dns {
            text += &format!("DNS={}\nDomains={}\n", d.server, d.search);
        }
        guestfiles::replace(&dir, NETWORKD.1, &text);
    }
    // ifupdown: unless /etc/network/interfaces configures eth0 itself. `manual`, with the
    // address as a comment: eth0 is configured already, and ifupdown's static method would
    // fail adding an address that exists (a failed networking.service), while `dhcp`
    // would ask for another.
    let main = guestfiles::dir("etc/network")
        .map(|d| guestfiles::existing(&d, "interfaces"))
        .and_then(|e| match e {
            Existing::Regular(t) => Some(t),
            _ => None,
        })
        .unwrap_or_default();
    if main
        .lines()
        .any(|l| l.trim_start().starts_with("iface eth0"))
    {
        return;
    }
    if let Some(dir) = guestfiles::dir(IFUPDOWN.0)
        && free(&guestfiles::existing(&dir, IFUPDOWN.1))
    {
        let gw = iface
            .gateway4
            .map(|g| format!(", gateway {g}"))
            .unwrap_or_default();
        let text = format!(
            "{GUEST_MARK}\n# eth0 has {v4}{gw}, set by berth before init\nauto eth0\niface eth0 inet manual\n"
        );
        guestfiles::replace(&dir, IFUPDOWN.1, &text);
    }
}

/// Inside the container's network namespace, before init: eth0 gets its static
/// addresses and routes, and comes up (with DHCP the guest takes it from there).
pub fn configure_inside(iface: &Iface) -> Result<(), String> {
    if let Some(dns) = &iface.dns {
        write_resolv_conf(dns);
    }
    write_guest_config(iface);
    let mut nl = Netlink::open().map_err(err)?;
    let eth0 = nl
        .index("eth0")
        .map_err(err)?
        .ok_or("the container's eth0 did not arrive")?;
    if let Some(v4) = iface.ipv4 {
        nl.add_address(eth0, IpAddr::V4(v4.addr), v4.prefix)
            .map_err(err)?;
    }
    if let Some(v6) = iface.ipv6 {
        nl.add_address(eth0, IpAddr::V6(v6.addr), v6.prefix)
            .map_err(err)?;
    }
    nl.set_up(eth0).map_err(err)?;
    match (&iface.kind, iface.ipv4, iface.gateway4) {
        // Everything goes out of eth0 and the host's proxy ARP answers for it.
        (IfaceKind::Routed, Some(_), _) => nl.add_route(None, None, eth0).map_err(err)?,
        (_, Some(_), Some(gw)) => nl
            .add_route(None, Some(IpAddr::V4(gw)), eth0)
            .map_err(err)?,
        _ => {}
    }
    match (&iface.kind, iface.ipv6, iface.gateway6) {
        (IfaceKind::Routed, Some(_), _) => nl
            .add_route(Some(("::".parse().map_err(|_| "::")?, 0)), None, eth0)
            .map_err(err)?,
        (_, Some(_), Some(gw)) => nl
            .add_route(None, Some(IpAddr::V6(gw)), eth0)
            .map_err(err)?,
        _ => {}
    }
    Ok(())
}
