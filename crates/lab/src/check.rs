//! `lab check`: the connectivity matrix. Chooses pairs for every kind,
//! probes them from inside the source namespaces, classifies the source
//! address each destination saw, and compares with DESIGN §1.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

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

/// Whose address `ip` is.
pub fn classify(state: &LabState, ip: Ipv4Addr) -> Option<Seen> {
    if state.pods.iter().any(|p| p.ip == Some(ip)) {
        Some(Seen::Pod)
    } else if state.nodes.iter().any(|n| n.ip == ip) {
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
    let wrong_target =
        outcome.reachable && outcome.label.as_deref() != Some(pair.to.label.as_str());
    if wrong_target {
        note = Some(format!(
            "answered by {} instead of {}",
            outcome.label.as_deref().unwrap_or("?"),
            pair.to.label
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

/// Probes every pair and builds the report.
pub fn run(state: &LabState, snap: &Snapshot, route_table_entries: usize) -> CheckReport {
    let unavailable: BTreeSet<String> = snap
        .node_records()
        .filter(|n| n.network_unavailable())
        .map(|n| n.name.clone())
        .collect();
    let pairs = pairs(state);
    let probes: Vec<Probe> = pairs
        .iter()
        .map(|p| Probe {
            from_netns: netns_path(&p.from.netns),
            to: p.to.ip,
            port: PROBE_PORT,
            protocol: probe::Protocol::Tcp,
        })
        .collect();
    let outcomes = probe::run_all(&probes, 16, Duration::from_millis(1500));
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
}
