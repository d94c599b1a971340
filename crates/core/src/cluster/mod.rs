//! Cluster objects as they live in the store (JSON values) and the key
//! layout that holds them. The agent writes them, `aksnet cluster`/`node`
//! read them, and the lab's fabric programs its routes from them.
//!
//! Every claim is its own key, created with a create-if-absent transaction,
//! so two nodes can never hold the same block, address or route slot:
//!
//! | key | value | written by |
//! |---|---|---|
//! | `/aksnet/cluster/network` | [`ClusterNetwork`] | `cluster init` |
//! | `/aksnet/nodes/<name>` | [`NodeRecord`] | the node's agent (attached to its lease) |
//! | `/aksnet/blocks/<a.b.c.d>-<len>` | [`Claim`] | kubenet/overlay agents: the node's /24 |
//! | `/aksnet/ips/<a.b.c.d>` | [`Claim`] | node IPs, and azure pod addresses (static or dynamic) |
//! | `/aksnet/routes/<slot>` | [`RouteEntry`] | kubenet agents with `--routes fabric`: one slot per node, slots `0..route_table_limit` |
//! | `/aksnet/k8s/<resource>/<namespace>/<name>` | a Kubernetes object ([`crate::k8s::Object`]): `pods`, `deployments`, `services`, `endpointslices`, `networkpolicies` | `aksnet apply` |
//! | `/aksnet/k8s/namespaces/<name>` | a [`crate::k8s::Namespace`] | `aksnet apply` |
//! | `/aksnet/k8s/ipaddresses/<a.b.c.d>` | [`crate::k8s::store::Allocation`]: the Service holding that ClusterIP | `aksnet apply`, with the Service |
//! | `/aksnet/k8s/nodeports/<port>` | [`crate::k8s::store::Allocation`]: the Service holding that NodePort | `aksnet apply`, with the Service |
//!
//! The `/aksnet/k8s/` keys and their decoder are in [`crate::k8s::store`].
//!
//! [`view`] is the one decoder of this layout: the agent, the lab and the
//! CLI all read the cluster through [`view::ClusterView`].

pub mod view;

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

pub use crate::spec::ClusterNetwork;
pub use view::{At, ClaimAt, ClusterView, Entry, Problem};

pub const PREFIX: &str = "/aksnet/";
pub const NETWORK_KEY: &str = "/aksnet/cluster/network";
pub const NODES_PREFIX: &str = "/aksnet/nodes/";
pub const BLOCKS_PREFIX: &str = "/aksnet/blocks/";
pub const IPS_PREFIX: &str = "/aksnet/ips/";
pub const ROUTES_PREFIX: &str = "/aksnet/routes/";

pub fn node_key(name: &str) -> String {
    format!("{NODES_PREFIX}{name}")
}

/// `/aksnet/blocks/10.244.3.0-24`: no `/` inside the last segment, so a
/// prefix listing of the blocks never descends.
pub fn block_key(block: &Ipv4Net) -> String {
    format!("{BLOCKS_PREFIX}{}-{}", block.network(), block.prefix_len())
}

pub fn ip_key(ip: Ipv4Addr) -> String {
    format!("{IPS_PREFIX}{ip}")
}

/// Slots are zero-padded so a listing is in slot order.
pub fn route_key(slot: u32) -> String {
    format!("{ROUTES_PREFIX}{slot:05}")
}

/// The block a block key names, if it is one.
pub fn parse_block_key(key: &str) -> Option<Ipv4Net> {
    let rest = key.strip_prefix(BLOCKS_PREFIX)?;
    let (ip, len) = rest.rsplit_once('-')?;
    Ipv4Net::new(ip.parse().ok()?, len.parse().ok()?).ok()
}

/// The address an IP claim key names, if it is one.
pub fn parse_ip_key(key: &str) -> Option<Ipv4Addr> {
    key.strip_prefix(IPS_PREFIX)?.parse().ok()
}

/// The slot a route key names, if it is one.
pub fn parse_route_key(key: &str) -> Option<u32> {
    key.strip_prefix(ROUTES_PREFIX)?.parse().ok()
}

/// Who holds a block or an address, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub node: String,
    pub kind: ClaimKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClaimKind {
    /// A node's /24 of the pod CIDR (kubenet, overlay).
    PodBlock,
    /// A node's own address in the node subnet.
    NodeIp,
    /// An address reserved for the node's pods (Azure CNI).
    PodIp,
}

/// A kubenet route-table entry: the node's /24 goes to the node's IP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteEntry {
    pub node: String,
    pub destination: Ipv4Net,
    pub next_hop: Ipv4Addr,
}

/// How a node's pods reach pods on other nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RouteMode {
    /// The fabric (Azure SDN, or the lab's) routes between nodes: the agent
    /// publishes kubenet routes to the store's route table.
    #[default]
    Fabric,
    /// Nodes are L2 neighbours: each agent routes peers' blocks via their IPs.
    HostGw,
    /// Nodes are not neighbours: a flannel-style VXLAN overlay.
    Vxlan,
}

/// A node as the cluster knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub name: String,
    pub ip: Ipv4Addr,
    #[serde(default)]
    pub routes: RouteMode,
    /// Kubenet/overlay: the node's /24 of the pod CIDR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block: Option<Ipv4Net>,
    /// Azure CNI: the pod addresses the node holds, as ranges.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pool: Vec<IpRange>,
    /// Azure CNI dynamic: addresses assigned to pods right now (what the
    /// pool is sized against).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_used: Option<u32>,
    /// VXLAN: the node's VTEP MAC address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vtep_mac: Option<String>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// What the node's agent runs with, for `aksnet status` (absent in
    /// records older agents wrote).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentInfo>,
    /// What the node's policy engine has programmed (absent in records of
    /// agents without one): a kubelet starts a pod's containers once this
    /// covers the pod ([`PolicyStatus::revision`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyStatus>,
}

/// The NetworkPolicy state a node enforces.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyStatus {
    /// The highest `mod_revision` of the Kubernetes objects (pods,
    /// namespaces, policies) the programmed table was computed from: a pod
    /// written at revision W is enforced once this is at least W.
    pub revision: i64,
    /// Policies selecting a pod of this node.
    pub policies: usize,
    /// Local pods isolated for ingress / egress.
    pub isolated_ingress: usize,
    pub isolated_egress: usize,
    /// Set while the desired table could not be programmed: the node then
    /// holds the lockdown table (isolated pods allow nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
}

/// Where a node's agent runs and what it manages: enough for a doctor to
/// find the node's CNI directories and ask the agent whether it is healthy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInfo {
    #[serde(default)]
    pub pid: u32,
    #[serde(default)]
    pub hostname: String,
    /// The managed namespace (`--netns`), none for the agent's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
    #[serde(default)]
    pub cni_conf_dir: String,
    #[serde(default)]
    pub cni_bin_dir: String,
    #[serde(default)]
    pub ipam_data_dir: String,
    /// Where /healthz and /metrics listen (inside `netns`), none when off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_addr: Option<String>,
}

/// An inclusive range of addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpRange {
    pub start: Ipv4Addr,
    pub end: Ipv4Addr,
}

impl IpRange {
    pub fn len(&self) -> u64 {
        u64::from(u32::from(self.end)).saturating_sub(u64::from(u32::from(self.start))) + 1
    }

    pub fn is_empty(&self) -> bool {
        u32::from(self.end) < u32::from(self.start)
    }

    /// Joins sorted addresses into the fewest ranges.
    pub fn coalesce(addrs: &[Ipv4Addr]) -> Vec<IpRange> {
        let mut sorted: Vec<u32> = addrs.iter().map(|a| u32::from(*a)).collect();
        sorted.sort_unstable();
        sorted.dedup();
        let mut out: Vec<IpRange> = Vec::new();
        for a in sorted {
            match out.last_mut() {
                Some(r) if u32::from(r.end).checked_add(1) == Some(a) => r.end = a.into(),
                _ => out.push(IpRange {
                    start: a.into(),
                    end: a.into(),
                }),
            }
        }
        out
    }
}

/// A node condition, as Kubernetes reports them (`NetworkUnavailable`
/// with a reason when the node's route did not fit, for instance).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condition {
    #[serde(rename = "type")]
    pub kind: String,
    pub status: bool,
    pub reason: String,
    #[serde(default)]
    pub message: String,
}

pub const NETWORK_UNAVAILABLE: &str = "NetworkUnavailable";

impl NodeRecord {
    /// A node that holds nothing yet and has no conditions.
    pub fn new(name: &str, ip: Ipv4Addr, routes: RouteMode) -> Self {
        NodeRecord {
            name: name.to_string(),
            ip,
            routes,
            block: None,
            pool: vec![],
            pool_used: None,
            vtep_mac: None,
            conditions: vec![],
            agent: None,
            policy: None,
        }
    }

    /// Replaces the condition of the same kind; returns whether it changed.
    pub fn set_condition(&mut self, c: Condition) -> bool {
        match self.conditions.iter_mut().find(|x| x.kind == c.kind) {
            Some(existing) if *existing == c => false,
            Some(existing) => {
                *existing = c;
                true
            }
            None => {
                self.conditions.push(c);
                true
            }
        }
    }

    pub fn condition(&self, kind: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.kind == kind)
    }

    pub fn network_unavailable(&self) -> bool {
        self.condition(NETWORK_UNAVAILABLE)
            .is_some_and(|c| c.status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_records_with_and_without_agent_info_read() {
        // An older agent's record: no `agent` field.
        let old = r#"{"name":"n1","ip":"10.224.0.4","routes":"host-gw","block":"10.244.0.0/24","conditions":[]}"#;
        let r: NodeRecord = serde_json::from_str(old).unwrap();
        assert_eq!(r.agent, None);
        assert!(!serde_json::to_string(&r).unwrap().contains("agent"));
        // A partial one (fields added later default).
        let partial =
            r#"{"name":"n1","ip":"10.224.0.4","agent":{"pid":7,"cni_conf_dir":"/etc/cni/net.d"}}"#;
        let r: NodeRecord = serde_json::from_str(partial).unwrap();
        let a = r.agent.clone().unwrap();
        assert_eq!((a.pid, a.cni_conf_dir.as_str()), (7, "/etc/cni/net.d"));
        assert_eq!((a.netns, a.metrics_addr), (None, None));
        let mut full = NodeRecord::new("n2", "10.224.0.5".parse().unwrap(), RouteMode::Fabric);
        full.agent = Some(AgentInfo {
            pid: 42,
            hostname: "h".into(),
            netns: Some("/run/netns/x".into()),
            cni_conf_dir: "/c".into(),
            cni_bin_dir: "/b".into(),
            ipam_data_dir: "/i".into(),
            metrics_addr: Some("127.0.0.1:9965".into()),
        });
        let back: NodeRecord =
            serde_json::from_str(&serde_json::to_string(&full).unwrap()).unwrap();
        assert_eq!(back, full);
    }

    #[test]
    fn keys_round_trip() {
        let b: Ipv4Net = "10.244.3.0/24".parse().unwrap();
        assert_eq!(block_key(&b), "/aksnet/blocks/10.244.3.0-24");
        assert_eq!(parse_block_key(&block_key(&b)), Some(b));
        assert_eq!(parse_block_key("/aksnet/blocks/junk"), None);
        let ip: Ipv4Addr = "10.224.0.7".parse().unwrap();
        assert_eq!(parse_ip_key(&ip_key(ip)), Some(ip));
        assert_eq!(route_key(7), "/aksnet/routes/00007");
        assert!(route_key(10) > route_key(9));
    }

    #[test]
    fn ranges_coalesce() {
        let a = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        let r = IpRange::coalesce(&[
            a("10.0.0.5"),
            a("10.0.0.3"),
            a("10.0.0.4"),
            a("10.0.0.9"),
            a("10.0.0.4"),
        ]);
        assert_eq!(r.len(), 2);
        assert_eq!(
            (r[0].start, r[0].end, r[0].len()),
            (a("10.0.0.3"), a("10.0.0.5"), 3)
        );
        assert_eq!(r[1].len(), 1);
        assert!(IpRange::coalesce(&[]).is_empty());
        let top = IpRange::coalesce(&[a("255.255.255.255"), a("255.255.255.254")]);
        assert_eq!(top.len(), 1);
    }

    #[test]
    fn conditions_replace_by_kind() {
        let mut n = NodeRecord::new("n1", "10.224.0.4".parse().unwrap(), RouteMode::Fabric);
        let down = Condition {
            kind: NETWORK_UNAVAILABLE.into(),
            status: true,
            reason: "RouteTableFull".into(),
            message: "400 of 400 routes in use".into(),
        };
        assert!(n.set_condition(down.clone()));
        assert!(!n.set_condition(down));
        assert!(n.network_unavailable());
        let json = serde_json::to_value(&n).unwrap();
        assert_eq!(json["conditions"][0]["type"], NETWORK_UNAVAILABLE);
        assert_eq!(json["routes"], "fabric");
    }
}
