use aksnet_core::cluster::{Claim, ClaimKind, RouteEntry};
use aksnet_core::k8s::store::Stored;
use aksnet_core::k8s::Kind;
use serde_json::{json, Value};

use super::*;
use crate::nsg::{Direction, NsgRule};
use crate::probe::Outcome;
use crate::state::tests::sample_state;
use crate::targets;

fn put(k8s: &mut K8sState, kind: Kind, v: Value) {
    let o = Object::from_value(kind, v).unwrap();
    k8s.objects.insert(
        o.id(),
        Stored {
            value: o,
            mod_revision: 1,
        },
    );
}

/// The store's Pods for the lab's pods, labelled `app=<pod name>`.
fn pods_k8s(st: &LabState) -> K8sState {
    let mut k = K8sState::default();
    for p in &st.pods {
        let node_ip = st.node(&p.node).unwrap().ip;
        put(
            &mut k,
            Kind::Pod,
            json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": p.name, "namespace": p.namespace, "labels": {"app": p.name, "tier": "web"}},
                "spec": {"nodeName": p.node, "containers": [{"name": "c", "ports": [{"containerPort": 80}]}]},
                "status": {"phase": "Running", "podIP": p.ip.unwrap().to_string(), "hostIP": node_ip.to_string()}}),
        );
    }
    k
}

fn kubenet_snap(st: &LabState) -> Snapshot {
    let mut s = Snapshot::default();
    for (i, n) in st.nodes.iter().enumerate() {
        let block: Ipv4Net = format!("10.244.{i}.0/24").parse().unwrap();
        s = s
            .with_route(
                i as u32,
                RouteEntry {
                    node: n.name.clone(),
                    destination: block,
                    next_hop: n.ip,
                },
            )
            .with_block(
                block,
                Claim {
                    node: n.name.clone(),
                    kind: ClaimKind::PodBlock,
                },
            );
    }
    s
}

fn explain(w: &World<'_>, from: &str, to: &str, port: Option<u16>) -> Explanation {
    let src = targets::source(w.state, from).unwrap();
    let dst = targets::destination(w.state, w.k8s, to, port, None).unwrap();
    w.explain(from, to, src.ip, &dst)
}

fn kinds(p: &Path) -> Vec<StepKind> {
    p.steps.iter().map(|s| s.kind).collect()
}

#[test]
fn kubenet_cross_node_through_the_route_table_and_the_nsg() {
    let st = sample_state("kubenet", None, 2, 1);
    let snap = kubenet_snap(&st);
    let k = pods_k8s(&st);
    let w = World {
        state: &st,
        snap: &snap,
        k8s: &k,
        lab: true,
    };
    let e = explain(&w, "pod-1-1", "pod-2-1", None);
    assert!(e.allowed, "{e:#?}");
    assert_eq!(e.verdict, "allowed");
    let p = &e.paths[0];
    assert_eq!(p.delivered_to.as_deref(), Some("default/pod-2-1"));
    assert_eq!(p.source_ip_seen.as_deref(), Some("10.244.0.2"));
    assert!(p.steps.iter().any(|s| s
        .detail
        .contains("route table (UDR): 10.244.1.0/24 → next hop 10.224.0.5")));
    assert!(p
        .steps
        .iter()
        .any(|s| s.detail.contains("nonMasqueradeCIDRs")));
    let nsg: Vec<&str> = p.nsg.iter().map(|d| d.rule.as_str()).collect();
    assert_eq!(nsg, vec!["AllowVnetOutBound", "AllowVnetInBound"]);
    // No route table entry for node-2 (NetworkUnavailable): dropped.
    let mut bare = Snapshot {
        routes: snap.routes.clone(),
        ..Default::default()
    };
    bare.routes.remove(&1);
    let w2 = World { snap: &bare, ..w };
    let e = explain(&w2, "pod-1-1", "pod-2-1", None);
    assert!(!e.allowed);
    let last = e.paths[0].steps.last().unwrap();
    assert_eq!(last.kind, StepKind::Drop);
    assert!(
        last.detail.contains("no entry in the route table"),
        "{last:?}"
    );
}

#[test]
fn nsg_deny_is_named_with_its_priority() {
    let mut st = sample_state("kubenet", None, 2, 1);
    crate::nsg::add(
        &mut st.nsg,
        NsgRule {
            priority: 200,
            direction: Direction::Inbound,
            access: Access::Deny,
            source: None,
            destination: Some("10.244.1.0/24".parse().unwrap()),
            port: Some(80),
            protocol: Some(crate::nsg::Protocol::Tcp),
        },
    )
    .unwrap();
    let snap = kubenet_snap(&st);
    let k = pods_k8s(&st);
    let w = World {
        state: &st,
        snap: &snap,
        k8s: &k,
        lab: true,
    };
    let e = explain(&w, "pod-1-1", "pod-2-1", None);
    assert!(!e.allowed);
    let p = &e.paths[0];
    assert_eq!(p.nsg.last().unwrap().rule, "deny-inbound-200");
    assert_eq!(p.nsg.last().unwrap().priority, 200);
    assert_eq!(*kinds(p).last().unwrap(), StepKind::Nsg);
    // Another port passes; the same node never crosses the fabric.
    let e = explain(&w, "pod-1-1", "pod-2-1", Some(PROBE_PORT));
    assert!(e.allowed, "{e:#?}");
    let e = explain(&w, "node-1", "pod-1-1", None);
    assert!(e.allowed && e.paths[0].nsg.is_empty(), "{e:#?}");
    // The node's source towards its own pods is cbr0's address.
    assert_eq!(e.paths[0].source_ip_seen.as_deref(), Some("10.244.0.1"));
    // The internet host routes only its own network.
    let e = explain(&w, "internet", "vm", None);
    assert!(!e.allowed);
    assert!(e.paths[0].steps[0].detail.contains("network unreachable"));
}

#[test]
fn snat_to_the_node_and_the_public_ip() {
    let st = sample_state("kubenet", None, 2, 1);
    let snap = kubenet_snap(&st);
    let k = pods_k8s(&st);
    let w = World {
        state: &st,
        snap: &snap,
        k8s: &k,
        lab: true,
    };
    let vm = explain(&w, "pod-1-1", "vm", None);
    assert!(vm.allowed, "{vm:#?}");
    assert_eq!(vm.paths[0].source_ip_seen.as_deref(), Some("10.224.0.4"));
    assert!(kinds(&vm.paths[0]).contains(&StepKind::Snat));
    let inet = explain(&w, "pod-1-1", "internet", None);
    assert!(inet.allowed);
    assert_eq!(
        inet.paths[0].source_ip_seen,
        Some(st.addressing.public_ip.to_string())
    );
    assert_eq!(inet.paths[0].nsg[0].rule, "AllowInternetOutBound");
    // Azure CNI keeps the pod IP to the VNet.
    let az = sample_state("azure", None, 2, 1);
    let mut snap = Snapshot::default();
    for p in &az.pods {
        snap = snap.with_ip(
            p.ip.unwrap(),
            Claim {
                node: p.node.clone(),
                kind: ClaimKind::PodIp,
            },
        );
    }
    let k = pods_k8s(&az);
    let w = World {
        state: &az,
        snap: &snap,
        k8s: &k,
        lab: true,
    };
    let vm = explain(&w, "pod-1-1", "vm", None);
    assert_eq!(vm.paths[0].source_ip_seen.as_deref(), Some("10.224.1.1"));
    // VM → pod: routable on Azure CNI (NIC IP configurations), not on kubenet.
    let e = explain(&w, "vm", "pod-2-1", None);
    assert!(e.allowed, "{e:#?}");
    let kst = sample_state("kubenet", None, 2, 1);
    let ksnap = kubenet_snap(&kst);
    let kk = pods_k8s(&kst);
    let kw = World {
        state: &kst,
        snap: &ksnap,
        k8s: &kk,
        lab: true,
    };
    let e = explain(&kw, "vm", "pod-2-1", None);
    assert!(!e.allowed);
    assert!(e.paths[0]
        .steps
        .last()
        .unwrap()
        .detail
        .contains("not routable"));
}

#[test]
fn policy_denies_by_name_and_allows_by_rule_index() {
    let st = sample_state("overlay", None, 2, 1);
    let snap = kubenet_snap(&st);
    let mut k = pods_k8s(&st);
    put(
        &mut k,
        Kind::NetworkPolicy,
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "only-1-1", "namespace": "default"},
            "spec": {"podSelector": {"matchLabels": {"app": "pod-2-1"}},
                "ingress": [{"ports": [{"port": 9}]}, {"from": [{"podSelector": {"matchLabels": {"app": "pod-1-1"}}}]}]}}),
    );
    let w = World {
        state: &st,
        snap: &snap,
        k8s: &k,
        lab: true,
    };
    let e = explain(&w, "pod-1-1", "pod-2-1", None);
    assert!(e.allowed, "{e:#?}");
    let ing = e.paths[0].policy.last().unwrap();
    assert_eq!(ing.allowed_by[0].policy, "default/only-1-1");
    assert_eq!(ing.allowed_by[0].rule, 1);
    assert!(e.paths[0].steps.iter().any(|s| s
        .detail
        .contains("overlay routing domain: 10.244.1.0/24 → node-2")));
    // node-1 → pod-2-1: not the pod's own node, not pod-1-1: denied.
    let e = explain(&w, "node-1", "pod-2-1", None);
    assert!(!e.allowed);
    let last = e.paths[0].steps.last().unwrap();
    assert_eq!(last.kind, StepKind::Policy);
    assert!(last.detail.contains("default/only-1-1"), "{last:?}");
    // node-2 is pod-2-1's node: always allowed.
    assert!(explain(&w, "node-2", "pod-2-1", None).allowed);
    // A pod to itself: on lo, never isolated from itself.
    let e = explain(&w, "pod-2-1", "pod-2-1", None);
    assert!(e.allowed, "{e:#?}");
    assert_eq!(e.paths[0].steps.len(), 3, "{e:#?}");
    assert_eq!(
        e.paths[0].policy.last().unwrap().reason,
        aksnet_core::k8s::policy_eval::Reason::SamePod
    );
}

#[test]
fn a_service_is_followed_once_per_backend() {
    let st = sample_state("kubenet", None, 2, 2);
    let snap = kubenet_snap(&st);
    let mut k = pods_k8s(&st);
    put(
        &mut k,
        Kind::Service,
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
            "spec": {"type": "NodePort", "clusterIP": "10.0.0.50", "selector": {"tier": "web"},
                "ports": [{"port": 8080, "targetPort": 80, "nodePort": 30080}]}}),
    );
    // Only pod-2-1 refuses pod-1-1.
    put(
        &mut k,
        Kind::NetworkPolicy,
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "deny-2-1", "namespace": "default"},
            "spec": {"podSelector": {"matchLabels": {"app": "pod-2-1"}}}}),
    );
    let w = World {
        state: &st,
        snap: &snap,
        k8s: &k,
        lab: true,
    };
    let e = explain(&w, "pod-1-1", "svc/default/web", None);
    assert_eq!(e.service.as_deref(), Some("default/web"));
    assert_eq!(e.port, 8080);
    assert_eq!(e.paths.len(), 4);
    assert!(!e.allowed);
    assert_eq!(e.verdict, "allowed to 3 of 4 backends");
    let denied: Vec<_> = e.paths.iter().filter(|p| !p.allowed).collect();
    assert_eq!(
        denied[0].backend.as_ref().unwrap().pod.as_deref(),
        Some("default/pod-2-1")
    );
    assert_eq!(denied[0].steps[1].kind, StepKind::Dnat);
    // The hairpin backend (pod-1-1 itself) is masqueraded to its node.
    let hair = e
        .paths
        .iter()
        .find(|p| p.delivered_to.as_deref() == Some("default/pod-1-1"))
        .unwrap();
    // On kubenet masquerade towards a local pod takes cbr0's address.
    assert_eq!(hair.source_ip_seen.as_deref(), Some("10.244.0.1"));
    // A NodePort from the VM: DNAT on node-1, masquerade, the fabric again.
    let e = explain(&w, "vm", "nodeport/default/web@node-1", None);
    let to_22 = e
        .paths
        .iter()
        .find(|p| p.delivered_to.as_deref() == Some("default/pod-2-2"))
        .unwrap();
    assert_eq!(to_22.source_ip_seen.as_deref(), Some("10.224.0.4"));
    assert_eq!(to_22.nsg.len(), 3, "{to_22:#?}");
    // A pod to another node's NodePort: DNAT'd there, not on its own node.
    let e = explain(&w, "pod-1-1", "nodeport/default/web@node-2", None);
    assert_eq!(e.paths.len(), 4, "{e:#?}");
    let dnat = e.paths[0]
        .steps
        .iter()
        .find(|s| s.kind == StepKind::Dnat)
        .unwrap();
    assert_eq!(dnat.at, "node-2");
    // node-1 → ClusterIP → a backend on node-2: masqueraded once, to node-1.
    let e = explain(&w, "node-1", "svc/default/web", None);
    let to_22 = e
        .paths
        .iter()
        .find(|p| p.delivered_to.as_deref() == Some("default/pod-2-2"))
        .unwrap();
    assert_eq!(
        to_22.source_ip_seen.as_deref(),
        Some("10.224.0.4"),
        "{to_22:#?}"
    );
    // An undeclared port of the ClusterIP is refused.
    let e = explain(&w, "pod-1-1", "svc/default/web", Some(81));
    assert!(!e.allowed);
    assert!(e.paths[0].steps.last().unwrap().detail.contains("refused"));
}

#[test]
fn verification_compares_with_the_paths() {
    let st = sample_state("kubenet", None, 2, 1);
    let snap = kubenet_snap(&st);
    let k = pods_k8s(&st);
    let w = World {
        state: &st,
        snap: &snap,
        k8s: &k,
        lab: true,
    };
    let e = explain(&w, "pod-1-1", "pod-2-1", None);
    let ok = Outcome {
        reachable: true,
        refused: false,
        source: Some("10.244.0.2".parse().unwrap()),
        label: Some("default/pod-2-1".into()),
        error: None,
        elapsed: std::time::Duration::from_millis(1),
    };
    assert!(verify(&e, std::slice::from_ref(&ok)).agrees);
    // Reached, but from a source the explanation does not say: disagrees.
    let natted = Outcome {
        source: Some("10.224.0.4".parse().unwrap()),
        ..ok.clone()
    };
    let v = verify(&e, &[natted]);
    assert!(!v.agrees);
    assert_eq!(
        v.note.as_deref(),
        Some("source seen 10.224.0.4, explained 10.244.0.2")
    );
    let v = verify(&e, &[Outcome::failed("timed out")]);
    assert!(!v.agrees && v.note.as_deref() == Some("timed out"));
    let wrong = Outcome {
        label: Some("default/pod-1-1".into()),
        ..ok.clone()
    };
    assert!(!verify(&e, &[wrong]).agrees);
    let mut denied = e.clone();
    denied.allowed = false;
    denied.paths[0].allowed = false;
    assert!(verify(&denied, &[Outcome::failed("x")]).agrees);
    assert!(!verify(&denied, &[ok]).agrees);
    let json = serde_json::to_value(&e).unwrap();
    for f in [
        "from", "to", "paths", "allowed", "verdict", "address", "port", "protocol",
    ] {
        assert!(json.get(f).is_some(), "{f}");
    }
    assert_eq!(json["paths"][0]["steps"][0]["kind"], "route");
}

#[test]
fn a_store_alone_has_nodes_and_pods_but_no_fabric() {
    let st = sample_state("kubenet", None, 2, 1);
    let mut snap = kubenet_snap(&st);
    for n in &st.nodes {
        snap = snap.with_node(aksnet_core::cluster::NodeRecord::new(
            &n.name,
            n.ip,
            aksnet_core::cluster::RouteMode::Fabric,
        ));
    }
    let k = pods_k8s(&st);
    let s = store_state(st.network.clone(), &snap, &k).unwrap();
    assert_eq!(s.nodes.len(), 2);
    assert_eq!(s.pods.len(), 2);
    assert_eq!(s.pods[1].node, "node-2");
    let w = World {
        state: &s,
        snap: &snap,
        k8s: &k,
        lab: false,
    };
    let e = explain(&w, "pod-1-1", "pod-2-1", None);
    assert!(e.allowed, "{e:#?}");
    assert!(e.paths[0].nsg.is_empty());
    assert!(e.paths[0]
        .steps
        .iter()
        .any(|s| s.detail.contains("not known without --lab")));
}
