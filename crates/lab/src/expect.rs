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
    /// A pod to a Service's ClusterIP (another pod answers).
    PodToService,
    /// A node to a NodePort on another node's address.
    NodeToNodeport,
    /// A pod to the ClusterIP of a Service it is an endpoint of (hairpin).
    PodToOwnService,
}

impl Kind {
    pub const ALL: [Kind; 15] = [
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
        Kind::PodToService,
        Kind::NodeToNodeport,
        Kind::PodToOwnService,
    ];

    /// The kinds probed through a Service (only when the lab has one).
    pub fn through_service(self) -> bool {
        matches!(
            self,
            Kind::PodToService | Kind::NodeToNodeport | Kind::PodToOwnService
        )
    }

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
            Kind::PodToService => "pod-to-service",
            Kind::NodeToNodeport => "node-to-nodeport",
            Kind::PodToOwnService => "pod-to-own-service",
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
        // DNAT only: pod → ClusterIP keeps the pod's address (kube-proxy
        // masquerades only sources outside the cluster CIDR).
        PodToService => (true, Some(Seen::Pod)),
        // externalTrafficPolicy: Cluster is masqueraded to a node address.
        NodeToNodeport => (true, Some(Seen::Node)),
        // Hairpin: masqueraded, so the reply comes back through the node
        // (when another endpoint answers, it sees the pod: see `check`).
        PodToOwnService => (true, Some(Seen::Node)),
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
            let pod_kinds: [Kind; 10] = Kind::ALL[..10].try_into().unwrap();
            pod_kinds.map(|k| expected(p, k))
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
        for p in [Kubenet, Azure, Overlay] {
            assert_eq!(expected(p, Kind::PodToService), (true, pod));
            assert_eq!(expected(p, Kind::NodeToNodeport), (true, node));
            assert_eq!(expected(p, Kind::PodToOwnService), (true, node));
        }
        assert_eq!(
            serde_json::to_string(&Kind::NodeToNodeport).unwrap(),
            "\"node-to-nodeport\""
        );
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
