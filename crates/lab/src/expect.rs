//! What DESIGN §1 says each model does, per kind of connection. Pure.

use aksnet_core::spec::NetworkPlugin;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    PodToPodSameNode,
    PodToPodCrossNode,
    PodToNode,
    NodeToPod,
    PodToVnetVm,
    VnetVmToPod,
    PodToInternet,
    /// A pod to a Service named as a pod names it (`kube-dns.kube-system`),
    /// resolved through its resolver configuration and the cluster DNS.
    PodToServiceByName,
    /// The internet host to the API server's public endpoint.
    InternetToApiserver,
    /// A node to the API server (through the outbound public IP).
    NodeToApiserver,
    /// The internet host to a Service's load-balancer frontend (issue 13;
    /// expected per Service: [`crate::lb::check`]).
    #[serde(rename = "internet-to-loadbalancer")]
    InternetToLoadBalancer,
    /// The VNet VM to an internal load balancer's frontend.
    #[serde(rename = "vm-to-internal-loadbalancer")]
    VmToInternalLoadBalancer,
}

impl Kind {
    pub const ALL: [Kind; 12] = [
        Kind::PodToPodSameNode,
        Kind::PodToPodCrossNode,
        Kind::PodToNode,
        Kind::NodeToPod,
        Kind::PodToVnetVm,
        Kind::VnetVmToPod,
        Kind::PodToInternet,
        Kind::PodToServiceByName,
        Kind::InternetToApiserver,
        Kind::NodeToApiserver,
        Kind::InternetToLoadBalancer,
        Kind::VmToInternalLoadBalancer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::PodToPodSameNode => "pod-to-pod-same-node",
            Kind::PodToPodCrossNode => "pod-to-pod-cross-node",
            Kind::PodToNode => "pod-to-node",
            Kind::NodeToPod => "node-to-pod",
            Kind::PodToVnetVm => "pod-to-vnet-vm",
            Kind::VnetVmToPod => "vnet-vm-to-pod",
            Kind::PodToInternet => "pod-to-internet",
            Kind::PodToServiceByName => "pod-to-service-by-name",
            Kind::InternetToApiserver => "internet-to-apiserver",
            Kind::NodeToApiserver => "node-to-apiserver",
            Kind::InternetToLoadBalancer => "internet-to-loadbalancer",
            Kind::VmToInternalLoadBalancer => "vm-to-internal-loadbalancer",
        }
    }
}

/// Whose address a destination saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Seen {
    Pod,
    Node,
    Vm,
    Public,
    /// The internet host's own address (no NAT on the way).
    Internet,
}

impl Seen {
    pub fn as_str(self) -> &'static str {
        match self {
            Seen::Pod => "pod",
            Seen::Node => "node",
            Seen::Vm => "vm",
            Seen::Public => "public",
            Seen::Internet => "internet",
        }
    }
}

/// Reachable, and if so whose address the destination sees (DESIGN §1).
pub fn expected(plugin: NetworkPlugin, kind: Kind) -> (bool, Option<Seen>) {
    use Kind::*;
    let azure = plugin == NetworkPlugin::Azure;
    match kind {
        PodToPodSameNode | PodToPodCrossNode => (true, Some(Seen::Pod)),
        // kubenet/overlay SNAT to the node IP; Azure CNI keeps the pod IP
        // for VNet destinations (nonMasqueradeCIDRs = the VNet).
        PodToNode | PodToVnetVm => (true, Some(if azure { Seen::Pod } else { Seen::Node })),
        NodeToPod => (true, Some(Seen::Node)),
        // Only Azure CNI puts pods on VNet addresses the VM can route to.
        VnetVmToPod => {
            if azure {
                (true, Some(Seen::Vm))
            } else {
                (false, None)
            }
        }
        // SNAT to the node IP, then the fabric's outbound SNAT.
        PodToInternet => (true, Some(Seen::Public)),
        // The ClusterIP is DNAT'd to a DNS pod; the client's address is
        // kept (kube-proxy masquerades only from outside the pod ranges).
        PodToServiceByName => (true, Some(Seen::Pod)),
        // Open by default; authorized IP ranges may refuse it
        // (`apiserver::admits`, which `lab check` asks).
        InternetToApiserver => (true, Some(Seen::Internet)),
        // AKS always authorizes the cluster's outbound IP.
        NodeToApiserver => (true, Some(Seen::Public)),
        // What the Service says (its policy, endpoints, source ranges,
        // internal or not): crate::lb::check::expected. With endpoints and
        // `Cluster`, a node's address.
        InternetToLoadBalancer | VmToInternalLoadBalancer => (true, Some(Seen::Node)),
    }
}

/// A kubenet node without a route in the route table (`NetworkUnavailable`)
/// is unreachable from other nodes: its pods cannot be reached, and its pods'
/// replies to other nodes' pods have no route back. Returns the note to show.
pub fn unreachable_because(
    plugin: NetworkPlugin,
    kind: Kind,
    from_node_unavailable: Option<&str>,
    to_node_unavailable: Option<&str>,
) -> Option<String> {
    if plugin != NetworkPlugin::Kubenet {
        return None;
    }
    let note =
        |n: &str| format!("{n} is NetworkUnavailable: its /24 has no route in the route table");
    match kind {
        Kind::PodToPodCrossNode => to_node_unavailable.or(from_node_unavailable).map(note),
        Kind::NodeToPod => to_node_unavailable.map(note),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn design_matrix() {
        use NetworkPlugin::*;
        let row = |p| {
            Kind::ALL[..7]
                .iter()
                .map(|k| expected(p, *k))
                .collect::<Vec<_>>()
        };
        let pod = Some(Seen::Pod);
        let node = Some(Seen::Node);
        let public = Some(Seen::Public);
        assert_eq!(
            row(Kubenet),
            [
                (true, pod),
                (true, pod),
                (true, node),
                (true, node),
                (true, node),
                (false, None),
                (true, public),
                (true, pod),
                (true, Some(Seen::Internet)),
                (true, public)
            ]
        );
        assert_eq!(
            row(Azure),
            [
                (true, pod),
                (true, pod),
                (true, pod),
                (true, node),
                (true, pod),
                (true, Some(Seen::Vm)),
                (true, public),
                (true, pod),
                (true, Some(Seen::Internet)),
                (true, public)
            ]
        );
        assert_eq!(row(Overlay), row(Kubenet));
        assert_eq!(
            serde_json::to_string(&Kind::VnetVmToPod).unwrap(),
            "\"vnet-vm-to-pod\""
        );
        for k in Kind::ALL {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
    }

    #[test]
    fn unavailable_node_notes() {
        use NetworkPlugin::*;
        assert!(
            unreachable_because(Kubenet, Kind::PodToPodCrossNode, None, Some("node-3")).is_some()
        );
        assert!(
            unreachable_because(Kubenet, Kind::PodToPodCrossNode, Some("node-3"), None).is_some()
        );
        assert!(unreachable_because(Kubenet, Kind::NodeToPod, Some("node-3"), None).is_none());
        assert!(unreachable_because(Kubenet, Kind::PodToVnetVm, Some("node-3"), None).is_none());
        assert!(unreachable_because(Overlay, Kind::NodeToPod, None, Some("node-3")).is_none());
    }
}
