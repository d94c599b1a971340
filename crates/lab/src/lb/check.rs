//! `lab check`'s load-balancer kinds: `internet-to-loadbalancer` (every
//! frontend, public or internal, from the internet host) and
//! `vm-to-internal-loadbalancer` (every internal frontend from the VNet
//! VM), each judged by what the Service says should happen:
//!
//! - reachable when the Service has a ready endpoint, the source is inside
//!   `loadBalancerSourceRanges` (when set), and, for an internal frontend,
//!   the source is in the VNet (the internet host never reaches one);
//! - the source the pod sees: `Cluster` masquerades to a node's address;
//!   `Local` keeps the client's (the VM's, or the internet host's, which is
//!   none of the lab's kinds);
//! - the answer comes from one of the Service's ready pods.
//!
//! Before probing, the check waits (up to [`SETTLE`]) for the probes to
//! have found the members the Service implies healthy.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use aksnet_core::k8s::endpoints::{backends, service_slices};
use aksnet_core::k8s::{K8sState, Service};

use super::{lb_services, service_id, Frontend, LbStatus};
use crate::check::{classify, CheckResult};
use crate::expect::{Kind, Seen};
use crate::probe::{self, Probe};
use crate::state::{LabDir, LabState};
use crate::topology::netns_path;

/// How long the check waits for the pool to settle (2 failures at 5 s,
/// and a round's slack).
pub const SETTLE: Duration = Duration::from_secs(20);

/// One load-balancer pair and what should happen.
#[derive(Debug, Clone, PartialEq)]
pub struct LbPair {
    pub kind: Kind,
    /// `internet` or `vm`.
    pub from: String,
    pub from_ip: Ipv4Addr,
    pub from_netns: String,
    /// `lb/NAMESPACE/NAME`.
    pub to: String,
    pub frontend: Ipv4Addr,
    pub port: u16,
    pub protocol: probe::Protocol,
    pub expected_reachable: bool,
    pub expected_source: Option<Seen>,
    /// `NAMESPACE/NAME` of the ready pods that may answer.
    pub pods: BTreeSet<String>,
    pub note: Option<String>,
}

/// The ready endpoints of the Service's first port: (pod address, node).
fn ready(k8s: &K8sState, svc: &Service) -> Vec<(Ipv4Addr, Option<String>)> {
    let slices = service_slices(k8s, svc);
    backends(svc, &slices)
        .into_iter()
        .next()
        .map(|(_, b)| {
            b.into_iter()
                .filter(|b| b.ready)
                .map(|b| (b.ip, b.node))
                .collect()
        })
        .unwrap_or_default()
}

/// The members the probes should find healthy for the first rule.
pub fn expected_healthy(k8s: &K8sState, svc: &Service, f: &Frontend) -> BTreeSet<String> {
    let eps = ready(k8s, svc);
    let Some(rule) = f.rules.first() else {
        return BTreeSet::new();
    };
    if rule.probe.is_none() {
        return rule.pool.iter().map(|m| m.node.clone()).collect();
    }
    if f.external_traffic_policy == "Local" {
        eps.into_iter().filter_map(|(_, n)| n).collect()
    } else if eps.is_empty() {
        BTreeSet::new()
    } else {
        rule.pool.iter().map(|m| m.node.clone()).collect()
    }
}

/// The pairs, from the store's Services and the load balancer's status.
pub fn pairs(state: &LabState, k8s: &K8sState, lb: &LbStatus) -> Vec<LbPair> {
    let names = state.names();
    let mut out = vec![];
    for svc in lb_services(k8s) {
        let id = service_id(svc);
        let Some(f) = lb.frontend(&id) else { continue };
        let Some(rule) = f.rules.first() else {
            continue;
        };
        let eps = ready(k8s, svc);
        let pods: BTreeSet<String> = eps
            .iter()
            .filter_map(|(ip, _)| state.pods.iter().find(|p| p.ip == Some(*ip)))
            .map(|p| p.id())
            .collect();
        let local = f.external_traffic_policy == "Local";
        let mut froms = vec![(
            Kind::InternetToLoadBalancer,
            "internet",
            state.addressing.internet_ip,
            names.internet(),
        )];
        if f.internal {
            froms.push((
                Kind::VmToInternalLoadBalancer,
                "vm",
                state.addressing.vm_ip,
                names.vm(),
            ));
        }
        for (kind, from, ip, ns) in froms {
            let mut note = None;
            let mut reach = !eps.is_empty();
            if !reach {
                note = Some(format!("{id} has no ready endpoint"));
            }
            if f.internal && from == "internet" {
                reach = false;
                note = Some("an internal frontend is reachable inside the VNet only".into());
            }
            if !f.source_ranges.is_empty() && !f.source_ranges.iter().any(|n| n.contains(&ip)) {
                reach = false;
                note = Some(format!("{ip} is outside loadBalancerSourceRanges"));
            }
            let source = match (reach, local, from) {
                (false, _, _) => None,
                (true, false, _) => Some(Seen::Node),
                (true, true, "vm") => Some(Seen::Vm),
                // `Local` keeps the client's address: the internet host's.
                (true, true, _) => Some(Seen::Internet),
            };
            out.push(LbPair {
                kind,
                from: from.into(),
                from_ip: ip,
                from_netns: ns,
                to: format!("lb/{id}"),
                frontend: f.ip,
                port: rule.port,
                protocol: rule.protocol,
                expected_reachable: reach,
                expected_source: source,
                pods: pods.clone(),
                note,
            });
        }
    }
    out
}

/// A kubenet node's `cbr0` address (the first of its /24): what a pod sees
/// when its own node masquerades a flow to it (`Cluster` policy, the flow
/// taken by the pod's node), as kube-proxy does on AKS kubenet.
fn bridge(state: &LabState, ip: Ipv4Addr) -> Option<Seen> {
    let kubenet = state.network.network_plugin == aksnet_core::spec::NetworkPlugin::Kubenet;
    let pods = state.network.effective_pod_cidr()?;
    // Node blocks are /24s (`aksnet_cluster::claims::block::BLOCK_PREFIX`).
    let first_of_block = ip.octets()[3] == 1;
    (kubenet && pods.contains(&ip) && first_of_block).then_some(Seen::Node)
}

/// Compares one outcome with the pair's expectation.
pub fn judge(state: &LabState, p: &LbPair, o: &probe::Outcome) -> CheckResult {
    let seen = o
        .source
        .and_then(|ip| classify(state, ip).or_else(|| bridge(state, ip)));
    let by_backend = o.label.as_ref().is_some_and(|l| p.pods.contains(l));
    let mut note = p.note.clone();
    if o.reachable && !by_backend {
        note = Some(format!(
            "answered by {} instead of a pod of the Service",
            o.label.as_deref().unwrap_or("?")
        ));
    } else if o.reachable != p.expected_reachable && note.is_none() {
        note = o.error.clone();
    }
    let matches = o.reachable == p.expected_reachable
        && (!o.reachable || (by_backend && seen == p.expected_source));
    CheckResult {
        kind: p.kind,
        from: p.from.clone(),
        to: p.to.clone(),
        reachable: o.reachable,
        source_ip_seen: o.source.map(|s| s.to_string()),
        source_seen: seen,
        expected_reachable: p.expected_reachable,
        expected_source: p.expected_source,
        matches,
        from_ip: p.from_ip.to_string(),
        to_ip: p.frontend.to_string(),
        note,
    }
}

/// Waits for the pool to settle, then probes every pair.
pub fn run(dir: &LabDir, state: &LabState) -> crate::error::Result<Vec<CheckResult>> {
    let k8s = crate::kubelet::objects(dir)?;
    let start = Instant::now();
    let lb = loop {
        let lb = LbStatus::load(dir)?;
        let settled = lb_services(&k8s).iter().all(|svc| {
            lb.frontend(&service_id(svc)).is_some_and(|f| {
                let healthy: BTreeSet<String> = f
                    .rules
                    .first()
                    .map(|r| r.healthy().iter().map(|m| m.node.clone()).collect())
                    .unwrap_or_default();
                healthy == expected_healthy(&k8s, svc, f)
            })
        });
        if settled || start.elapsed() > SETTLE {
            if !settled {
                tracing::warn!("the load balancer's pool has not settled within {SETTLE:?}");
            }
            break lb;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let pairs = pairs(state, &k8s, &lb);
    let probes: Vec<Probe> = pairs
        .iter()
        .map(|p| Probe {
            from_netns: netns_path(&p.from_netns),
            to: p.frontend,
            port: p.port,
            protocol: p.protocol,
        })
        .collect();
    let outcomes = probe::run_all(&probes, 8, Duration::from_millis(1500));
    Ok(pairs
        .iter()
        .zip(&outcomes)
        .map(|(p, o)| judge(state, p, o))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lb::tests::{k8s, lb_svc};
    use crate::lb::{plan, INTERNAL_ANNOTATION};
    use crate::state::tests::sample_state;
    use serde_json::json;
    use std::collections::BTreeMap;

    #[test]
    fn expectations_follow_the_service() {
        let st = sample_state("kubenet", None, 2, 1);
        // No EndpointSlices in this store: no ready endpoint anywhere.
        let k = k8s(&[
            lb_svc("pub", "Cluster", json!({})),
            lb_svc(
                "int",
                "Local",
                json!({"annotations": {(INTERNAL_ANNOTATION): "true"}}),
            ),
        ]);
        let ips = BTreeMap::from([
            ("shop/pub".to_string(), "203.0.113.150".parse().unwrap()),
            ("shop/int".to_string(), "10.224.255.254".parse().unwrap()),
        ]);
        let lb = LbStatus {
            frontends: plan(&st, &k, &ips, &LbStatus::default()),
            pending: vec![],
        };
        let ps = pairs(&st, &k, &lb);
        let kinds: Vec<(Kind, &str, bool)> = ps
            .iter()
            .map(|p| (p.kind, p.to.as_str(), p.expected_reachable))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (Kind::InternetToLoadBalancer, "lb/shop/int", false),
                (Kind::VmToInternalLoadBalancer, "lb/shop/int", false),
                (Kind::InternetToLoadBalancer, "lb/shop/pub", false),
            ]
        );
        assert!(ps[0].note.as_deref().unwrap().contains("VNet only"));
        assert!(ps[2].note.as_deref().unwrap().contains("no ready endpoint"));
        assert!(expected_healthy(&k, lb_services(&k)[1], &lb.frontends[1]).is_empty());
        // A refused probe matches an unreachable expectation; a reached one not.
        let refused = probe::Outcome::failed("timed out");
        assert!(judge(&st, &ps[2], &refused).matches);
        let reached = probe::Outcome {
            reachable: true,
            source: Some(st.nodes[0].ip),
            label: Some("default/pod-1-1".into()),
            ..probe::Outcome::failed("")
        };
        let r = judge(&st, &ps[2], &reached);
        assert!(!r.matches);
        // kubenet: the pod's own node masquerades to its cbr0 address.
        assert_eq!(bridge(&st, "10.244.1.1".parse().unwrap()), Some(Seen::Node));
        assert_eq!(bridge(&st, "10.244.1.7".parse().unwrap()), None);
        let azure = sample_state("azure", None, 2, 1);
        assert_eq!(bridge(&azure, "10.244.1.1".parse().unwrap()), None);
        assert_eq!(
            serde_json::to_value(&r).unwrap()["kind"],
            "internet-to-loadbalancer"
        );
    }
}
