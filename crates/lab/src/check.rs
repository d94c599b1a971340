//! `lab check`: the connectivity matrix. Chooses pairs for every kind,
//! probes them from inside the source namespaces, classifies the source
//! address each destination saw, and compares with DESIGN §1.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use aksnet_core::k8s::endpoints::{backends, service_slices};
use aksnet_core::k8s::{K8sState, Object};
use aksnet_core::spec::NetworkPlugin;
use serde::Serialize;

use crate::expect::{self, Kind, Seen};
use crate::probe::{self, Probe};
use crate::snapshot::Snapshot;
use crate::state::LabState;
use crate::topology::{netns_path, PROBE_PORT};

/// One probed pair, in the JSON contract's shape (plus `note`, `from_ip`,
/// `to_ip`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    pub kind: Kind,
    pub from: String,
    pub to: String,
    pub reachable: bool,
    pub source_ip_seen: Option<String>,
    pub source_seen: Option<Seen>,
    pub expected_reachable: bool,
    pub expected_source: Option<Seen>,
    pub matches: bool,
    pub from_ip: String,
    pub to_ip: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    pub network_plugin: String,
    pub results: Vec<CheckResult>,
    pub route_table_entries: usize,
    pub vnet_ips_used: usize,
    /// Where pods take addresses from, per node.
    pub pod_ranges: Vec<String>,
    pub nodes_network_unavailable: Vec<String>,
    /// Records of the cluster store that cannot be read (what they name
    /// is treated as taken); any makes the check fail.
    pub store_problems: Vec<aksnet_cluster::Problem>,
}

impl CheckReport {
    /// Every pair behaved as the model says, and the store is readable.
    pub fn all_match(&self) -> bool {
        self.results.iter().all(|r| r.matches) && self.store_problems.is_empty()
    }

    pub fn mismatches(&self) -> usize {
        self.results.iter().filter(|r| !r.matches).count()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub name: String,
    /// How its probe server answers (`NAMESPACE/NAME` for a pod).
    pub label: String,
    pub netns: String,
    pub ip: Ipv4Addr,
    /// The node a pod runs on, or the node itself.
    pub node: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub kind: Kind,
    pub from: Endpoint,
    pub to: Endpoint,
    /// The port probed (the lab's probe port; a Service's port or NodePort).
    pub port: u16,
    /// Whose probe servers may answer (labels): the destination itself, or
    /// the endpoints of a Service.
    pub answerers: Vec<String>,
}

/// The pairs to probe: for every pod, its next neighbour on the same node,
/// a pod on the next node, the next node, the VM and the internet; from
/// every node, a pod on the next node; from the VM, one pod per node.
pub fn pairs(state: &LabState) -> Vec<Pair> {
    let names = state.names();
    let nodes: Vec<Endpoint> = state
        .nodes
        .iter()
        .map(|n| Endpoint {
            name: n.name.clone(),
            label: n.name.clone(),
            netns: names.node(n.index),
            ip: n.ip,
            node: Some(n.name.clone()),
        })
        .collect();
    let pods_of = |node: &str| -> Vec<Endpoint> {
        // The cluster DNS pods are infrastructure, checked by name
        // (`pod-to-service-by-name`), not as workload pods.
        state
            .pods_on(node)
            .filter(|p| !crate::cluster_dns::is_dns_pod(p))
            .filter_map(|p| {
                Some(Endpoint {
                    name: p.display(),
                    label: p.id(),
                    netns: names.pod(p.node_index, p.index),
                    ip: p.ip?,
                    node: Some(p.node.clone()),
                })
            })
            .collect()
    };
    let per_node: Vec<Vec<Endpoint>> = nodes.iter().map(|n| pods_of(&n.name)).collect();
    let vm = Endpoint {
        name: "vm".into(),
        label: "vm".into(),
        netns: names.vm(),
        ip: state.addressing.vm_ip,
        node: None,
    };
    let internet = Endpoint {
        name: "internet".into(),
        label: "internet".into(),
        netns: names.internet(),
        ip: state.addressing.internet_ip,
        node: None,
    };
    let n = nodes.len();
    // The next node (after `i`) that has pods, for cross-node pairs.
    let next_with_pods = |i: usize| -> Option<usize> {
        (1..n)
            .map(|d| (i + d) % n)
            .find(|j| !per_node[*j].is_empty())
    };
    let mut out = vec![];
    let pair = |kind, from: &Endpoint, to: &Endpoint| Pair {
        kind,
        from: from.clone(),
        to: to.clone(),
        port: PROBE_PORT,
        answerers: vec![to.label.clone()],
    };
    for (i, pods) in per_node.iter().enumerate() {
        for (k, p) in pods.iter().enumerate() {
            if pods.len() > 1 {
                out.push(pair(Kind::PodToPodSameNode, p, &pods[(k + 1) % pods.len()]));
            }
            if let Some(j) = next_with_pods(i) {
                let other = &per_node[j];
                out.push(pair(Kind::PodToPodCrossNode, p, &other[k % other.len()]));
            }
            // Another node's IP (to its own node a pod's packets are
            // delivered locally, never SNAT'd, on every model).
            if n > 1 {
                out.push(pair(Kind::PodToNode, p, &nodes[(i + 1) % n]));
            }
            out.push(pair(Kind::PodToVnetVm, p, &vm));
            out.push(pair(Kind::PodToInternet, p, &internet));
        }
    }
    // From a node to another node's pod: through the fabric.
    for (i, node) in nodes.iter().enumerate() {
        if let Some(j) = next_with_pods(i) {
            out.push(pair(Kind::NodeToPod, node, &per_node[j][0]));
        }
    }
    for pods in &per_node {
        if let Some(p) = pods.first() {
            out.push(pair(Kind::VnetVmToPod, &vm, p));
        }
    }
    out.sort_by_key(|p| p.kind);
    out
}

/// The pairs through the lab's Services: every ClusterIP Service with a
/// TCP port and endpoints among the lab's pods gives a `pod-to-service`
/// pair from each node's first pod that is not one of its endpoints, and a
/// `pod-to-own-service` pair from its first endpoint; one with a NodePort
/// gives a `node-to-nodeport` pair from each node to the next node's
/// address. None without Services: these kinds need one (`lab demo`
/// applies one, `default/lab-check`).
pub fn service_pairs(state: &LabState, k8s: &K8sState) -> Vec<Pair> {
    let names = state.names();
    let pod_ep = |p: &crate::state::PodState| -> Option<Endpoint> {
        Some(Endpoint {
            name: p.display(),
            label: p.id(),
            netns: names.pod(p.node_index, p.index),
            ip: p.ip?,
            node: Some(p.node.clone()),
        })
    };
    let nodes: Vec<Endpoint> = state
        .nodes
        .iter()
        .map(|n| Endpoint {
            name: n.name.clone(),
            label: n.name.clone(),
            netns: names.node(n.index),
            ip: n.ip,
            node: Some(n.name.clone()),
        })
        .collect();
    let mut out = vec![];
    for svc in k8s
        .of_kind(aksnet_core::k8s::Kind::Service, None)
        .filter_map(Object::as_service)
    {
        let Some(cip) = svc.cluster_ipv4() else {
            continue;
        };
        let slices = service_slices(k8s, svc);
        let Some((sp, backends)) = backends(svc, &slices)
            .into_iter()
            .find(|(sp, b)| sp.protocol() == "TCP" && !b.is_empty())
        else {
            continue;
        };
        let Ok(port) = u16::try_from(sp.port) else {
            continue;
        };
        // Endpoints that are lab pods listening on the target port.
        let eps: Vec<&crate::state::PodState> = backends
            .iter()
            .filter_map(|b| state.pods.iter().find(|p| p.ip == Some(b.ip)))
            .collect();
        if eps.is_empty() || eps.len() != backends.len() {
            continue; // an endpoint the lab does not run: nothing to judge
        }
        // The cluster DNS pods answer 53 with `aksnet dns`, not the probe;
        // `pod-to-service-by-name` checks that Service.
        if eps.iter().any(|p| crate::cluster_dns::is_dns_pod(p)) {
            continue;
        }
        let answerers: Vec<String> = eps.iter().map(|p| p.id()).collect();
        let id = format!(
            "svc/{}/{}",
            svc.metadata.namespace.as_deref().unwrap_or("default"),
            svc.metadata.name
        );
        let to = Endpoint {
            name: id.clone(),
            label: id.clone(),
            netns: String::new(),
            ip: cip,
            node: None,
        };
        let mk = |kind, from: Endpoint, to: &Endpoint, port| Pair {
            kind,
            from,
            to: to.clone(),
            port,
            answerers: answerers.clone(),
        };
        for n in &state.nodes {
            if let Some(from) = state
                .pods_on(&n.name)
                .filter(|p| !answerers.contains(&p.id()))
                .find_map(pod_ep)
            {
                out.push(mk(Kind::PodToService, from, &to, port));
            }
        }
        if let Some(from) = pod_ep(eps[0]) {
            out.push(mk(Kind::PodToOwnService, from, &to, port));
        }
        if let Some(np) = sp.node_port.and_then(|n| u16::try_from(n).ok()) {
            let n = nodes.len();
            for (i, from) in nodes.iter().enumerate().filter(|_| n > 1) {
                let at = &nodes[(i + 1) % n];
                // externalTrafficPolicy: Local answers only on nodes with an
                // endpoint of their own (elsewhere it drops, as it should).
                if svc.external_local() && !eps.iter().any(|p| p.node == at.name) {
                    continue;
                }
                let to = Endpoint {
                    name: format!("nodeport/{}@{}", id.trim_start_matches("svc/"), at.name),
                    ip: at.ip,
                    ..to.clone()
                };
                out.push(mk(Kind::NodeToNodeport, from.clone(), &to, np));
            }
        }
    }
    out.sort_by_key(|p| p.kind);
    out
}

/// kubenet's node address on its pod bridge (cbr0): the first address of
/// a node's /24, where a pod masqueraded back to itself (hairpin) comes from.
fn is_bridge_address(state: &LabState, ip: Ipv4Addr) -> bool {
    state.network.network_plugin == NetworkPlugin::Kubenet
        && state.pods.iter().filter_map(|p| p.ip).any(|pod| {
            ipnet::Ipv4Net::new(pod, aksnet_core::planner::capacity::NODE_BLOCK_PREFIX)
                .is_ok_and(|b| u32::from(b.network()) + 1 == u32::from(ip))
        })
}

/// Whose address `ip` is.
pub fn classify(state: &LabState, ip: Ipv4Addr) -> Option<Seen> {
    if state.pods.iter().any(|p| p.ip == Some(ip)) {
        Some(Seen::Pod)
    } else if state.nodes.iter().any(|n| n.ip == ip) || is_bridge_address(state, ip) {
        Some(Seen::Node)
    } else if ip == state.addressing.vm_ip {
        Some(Seen::Vm)
    } else if ip == state.addressing.public_ip {
        Some(Seen::Public)
    } else if ip == state.addressing.internet_ip {
        Some(Seen::Internet)
    } else {
        None
    }
}

/// Compares one outcome with the expectation.
pub fn judge(
    state: &LabState,
    unavailable: &BTreeSet<String>,
    pair: &Pair,
    outcome: &probe::Outcome,
) -> CheckResult {
    let plugin = state.network.network_plugin;
    let (mut exp_reach, mut exp_src) = expect::expected(plugin, pair.kind);
    fn is_down<'a>(e: &'a Endpoint, unavailable: &BTreeSet<String>) -> Option<&'a str> {
        e.node.as_deref().filter(|n| unavailable.contains(*n))
    }
    let mut note = None;
    if exp_reach {
        if let Some(why) = expect::unreachable_because(
            plugin,
            pair.kind,
            is_down(&pair.from, unavailable),
            is_down(&pair.to, unavailable),
        ) {
            exp_reach = false;
            exp_src = None;
            note = Some(why);
        }
    }
    let seen = outcome.source.and_then(|ip| classify(state, ip));
    let answered_by = outcome.label.as_deref();
    let wrong_target =
        outcome.reachable && !answered_by.is_some_and(|l| pair.answerers.iter().any(|a| a == l));
    // Through its own Service a pod may be sent to another endpoint: that
    // one sees the pod (no hairpin, no masquerade).
    if pair.kind == Kind::PodToOwnService
        && outcome.reachable
        && answered_by.is_some_and(|l| l != pair.from.label)
    {
        exp_src = Some(Seen::Pod);
    }
    if wrong_target {
        note = Some(format!(
            "answered by {} instead of {}",
            answered_by.unwrap_or("?"),
            if pair.answerers.len() == 1 {
                pair.answerers[0].clone()
            } else {
                format!("one of {}", pair.answerers.join(", "))
            }
        ));
    } else if outcome.reachable != exp_reach && note.is_none() {
        note = outcome.error.clone();
    }
    let matches =
        !wrong_target && outcome.reachable == exp_reach && (!outcome.reachable || seen == exp_src);
    CheckResult {
        kind: pair.kind,
        from: pair.from.name.clone(),
        to: pair.to.name.clone(),
        reachable: outcome.reachable,
        source_ip_seen: outcome.source.map(|s| s.to_string()),
        source_seen: seen,
        expected_reachable: exp_reach,
        expected_source: exp_src,
        matches,
        from_ip: pair.from.ip.to_string(),
        to_ip: pair.to.ip.to_string(),
        note,
    }
}

/// Probes every pair (with the Services of `k8s`) and builds the report.
pub fn run(
    state: &LabState,
    snap: &Snapshot,
    k8s: &K8sState,
    route_table_entries: usize,
) -> CheckReport {
    let unavailable: BTreeSet<String> = snap
        .node_records()
        .filter(|n| n.network_unavailable())
        .map(|n| n.name.clone())
        .collect();
    let mut pairs = pairs(state);
    pairs.extend(service_pairs(state, k8s));
    let probes: Vec<Probe> = pairs
        .iter()
        .map(|p| Probe {
            from_netns: netns_path(&p.from.netns),
            to: p.to.ip,
            port: p.port,
            protocol: probe::Protocol::Tcp,
        })
        .collect();
    let mut outcomes = probe::run_all(&probes, 16, Duration::from_millis(1500));
    // A Service applied just before may not be in every node's table yet
    // (agents program it on their next pass): its pairs get a few more
    // tries before they count as unreachable.
    for _ in 0..6 {
        let again: Vec<usize> = (0..pairs.len())
            .filter(|i| pairs[*i].kind.through_service() && !outcomes[*i].reachable)
            .collect();
        if again.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
        let retry: Vec<Probe> = again.iter().map(|i| probes[*i].clone()).collect();
        for (i, o) in again
            .into_iter()
            .zip(probe::run_all(&retry, 16, Duration::from_millis(1500)))
        {
            outcomes[i] = o;
        }
    }
    let mut results: Vec<CheckResult> = pairs
        .iter()
        .zip(outcomes.iter())
        .map(|(p, o)| judge(state, &unavailable, p, o))
        .collect();
    results.extend(crate::check_dns_api::run(state, &unavailable));
    CheckReport {
        network_plugin: state.network.network_plugin.as_str().to_string(),
        results,
        route_table_entries,
        vnet_ips_used: snap.vnet_ips_used(),
        pod_ranges: pod_ranges(state, snap),
        nodes_network_unavailable: unavailable.into_iter().collect(),
        store_problems: snap.problems.clone(),
    }
}

/// Per node: its /24 (kubenet, overlay) or the pod addresses it holds (Azure CNI).
pub fn pod_ranges(state: &LabState, snap: &Snapshot) -> Vec<String> {
    state
        .nodes
        .iter()
        .filter_map(|n| match state.network.network_plugin {
            NetworkPlugin::Azure => {
                let ips: Vec<Ipv4Addr> = snap.pod_ips_of(&n.name);
                let ranges = aksnet_core::cluster::IpRange::coalesce(&ips);
                (!ranges.is_empty()).then(|| {
                    let r: Vec<String> = ranges
                        .iter()
                        .map(|r| {
                            if r.start == r.end {
                                r.start.to_string()
                            } else {
                                format!("{}-{}", r.start, r.end)
                            }
                        })
                        .collect();
                    format!("{}: {}", n.name, r.join(", "))
                })
            }
            _ => snap.block_of(&n.name).map(|b| format!("{}: {b}", n.name)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::tests::sample_state;

    #[test]
    fn pairs_cover_every_kind() {
        let st = sample_state("kubenet", None, 2, 2);
        let ps = pairs(&st);
        let kinds: BTreeSet<Kind> = ps.iter().map(|p| p.kind).collect();
        assert_eq!(kinds.len(), 7);
        // 4 pods × 5 kinds, 2 nodes → pods, 1 VM → pod per node.
        assert_eq!(ps.len(), 4 * 5 + 2 + 2);
        let cross: Vec<_> = ps
            .iter()
            .filter(|p| p.kind == Kind::PodToPodCrossNode)
            .collect();
        assert!(cross.iter().all(|p| p.from.node != p.to.node));
        let same: Vec<_> = ps
            .iter()
            .filter(|p| p.kind == Kind::PodToPodSameNode)
            .collect();
        assert!(same
            .iter()
            .all(|p| p.from.node == p.to.node && p.from.name != p.to.name));
        let n2p: Vec<_> = ps.iter().filter(|p| p.kind == Kind::NodeToPod).collect();
        assert!(n2p.iter().all(|p| p.from.node != p.to.node));
        // One node, one pod: nothing between nodes or pods; the VNet and
        // the internet stay.
        let small = pairs(&sample_state("azure", None, 1, 1));
        let kinds: BTreeSet<Kind> = small.iter().map(|p| p.kind).collect();
        assert_eq!(
            kinds,
            [Kind::PodToVnetVm, Kind::VnetVmToPod, Kind::PodToInternet].into()
        );
    }

    #[test]
    fn judging() {
        let st = sample_state("kubenet", None, 2, 2);
        let ps = pairs(&st);
        let p2vm = ps.iter().find(|p| p.kind == Kind::PodToVnetVm).unwrap();
        let ok = probe::Outcome {
            reachable: true,
            refused: false,
            source: Some(st.nodes[0].ip),
            label: Some("vm".into()),
            error: None,
            elapsed: Duration::from_millis(1),
        };
        let none = BTreeSet::new();
        let r = judge(&st, &none, p2vm, &ok);
        assert!(r.matches, "{r:?}");
        assert_eq!(r.source_seen, Some(Seen::Node));
        let leaked = probe::Outcome {
            source: p2vm.from.ip.into(),
            ..ok.clone()
        };
        let r = judge(&st, &none, p2vm, &leaked);
        assert!(!r.matches);
        assert_eq!(r.source_seen, Some(Seen::Pod));
        let wrong = probe::Outcome {
            label: Some("internet".into()),
            ..ok.clone()
        };
        assert!(!judge(&st, &none, p2vm, &wrong).matches);
        // VM → kubenet pod must fail.
        let vm2pod = ps.iter().find(|p| p.kind == Kind::VnetVmToPod).unwrap();
        let refused = probe::Outcome {
            error: Some("No route to host".into()),
            ..probe::Outcome::failed("x")
        };
        let r = judge(&st, &none, vm2pod, &refused);
        assert!(r.matches && r.expected_source.is_none());
        // A NetworkUnavailable node's pods are expected unreachable across nodes.
        let cross = ps
            .iter()
            .find(|p| p.kind == Kind::PodToPodCrossNode && p.to.node.as_deref() == Some("node-2"))
            .unwrap();
        let down: BTreeSet<String> = ["node-2".to_string()].into();
        let r = judge(&st, &down, cross, &refused);
        assert!(
            r.matches && !r.expected_reachable && r.note.is_some(),
            "{r:?}"
        );
        let json = serde_json::to_value(&r).unwrap();
        for f in [
            "kind",
            "from",
            "to",
            "reachable",
            "source_ip_seen",
            "source_seen",
            "expected_reachable",
            "expected_source",
            "matches",
        ] {
            assert!(json.get(f).is_some(), "{f}");
        }
        assert_eq!(json["kind"], "pod-to-pod-cross-node");
        assert!(json["source_seen"].is_null());
    }

    fn with_service(endpoints: &[&str]) -> K8sState {
        let mut k8s = K8sState::default();
        let svc = serde_json::json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "lab-check", "namespace": "default"},
            "spec": {"type": "NodePort", "clusterIP": "10.0.0.50",
                     "ports": [{"port": 80, "targetPort": 80, "nodePort": 30100}]},
        });
        let slice = serde_json::json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "lab-check-1", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "lab-check"}},
            "addressType": "IPv4",
            "ports": [{"port": 80, "protocol": "TCP"}],
            "endpoints": endpoints.iter().map(|ip| serde_json::json!(
                {"addresses": [ip], "conditions": {"ready": true}})).collect::<Vec<_>>(),
        });
        k8s.insert(
            "/aksnet/k8s/services/default/lab-check",
            svc.to_string().as_bytes(),
            2,
        );
        k8s.insert(
            "/aksnet/k8s/endpointslices/default/lab-check-1",
            slice.to_string().as_bytes(),
            3,
        );
        assert!(k8s.bad.is_empty(), "{:?}", k8s.bad);
        k8s
    }

    #[test]
    fn service_pairs_come_from_the_services_of_the_lab() {
        let st = sample_state("kubenet", None, 2, 2);
        assert!(service_pairs(&st, &K8sState::default()).is_empty());
        let ps = service_pairs(&st, &with_service(&["10.244.0.2"]));
        let of = |k: Kind| ps.iter().filter(|p| p.kind == k).collect::<Vec<_>>();
        // From each node's first pod that is not the endpoint.
        let to_svc = of(Kind::PodToService);
        assert_eq!(
            to_svc
                .iter()
                .map(|p| p.from.name.as_str())
                .collect::<Vec<_>>(),
            ["pod-1-2", "pod-2-1"]
        );
        assert!(to_svc
            .iter()
            .all(|p| p.port == 80 && p.to.ip == Ipv4Addr::new(10, 0, 0, 50)));
        let own = of(Kind::PodToOwnService);
        assert_eq!(own.len(), 1);
        assert_eq!(own[0].from.name, "pod-1-1");
        assert_eq!(own[0].answerers, ["default/pod-1-1"]);
        let np = of(Kind::NodeToNodeport);
        assert_eq!(np.len(), 2);
        assert!(np.iter().all(|p| p.port == 30100 && p.from.ip != p.to.ip));
        assert_eq!(np[0].to.name, "nodeport/default/lab-check@node-2");
        // An endpoint the lab does not run: nothing to judge.
        assert!(service_pairs(&st, &with_service(&["10.244.9.9"])).is_empty());
    }

    #[test]
    fn a_hairpin_is_judged_by_who_answered() {
        let st = sample_state("kubenet", None, 2, 2);
        let ps = service_pairs(&st, &with_service(&["10.244.0.2", "10.244.0.3"]));
        let own = ps.iter().find(|p| p.kind == Kind::PodToOwnService).unwrap();
        let none = BTreeSet::new();
        let answered = |label: &str, src: &str| probe::Outcome {
            reachable: true,
            refused: false,
            source: Some(src.parse().unwrap()),
            label: Some(label.into()),
            error: None,
            elapsed: Duration::from_millis(1),
        };
        // Itself, masqueraded to the bridge address of its node: the node.
        let r = judge(&st, &none, own, &answered("default/pod-1-1", "10.244.0.1"));
        assert!(r.matches, "{r:?}");
        assert_eq!(r.source_seen, Some(Seen::Node));
        // Itself without the masquerade: wrong.
        assert!(!judge(&st, &none, own, &answered("default/pod-1-1", "10.244.0.2")).matches);
        // The other endpoint sees the pod.
        let r = judge(&st, &none, own, &answered("default/pod-1-2", "10.244.0.2"));
        assert!(r.matches && r.expected_source == Some(Seen::Pod), "{r:?}");
        // A pod that is no endpoint must not answer.
        assert!(!judge(&st, &none, own, &answered("default/pod-2-1", "10.244.0.2")).matches);
    }
}
