//! Frontend IPs: which address each LoadBalancer Service gets.
//!
//! - public: from the lab's public range, `203.0.113.150`–`.199` of the
//!   internet network (the outbound public IP is `.100`, the internet host
//!   `.10`), as AKS takes a new public IP resource per Service;
//! - internal (`azure-load-balancer-internal: "true"`): a free address of
//!   the node subnet from the bottom up, beside the nodes' (Azure CNI pod
//!   pools grow from the top down, so they stay clear of both; a new lab
//!   node skips the frontends, `crate::nodes`);
//! - `spec.loadBalancerIP` (or the `azure-load-balancer-ipv4` annotation)
//!   asks for one address, which must be inside the right range and free.
//!
//! The address a Service holds is its `status.loadBalancer.ingress`: kept
//! while it stays valid, so a controller restart changes nothing. Pure.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use aksnet_core::cidr;
use aksnet_core::k8s::{K8sState, Service};

use super::{is_internal, lb_services, service_id, Pending};
use crate::snapshot::Snapshot;
use crate::state::LabState;

/// `service.beta.kubernetes.io/azure-load-balancer-ipv4`.
pub const IPV4_ANNOTATION: &str = "service.beta.kubernetes.io/azure-load-balancer-ipv4";
/// The public frontends: these host numbers of the internet network.
pub const PUBLIC_FIRST: u64 = 150;
pub const PUBLIC_LAST: u64 = 199;

/// The public frontend range.
pub fn public_range(state: &LabState) -> Vec<Ipv4Addr> {
    (PUBLIC_FIRST..=PUBLIC_LAST)
        .filter_map(|i| cidr::nth_addr(&state.addressing.internet_net, i))
        .collect()
}

/// Addresses of the internet network the lab itself uses.
fn fixed_public(state: &LabState) -> BTreeSet<Ipv4Addr> {
    let a = &state.addressing;
    BTreeSet::from([a.fabric_internet_ip, a.internet_ip, a.public_ip])
}

/// Node-subnet addresses taken by nodes, the VM, the gateway or claims.
fn used_private(state: &LabState, snap: &Snapshot) -> BTreeSet<Ipv4Addr> {
    let mut used: BTreeSet<Ipv4Addr> = state.nodes.iter().map(|n| n.ip).collect();
    used.extend(snap.ips.keys().copied());
    used.insert(state.addressing.node_gateway);
    used.insert(state.addressing.vm_ip);
    used
}

fn requested(svc: &Service) -> Option<&str> {
    svc.spec
        .load_balancer_ip
        .as_deref()
        .filter(|s| !s.is_empty())
        .or_else(|| {
            svc.metadata
                .annotations
                .get(IPV4_ANNOTATION)
                .map(String::as_str)
        })
}

/// Whether `ip` may be a frontend of this kind.
fn fits(state: &LabState, snap: &Snapshot, internal: bool, ip: Ipv4Addr) -> Result<(), String> {
    let a = &state.addressing;
    if internal {
        let size = cidr::size(&a.node_subnet);
        let first = cidr::nth_addr(&a.node_subnet, 4);
        let last = cidr::nth_addr(&a.node_subnet, size.saturating_sub(2));
        let inside = cidr::contains_addr(&a.node_subnet, ip)
            && first.is_some_and(|f| ip >= f)
            && last.is_some_and(|l| ip <= l);
        if !inside {
            return Err(format!(
                "{ip} is not a usable address of the node subnet {} (an internal load balancer's frontend comes from it)",
                a.node_subnet
            ));
        }
        if used_private(state, snap).contains(&ip) {
            return Err(format!(
                "{ip} is in use in the node subnet (a node, the VM or a pod)"
            ));
        }
    } else {
        if !a.internet_net.contains(&ip) {
            return Err(format!(
                "{ip} is not in the lab's public range {} (a public frontend comes from it)",
                a.internet_net
            ));
        }
        if fixed_public(state).contains(&ip) {
            return Err(format!("{ip} is one of the lab's own public addresses"));
        }
    }
    Ok(())
}

/// The frontend IP of every LoadBalancer Service that can have one, and
/// why the others have none.
pub fn assign(
    state: &LabState,
    snap: &Snapshot,
    k8s: &K8sState,
) -> (BTreeMap<String, Ipv4Addr>, Vec<Pending>) {
    let services = lb_services(k8s);
    let mut out: BTreeMap<String, Ipv4Addr> = BTreeMap::new();
    let mut taken: BTreeSet<Ipv4Addr> = BTreeSet::new();
    let mut pending = vec![];
    // Asked-for addresses first, then the ones held, then new ones.
    for svc in &services {
        let Some(want) = requested(svc) else { continue };
        let id = service_id(svc);
        let why = match want.trim().parse::<Ipv4Addr>() {
            Err(_) => Some(format!("loadBalancerIP {want:?} is not an IPv4 address")),
            Ok(ip) => match fits(state, snap, is_internal(svc), ip) {
                Err(e) => Some(e),
                Ok(()) if taken.contains(&ip) => {
                    Some(format!("{ip} is the frontend of another Service"))
                }
                Ok(()) => {
                    taken.insert(ip);
                    out.insert(id.clone(), ip);
                    None
                }
            },
        };
        if let Some(reason) = why {
            pending.push(Pending {
                service: id,
                reason,
            });
        }
    }
    for svc in &services {
        let id = service_id(svc);
        if requested(svc).is_some() {
            continue;
        }
        let internal = is_internal(svc);
        let held = svc
            .ingress_ips()
            .into_iter()
            .find(|ip| !taken.contains(ip) && fits(state, snap, internal, *ip).is_ok());
        if let Some(ip) = held {
            taken.insert(ip);
            out.insert(id, ip);
        }
    }
    for svc in &services {
        let id = service_id(svc);
        if requested(svc).is_some() || out.contains_key(&id) {
            continue;
        }
        let next = if is_internal(svc) {
            let n = &state.addressing.node_subnet;
            let used = used_private(state, snap);
            (4..cidr::size(n).saturating_sub(1))
                .filter_map(|i| cidr::nth_addr(n, i))
                .find(|ip| !used.contains(ip) && !taken.contains(ip))
        } else {
            public_range(state)
                .into_iter()
                .find(|ip| !taken.contains(ip))
        };
        match next {
            Some(ip) => {
                taken.insert(ip);
                out.insert(id, ip);
            }
            None => pending.push(Pending {
                service: id,
                reason: format!(
                    "no free {} frontend IP",
                    if is_internal(svc) {
                        "node-subnet"
                    } else {
                        "public"
                    }
                ),
            }),
        }
    }
    (out, pending)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lb::tests::{k8s, lb_svc};
    use crate::state::tests::sample_state;
    use serde_json::json;

    #[test]
    fn public_internal_requested_and_held_addresses() {
        let st = sample_state("kubenet", None, 2, 1);
        let snap = Snapshot::default();
        let mut held = lb_svc("held", "Cluster", json!({}));
        held["status"] = json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.160"}]}});
        let k = k8s(&[
            lb_svc("a", "Cluster", json!({})),
            held,
            lb_svc(
                "int",
                "Cluster",
                json!({"annotations": {(crate::lb::INTERNAL_ANNOTATION): "true"}}),
            ),
            lb_svc(
                "fixed",
                "Cluster",
                json!({"loadBalancerIP": "203.0.113.170"}),
            ),
            lb_svc("bad", "Cluster", json!({"loadBalancerIP": "10.224.0.50"})),
            lb_svc(
                "z-clash",
                "Cluster",
                json!({"loadBalancerIP": "203.0.113.170"}),
            ),
        ]);
        let (ips, pending) = assign(&st, &snap, &k);
        assert_eq!(ips["shop/a"].to_string(), "203.0.113.150");
        assert_eq!(ips["shop/held"].to_string(), "203.0.113.160", "kept");
        assert_eq!(ips["shop/fixed"].to_string(), "203.0.113.170");
        assert_eq!(ips["shop/int"].to_string(), "10.224.0.6", "after the nodes");
        let why: BTreeMap<&str, &str> = pending
            .iter()
            .map(|p| (p.service.as_str(), p.reason.as_str()))
            .collect();
        assert!(why["shop/bad"].contains("public range"), "{why:?}");
        assert!(why["shop/z-clash"].contains("another Service"), "{why:?}");
        // Deleting a Service frees its address for the next one.
        let k2 = k8s(&[lb_svc("b", "Cluster", json!({}))]);
        assert_eq!(
            assign(&st, &snap, &k2).0["shop/b"].to_string(),
            "203.0.113.150"
        );
    }
}
