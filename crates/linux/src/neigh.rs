//! Neighbour (ARP/NDP) entries and bridge FDB entries (for vxlan VTEPs).

use std::net::IpAddr;

use netlink_packet_core::{NLM_F_APPEND, NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::RouteType;
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::{MacAddr, Result, Socket};

/// A neighbour entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    /// Interface index.
    pub index: u32,
    /// Protocol address.
    pub ip: IpAddr,
    /// Link-layer address, if resolved.
    pub mac: Option<MacAddr>,
    /// Entry is permanent (static).
    pub permanent: bool,
}

fn neigh_addr(ip: IpAddr) -> NeighbourAddress {
    match ip {
        IpAddr::V4(a) => NeighbourAddress::Inet(a),
        IpAddr::V6(a) => NeighbourAddress::Inet6(a),
    }
}

impl Socket {
    /// Add or replace a permanent neighbour entry `ip → mac` on link
    /// `index`.
    pub fn set_neighbour(&mut self, index: u32, ip: IpAddr, mac: MacAddr) -> Result<()> {
        let mut m = NeighbourMessage::default();
        m.header.family = match ip {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        m.header.ifindex = index;
        m.header.state = NeighbourState::Permanent;
        m.header.kind = RouteType::Unspec;
        m.attributes
            .push(NeighbourAttribute::Destination(neigh_addr(ip)));
        m.attributes
            .push(NeighbourAttribute::LinkLayerAddress(mac.octets().to_vec()));
        let op = || format!("set neighbour {ip} lladdr {mac} on link #{index}");
        self.ack(
            RouteNetlinkMessage::NewNeighbour(m),
            NLM_F_CREATE | NLM_F_REPLACE,
            &op,
        )
    }

    /// Delete the neighbour entry for `ip` on link `index`; `false` if none.
    pub fn del_neighbour(&mut self, index: u32, ip: IpAddr) -> Result<bool> {
        let mut m = NeighbourMessage::default();
        m.header.family = match ip {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        m.header.ifindex = index;
        m.attributes
            .push(NeighbourAttribute::Destination(neigh_addr(ip)));
        let op = || format!("delete neighbour {ip} on link #{index}");
        match self.ack(RouteNetlinkMessage::DelNeighbour(m), 0, &op) {
            Ok(()) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The IPv4 and IPv6 neighbour entries of link `index`.
    pub fn neighbours(&mut self, index: u32) -> Result<Vec<Neighbour>> {
        let op = || "list neighbours".to_string();
        let msgs = self.dump(
            RouteNetlinkMessage::GetNeighbour(NeighbourMessage::default()),
            &op,
        )?;
        let mut out = Vec::new();
        for m in msgs {
            let RouteNetlinkMessage::NewNeighbour(n) = m else {
                continue;
            };
            if n.header.ifindex != index {
                continue;
            }
            let mut ip = None;
            let mut mac = None;
            for a in &n.attributes {
                match a {
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(v)) => {
                        ip = Some(IpAddr::V4(*v))
                    }
                    NeighbourAttribute::Destination(NeighbourAddress::Inet6(v)) => {
                        ip = Some(IpAddr::V6(*v))
                    }
                    NeighbourAttribute::LinkLayerAddress(b) => mac = MacAddr::from_slice(b),
                    _ => {}
                }
            }
            if let Some(ip) = ip {
                out.push(Neighbour {
                    index,
                    ip,
                    mac,
                    permanent: n.header.state == NeighbourState::Permanent,
                });
            }
        }
        Ok(out)
    }

    /// Append a permanent FDB entry `mac → dst` on a vxlan device (as
    /// `bridge fdb append MAC dev DEV dst DST self permanent`).
    pub fn fdb_append(&mut self, index: u32, mac: MacAddr, dst: IpAddr) -> Result<()> {
        let mut m = fdb_msg(index, mac, dst);
        m.header.state = NeighbourState::Permanent;
        let op = || format!("append fdb {mac} dst {dst} on link #{index}");
        self.ack(
            RouteNetlinkMessage::NewNeighbour(m),
            NLM_F_CREATE | NLM_F_APPEND,
            &op,
        )
    }

    /// Delete the FDB entry `mac → dst` on link `index`; `false` if none.
    pub fn fdb_del(&mut self, index: u32, mac: MacAddr, dst: IpAddr) -> Result<bool> {
        let m = fdb_msg(index, mac, dst);
        let op = || format!("delete fdb {mac} dst {dst} on link #{index}");
        match self.ack(RouteNetlinkMessage::DelNeighbour(m), 0, &op) {
            Ok(()) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }
}

fn fdb_msg(index: u32, mac: MacAddr, dst: IpAddr) -> NeighbourMessage {
    let mut m = NeighbourMessage::default();
    m.header.family = AddressFamily::Bridge;
    m.header.ifindex = index;
    m.header.flags = NeighbourFlags::Own;
    m.attributes
        .push(NeighbourAttribute::LinkLayerAddress(mac.octets().to_vec()));
    m.attributes
        .push(NeighbourAttribute::Destination(neigh_addr(dst)));
    m
}
