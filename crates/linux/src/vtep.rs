//! Reading back what a node agent programs on a VXLAN VTEP: the device's
//! VXLAN settings and its bridge FDB entries (`bridge fdb show dev DEV`).
//! Added by the agent branch; additive to [`crate::link`] and
//! [`crate::neigh`].

use std::net::IpAddr;

use netlink_packet_route::link::{InfoData, InfoVxlan, LinkAttribute, LinkInfo, LinkMessage};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::{MacAddr, Result, Socket};

/// A VXLAN device's settings, as the kernel reports them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VxlanInfo {
    pub index: u32,
    pub vni: Option<u32>,
    pub local: Option<IpAddr>,
    pub port: Option<u16>,
    pub learning: Option<bool>,
    pub mac: Option<MacAddr>,
    pub mtu: Option<u32>,
    pub up: bool,
}

/// A bridge FDB entry of a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdbEntry {
    pub mac: MacAddr,
    /// Remote VTEP (vxlan devices).
    pub dst: Option<IpAddr>,
    pub permanent: bool,
}

impl Socket {
    /// The VXLAN settings of the link named `name`; `None` if there is no
    /// such link or it is not a VXLAN device.
    pub fn vxlan_info(&mut self, name: &str) -> Result<Option<VxlanInfo>> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        let op = || format!("get link {name}");
        let Some(RouteNetlinkMessage::NewLink(l)) =
            self.get(RouteNetlinkMessage::GetLink(m), &op)?
        else {
            return Ok(None);
        };
        let mut info = VxlanInfo {
            index: l.header.index,
            up: l
                .header
                .flags
                .contains(netlink_packet_route::link::LinkFlags::Up),
            ..VxlanInfo::default()
        };
        let mut is_vxlan = false;
        for a in l.attributes {
            match a {
                LinkAttribute::Address(b) => info.mac = MacAddr::from_slice(&b),
                LinkAttribute::Mtu(v) => info.mtu = Some(v),
                LinkAttribute::LinkInfo(infos) => {
                    for i in infos {
                        if let LinkInfo::Data(InfoData::Vxlan(data)) = i {
                            is_vxlan = true;
                            for d in data {
                                match d {
                                    InfoVxlan::Id(v) => info.vni = Some(v),
                                    InfoVxlan::Local(v) => info.local = Some(IpAddr::V4(v)),
                                    InfoVxlan::Local6(v) => info.local = Some(IpAddr::V6(v)),
                                    InfoVxlan::Port(p) => info.port = Some(p),
                                    InfoVxlan::Learning(b) => info.learning = Some(b),
                                    _ => {}
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(is_vxlan.then_some(info))
    }

    /// The bridge FDB entries of link `index`.
    pub fn fdb_entries(&mut self, index: u32) -> Result<Vec<FdbEntry>> {
        let mut req = NeighbourMessage::default();
        req.header.family = AddressFamily::Bridge;
        let op = || format!("list fdb of link #{index}");
        let msgs = self.dump(RouteNetlinkMessage::GetNeighbour(req), &op)?;
        let mut out = Vec::new();
        for m in msgs {
            let RouteNetlinkMessage::NewNeighbour(n) = m else {
                continue;
            };
            if n.header.ifindex != index || n.header.family != AddressFamily::Bridge {
                continue;
            }
            let mut mac = None;
            let mut dst = None;
            for a in &n.attributes {
                match a {
                    NeighbourAttribute::LinkLayerAddress(b) => mac = MacAddr::from_slice(b),
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(v)) => {
                        dst = Some(IpAddr::V4(*v))
                    }
                    NeighbourAttribute::Destination(NeighbourAddress::Inet6(v)) => {
                        dst = Some(IpAddr::V6(*v))
                    }
                    // AF_BRIDGE entries carry the VTEP address undecoded.
                    NeighbourAttribute::Destination(NeighbourAddress::Other(b)) => {
                        dst = match b.len() {
                            4 => <[u8; 4]>::try_from(&b[..]).ok().map(IpAddr::from),
                            16 => <[u8; 16]>::try_from(&b[..]).ok().map(IpAddr::from),
                            _ => None,
                        }
                    }
                    _ => {}
                }
            }
            if let Some(mac) = mac {
                // NUD_PERMANENT (0x80), possibly with NUD_NOARP.
                let state = u16::from(n.header.state);
                out.push(FdbEntry {
                    mac,
                    dst,
                    permanent: n.header.state == NeighbourState::Permanent || state & 0x80 != 0,
                });
            }
        }
        Ok(out)
    }
}
