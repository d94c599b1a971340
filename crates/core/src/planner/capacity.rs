//! What a design consumes and how far it can grow.

use serde::{Deserialize, Serialize};

use crate::cidr;
use crate::dynamic_pool;
use crate::spec::{ClusterNetwork, NetworkPlugin};

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
    /// Subnet size minus Azure's 5 reserved addresses.
    pub subnet_usable_ips: u64,
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

    let pod_ips_from_subnet = if plugin == NetworkPlugin::Azure && !dynamic {
        net.node_pools
            .iter()
            .map(|p| (u64::from(p.count) + u64::from(p.surge_nodes())) * u64::from(p.max_pods))
            .sum()
    } else {
        0
    };
    let node_ips = all_nodes;
    let required_subnet_ips = node_ips + pod_ips_from_subnet;
    let subnet_usable_ips = usable_ips(&net.subnet_cidr);

    // Each bound is "nodes that fit" minus the surge the pools keep free.
    let mut bounds: Vec<(Limit, u64)> = Vec::new();
    let per_node_subnet = if plugin == NetworkPlugin::Azure && !dynamic {
        1 + u64::from(m)
    } else {
        1
    };
    bounds.push((
        Limit::Subnet,
        (subnet_usable_ips / per_node_subnet).saturating_sub(surge),
    ));
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
    let (mut pod_subnet_required_ips, mut pod_subnet_usable_ips, mut min_pod_subnet_prefix) =
        (None, None, None);
    if let (true, Some(ps)) = (dynamic, net.pod_subnet_cidr) {
        let required: u64 = net
            .node_pools
            .iter()
            .map(|p| {
                (u64::from(p.count) + u64::from(p.surge_nodes()))
                    * u64::from(dynamic_pool::ips_at_full_load(p.max_pods))
            })
            .sum();
        let usable = usable_ips(&ps);
        let per_node = u64::from(dynamic_pool::ips_at_full_load(m)).max(1);
        bounds.push((Limit::PodSubnet, (usable / per_node).saturating_sub(surge)));
        pod_subnet_required_ips = Some(required);
        pod_subnet_usable_ips = Some(usable);
        min_pod_subnet_prefix = Some(min_subnet_prefix(required));
    }
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
    }
}
