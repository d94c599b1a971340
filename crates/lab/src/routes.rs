//! What the fabric's routing tables should hold, from the store (pure).
//!
//! Three tables of the fabric namespace, each wholly the lab's:
//! - [`TABLE_UDR`]: the kubenet route table (a user-defined route table,
//!   "UDR"), from the store's route slots, at most `route_table_limit`
//!   entries. Looked up only for traffic arriving from the node subnet: the
//!   VM subnet has no route table associated, so VM → kubenet pod is not
//!   routable.
//! - [`TABLE_OVERLAY`]: the overlay routing domain, each node's /24 block
//!   to the node, also only for traffic from the node subnet.
//! - [`TABLE_NIC`]: NIC secondary IP configurations (Azure CNI): each pod
//!   address the node holds, routed to the node from anywhere in the VNet.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use aksnet_core::cluster::ClaimKind;
use aksnet_core::spec::{ClusterNetwork, NetworkPlugin};
use ipnet::Ipv4Net;

use crate::snapshot::Snapshot;

pub const TABLE_NIC: u32 = 100;
pub const TABLE_UDR: u32 = 200;
pub const TABLE_OVERLAY: u32 = 300;
pub const TABLES: [u32; 3] = [TABLE_NIC, TABLE_UDR, TABLE_OVERLAY];
/// Packets that arrived on a node-subnet port carry this mark.
pub const NODE_SUBNET_MARK: u32 = 0x1;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FabricRoute {
    pub table: u32,
    pub dst: Ipv4Net,
    pub via: Ipv4Addr,
    pub dev: String,
}

impl FabricRoute {
    pub fn replace_cmd(&self) -> String {
        format!(
            "route replace {} via {} dev {} onlink table {}",
            self.dst, self.via, self.dev, self.table
        )
    }

    pub fn del_cmd(&self) -> String {
        format!("route del {} table {}", self.dst, self.table)
    }
}

/// A node NIC as the fabric knows it: the node's name, its IP and the fabric
/// port it hangs off.
#[derive(Debug, Clone)]
pub struct Port {
    pub node: String,
    pub ip: Ipv4Addr,
    pub dev: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    pub routes: BTreeSet<FabricRoute>,
    /// Entries of the kubenet route table (what `check` reports).
    pub udr_entries: usize,
    /// Store entries that could not be programmed, with why.
    pub skipped: Vec<String>,
}

/// The fabric routes for the cluster as the store has it.
pub fn desired(net: &ClusterNetwork, snap: &Snapshot, ports: &[Port]) -> Desired {
    let mut d = Desired::default();
    let by_ip = |ip: Ipv4Addr| ports.iter().find(|p| p.ip == ip);
    let by_node = |name: &str| ports.iter().find(|p| p.node == name);
    match net.network_plugin {
        NetworkPlugin::Kubenet => {
            let limit = net.route_table_limit as usize;
            for (slot, r) in &snap.routes {
                let Some(r) = &r.value else {
                    d.skipped.push(format!(
                        "route slot {slot}: its entry in the store cannot be read"
                    ));
                    continue;
                };
                if d.udr_entries >= limit {
                    d.skipped.push(format!(
                        "route slot {slot} ({} → {}): the route table holds {limit}",
                        r.destination, r.next_hop
                    ));
                    continue;
                }
                match by_ip(r.next_hop) {
                    Some(p) => {
                        d.udr_entries += 1;
                        d.routes.insert(FabricRoute {
                            table: TABLE_UDR,
                            dst: r.destination.trunc(),
                            via: r.next_hop,
                            dev: p.dev.clone(),
                        });
                    }
                    None => d.skipped.push(format!(
                        "route slot {slot}: next hop {} is no NIC of the lab",
                        r.next_hop
                    )),
                }
            }
        }
        NetworkPlugin::Overlay => {
            for (block, claim) in &snap.blocks {
                let Some(claim) = &claim.value else {
                    d.skipped
                        .push(format!("block {block}: its claim cannot be read"));
                    continue;
                };
                if claim.kind != ClaimKind::PodBlock {
                    continue;
                }
                match by_node(&claim.node) {
                    Some(p) => {
                        d.routes.insert(FabricRoute {
                            table: TABLE_OVERLAY,
                            dst: block.trunc(),
                            via: p.ip,
                            dev: p.dev.clone(),
                        });
                    }
                    None => d.skipped.push(format!(
                        "block {block}: node {} has no NIC in the lab",
                        claim.node
                    )),
                }
            }
        }
        NetworkPlugin::Azure => {
            for (ip, claim) in &snap.ips {
                let Some(claim) = &claim.value else {
                    d.skipped
                        .push(format!("address {ip}: its claim cannot be read"));
                    continue;
                };
                if claim.kind != ClaimKind::PodIp {
                    continue;
                }
                match by_node(&claim.node) {
                    Some(p) => {
                        d.routes.insert(FabricRoute {
                            table: TABLE_NIC,
                            dst: Ipv4Net::from(*ip),
                            via: p.ip,
                            dev: p.dev.clone(),
                        });
                    }
                    None => d.skipped.push(format!(
                        "pod address {ip}: node {} has no NIC in the lab",
                        claim.node
                    )),
                }
            }
        }
    }
    d
}

/// Parses `ip -j route show table N` output into routes of that table.
pub fn parse_ip_json(table: u32, v: &serde_json::Value) -> BTreeSet<FabricRoute> {
    let mut out = BTreeSet::new();
    for r in v.as_array().into_iter().flatten() {
        let (Some(dst), Some(via), Some(dev)) = (
            r.get("dst").and_then(|x| x.as_str()),
            r.get("gateway").and_then(|x| x.as_str()),
            r.get("dev").and_then(|x| x.as_str()),
        ) else {
            continue;
        };
        let dst = if dst.contains('/') {
            dst.parse::<Ipv4Net>().ok()
        } else {
            dst.parse::<Ipv4Addr>().ok().map(Ipv4Net::from)
        };
        if let (Some(dst), Ok(via)) = (dst, via.parse()) {
            out.insert(FabricRoute {
                table,
                dst,
                via,
                dev: dev.to_string(),
            });
        }
    }
    out
}

/// The `ip -batch` lines that turn `current` into `desired`: deletions
/// first (a destination may move to another node), then replacements.
pub fn diff(current: &BTreeSet<FabricRoute>, desired: &BTreeSet<FabricRoute>) -> Vec<String> {
    let wanted: BTreeSet<(u32, Ipv4Net)> = desired.iter().map(|r| (r.table, r.dst)).collect();
    let mut lines: Vec<String> = current
        .iter()
        .filter(|r| !wanted.contains(&(r.table, r.dst)))
        .map(FabricRoute::del_cmd)
        .collect();
    lines.extend(
        desired
            .iter()
            .filter(|r| !current.contains(r))
            .map(FabricRoute::replace_cmd),
    );
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::tests::record;
    use aksnet_core::cluster::{Claim, RouteEntry};
    use aksnet_core::planner;
    use aksnet_core::spec::{Sourced, SpecInput};

    fn net(plugin: &str, mode: Option<&str>, limit: u32) -> ClusterNetwork {
        let input = SpecInput {
            network_plugin: Some(Sourced::new(plugin.into(), "x")),
            network_plugin_mode: mode.map(|m| Sourced::new(m.into(), "x")),
            route_table_limit: Some(Sourced::new(limit, "x")),
            ..Default::default()
        };
        planner::plan_input(&input).unwrap().network
    }

    fn ports() -> Vec<Port> {
        (1..=3)
            .map(|i| Port {
                node: format!("node-{i}"),
                ip: format!("10.224.0.{}", 3 + i).parse().unwrap(),
                dev: format!("n{i}"),
            })
            .collect()
    }

    fn with_routes(routes: Vec<(u32, RouteEntry)>) -> Snapshot {
        routes
            .into_iter()
            .fold(Snapshot::default(), |s, (slot, r)| s.with_route(slot, r))
    }

    fn route(i: u32) -> (u32, RouteEntry) {
        (
            i,
            RouteEntry {
                node: format!("node-{}", i + 1),
                destination: format!("10.244.{i}.0/24").parse().unwrap(),
                next_hop: format!("10.224.0.{}", 4 + i).parse().unwrap(),
            },
        )
    }

    #[test]
    fn kubenet_route_table_is_capped_at_the_limit() {
        let snap = with_routes(vec![route(0), route(1), route(2)]);
        let d = desired(&net("kubenet", None, 2), &snap, &ports());
        assert_eq!(d.udr_entries, 2);
        assert_eq!(d.routes.len(), 2);
        assert!(d.routes.iter().all(|r| r.table == TABLE_UDR));
        assert_eq!(d.skipped.len(), 1, "{:?}", d.skipped);
        let first = d.routes.iter().next().unwrap();
        assert_eq!(
            first.replace_cmd(),
            "route replace 10.244.0.0/24 via 10.224.0.4 dev n1 onlink table 200"
        );
    }

    #[test]
    fn overlay_routes_blocks_and_azure_routes_pod_ips() {
        let claim = |node: &str, kind| Claim {
            node: node.into(),
            kind,
        };
        let mut snap = with_routes(vec![route(0)])
            .with_node(record("node-1", "10.224.0.4", Some("10.244.0.0/24")))
            .with_block(
                "10.244.0.0/24".parse().unwrap(),
                claim("node-1", ClaimKind::PodBlock),
            )
            .with_ip(
                "10.224.0.5".parse().unwrap(),
                claim("node-2", ClaimKind::PodIp),
            )
            .with_ip(
                "10.224.0.4".parse().unwrap(),
                claim("node-1", ClaimKind::NodeIp),
            )
            .with_ip(
                "10.224.0.9".parse().unwrap(),
                claim("gone", ClaimKind::PodIp),
            );
        // A claim that cannot be read: skipped by the fabric, and said so.
        snap.ips.insert(
            "10.224.0.10".parse().unwrap(),
            aksnet_cluster::At::new(None),
        );
        let o = desired(&net("azure", Some("overlay"), 400), &snap, &ports());
        assert_eq!(o.udr_entries, 0);
        assert_eq!(o.routes.len(), 1);
        assert_eq!(o.routes.iter().next().unwrap().table, TABLE_OVERLAY);
        let a = desired(&net("azure", None, 400), &snap, &ports());
        let r: Vec<_> = a.routes.iter().collect();
        assert_eq!(r.len(), 1);
        assert_eq!(
            (r[0].table, r[0].dst.to_string(), r[0].dev.as_str()),
            (TABLE_NIC, "10.224.0.5/32".into(), "n2")
        );
        assert_eq!(a.skipped.len(), 2, "{:?}", a.skipped);
        assert!(a
            .skipped
            .iter()
            .any(|s| s.contains("10.224.0.10: its claim cannot be read")));
    }

    #[test]
    fn parse_and_diff() {
        let json: serde_json::Value = serde_json::json!([
            {"dst": "10.244.0.0/24", "gateway": "10.224.0.4", "dev": "n1", "flags": ["onlink"]},
            {"dst": "10.244.9.0/24", "gateway": "10.224.0.6", "dev": "n3", "flags": ["onlink"]},
            {"dst": "10.224.0.77", "gateway": "10.224.0.4", "dev": "n1"},
            {"dst": "unreachable"}
        ]);
        let current = parse_ip_json(TABLE_UDR, &json);
        assert_eq!(current.len(), 3);
        let snap = with_routes(vec![route(0), route(1)]);
        let d = desired(&net("kubenet", None, 400), &snap, &ports());
        let lines = diff(&current, &d.routes);
        assert_eq!(
            lines,
            vec![
                "route del 10.224.0.77/32 table 200".to_string(),
                "route del 10.244.9.0/24 table 200".to_string(),
                "route replace 10.244.1.0/24 via 10.224.0.5 dev n2 onlink table 200".to_string(),
            ]
        );
        assert!(diff(&d.routes, &d.routes).is_empty());
    }
}
