//! The cluster as the store holds it (key layout in `aksnet_core::cluster`),
//! read in one listing: what the fabric programs its routes from and what
//! `check`, `status` and `diagram` show.

use std::net::Ipv4Addr;

use aksnet_core::cluster::{
    self, Claim, ClaimKind, NodeRecord, RouteEntry, NETWORK_KEY, NODES_PREFIX, ROUTES_PREFIX,
};
use aksnet_core::spec::ClusterNetwork;
use ipnet::Ipv4Net;

use crate::error::Result;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub revision: i64,
    pub network: Option<ClusterNetwork>,
    pub nodes: Vec<NodeRecord>,
    pub blocks: Vec<(Ipv4Net, Claim)>,
    pub ips: Vec<(Ipv4Addr, Claim)>,
    pub routes: Vec<(u32, RouteEntry)>,
}

/// Where snapshots come from (the lab's SQLite store; a fake in tests).
pub trait ClusterSource {
    fn snapshot(&self) -> Result<Snapshot>;
}

impl Snapshot {
    /// Builds a snapshot from the store's key/values under `/aksnet/`.
    /// Values that do not parse are skipped with a warning: the fabric must
    /// keep working if one record is damaged.
    pub fn from_kvs<'a>(revision: i64, kvs: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Self {
        let mut s = Snapshot {
            revision,
            ..Default::default()
        };
        for (key, value) in kvs {
            let ok = if key == NETWORK_KEY {
                serde_json::from_slice(value)
                    .map(|n| s.network = Some(n))
                    .is_ok()
            } else if key.starts_with(NODES_PREFIX) {
                serde_json::from_slice(value)
                    .map(|n| s.nodes.push(n))
                    .is_ok()
            } else if let Some(b) = cluster::parse_block_key(key) {
                serde_json::from_slice(value)
                    .map(|c| s.blocks.push((b, c)))
                    .is_ok()
            } else if let Some(ip) = cluster::parse_ip_key(key) {
                serde_json::from_slice(value)
                    .map(|c| s.ips.push((ip, c)))
                    .is_ok()
            } else if let Some(slot) = key
                .strip_prefix(ROUTES_PREFIX)
                .and_then(|s| s.parse::<u32>().ok())
            {
                serde_json::from_slice(value)
                    .map(|r| s.routes.push((slot, r)))
                    .is_ok()
            } else {
                // Keys of other parts of the cluster (services, policy, …).
                true
            };
            if !ok {
                tracing::warn!(key, "skipping a store value that does not parse");
            }
        }
        s.nodes.sort_by(|a, b| a.name.cmp(&b.name));
        s.blocks.sort_by_key(|(b, _)| *b);
        s.ips.sort_by_key(|(ip, _)| *ip);
        s.routes.sort_by_key(|(slot, _)| *slot);
        s
    }

    pub fn node(&self, name: &str) -> Option<&NodeRecord> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Addresses of the VNet the cluster holds: node IPs and Azure CNI pod
    /// addresses (what DESIGN §1 calls "VNet IPs consumed").
    pub fn vnet_ips_used(&self) -> usize {
        let mut all: std::collections::BTreeSet<Ipv4Addr> =
            self.nodes.iter().map(|n| n.ip).collect();
        all.extend(
            self.ips
                .iter()
                .filter(|(_, c)| matches!(c.kind, ClaimKind::NodeIp | ClaimKind::PodIp))
                .map(|(ip, _)| *ip),
        );
        all.len()
    }

    /// Azure CNI pod addresses held by `node`.
    pub fn pod_ips_of<'a>(&'a self, node: &'a str) -> impl Iterator<Item = Ipv4Addr> + 'a {
        self.ips
            .iter()
            .filter(move |(_, c)| c.kind == ClaimKind::PodIp && c.node == node)
            .map(|(ip, _)| *ip)
    }

    /// The node's /24 of the pod CIDR (kubenet, overlay).
    pub fn block_of(&self, node: &str) -> Option<Ipv4Net> {
        self.node(node).and_then(|n| n.block).or_else(|| {
            self.blocks
                .iter()
                .find(|(_, c)| c.kind == ClaimKind::PodBlock && c.node == node)
                .map(|(b, _)| *b)
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use aksnet_core::cluster::{block_key, ip_key, node_key, route_key, RouteMode};

    pub fn record(name: &str, ip: &str, block: Option<&str>) -> NodeRecord {
        NodeRecord {
            name: name.into(),
            ip: ip.parse().unwrap(),
            routes: RouteMode::Fabric,
            block: block.map(|b| b.parse().unwrap()),
            pool: vec![],
            pool_used: None,
            vtep_mac: None,
            conditions: vec![],
        }
    }

    #[test]
    fn parses_the_key_layout() {
        let n1 = record("node-1", "10.224.0.4", Some("10.244.0.0/24"));
        let claim = |node: &str, kind| {
            serde_json::to_vec(&Claim {
                node: node.into(),
                kind,
            })
            .unwrap()
        };
        let route = RouteEntry {
            node: "node-1".into(),
            destination: "10.244.0.0/24".parse().unwrap(),
            next_hop: "10.224.0.4".parse().unwrap(),
        };
        let kvs: Vec<(String, Vec<u8>)> = vec![
            (node_key("node-1"), serde_json::to_vec(&n1).unwrap()),
            (
                block_key(&"10.244.0.0/24".parse().unwrap()),
                claim("node-1", ClaimKind::PodBlock),
            ),
            (
                ip_key("10.224.0.4".parse().unwrap()),
                claim("node-1", ClaimKind::NodeIp),
            ),
            (
                ip_key("10.224.0.9".parse().unwrap()),
                claim("node-1", ClaimKind::PodIp),
            ),
            (route_key(0), serde_json::to_vec(&route).unwrap()),
            ("/aksnet/routes/junk".into(), b"{}".to_vec()),
            ("/aksnet/nodes/broken".into(), b"not json".to_vec()),
            ("/aksnet/services/x".into(), b"{}".to_vec()),
        ];
        let s = Snapshot::from_kvs(7, kvs.iter().map(|(k, v)| (k.as_str(), v.as_slice())));
        assert_eq!(s.revision, 7);
        assert_eq!(s.nodes, vec![n1]);
        assert_eq!(s.blocks.len(), 1);
        assert_eq!(s.ips.len(), 2);
        assert_eq!(s.routes, vec![(0, route)]);
        assert_eq!(s.block_of("node-1").unwrap().to_string(), "10.244.0.0/24");
        assert_eq!(s.pod_ips_of("node-1").count(), 1);
        assert_eq!(s.vnet_ips_used(), 2);
    }
}
