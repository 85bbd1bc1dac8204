//! Network links over rtnetlink, synchronously (no async runtime in a process that enters
//! namespaces): veth pairs, bridges and macvlans, a link's index, MAC, master and state,
//! moved into another network namespace, deleted; addresses and routes on them. The
//! foundation of container interfaces; traffic shaping sits on their host end.

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_route::address::{AddressAttribute, AddressHeaderFlags, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoMacVlan, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
    MacVlanMode,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use std::net::IpAddr;

/// What can go wrong talking to the kernel about links.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("open a netlink socket: {0}")]
    Socket(std::io::Error),
    #[error("{what}: {source}")]
    Kernel {
        what: String,
        source: std::io::Error,
    },
    #[error("{what}: the kernel's answer could not be read")]
    Garbled { what: String },
    #[error(
        "interface name {0:?} is not one this host can have (1 to 15 bytes, no '/', ':' or space)"
    )]
    BadName(String),
}

impl LinkError {
    /// Whether the kernel answered with errno `code` (ENODEV, EEXIST...).
    pub fn is_errno(&self, code: i32) -> bool {
        matches!(self, LinkError::Kernel { source, .. } if source.raw_os_error() == Some(code))
    }
}

/// Linux interface names: IFNAMSIZ - 1 bytes, no separators (the rule configs are checked
/// by too: [`berth_spec::netconfig::interface_name`]).
pub fn check_name(name: &str) -> Result<(), LinkError> {
    berth_spec::netconfig::interface_name(name).map_err(|_| LinkError::BadName(name.to_string()))
}

/// A route netlink socket of the calling thread's network namespace.
pub struct Netlink {
    socket: Socket,
    seq: u32,
}

impl Netlink {
    pub fn open() -> Result<Netlink, LinkError> {
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(LinkError::Socket)?;
        socket.bind_auto().map_err(LinkError::Socket)?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(LinkError::Socket)?;
        Ok(Netlink { socket, seq: 0 })
    }

    /// Sends `message` and reads the answer: the kernel's acknowledgement (or error), and
    /// for a request without NLM_F_ACK semantics (a get), the first message it sends.
    fn request(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
        what: &str,
    ) -> Result<Option<RouteNetlinkMessage>, LinkError> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = self.seq;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::from(message));
        msg.finalize();
        let mut buf = vec![0; msg.buffer_len()];
        msg.serialize(&mut buf);
        self.socket
            .send(&buf, 0)
            .map_err(|source| LinkError::Kernel {
                what: what.to_string(),
                source,
            })?;
        let mut answer = vec![0; 64 * 1024];
        loop {
            let n = self
                .socket
                .recv(&mut &mut answer[..], 0)
                .map_err(|source| LinkError::Kernel {
                    what: what.to_string(),
                    source,
                })?;
            let mut offset = 0;
            while offset < n {
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&answer[offset..n])
                    .map_err(|_| LinkError::Garbled {
                        what: what.to_string(),
                    })?;
                let len = reply.header.length as usize;
                if reply.header.sequence_number != self.seq {
                    offset += len.max(1);
                    continue;
                }
                match reply.payload {
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(None),
                            Some(code) => Err(LinkError::Kernel {
                                what: what.to_string(),
                                source: std::io::Error::from_raw_os_error(-code.get()),
                            }),
                        };
                    }
                    NetlinkPayload::InnerMessage(inner) => return Ok(Some(inner)),
                    _ => {}
                }
                offset += len.max(1);
            }
        }
    }

    /// Creates the veth pair `name` <-> `peer` (both down, in this namespace).
    pub fn create_veth(&mut self, name: &str, peer: &str) -> Result<(), LinkError> {
        self.create_veth_with_mac(name, peer, None)
    }

    /// Creates the veth pair `name` <-> `peer`, the peer with MAC `peer_mac` when given (a
    /// container keeps one MAC for life, so that DHCP and neighbours know it again).
    pub fn create_veth_with_mac(
        &mut self,
        name: &str,
        peer: &str,
        peer_mac: Option<[u8; 6]>,
    ) -> Result<(), LinkError> {
        self.create_veth_into(name, peer, peer_mac, None)
    }

    /// Creates the veth pair `name` <-> `peer`, the peer made directly in the network
    /// namespace of process `peer_pid` when given: moving a link between namespaces
    /// afterwards waits for RCU grace periods (30 ms here), creating it there does not.
    pub fn create_veth_into(
        &mut self,
        name: &str,
        peer: &str,
        peer_mac: Option<[u8; 6]>,
        peer_pid: Option<u32>,
    ) -> Result<(), LinkError> {
        check_name(name)?;
        check_name(peer)?;
        let mut peer_msg = LinkMessage::default();
        peer_msg
            .attributes
            .push(LinkAttribute::IfName(peer.to_string()));
        if let Some(mac) = peer_mac {
            peer_msg
                .attributes
                .push(LinkAttribute::Address(mac.to_vec()));
        }
        if let Some(pid) = peer_pid {
            peer_msg.attributes.push(LinkAttribute::NetNsPid(pid));
        }
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_msg))),
        ]));
        // NLM_F_EXCL shares its bit with a dump flag; with NLM_F_CREATE on a NEW request
        // the kernel reads it as "fail if it exists".
        self.request(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            &format!("create the veth pair {name}/{peer}"),
        )
        .map(|_| ())
    }

    /// The index of link `name`, or None when there is no such link.
    pub fn index(&mut self, name: &str) -> Result<Option<u32>, LinkError> {
        check_name(name)?;
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.request(
            RouteNetlinkMessage::GetLink(msg),
            0,
            &format!("find link {name}"),
        ) {
            Ok(Some(RouteNetlinkMessage::NewLink(link))) => Ok(Some(link.header.index)),
            Ok(_) => Ok(None),
            Err(LinkError::Kernel { source, .. })
                if source.raw_os_error() == Some(19 /* ENODEV */) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Brings link `index` up.
    pub fn set_up(&mut self, index: u32) -> Result<(), LinkError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        self.request(
            RouteNetlinkMessage::SetLink(msg),
            NLM_F_ACK,
            &format!("bring link {index} up"),
        )
        .map(|_| ())
    }

    /// Moves link `index` into the network namespace of process `pid`, named `new_name`
    /// there (eth0 for a container's interface).
    pub fn move_to_pid(&mut self, index: u32, pid: u32, new_name: &str) -> Result<(), LinkError> {
        check_name(new_name)?;
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes.push(LinkAttribute::NetNsPid(pid));
        msg.attributes
            .push(LinkAttribute::IfName(new_name.to_string()));
        self.request(
            RouteNetlinkMessage::SetLink(msg),
            NLM_F_ACK,
            &format!("move link {index} into the network namespace of process {pid}"),
        )
        .map(|_| ())
    }

    /// Deletes link `index` (a veth takes its peer with it).
    pub fn delete(&mut self, index: u32) -> Result<(), LinkError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        self.request(
            RouteNetlinkMessage::DelLink(msg),
            NLM_F_ACK,
            &format!("delete link {index}"),
        )
        .map(|_| ())
    }

    /// Creates the bridge `name` (down, with no ports).
    pub fn create_bridge(&mut self, name: &str) -> Result<(), LinkError> {
        check_name(name)?;
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        msg.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        self.request(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            &format!("create the bridge {name}"),
        )
        .map(|_| ())
    }

    /// Creates `name`, a macvlan in bridge mode on link `parent` (so that the containers of
    /// one parent reach each other), with MAC `mac` when given, made directly in the
    /// network namespace of process `pid` when given.
    pub fn create_macvlan(
        &mut self,
        name: &str,
        parent: u32,
        mac: Option<[u8; 6]>,
        pid: Option<u32>,
    ) -> Result<(), LinkError> {
        check_name(name)?;
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        msg.attributes.push(LinkAttribute::Link(parent));
        if let Some(pid) = pid {
            msg.attributes.push(LinkAttribute::NetNsPid(pid));
        }
        if let Some(mac) = mac {
            msg.attributes.push(LinkAttribute::Address(mac.to_vec()));
        }
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::MacVlan),
            LinkInfo::Data(InfoData::MacVlan(vec![InfoMacVlan::Mode(
                MacVlanMode::Bridge,
            )])),
        ]));
        self.request(
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            &format!("create the macvlan {name} on link {parent}"),
        )
        .map(|_| ())
    }

    /// Makes link `index` a port of bridge `master`.
    pub fn set_master(&mut self, index: u32, master: u32) -> Result<(), LinkError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes.push(LinkAttribute::Controller(master));
        self.request(
            RouteNetlinkMessage::SetLink(msg),
            NLM_F_ACK,
            &format!("attach link {index} to bridge {master}"),
        )
        .map(|_| ())
    }

    /// Adds `addr/prefix` to link `index`. An address the link already has is not an error
    /// (bringing a network up again after a crash finds its bridge configured).
    pub fn add_address(&mut self, index: u32, addr: IpAddr, prefix: u8) -> Result<(), LinkError> {
        let mut msg = AddressMessage::default();
        msg.header.index = index;
        msg.header.prefix_len = prefix;
        msg.header.family = family(&addr);
        if addr.is_ipv6() {
            // A container's or bridge's address is known to be unique here: no duplicate
            // address detection, which would hold the address back for a second or more.
            msg.header.flags = AddressHeaderFlags::Nodad;
        }
        msg.attributes.push(AddressAttribute::Local(addr));
        msg.attributes.push(AddressAttribute::Address(addr));
        if let IpAddr::V4(v4) = addr
            && prefix < 31
        {
            let host_bits = u32::MAX.checked_shr(u32::from(prefix)).unwrap_or(0);
            let broadcast = std::net::Ipv4Addr::from(u32::from(v4) | host_bits);
            msg.attributes.push(AddressAttribute::Broadcast(broadcast));
        }
        match self.request(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            &format!("add address {addr}/{prefix} to link {index}"),
        ) {
            Err(LinkError::Kernel { source, .. })
                if source.raw_os_error() == Some(17 /* EEXIST */) =>
            {
                Ok(())
            }
            other => other.map(|_| ()),
        }
    }

    /// Adds a route to `dest/prefix` (the default route when None) through `gateway`, or
    /// straight out of link `oif` when there is no gateway (a link-scope route: how a routed
    /// container reaches the host, and how the host reaches a routed container).
    pub fn add_route(
        &mut self,
        dest: Option<(IpAddr, u8)>,
        gateway: Option<IpAddr>,
        oif: u32,
    ) -> Result<(), LinkError> {
        let v6 = match (dest, gateway) {
            (Some((d, _)), _) => d.is_ipv6(),
            (None, Some(g)) => g.is_ipv6(),
            (None, None) => false,
        };
        let mut msg = RouteMessage::default();
        msg.header.address_family = if v6 {
            AddressFamily::Inet6
        } else {
            AddressFamily::Inet
        };
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        msg.header.protocol = RouteProtocol::Static;
        msg.header.kind = RouteType::Unicast;
        msg.header.scope = if gateway.is_some() {
            RouteScope::Universe
        } else {
            RouteScope::Link
        };
        if let Some((d, prefix)) = dest {
            msg.header.destination_prefix_length = prefix;
            msg.attributes
                .push(RouteAttribute::Destination(RouteAddress::from(d)));
        }
        if let Some(g) = gateway {
            msg.attributes
                .push(RouteAttribute::Gateway(RouteAddress::from(g)));
        }
        msg.attributes.push(RouteAttribute::Oif(oif));
        let what = match (dest, gateway) {
            (Some((d, p)), Some(g)) => format!("add a route to {d}/{p} via {g}"),
            (Some((d, p)), None) => format!("add a route to {d}/{p} on link {oif}"),
            (None, Some(g)) => format!("add the default route via {g}"),
            (None, None) => format!("add the default route on link {oif}"),
        };
        match self.request(
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            &what,
        ) {
            Err(LinkError::Kernel { source, .. })
                if source.raw_os_error() == Some(17 /* EEXIST */) =>
            {
                Ok(())
            }
            other => other.map(|_| ()),
        }
    }
}

fn family(addr: &IpAddr) -> AddressFamily {
    if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}
