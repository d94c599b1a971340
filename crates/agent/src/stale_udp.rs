//! Stale UDP conntrack entries of Services. A UDP "connection" never ends
//! by itself: while a client keeps sending, its conntrack entry keeps the
//! DNAT it got on the first packet, so after its endpoint goes the client
//! keeps being sent to the dead address. kube-proxy deletes the UDP entries
//! whose original destination is a Service's address and port (ClusterIP,
//! load-balancer IP, or a NodePort on the node) and whose reply source is
//! an endpoint the Service no longer has; so does the agent.
//!
//! The selection is computed from what the table serves now (and what it
//! served at the last sweep, for Services that went), not from a memory of
//! removed endpoints: a restarted agent cleans what changed while it was
//! down, as kube-proxy's conntrack reconciler does since 1.32.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use aksnet_linux::conntrack::{Flow, PROTO_UDP};

use crate::services::ServicesInput;

/// An endpoint as the reply of a translated flow shows it.
pub type Endpoint = (Ipv4Addr, u16);

/// Where the UDP Service ports of a node are reached, with their endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UdpFrontends {
    /// ClusterIPs and load-balancer IPs: `(address, port)` → endpoints.
    pub ips: BTreeMap<(Ipv4Addr, u16), BTreeSet<Endpoint>>,
    /// NodePorts, on `node_ips`: port → endpoints.
    pub node_ports: BTreeMap<u16, BTreeSet<Endpoint>>,
    pub node_ips: BTreeSet<Ipv4Addr>,
}

impl UdpFrontends {
    /// The UDP frontends of `input`.
    pub fn of(input: &ServicesInput) -> UdpFrontends {
        let mut out = UdpFrontends {
            node_ips: input.node_ips.iter().copied().collect(),
            ..UdpFrontends::default()
        };
        for (svc, ports) in &input.services {
            let Some(cip) = svc.cluster_ipv4() else {
                continue;
            };
            let ingress = svc.ingress_ips();
            for p in ports {
                if p.port.protocol() != "UDP" {
                    continue;
                }
                let Ok(port) = u16::try_from(p.port.port) else {
                    continue;
                };
                let eps: BTreeSet<Endpoint> = p.backends.iter().map(|b| (b.ip, b.port)).collect();
                for ip in std::iter::once(cip).chain(ingress.iter().copied()) {
                    out.ips.entry((ip, port)).or_default().extend(&eps);
                }
                if let Some(np) = p
                    .port
                    .node_port
                    .and_then(|n| u16::try_from(n).ok())
                    .filter(|n| *n > 0)
                {
                    out.node_ports.entry(np).or_default().extend(&eps);
                }
            }
        }
        out
    }

    /// No UDP Service port at all.
    pub fn is_empty(&self) -> bool {
        self.ips.is_empty() && self.node_ports.is_empty()
    }

    /// `self`, plus the frontends of `before` that are gone, with no
    /// endpoint: their translated flows are stale too.
    pub fn with_gone(&self, before: &UdpFrontends) -> UdpFrontends {
        let mut out = self.clone();
        for k in before.ips.keys() {
            out.ips.entry(*k).or_default();
        }
        for k in before.node_ports.keys() {
            out.node_ports.entry(*k).or_default();
        }
        out.node_ips.extend(&before.node_ips);
        out
    }

    /// A UDP flow to one of these frontends that was translated to an
    /// endpoint the frontend no longer has.
    pub fn is_stale(&self, f: &Flow) -> bool {
        if f.orig.proto != PROTO_UDP {
            return false;
        }
        let reply_from = (f.reply.src, f.reply.sport);
        // Not translated: nobody chose an endpoint for it.
        if reply_from == (f.orig.dst, f.orig.dport) {
            return false;
        }
        let eps = self.ips.get(&(f.orig.dst, f.orig.dport)).or_else(|| {
            self.node_ips
                .contains(&f.orig.dst)
                .then(|| self.node_ports.get(&f.orig.dport))
                .flatten()
        });
        eps.is_some_and(|eps| !eps.contains(&reply_from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aksnet_core::k8s::endpoints::Backend;
    use aksnet_core::k8s::service::Service;
    use aksnet_linux::conntrack::{Tuple, PROTO_TCP};

    use crate::services::PortInput;

    fn input(backends: &[&str]) -> ServicesInput {
        let mut svc: Service = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "dns", "namespace": "default"},
            "spec": {"type": "NodePort", "clusterIP": "10.0.0.10",
                     "ports": [{"port": 53, "targetPort": 5353, "protocol": "UDP", "nodePort": 30053}]},
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        svc.set_defaults();
        let ports = svc
            .spec
            .ports
            .iter()
            .map(|p| PortInput {
                namespace: "default".into(),
                name: "dns".into(),
                port: p.clone(),
                backends: backends
                    .iter()
                    .map(|ip| Backend {
                        ip: ip.parse().unwrap_or(Ipv4Addr::UNSPECIFIED),
                        port: 5353,
                        node: Some("node-1".into()),
                        ready: true,
                        serving: true,
                        terminating: false,
                    })
                    .collect(),
            })
            .collect();
        ServicesInput {
            node: "node-1".into(),
            node_ips: vec![Ipv4Addr::new(10, 224, 0, 4)],
            cluster_cidrs: vec![],
            services: vec![(svc, ports)],
        }
    }

    fn flow(proto: u8, dst: [u8; 4], dport: u16, ep: [u8; 4], eport: u16) -> Flow {
        let client = Ipv4Addr::new(10, 244, 0, 2);
        Flow {
            orig: Tuple {
                src: client,
                dst: dst.into(),
                proto,
                sport: 40000,
                dport,
            },
            reply: Tuple {
                src: ep.into(),
                dst: client,
                proto,
                sport: eport,
                dport: 40000,
            },
            zone: 0,
            id: 0,
        }
    }

    #[test]
    fn a_udp_flow_to_a_removed_endpoint_is_stale_and_one_to_a_kept_endpoint_is_not() {
        let now = UdpFrontends::of(&input(&["10.244.1.6"]));
        let gone = flow(PROTO_UDP, [10, 0, 0, 10], 53, [10, 244, 1, 5], 5353);
        let kept = flow(PROTO_UDP, [10, 0, 0, 10], 53, [10, 244, 1, 6], 5353);
        assert!(now.is_stale(&gone));
        assert!(!now.is_stale(&kept));
        // Through the NodePort, on the node's address only.
        assert!(now.is_stale(&flow(
            PROTO_UDP,
            [10, 224, 0, 4],
            30053,
            [10, 244, 1, 5],
            5353
        )));
        assert!(!now.is_stale(&flow(
            PROTO_UDP,
            [10, 224, 0, 9],
            30053,
            [10, 244, 1, 5],
            5353
        )));
    }

    #[test]
    fn tcp_untranslated_and_foreign_flows_are_never_stale() {
        let now = UdpFrontends::of(&input(&["10.244.1.6"]));
        assert!(!now.is_stale(&flow(PROTO_TCP, [10, 0, 0, 10], 53, [10, 244, 1, 5], 5353)));
        assert!(!now.is_stale(&flow(PROTO_UDP, [10, 0, 0, 10], 53, [10, 0, 0, 10], 53)));
        assert!(!now.is_stale(&flow(PROTO_UDP, [10, 0, 0, 11], 53, [10, 244, 1, 5], 5353)));
    }

    #[test]
    fn the_flows_of_a_service_that_went_are_stale() {
        let before = UdpFrontends::of(&input(&["10.244.1.5"]));
        let now = UdpFrontends::default().with_gone(&before);
        assert!(now.is_stale(&flow(PROTO_UDP, [10, 0, 0, 10], 53, [10, 244, 1, 5], 5353)));
        assert!(!UdpFrontends::default().is_stale(&flow(
            PROTO_UDP,
            [10, 0, 0, 10],
            53,
            [10, 244, 1, 5],
            5353
        )));
    }
}
