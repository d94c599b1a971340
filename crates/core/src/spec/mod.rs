//! The cluster network specification: what `aksnet plan` checks, what
//! `aksnet cluster init` stores, and what every agent and the lab build from.
//!
//! A [`ClusterNetwork`] is fully resolved (defaults applied, strings parsed)
//! but not yet validated: validation is the planner's job, so that a design
//! with, say, host bits in a CIDR can still be shown and explained.

pub mod arm;
pub mod document;
mod input;
mod k8s;
mod surge;
pub mod version;

pub use arm::{from_documents, ArmError, Document, Parameters};
pub use input::{
    InputError, KnownSubnet, OutboundInput, Pending, PoolInput, Sourced, SpecInput, SubnetRef,
};
pub use surge::{MaxSurge, MaxSurgeError};

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

/// AKS defaults (`reference/aks-networking.md` §2, DESIGN §1).
pub mod defaults {
    pub const POD_CIDR: &str = "10.244.0.0/16";
    pub const SERVICE_CIDR: &str = "10.0.0.0/16";
    pub const DNS_SERVICE_IP: &str = "10.0.0.10";
    pub const VNET_CIDR: &str = "10.224.0.0/12";
    pub const SUBNET_CIDR: &str = "10.224.0.0/16";
    /// `az aks create --node-count` default.
    pub const NODE_COUNT: u32 = 3;
    /// The API's default `count` for a pool a file declares without one.
    pub const API_POOL_COUNT: u32 = 1;
    pub const ROUTE_TABLE_LIMIT: u32 = 400;
    pub const POOL_NAME: &str = "nodepool1";
    /// Dual-stack (`ipFamilies: [IPv4, IPv6]`) defaults for the IPv6 half
    /// (`reference/aks-networking.md` §2: `--pod-cidrs 10.244.0.0/16,
    /// fd12:3456:789a::/64`, `--service-cidrs 10.0.0.0/16,
    /// fd12:3456:789a:1::/108`).
    pub const POD_CIDR_V6: &str = "fd12:3456:789a::/64";
    pub const SERVICE_CIDR_V6: &str = "fd12:3456:789a:1::/108";
}

/// The three AKS network models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkPlugin {
    /// Pods on a per-node /24 behind a bridge; a route table (UDR) carries
    /// each node's /24 to the node.
    Kubenet,
    /// Azure CNI with pods on VNet addresses (node subnet, or a pod subnet
    /// with dynamic allocation).
    Azure,
    /// Azure CNI Overlay: per-node /24 from a private pod CIDR, routed by the
    /// fabric in a routing domain of its own.
    Overlay,
}

impl NetworkPlugin {
    pub const ALL: [NetworkPlugin; 3] = [Self::Kubenet, Self::Azure, Self::Overlay];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kubenet => "kubenet",
            Self::Azure => "azure",
            Self::Overlay => "overlay",
        }
    }

    /// Max pods per node when none is given. `dynamic` is Azure CNI with a pod
    /// subnet, whose AKS default (250, `configure-azure-cni-dynamic-ip-allocation.md`)
    /// differs from the node-subnet one (30).
    pub fn default_max_pods(self, dynamic: bool) -> u32 {
        match self {
            Self::Kubenet => 110,
            Self::Azure if dynamic => 250,
            Self::Azure => 30,
            Self::Overlay => 250,
        }
    }

    /// Whether pods take addresses from per-node /24 blocks of the pod CIDR.
    pub fn uses_pod_cidr(self) -> bool {
        matches!(self, Self::Kubenet | Self::Overlay)
    }

    /// The `aksnet-cni` mode that implements this model on a node.
    pub fn cni_mode(self) -> &'static str {
        match self {
            Self::Kubenet => "bridge",
            Self::Azure | Self::Overlay => "transparent",
        }
    }
}

impl fmt::Display for NetworkPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for NetworkPlugin {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "kubenet" => Ok(Self::Kubenet),
            "azure" => Ok(Self::Azure),
            "overlay" => Ok(Self::Overlay),
            other => Err(format!(
                "'{other}' is not a network plugin; use kubenet, azure, or azure with --network-plugin-mode overlay"
            )),
        }
    }
}

/// One node pool (an AKS agent pool): how many nodes, how many pods each,
/// and how many extra nodes an upgrade adds at once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePool {
    pub name: String,
    pub count: u32,
    pub max_pods: u32,
    pub max_surge: MaxSurge,
    /// `System` or `User` (AKS: a System pool needs at least one node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// The pool's own node subnet; none: the cluster's `subnet_cidr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<PoolSubnet>,
    /// The pool's own pod subnet; none: the cluster's `pod_subnet_cidr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_subnet: Option<PoolSubnet>,
    /// `StaticBlock` gives nodes /28 blocks of the pod subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_ip_allocation_mode: Option<String>,
}

/// A subnet a pool names by resource ID; its range when the inputs hold it
/// (none: unknown, and capacity on it is unknown).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolSubnet {
    pub id: String,
    pub cidr: Option<Ipv4Net>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub route_table: bool,
}

/// Outbound connectivity (`outboundType` and its profiles).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outbound {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lb_managed_ips: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lb_own_ips: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lb_allocated_ports: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat_managed_ips: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat_idle_timeout: Option<u32>,
}

impl Outbound {
    fn is_default(&self) -> bool {
        *self == Outbound::default()
    }
}

/// The IPv6 half of a dual-stack design.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ipv6Design {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vnet_cidrs: Vec<Ipv6Net>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_cidr: Option<Ipv6Net>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_cidr: Option<Ipv6Net>,
}

/// Another subnet of the VNet (the service CIDR must not overlap it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedSubnet {
    pub name: String,
    pub cidr: Ipv4Net,
}

fn yes() -> bool {
    true
}

impl NodePool {
    /// Extra nodes an upgrade adds to this pool at once.
    pub fn surge_nodes(&self) -> u32 {
        self.max_surge.nodes(self.count)
    }
}

/// A cluster's network design, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterNetwork {
    pub network_plugin: NetworkPlugin,
    /// The VNet's address prefixes.
    pub vnet_cidrs: Vec<Ipv4Net>,
    /// The node subnet (and, for Azure CNI node subnet, the pods' subnet).
    pub subnet_cidr: Ipv4Net,
    /// Azure CNI with dynamic IP allocation: pods' own subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_subnet_cidr: Option<Ipv4Net>,
    /// Kubenet and overlay: the range carved into one /24 per node. Kept when
    /// given with azure so the planner can say it is ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_cidr: Option<Ipv4Net>,
    pub service_cidr: Ipv4Net,
    pub dns_service_ip: Ipv4Addr,
    pub node_pools: Vec<NodePool>,
    /// Routes a route table (UDR) may hold; kubenet needs one per node.
    pub route_table_limit: u32,
    /// False when the pools' subnets are known only by ID and the VNet's
    /// prefixes are not in the inputs: `vnet_cidrs` is then a stand-in.
    #[serde(default = "yes", skip_serializing_if = "Clone::clone")]
    pub vnet_known: bool,
    /// The nodes live in a subnet the user brings (a flag or a pool's
    /// `vnetSubnetID`), not one AKS creates.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub byo_subnet: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_subnets: Vec<NamedSubnet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_dataplane: Option<String>,
    #[serde(default, skip_serializing_if = "Outbound::is_default")]
    pub outbound: Outbound,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorized_ip_ranges: Vec<String>,
    /// A private cluster (`enablePrivateCluster`): the API server has no
    /// public endpoint.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub private_cluster: bool,
    /// `loadBalancerSku` as given (AKS's default is standard).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer_sku: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_version: Option<String>,
    /// `IPv4`, `IPv6`; empty means IPv4 only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_families: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Ipv6Design>,
}

impl ClusterNetwork {
    /// Azure CNI with a pod subnet (dynamic allocation in batches of 16).
    pub fn is_dynamic(&self) -> bool {
        self.network_plugin == NetworkPlugin::Azure
            && (self.pod_subnet_cidr.is_some()
                || self.node_pools.iter().any(|p| p.pod_subnet.is_some()))
    }

    /// A pool's node subnet: its own, or the cluster's. `None`: known only
    /// by ID.
    pub fn pool_subnet(&self, p: &NodePool) -> Option<Ipv4Net> {
        match &p.subnet {
            Some(s) => s.cidr,
            None => Some(self.subnet_cidr),
        }
    }

    /// A pool's pod subnet (Azure CNI dynamic): its own or the cluster's;
    /// `Some(None)` when known only by ID, `None` when it has none.
    pub fn pool_pod_subnet(&self, p: &NodePool) -> Option<Option<Ipv4Net>> {
        match &p.pod_subnet {
            Some(s) => Some(s.cidr),
            None => self.pod_subnet_cidr.map(Some),
        }
    }

    /// Every known node subnet the pools use, without repeats.
    pub fn node_subnets(&self) -> Vec<Ipv4Net> {
        let mut out: Vec<Ipv4Net> = Vec::new();
        for p in &self.node_pools {
            if let Some(n) = self.pool_subnet(p) {
                if !out.contains(&n) {
                    out.push(n);
                }
            }
        }
        if self.node_pools.is_empty() {
            out.push(self.subnet_cidr);
        }
        out
    }

    /// Every known pod subnet the pools use.
    pub fn pod_subnets(&self) -> Vec<Ipv4Net> {
        let mut out: Vec<Ipv4Net> = Vec::new();
        for p in &self.node_pools {
            if let Some(Some(n)) = self.pool_pod_subnet(p) {
                if !out.contains(&n) {
                    out.push(n);
                }
            }
        }
        if let (true, Some(ps)) = (out.is_empty(), self.pod_subnet_cidr) {
            out.push(ps);
        }
        out
    }

    /// The pod CIDR the model actually uses (none for Azure CNI).
    pub fn effective_pod_cidr(&self) -> Option<Ipv4Net> {
        if self.network_plugin.uses_pod_cidr() {
            self.pod_cidr
        } else {
            None
        }
    }

    /// Nodes in all pools, without surge.
    pub fn node_count(&self) -> u64 {
        self.node_pools.iter().map(|p| u64::from(p.count)).sum()
    }

    /// Extra nodes present during an upgrade, summed over pools.
    pub fn surge_nodes(&self) -> u64 {
        self.node_pools
            .iter()
            .map(|p| u64::from(p.surge_nodes()))
            .sum()
    }

    /// The largest max-pods setting of any pool (what a new node is assumed
    /// to need when capacity is projected).
    pub fn max_pods_per_node(&self) -> u32 {
        self.node_pools
            .iter()
            .map(|p| p.max_pods)
            .max()
            .unwrap_or(0)
    }

    /// Destinations that keep the pod's source address (ip-masq-agent's
    /// `nonMasqueradeCIDRs`, DESIGN §1): the pod CIDR for kubenet and overlay,
    /// the VNet for Azure CNI.
    pub fn non_masquerade_cidrs(&self) -> Vec<Ipv4Net> {
        match self.network_plugin {
            NetworkPlugin::Azure => self.vnet_cidrs.iter().map(|n| n.trunc()).collect(),
            _ => self
                .effective_pod_cidr()
                .map(|n| n.trunc())
                .into_iter()
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_names_round_trip() {
        for p in NetworkPlugin::ALL {
            assert_eq!(p.as_str().parse::<NetworkPlugin>().unwrap(), p);
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{}\"", p.as_str()));
        }
        assert!("calico".parse::<NetworkPlugin>().is_err());
    }

    #[test]
    fn defaults_per_model() {
        assert_eq!(NetworkPlugin::Kubenet.default_max_pods(false), 110);
        assert_eq!(NetworkPlugin::Azure.default_max_pods(false), 30);
        assert_eq!(NetworkPlugin::Azure.default_max_pods(true), 250);
        assert_eq!(NetworkPlugin::Overlay.default_max_pods(false), 250);
        assert_eq!(NetworkPlugin::Kubenet.cni_mode(), "bridge");
        assert_eq!(NetworkPlugin::Overlay.cni_mode(), "transparent");
    }
}
