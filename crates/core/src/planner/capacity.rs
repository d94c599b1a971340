//! What a design consumes and how far it can grow.

use serde::{Deserialize, Serialize};

use crate::cidr;
use crate::dynamic_pool;
use crate::spec::{ClusterNetwork, NetworkPlugin, NodePool};

/// Addresses Azure keeps in every subnet: network, gateway, two for DNS,
/// broadcast.
pub const AZURE_RESERVED_PER_SUBNET: u64 = 5;
/// The smallest subnet Azure accepts.
pub const AZURE_MIN_SUBNET_PREFIX: u8 = 29;
/// Nodes per cluster (Standard/Premium tier).
pub const CLUSTER_NODE_LIMIT: u64 = 5_000;
/// Nodes per node pool.
pub const POOL_NODE_LIMIT: u32 = 1_000;
/// Pods per cluster.
pub const CLUSTER_POD_LIMIT: u64 = 200_000;
/// Each kubenet/overlay node gets a fixed /24 of the pod CIDR.
pub const NODE_BLOCK_PREFIX: u8 = 24;

/// The limit that stops the cluster from growing further.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Limit {
    Subnet,
    RouteTable,
    PodCidr,
    PodSubnet,
    ClusterLimit,
}

impl Limit {
    pub fn describe(self) -> &'static str {
        match self {
            Limit::Subnet => "node subnet addresses",
            Limit::RouteTable => "route table entries",
            Limit::PodCidr => "pod CIDR /24 blocks",
            Limit::PodSubnet => "pod subnet addresses",
            Limit::ClusterLimit => "the 5,000-node cluster limit",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capacity {
    /// Nodes in all pools, and extra nodes during an upgrade.
    pub node_count: u64,
    pub surge_nodes: u64,
    pub max_pods_per_node: u32,
    /// Node subnet addresses taken by nodes (one per node, surge included).
    pub node_ips: u64,
    /// Node subnet addresses reserved for pods (Azure CNI node subnet only).
    pub pod_ips_from_subnet: u64,
    /// `node_ips + pod_ips_from_subnet`.
    pub required_subnet_ips: u64,
    /// Subnet size minus Azure's 5 reserved addresses; null when the
    /// subnet is known only by resource ID.
    pub subnet_usable_ips: Option<u64>,
    /// Smallest subnet (longest prefix) that holds `required_subnet_ips`.
    pub min_subnet_prefix: u8,
    pub max_nodes: u64,
    pub max_nodes_limited_by: Limit,
    /// Pods at `max_nodes`, bounded by the 200,000-pod cluster limit.
    pub max_pods: u64,
    /// Pods the current node count can run.
    pub pods_at_node_count: u64,
    pub route_table_entries: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route_table_limit: Option<u32>,
    /// ClusterIP addresses (the service CIDR minus network and broadcast).
    pub service_ips: u64,
    /// Kubenet and overlay: /24 blocks the pod CIDR holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_cidr_blocks: Option<u64>,
    /// Azure CNI dynamic: pod subnet figures at full load.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_subnet_required_ips: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_subnet_usable_ips: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_pod_subnet_prefix: Option<u8>,
    /// Every subnet the pools use, each charged with its own pools.
    pub subnets: Vec<SubnetUse>,
    /// What the figures could not include (subnets known only by ID).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unknown: Vec<String>,
}

/// One subnet and what its pools take from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubnetUse {
    /// `node` or `pod`.
    pub role: String,
    /// The range; null when known only by ID.
    pub cidr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub pools: Vec<String>,
    pub required_ips: u64,
    pub usable_ips: Option<u64>,
    pub min_prefix: u8,
}

/// Pod subnet addresses one node holds at full load: batches of 16 with 8
/// kept free (dynamic), or /28 blocks for max pods plus one reserved
/// address (`StaticBlock`).
pub fn pod_subnet_ips_per_node(p: &NodePool) -> u64 {
    let static_block = p
        .pod_ip_allocation_mode
        .as_deref()
        .is_some_and(|m| m.eq_ignore_ascii_case("StaticBlock"));
    if static_block {
        (u64::from(p.max_pods) + 1).div_ceil(16) * 16
    } else {
        u64::from(dynamic_pool::ips_at_full_load(p.max_pods))
    }
}

/// The subnets the pools use, each with its pools and their demand.
pub fn subnet_uses(net: &ClusterNetwork) -> Vec<SubnetUse> {
    let azure_node_subnet = net.network_plugin == NetworkPlugin::Azure && !net.is_dynamic();
    let mut out: Vec<SubnetUse> = Vec::new();
    let mut add =
        |role: &str, cidr: Option<cidr::Ipv4Net>, id: Option<String>, pool: &str, ips: u64| {
            let key_cidr = cidr.map(|c| c.to_string());
            let found = out.iter_mut().find(|u| {
                u.role == role && u.cidr == key_cidr && (key_cidr.is_some() || u.id == id)
            });
            match found {
                Some(u) => {
                    u.pools.push(pool.to_string());
                    u.required_ips += ips;
                }
                None => out.push(SubnetUse {
                    role: role.to_string(),
                    cidr: key_cidr,
                    id,
                    pools: vec![pool.to_string()],
                    required_ips: ips,
                    usable_ips: cidr.map(|c| usable_ips(&c)),
                    min_prefix: 0,
                }),
            }
        };
    for p in &net.node_pools {
        let nodes = u64::from(p.count) + u64::from(p.surge_nodes());
        let per_node = if azure_node_subnet {
            1 + u64::from(p.max_pods)
        } else {
            1
        };
        let id = p.subnet.as_ref().map(|s| s.id.clone());
        add("node", net.pool_subnet(p), id, &p.name, nodes * per_node);
        if net.network_plugin == NetworkPlugin::Azure {
            if let Some(ps) = net.pool_pod_subnet(p) {
                let id = p.pod_subnet.as_ref().map(|s| s.id.clone());
                add("pod", ps, id, &p.name, nodes * pod_subnet_ips_per_node(p));
            }
        }
    }
    for u in &mut out {
        u.min_prefix = min_subnet_prefix(u.required_ips);
    }
    out
}

/// Usable addresses of an Azure subnet.
pub fn usable_ips(net: &cidr::Ipv4Net) -> u64 {
    cidr::size(net).saturating_sub(AZURE_RESERVED_PER_SUBNET)
}

/// The longest prefix whose subnet holds `needed` usable addresses, never
/// smaller than Azure's /29 minimum.
pub fn min_subnet_prefix(needed: u64) -> u8 {
    cidr::min_prefix_for(needed.saturating_add(AZURE_RESERVED_PER_SUBNET))
        .unwrap_or(0)
        .min(AZURE_MIN_SUBNET_PREFIX)
}

pub fn compute(net: &ClusterNetwork) -> Capacity {
    let plugin = net.network_plugin;
    let node_count = net.node_count();
    let surge = net.surge_nodes();
    let all_nodes = node_count + surge;
    let m = net.max_pods_per_node();
    let dynamic = net.is_dynamic();
    let uses = subnet_uses(net);
    let unknown: Vec<String> = uses
        .iter()
        .filter(|u| u.usable_ips.is_none())
        .map(|u| {
            format!(
                "{} subnet {} (pools {})",
                u.role,
                u.id.as_deref().unwrap_or("?"),
                u.pools.join(", ")
            )
        })
        .collect();

    // The primary node subnet: the first pool's.
    let primary = uses.iter().find(|u| u.role == "node");
    let required_subnet_ips = primary.map_or(0, |u| u.required_ips);
    let subnet_usable_ips = primary.and_then(|u| u.usable_ips);
    let primary_nodes: u64 = net
        .node_pools
        .iter()
        .filter(|p| primary.is_some_and(|u| u.pools.contains(&p.name)))
        .map(|p| u64::from(p.count) + u64::from(p.surge_nodes()))
        .sum();
    let pod_ips_from_subnet = if plugin == NetworkPlugin::Azure && !dynamic {
        required_subnet_ips.saturating_sub(primary_nodes)
    } else {
        0
    };
    let node_ips = required_subnet_ips - pod_ips_from_subnet;

    // Each bound is "nodes that fit" minus the surge the pools keep free.
    let mut bounds: Vec<(Limit, u64)> = Vec::new();
    for u in &uses {
        let Some(usable) = u.usable_ips else { continue };
        let pools: Vec<&NodePool> = net
            .node_pools
            .iter()
            .filter(|p| u.pools.contains(&p.name))
            .collect();
        let per_node = pools
            .iter()
            .map(
                |p| match (u.role.as_str(), plugin == NetworkPlugin::Azure && !dynamic) {
                    ("pod", _) => pod_subnet_ips_per_node(p),
                    (_, true) => 1 + u64::from(p.max_pods),
                    _ => 1,
                },
            )
            .max()
            .unwrap_or(1)
            .max(1);
        let group_surge: u64 = pools.iter().map(|p| u64::from(p.surge_nodes())).sum();
        let group_nodes: u64 = pools.iter().map(|p| u64::from(p.count)).sum();
        // Nodes elsewhere stay; this subnet's pools grow until it is full.
        let fit = (usable / per_node).saturating_sub(group_surge);
        let limit = if u.role == "pod" {
            Limit::PodSubnet
        } else {
            Limit::Subnet
        };
        bounds.push((limit, node_count - group_nodes + fit));
    }
    let route_table_limit = (plugin == NetworkPlugin::Kubenet).then_some(net.route_table_limit);
    if let Some(limit) = route_table_limit {
        bounds.push((Limit::RouteTable, u64::from(limit).saturating_sub(surge)));
    }
    let pod_cidr_blocks = net
        .effective_pod_cidr()
        .map(|p| cidr::subnet_count(&p, NODE_BLOCK_PREFIX));
    if let Some(blocks) = pod_cidr_blocks {
        bounds.push((Limit::PodCidr, blocks.saturating_sub(surge)));
    }
    let pod_primary = uses.iter().find(|u| u.role == "pod");
    let (pod_subnet_required_ips, pod_subnet_usable_ips, min_pod_subnet_prefix) = match pod_primary
    {
        Some(u) if dynamic => (Some(u.required_ips), u.usable_ips, Some(u.min_prefix)),
        _ => (None, None, None),
    };
    bounds.push((Limit::ClusterLimit, CLUSTER_NODE_LIMIT));
    // First smallest wins, so ties name the more specific limit.
    let (max_nodes_limited_by, max_nodes) = bounds
        .iter()
        .copied()
        .fold(None::<(Limit, u64)>, |best, b| match best {
            Some(x) if x.1 <= b.1 => Some(x),
            _ => Some(b),
        })
        .unwrap_or((Limit::ClusterLimit, CLUSTER_NODE_LIMIT));

    let pods_at_node_count = net
        .node_pools
        .iter()
        .map(|p| u64::from(p.count) * u64::from(p.max_pods))
        .sum();
    let service_ips = cidr::size(&net.service_cidr).saturating_sub(2);

    Capacity {
        node_count,
        surge_nodes: surge,
        max_pods_per_node: m,
        node_ips,
        pod_ips_from_subnet,
        required_subnet_ips,
        subnet_usable_ips,
        min_subnet_prefix: min_subnet_prefix(required_subnet_ips),
        max_nodes,
        max_nodes_limited_by,
        max_pods: (max_nodes * u64::from(m)).min(CLUSTER_POD_LIMIT),
        pods_at_node_count,
        route_table_entries: if plugin == NetworkPlugin::Kubenet {
            all_nodes
        } else {
            0
        },
        route_table_limit,
        service_ips,
        pod_cidr_blocks,
        pod_subnet_required_ips,
        pod_subnet_usable_ips,
        min_pod_subnet_prefix,
        subnets: uses,
        unknown,
    }
}
