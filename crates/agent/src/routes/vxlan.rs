//! flannel's VXLAN backend, rebuilt: a VTEP device `aksnet.1` (VNI 1, port
//! 8472, no learning) holding the node block's network address as a /32,
//! and for each peer a permanent neighbour entry (peer block .0 → peer VTEP
//! MAC), an FDB entry (peer VTEP MAC → peer node IP), and last an onlink
//! route (peer block via peer block .0 dev aksnet.1), so the kernel never
//! ARPs for a gateway it cannot resolve yet.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use aksnet_core::cluster::NodeRecord;
use ipnet::Ipv4Net;

use super::{peers, Route};

pub const DEVICE: &str = "aksnet.1";
pub const VNI: u32 = 1;
/// Linux's VXLAN port (the one flannel uses).
pub const PORT: u16 = 8472;
/// VXLAN's encapsulation: outer IPv4 (20) + UDP (8) + VXLAN (8) + inner
/// Ethernet (14).
pub const OVERHEAD: u32 = 50;

/// The VTEP device the node needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanDevice {
    pub name: String,
    pub vni: u32,
    pub port: u16,
    pub local: Ipv4Addr,
    pub mac: String,
    pub mtu: u32,
    /// The node block's network address, as a /32.
    pub address: Ipv4Addr,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Neigh {
    pub ip: Ipv4Addr,
    pub mac: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Fdb {
    pub mac: String,
    pub dst: Ipv4Addr,
}

/// A stable, locally administered unicast MAC for the node's VTEP, derived
/// from its name, so a restarted agent recreates the same one without
/// keeping state (flannel stores it instead).
pub fn vtep_mac(node: &str) -> String {
    // FNV-1a, 64 bit.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in node.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let b = h.to_be_bytes();
    format!(
        "0a:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b[3], b[4], b[5], b[6], b[7]
    )
}

pub fn device(node: &str, node_ip: Ipv4Addr, block: &Ipv4Net, underlay_mtu: u32) -> VxlanDevice {
    VxlanDevice {
        name: DEVICE.to_string(),
        vni: VNI,
        port: PORT,
        local: node_ip,
        mac: vtep_mac(node),
        mtu: underlay_mtu.saturating_sub(OVERHEAD),
        address: block.network(),
    }
}

/// Everything the kernel must hold for the node's peers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VxlanState {
    pub neighs: BTreeSet<Neigh>,
    pub fdb: BTreeSet<Fdb>,
    pub routes: Vec<Route>,
}

pub fn desired<'a>(me: &str, nodes: impl Iterator<Item = &'a NodeRecord>) -> VxlanState {
    let mut s = VxlanState::default();
    let mut seen = BTreeSet::new();
    for (n, block) in peers(me, nodes) {
        let Some(mac) = n.vtep_mac.as_ref().map(|m| m.to_ascii_lowercase()) else {
            continue;
        };
        if !seen.insert(block) {
            continue;
        }
        let gw = block.network();
        s.neighs.insert(Neigh {
            ip: gw,
            mac: mac.clone(),
        });
        s.fdb.insert(Fdb { mac, dst: n.ip });
        s.routes.push(Route {
            dst: block,
            via: gw,
            dev: Some(DEVICE.to_string()),
            onlink: true,
        });
    }
    s.routes.sort();
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::tests::rec;

    #[test]
    fn mac_is_stable_local_unicast() {
        let m = vtep_mac("node-1");
        assert_eq!(m, vtep_mac("node-1"));
        assert_ne!(m, vtep_mac("node-2"));
        assert!(m.starts_with("0a:"));
        assert_eq!(m.len(), 17);
    }

    #[test]
    fn per_peer_neigh_fdb_and_onlink_route() {
        let mut b = rec("b", "10.224.0.5", Some("10.244.1.0/24"));
        b.vtep_mac = Some("0A:00:00:00:00:0B".into());
        let c = rec("c", "10.224.0.6", Some("10.244.2.0/24")); // no VTEP yet
        let a = rec("a", "10.224.0.4", Some("10.244.0.0/24"));
        let s = desired("a", [a, b, c].iter());
        assert_eq!(s.routes.len(), 1);
        let r = &s.routes[0];
        assert_eq!(r.via, "10.244.1.0".parse::<Ipv4Addr>().unwrap());
        assert!(r.onlink);
        assert_eq!(r.dev.as_deref(), Some(DEVICE));
        let n = s.neighs.iter().next().unwrap();
        assert_eq!(n.mac, "0a:00:00:00:00:0b");
        let f = s.fdb.iter().next().unwrap();
        assert_eq!(f.dst, "10.224.0.5".parse::<Ipv4Addr>().unwrap());
        let d = device(
            "a",
            "10.224.0.4".parse().unwrap(),
            &"10.244.0.0/24".parse().unwrap(),
            1500,
        );
        assert_eq!(d.mtu, 1450);
        assert_eq!(d.address, "10.244.0.0".parse::<Ipv4Addr>().unwrap());
    }
}
