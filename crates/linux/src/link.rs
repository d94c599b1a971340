//! Links: veth pairs (peer born in another namespace), bridges, vxlan
//! devices, and their flags, master, MTU, MAC and bridge-port options.

use std::net::IpAddr;
use std::os::fd::RawFd;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::{
    InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoPortKind, InfoVeth, InfoVxlan,
    LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::RouteNetlinkMessage;

use crate::{MacAddr, Result, Socket};

/// What the kernel reports about a link.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// Hardware address, if the link has one.
    pub mac: Option<MacAddr>,
    /// MTU.
    pub mtu: Option<u32>,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// Promiscuous mode (`IFF_PROMISC`).
    pub promisc: bool,
    /// Index of the master device (bridge) if enslaved.
    pub master: Option<u32>,
    /// Link kind (`veth`, `bridge`, `vxlan`, ...), if the kernel reports one.
    pub kind: Option<String>,
    /// Index of the peer/lower link (`IFLA_LINK`), which for a veth whose
    /// peer lives in another namespace is an index *in that namespace*.
    pub link: Option<u32>,
    /// Namespace id of the peer's namespace (`IFLA_LINK_NETNSID`), if any.
    pub link_netnsid: Option<i32>,
    /// Interface alias (`IFLA_IFALIAS`), if set.
    pub alias: Option<String>,
}

impl Link {
    fn from_message(m: LinkMessage) -> Link {
        let mut l = Link {
            index: m.header.index,
            up: m.header.flags.contains(LinkFlags::Up),
            promisc: m.header.flags.contains(LinkFlags::Promisc),
            ..Link::default()
        };
        for a in m.attributes {
            match a {
                LinkAttribute::IfName(n) => l.name = n,
                LinkAttribute::Address(b) => l.mac = MacAddr::from_slice(&b),
                LinkAttribute::Mtu(v) => l.mtu = Some(v),
                LinkAttribute::Controller(v) => l.master = Some(v),
                LinkAttribute::Link(v) => l.link = Some(v),
                LinkAttribute::LinkNetNsId(v) => l.link_netnsid = Some(v),
                LinkAttribute::IfAlias(a) if !a.is_empty() => l.alias = Some(a),
                LinkAttribute::LinkInfo(infos) => {
                    for i in infos {
                        if let LinkInfo::Kind(k) = i {
                            l.kind = Some(k.to_string());
                        }
                    }
                }
                _ => {}
            }
        }
        l
    }
}

/// A veth pair to create. The first end (`name`) is created in the socket's
/// namespace; the peer is created directly in `peer_netns` (an open network
/// namespace fd, see [`crate::Netns::raw_fd`]) when given, so it never has
/// to be moved between namespaces.
#[derive(Debug, Clone, Default)]
pub struct VethSpec {
    /// Name of the local end.
    pub name: String,
    /// MAC of the local end (random if `None`).
    pub mac: Option<MacAddr>,
    /// MTU of both ends.
    pub mtu: Option<u32>,
    /// Bridge (index) to enslave the local end to at creation.
    pub master: Option<u32>,
    /// Bring the local end up at creation.
    pub up: bool,
    /// Name of the peer.
    pub peer_name: String,
    /// MAC of the peer (random if `None`).
    pub peer_mac: Option<MacAddr>,
    /// Namespace fd the peer is born in (the socket's namespace if `None`).
    /// The peer is created down: the kernel cannot open a veth end before
    /// its pair is complete, so bring it up with a socket in its namespace.
    pub peer_netns: Option<RawFd>,
}

/// A vxlan device to create (for node agents: one VTEP per node).
#[derive(Debug, Clone, Default)]
pub struct VxlanSpec {
    /// Device name.
    pub name: String,
    /// VXLAN network identifier.
    pub vni: u32,
    /// Local VTEP address.
    pub local: Option<IpAddr>,
    /// Underlay device index.
    pub underlay: Option<u32>,
    /// UDP destination port (kernel default 8472 if `None`).
    pub port: Option<u16>,
    /// Learn remote MACs from traffic (usually off: FDB is programmed).
    pub learning: bool,
    /// MTU.
    pub mtu: Option<u32>,
    /// MAC of the device (random if `None`).
    pub mac: Option<MacAddr>,
    /// Bring it up at creation.
    pub up: bool,
}

/// Changes to an existing link; `None` leaves a property as it is.
#[derive(Debug, Clone, Default)]
pub struct LinkChange {
    /// Set administratively up or down.
    pub up: Option<bool>,
    /// Set or clear promiscuous mode.
    pub promisc: Option<bool>,
    /// New MTU.
    pub mtu: Option<u32>,
    /// New master: `Some(0)` releases it from its master.
    pub master: Option<u32>,
    /// New MAC address.
    pub mac: Option<MacAddr>,
    /// New name.
    pub name: Option<String>,
    /// Move to the namespace with this fd.
    pub netns: Option<RawFd>,
    /// New alias (`IFLA_IFALIAS`). The kernel applies an alias only to an
    /// existing link, never at creation.
    pub alias: Option<String>,
}

fn link_msg(index: u32) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.header.index = index;
    m
}

fn flags(up: bool) -> (LinkFlags, LinkFlags) {
    if up {
        (LinkFlags::Up, LinkFlags::Up)
    } else {
        (LinkFlags::empty(), LinkFlags::empty())
    }
}

impl Socket {
    /// The link named `name`, or `None` if there is none.
    pub fn link_by_name(&mut self, name: &str) -> Result<Option<Link>> {
        let mut m = link_msg(0);
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        let op = || format!("get link {name}");
        Ok(match self.get(RouteNetlinkMessage::GetLink(m), &op)? {
            Some(RouteNetlinkMessage::NewLink(l)) => Some(Link::from_message(l)),
            _ => None,
        })
    }

    /// The link with index `index`, or `None`.
    pub fn link_by_index(&mut self, index: u32) -> Result<Option<Link>> {
        let m = link_msg(index);
        let op = || format!("get link #{index}");
        Ok(match self.get(RouteNetlinkMessage::GetLink(m), &op)? {
            Some(RouteNetlinkMessage::NewLink(l)) => Some(Link::from_message(l)),
            _ => None,
        })
    }

    /// Every link of the namespace.
    pub fn links(&mut self) -> Result<Vec<Link>> {
        let op = || "list links".to_string();
        let msgs = self.dump(RouteNetlinkMessage::GetLink(link_msg(0)), &op)?;
        Ok(msgs
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(Link::from_message(l)),
                _ => None,
            })
            .collect())
    }

    /// Create a veth pair in one request (see [`VethSpec`]). Fails with
    /// `EEXIST` if either name is taken in its namespace.
    pub fn create_veth(&mut self, spec: &VethSpec) -> Result<()> {
        let mut peer = link_msg(0);
        peer.attributes
            .push(LinkAttribute::IfName(spec.peer_name.clone()));
        if let Some(mac) = spec.peer_mac {
            peer.attributes
                .push(LinkAttribute::Address(mac.octets().to_vec()));
        }
        if let Some(mtu) = spec.mtu {
            peer.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(fd) = spec.peer_netns {
            peer.attributes.push(LinkAttribute::NetNsFd(fd));
        }
        let mut m = link_msg(0);
        (m.header.flags, m.header.change_mask) = flags(spec.up);
        m.attributes.push(LinkAttribute::IfName(spec.name.clone()));
        if let Some(mac) = spec.mac {
            m.attributes
                .push(LinkAttribute::Address(mac.octets().to_vec()));
        }
        if let Some(mtu) = spec.mtu {
            m.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(master) = spec.master {
            m.attributes.push(LinkAttribute::Controller(master));
        }
        m.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
        ]));
        let op = || format!("create veth {} (peer {})", spec.name, spec.peer_name);
        self.ack(
            RouteNetlinkMessage::NewLink(m),
            NLM_F_CREATE | NLM_F_EXCL,
            &op,
        )
    }

    /// Create a bridge. Fails with `EEXIST` if the name is taken.
    pub fn create_bridge(
        &mut self,
        name: &str,
        mtu: Option<u32>,
        mac: Option<MacAddr>,
        up: bool,
    ) -> Result<()> {
        let mut m = link_msg(0);
        (m.header.flags, m.header.change_mask) = flags(up);
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        if let Some(mtu) = mtu {
            m.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(mac) = mac {
            m.attributes
                .push(LinkAttribute::Address(mac.octets().to_vec()));
        }
        m.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        let op = || format!("create bridge {name}");
        self.ack(
            RouteNetlinkMessage::NewLink(m),
            NLM_F_CREATE | NLM_F_EXCL,
            &op,
        )
    }

    /// Create a vxlan device. Fails with `EEXIST` if the name is taken.
    pub fn create_vxlan(&mut self, spec: &VxlanSpec) -> Result<()> {
        let mut data = vec![InfoVxlan::Id(spec.vni), InfoVxlan::Learning(spec.learning)];
        match spec.local {
            Some(IpAddr::V4(a)) => data.push(InfoVxlan::Local(a)),
            Some(IpAddr::V6(a)) => data.push(InfoVxlan::Local6(a)),
            None => {}
        }
        if let Some(l) = spec.underlay {
            data.push(InfoVxlan::Link(l));
        }
        if let Some(p) = spec.port {
            data.push(InfoVxlan::Port(p));
        }
        let mut m = link_msg(0);
        (m.header.flags, m.header.change_mask) = flags(spec.up);
        m.attributes.push(LinkAttribute::IfName(spec.name.clone()));
        if let Some(mtu) = spec.mtu {
            m.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(mac) = spec.mac {
            m.attributes
                .push(LinkAttribute::Address(mac.octets().to_vec()));
        }
        m.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Vxlan),
            LinkInfo::Data(InfoData::Vxlan(data)),
        ]));
        let op = || format!("create vxlan {} (vni {})", spec.name, spec.vni);
        self.ack(
            RouteNetlinkMessage::NewLink(m),
            NLM_F_CREATE | NLM_F_EXCL,
            &op,
        )
    }

    /// Delete the link named `name`. Returns `false` if there was none.
    pub fn delete_link_by_name(&mut self, name: &str) -> Result<bool> {
        let mut m = link_msg(0);
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        let op = || format!("delete link {name}");
        match self.ack(RouteNetlinkMessage::DelLink(m), 0, &op) {
            Ok(()) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Delete the link with index `index`. Returns `false` if there was none.
    pub fn delete_link(&mut self, index: u32) -> Result<bool> {
        let op = || format!("delete link #{index}");
        match self.ack(RouteNetlinkMessage::DelLink(link_msg(index)), 0, &op) {
            Ok(()) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Apply `change` to link `index` in one request.
    pub fn set_link(&mut self, index: u32, change: &LinkChange) -> Result<()> {
        let mut m = link_msg(index);
        if let Some(up) = change.up {
            m.header.change_mask |= LinkFlags::Up;
            if up {
                m.header.flags |= LinkFlags::Up;
            }
        }
        if let Some(p) = change.promisc {
            m.header.change_mask |= LinkFlags::Promisc;
            if p {
                m.header.flags |= LinkFlags::Promisc;
            }
        }
        if let Some(mtu) = change.mtu {
            m.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(master) = change.master {
            m.attributes.push(LinkAttribute::Controller(master));
        }
        if let Some(mac) = change.mac {
            m.attributes
                .push(LinkAttribute::Address(mac.octets().to_vec()));
        }
        if let Some(name) = &change.name {
            m.attributes.push(LinkAttribute::IfName(name.clone()));
        }
        if let Some(fd) = change.netns {
            m.attributes.push(LinkAttribute::NetNsFd(fd));
        }
        if let Some(alias) = &change.alias {
            m.attributes.push(LinkAttribute::IfAlias(alias.clone()));
        }
        let op = || format!("change link #{index}");
        self.ack(RouteNetlinkMessage::SetLink(m), 0, &op)
    }

    /// Set the hairpin mode of a bridge port (the link must be enslaved to
    /// a bridge already).
    pub fn set_bridge_port_hairpin(&mut self, index: u32, hairpin: bool) -> Result<()> {
        let mut m = link_msg(index);
        m.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::PortKind(InfoPortKind::Bridge),
            LinkInfo::PortData(InfoPortData::BridgePort(vec![InfoBridgePort::HairpinMode(
                hairpin,
            )])),
        ]));
        let op = || format!("set hairpin mode of bridge port #{index}");
        self.ack(RouteNetlinkMessage::NewLink(m), 0, &op)
    }
}
