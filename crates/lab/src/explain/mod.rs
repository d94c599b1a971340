//! `aksnet explain FROM TO`: every step one connection takes through the
//! cluster network and why, computed from the lab's state and the store
//! (pure): the route at each hop (pod, node, fabric route table, other
//! node), each NAT (a Service's DNAT and the backend chosen, SNAT to the
//! node IP or the public IP), the NSG rule that decides at the fabric, the
//! NetworkPolicies (by name and rule index) of the source's egress and the
//! destination's ingress, and the verdict.
//!
//! The packet is followed as the data plane moves it: the source node's
//! agent (kube-proxy) DNATs a ClusterIP or load-balancer IP, a NodePort is
//! DNAT'd on the node it arrives at; egress policy is decided on the
//! post-DNAT destination at the source's node, ingress policy on the
//! source address the destination pod receives (after any SNAT); the
//! fabric applies the NSG (outbound for what leaves a node NIC, inbound for
//! what goes to one) and its route tables (DESIGN §1, §3). A Service with
//! several backends is followed once per backend (kube-proxy picks one at
//! random): the flow is allowed when every backend's path is.
//!
//! With a store alone (`--store`), the fabric is not known: no NSG, and no
//! VM or internet host; the routes are those the store holds.
//!
//! [`follow`] moves the packet hop by hop; [`fabric_hop`] holds the
//! fabric's route, the NSG and the deliveries; [`verify`] compares with
//! probes.

use std::net::Ipv4Addr;

use aksnet_core::cluster::ClaimKind;
use aksnet_core::k8s::endpoints;
use aksnet_core::k8s::policy_eval::{DirectionVerdict, Flow, PolicyView};
use aksnet_core::k8s::service::ServicePort;
use aksnet_core::k8s::{K8sState, Object, Service};
use aksnet_core::spec::NetworkPlugin;
use ipnet::Ipv4Net;
use serde::Serialize;

use crate::fabric::virtual_network;
use crate::nsg::{self, Access, NsgRule};
use crate::probe::{Protocol, PROBE_PORT};
use crate::snapshot::Snapshot;
use crate::state::{LabState, NodeState, PodState};
use crate::targets::Destination;

/// What an explanation is computed over.
pub struct World<'a> {
    pub state: &'a LabState,
    pub snap: &'a Snapshot,
    pub k8s: &'a K8sState,
    /// A real lab: its fabric, NSG, VM and internet host are known; false
    /// for a store alone (the state then holds only nodes and pods).
    pub lab: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepKind {
    Route,
    Dnat,
    Snat,
    Nsg,
    Policy,
    Deliver,
    Drop,
}

/// One thing that happens to the packet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// Where: `pod x/a`, `node-1`, `fabric`, `vm`, `internet`.
    pub at: String,
    pub kind: StepKind,
    pub detail: String,
    /// False for the step that stops the packet.
    pub ok: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackendRef {
    pub ip: String,
    pub port: u16,
    pub pod: Option<String>,
    pub node: Option<String>,
}

/// The NSG rule that decided one direction at the fabric.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NsgDecision {
    pub direction: nsg::Direction,
    pub priority: u32,
    pub rule: String,
    pub access: Access,
    pub default: bool,
}

/// The way of one packet (per Service backend).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Path {
    pub backend: Option<BackendRef>,
    pub steps: Vec<Step>,
    pub allowed: bool,
    /// Who answers (`NAMESPACE/NAME`, a node, `vm`, `internet`), when allowed.
    pub delivered_to: Option<String>,
    /// The source address the destination sees.
    pub source_ip_seen: Option<String>,
    pub policy: Vec<DirectionVerdict>,
    pub nsg: Vec<NsgDecision>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    pub probes: u32,
    pub reached: u32,
    pub answered_by: Vec<String>,
    pub source_ip_seen: Option<String>,
    pub reachable: bool,
    /// The data plane did what the explanation says.
    pub agrees: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// `aksnet explain --output json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    pub from: String,
    pub to: String,
    pub network_plugin: String,
    pub source_ip: String,
    pub address: String,
    pub port: u16,
    pub protocol: String,
    /// `NAMESPACE/NAME` of the Service TO reaches, if any.
    pub service: Option<String>,
    pub paths: Vec<Path>,
    pub allowed: bool,
    /// `allowed`, `denied`, or `allowed to N of M backends`.
    pub verdict: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
}

/// Where the packet is.
#[derive(Debug, Clone)]
enum Loc {
    /// At a node: from one of its pods, from itself, or from the fabric.
    Node { name: String, from_fabric: bool },
    /// In the fabric; `node_subnet` when it came from a node NIC.
    Fabric { node_subnet: bool },
}

#[derive(Debug, Clone)]
struct Packet {
    saddr: Ipv4Addr,
    daddr: Ipv4Addr,
    dport: u16,
    proto: Protocol,
    /// kube-proxy marked it for masquerade.
    masq: bool,
}

/// A Service address the packet is sent to.
struct ServiceHit<'a> {
    svc: &'a Service,
    port: Option<&'a ServicePort>,
    how: &'static str,
}

fn svc_id(s: &Service) -> String {
    format!(
        "{}/{}",
        s.metadata.namespace.as_deref().unwrap_or("default"),
        s.metadata.name
    )
}

fn proto_k8s(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
    }
}

fn lb_ips(s: &Service) -> impl Iterator<Item = Ipv4Addr> + '_ {
    s.status
        .as_ref()
        .and_then(|st| st.load_balancer.as_ref())
        .into_iter()
        .flat_map(|lb| lb.ingress.iter())
        .filter_map(|i| i.ip.as_deref()?.parse().ok())
}

impl<'a> World<'a> {
    fn plugin(&self) -> NetworkPlugin {
        self.state.network.network_plugin
    }

    fn node(&self, name: &str) -> Option<&'a NodeState> {
        self.state.nodes.iter().find(|n| n.name == name)
    }

    fn node_by_ip(&self, ip: Ipv4Addr) -> Option<&'a NodeState> {
        self.state.nodes.iter().find(|n| n.ip == ip)
    }

    fn pod_by_ip(&self, ip: Ipv4Addr) -> Option<&'a PodState> {
        self.state.pods.iter().find(|p| p.ip == Some(ip))
    }

    fn services(&self) -> impl Iterator<Item = &'a Service> + 'a {
        self.k8s.objects.values().filter_map(|s| match &s.value {
            Object::Service(svc) => Some(svc),
            _ => None,
        })
    }

    /// The name of whatever holds `ip`.
    pub fn name_of(&self, ip: Ipv4Addr) -> String {
        if let Some(p) = self.pod_by_ip(ip) {
            return format!("pod {}", p.id());
        }
        if let Some(n) = self.node_by_ip(ip) {
            return n.name.clone();
        }
        if self.lab && ip == self.state.addressing.vm_ip {
            return "vm".into();
        }
        if self.lab && ip == self.state.addressing.internet_ip {
            return "internet".into();
        }
        if let Some(s) = self.services().find(|s| s.cluster_ipv4() == Some(ip)) {
            return format!("Service {} (ClusterIP)", svc_id(s));
        }
        ip.to_string()
    }

    /// The Service address `p` is sent to, as the agent of `at` sees it.
    fn service_at(&self, p: &Packet, at: &NodeState) -> Option<ServiceHit<'a>> {
        let proto = proto_k8s(p.proto);
        let port_of = |svc: &'a Service, f: &dyn Fn(&ServicePort) -> bool| {
            svc.spec
                .ports
                .iter()
                .find(|sp| sp.protocol().eq_ignore_ascii_case(proto) && f(sp))
        };
        for svc in self.services() {
            if svc.cluster_ipv4() == Some(p.daddr) {
                return Some(ServiceHit {
                    svc,
                    port: port_of(svc, &|sp| sp.port == i64::from(p.dport)),
                    how: "ClusterIP",
                });
            }
            if lb_ips(svc).any(|ip| ip == p.daddr) {
                return Some(ServiceHit {
                    svc,
                    port: port_of(svc, &|sp| sp.port == i64::from(p.dport)),
                    how: "load-balancer IP",
                });
            }
            if p.daddr == at.ip {
                if let Some(sp) = port_of(svc, &|sp| sp.node_port == Some(i64::from(p.dport))) {
                    return Some(ServiceHit {
                        svc,
                        port: Some(sp),
                        how: "NodePort",
                    });
                }
            }
        }
        None
    }

    /// Addresses whose traffic to a ClusterIP keeps its source (kube-proxy's
    /// `--cluster-cidr`, the agent's `cluster-cidrs` set).
    fn cluster_cidrs(&self) -> Vec<Ipv4Net> {
        let net = &self.state.network;
        match net.network_plugin {
            NetworkPlugin::Kubenet | NetworkPlugin::Overlay => {
                net.effective_pod_cidr().into_iter().collect()
            }
            NetworkPlugin::Azure => vec![net.pod_subnet_cidr.unwrap_or(net.subnet_cidr).trunc()],
        }
    }

    /// Kubenet: the address of the node's bridge `cbr0` (its block's .1).
    fn bridge_address(&self, node: &str) -> Option<Ipv4Addr> {
        (self.plugin() == NetworkPlugin::Kubenet)
            .then(|| self.snap.block_of(node))
            .flatten()
            .map(|b| Ipv4Addr::from(u32::from(b.network()) + 1))
    }

    fn node_pod_sources(&self, node: &str) -> Vec<Ipv4Net> {
        match self.plugin() {
            NetworkPlugin::Azure => self.cluster_cidrs(),
            _ => self.snap.blocks_of(node).collect(),
        }
    }

    /// Explains one flow. `source_ip` is FROM's address; `dest` TO's
    /// address, port and protocol (as `lab probe` resolves them).
    pub fn explain(
        &self,
        from: &str,
        to: &str,
        source_ip: Ipv4Addr,
        dest: &Destination,
    ) -> Explanation {
        let start = Packet {
            saddr: source_ip,
            daddr: dest.address,
            dport: dest.port,
            proto: dest.protocol,
            masq: false,
        };
        // The Service, if TO is one: its backends each get a path.
        // The node whose agent DNATs: the one a NodePort is addressed to,
        // else the first the packet meets.
        let first_node = self
            .node_by_ip(dest.address)
            .or_else(|| self.entry_node(source_ip, dest.address));
        let hit = first_node.and_then(|n| self.service_at(&start, n));
        let mut paths = vec![];
        let service = hit.as_ref().map(|h| svc_id(h.svc));
        match hit
            .as_ref()
            .map(|h| (h, self.backends_for(h, first_node, source_ip)))
        {
            Some((_, Some(backends))) if !backends.is_empty() => {
                let n = backends.len();
                for b in &backends {
                    paths.push(self.follow(start.clone(), Some((b, n))));
                }
            }
            _ => paths.push(self.follow(start.clone(), None)),
        }
        let ok = paths.iter().filter(|p| p.allowed).count();
        let allowed = ok == paths.len();
        let verdict = if allowed {
            "allowed".to_string()
        } else if ok == 0 {
            "denied".to_string()
        } else {
            format!("allowed to {ok} of {} backends", paths.len())
        };
        Explanation {
            from: from.to_string(),
            to: to.to_string(),
            network_plugin: self.state.network.network_plugin.as_str().to_string(),
            source_ip: source_ip.to_string(),
            address: dest.address.to_string(),
            port: dest.port,
            protocol: dest.protocol.as_str().to_string(),
            service,
            paths,
            allowed,
            verdict,
            verification: None,
        }
    }

    /// The node whose agent first sees a packet from `src` to `dst`: the
    /// source's node (a pod's, or the node itself), else the node `dst` is
    /// (a NodePort from outside).
    fn entry_node(&self, src: Ipv4Addr, dst: Ipv4Addr) -> Option<&'a NodeState> {
        if let Some(p) = self.pod_by_ip(src) {
            return self.node(&p.node);
        }
        self.node_by_ip(src).or_else(|| self.node_by_ip(dst))
    }

    /// The backends kube-proxy picks from for this Service port (after the
    /// traffic policies); `None` when the port is not one the Service declares.
    fn backends_for(
        &self,
        hit: &ServiceHit<'a>,
        at: Option<&NodeState>,
        src: Ipv4Addr,
    ) -> Option<Vec<endpoints::Backend>> {
        let sp = hit.port?;
        let slices = endpoints::service_slices(self.k8s, hit.svc);
        let mut b = endpoints::backends(hit.svc, &slices)
            .into_iter()
            .find(|(p, _)| p == sp)
            .map(|(_, b)| b)
            .unwrap_or_default();
        let here = at.map(|n| n.name.as_str());
        let from_cluster = self.cluster_cidrs().iter().any(|c| c.contains(&src));
        let local = match hit.how {
            "ClusterIP" => hit.svc.internal_local(),
            _ => hit.svc.external_local() && !from_cluster,
        };
        if local {
            b.retain(|x| x.node.as_deref() == here);
        }
        Some(b)
    }
}

mod fabric_hop;
mod follow;
mod verify;

pub use fabric_hop::{nsg_decide, NsgPacket};
pub use verify::{store_state, verify};

#[cfg(test)]
mod tests;
