//! The kubelet's decisions, pure: which store Pods the lab starts (and on
//! which node), which lab pods it stops, whose probe server moves to new
//! ports, and the status each running Pod gets written back.

use std::collections::BTreeMap;

use aksnet_core::k8s::pod::{PodCondition, PodIp, PodStatus};
use aksnet_core::k8s::{ObjectId, Pod};
use serde_json::json;

use crate::pods::NewPod;
use crate::probe::{Listen, Protocol};
use crate::state::{LabState, PodState};

/// One thing to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Start(NewPod),
    /// `NAMESPACE/NAME` of a lab pod whose Pod is gone (or was replaced).
    Stop(String),
    Ports(String, Vec<Listen>),
    /// The Pod cannot run in this lab; the reason goes to its status.
    Pending(ObjectId, String),
}

/// The probe server's ports for a Pod: every container port (TCP and UDP;
/// SCTP is not served), or 80/TCP when no container declares one.
pub fn ports_of(p: &Pod) -> Vec<Listen> {
    let mut v: Vec<Listen> = p
        .spec
        .containers
        .iter()
        .flat_map(|c| c.ports.iter())
        .filter_map(|cp| {
            let port = u16::try_from(cp.container_port).ok().filter(|p| *p > 0)?;
            Some(Listen {
                port,
                protocol: Protocol::from_k8s(cp.protocol.as_deref())?,
                name: cp.name.clone(),
            })
        })
        .collect();
    let declared = p.spec.containers.iter().any(|c| !c.ports.is_empty());
    if !declared {
        v.push(Listen::default_pod_port());
    }
    // In the order declared (the first is what `lab probe` aims at), each once.
    let mut seen = std::collections::BTreeSet::new();
    v.retain(|l| seen.insert((l.port, l.protocol)));
    v
}

/// Why the lab does not run `p`, if it does not.
fn cannot_run(state: &LabState, p: &Pod) -> Option<String> {
    if p.spec.host_network == Some(true) {
        return Some(
            "hostNetwork Pods are not run by the lab (every lab pod has a namespace of its own)"
                .into(),
        );
    }
    if let Some(n) = &p.spec.node_name {
        if state.node(n).is_none() {
            return Some(format!(
                "spec.nodeName {n} is not a node of lab {} ({})",
                state.name,
                state
                    .nodes
                    .iter()
                    .map(|n| n.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    if state.nodes.is_empty() {
        return Some(format!("lab {} has no node", state.name));
    }
    None
}

/// Every action that makes the lab's pods the store's Pods. `pods` are the
/// store's Pods (finished ones, `Succeeded`/`Failed`, are not run).
pub fn plan(state: &LabState, pods: &[(ObjectId, Pod)]) -> Vec<Action> {
    let mut out = vec![];
    let wanted: BTreeMap<String, &Pod> = pods
        .iter()
        .filter(|(_, p)| !p.is_finished())
        .map(|(id, p)| (format!("{}/{}", id.namespace, id.name), p))
        .collect();
    // Pods per node, after this plan: what "least loaded" counts.
    let mut load: BTreeMap<String, usize> = state
        .nodes
        .iter()
        .map(|n| (n.name.clone(), state.pods_on(&n.name).count()))
        .collect();
    for lp in &state.pods {
        let keep = wanted.get(&lp.id()).is_some_and(|p| same_pod(lp, p));
        if !keep {
            out.push(Action::Stop(lp.id()));
            if let Some(n) = load.get_mut(&lp.node) {
                *n = n.saturating_sub(1);
            }
        }
    }
    for (id, p) in pods {
        if p.is_finished() {
            continue;
        }
        let key = format!("{}/{}", id.namespace, id.name);
        if let Some(lp) = state.pod(&key).filter(|lp| same_pod(lp, p)) {
            let ports = ports_of(p);
            if lp.ports != ports {
                out.push(Action::Ports(key, ports));
            }
            continue;
        }
        if let Some(why) = cannot_run(state, p) {
            out.push(Action::Pending(id.clone(), why));
            continue;
        }
        let node = match &p.spec.node_name {
            Some(n) => n.clone(),
            // The least loaded node; the lowest index among equals.
            None => state
                .nodes
                .iter()
                .min_by_key(|n| (load.get(&n.name).copied().unwrap_or(0), n.index))
                .map(|n| n.name.clone())
                .unwrap_or_default(),
        };
        *load.entry(node.clone()).or_default() += 1;
        out.push(Action::Start(NewPod {
            namespace: id.namespace.clone(),
            name: id.name.clone(),
            node,
            ports: ports_of(p),
            uid: p.metadata.uid.clone(),
        }));
    }
    out
}

/// Whether the lab pod runs for this Pod: the same uid (a Pod deleted and
/// applied again under its name is another Pod), on the node it names.
fn same_pod(lp: &PodState, p: &Pod) -> bool {
    let uid_ok = match (&lp.uid, &p.metadata.uid) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    };
    let node_ok = p.spec.node_name.as_deref().is_none_or(|n| n == lp.node);
    uid_ok && node_ok
}

/// The Pod as the kubelet reports it: bound to the node, Running and
/// Ready with the pod's address. `None` when it already says so.
pub fn running(p: &Pod, lp: &PodState, host_ip: &str, now: &str) -> Option<Pod> {
    let ip = lp.ip?.to_string();
    let old = p.status.clone().unwrap_or_default();
    let ok = p.spec.node_name.as_deref() == Some(lp.node.as_str())
        && old.phase.as_deref() == Some("Running")
        && old.pod_ip.as_deref() == Some(ip.as_str())
        && old.host_ip.as_deref() == Some(host_ip)
        && p.ready_condition();
    if ok {
        return None;
    }
    let mut new = p.clone();
    new.spec.node_name = Some(lp.node.clone());
    let cond = |t: &str| PodCondition {
        type_: t.into(),
        status: "True".into(),
        extra: serde_json::Map::from_iter([("lastTransitionTime".to_string(), json!(now))]),
    };
    let mut extra = old.extra.clone();
    extra
        .entry("startTime".to_string())
        .or_insert_with(|| json!(now));
    extra.insert("hostIPs".into(), json!([{ "ip": host_ip }]));
    new.status = Some(PodStatus {
        phase: Some("Running".into()),
        pod_ip: Some(ip.clone()),
        pod_ips: vec![PodIp { ip }],
        host_ip: Some(host_ip.into()),
        conditions: [
            "PodReadyToStartContainers",
            "Initialized",
            "Ready",
            "ContainersReady",
            "PodScheduled",
        ]
        .iter()
        .map(|t| cond(t))
        .collect(),
        extra,
    });
    Some(new)
}

/// The Pod as Pending, with why. `None` when it already says so.
pub fn pending(p: &Pod, reason: &str, message: &str) -> Option<Pod> {
    let old = p.status.clone().unwrap_or_default();
    let has = old.phase.as_deref() == Some("Pending")
        && old.conditions.iter().any(|c| {
            c.type_ == "PodScheduled"
                && c.extra.get("message").and_then(|m| m.as_str()) == Some(message)
        });
    if has {
        return None;
    }
    let mut new = p.clone();
    new.status = Some(PodStatus {
        phase: Some("Pending".into()),
        conditions: vec![PodCondition {
            type_: "PodScheduled".into(),
            status: "False".into(),
            extra: serde_json::Map::from_iter([
                ("reason".to_string(), json!(reason)),
                ("message".to_string(), json!(message)),
            ]),
        }],
        ..Default::default()
    });
    Some(new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::tests::sample_state;
    use aksnet_core::k8s::Kind;
    use serde_json::Value;

    fn pod(ns: &str, name: &str, extra_spec: Value) -> (ObjectId, Pod) {
        let mut spec = json!({"containers": [{"name": "c", "image": "x"}]});
        if let (Some(s), Some(e)) = (spec.as_object_mut(), extra_spec.as_object()) {
            for (k, v) in e {
                s.insert(k.clone(), v.clone());
            }
        }
        let p: Pod = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "uid": format!("u-{name}")},
            "spec": spec}))
        .unwrap();
        (ObjectId::new(Kind::Pod, ns, name), p)
    }

    #[test]
    fn ports_from_containers_or_80() {
        let (_, p) = pod("a", "b", json!({}));
        assert_eq!(ports_of(&p), vec![Listen::new(80, Protocol::Tcp)]);
        let (_, p) = pod(
            "a",
            "b",
            json!({"containers": [
                {"name": "c", "ports": [{"containerPort": 8080, "name": "http"}, {"containerPort": 53, "protocol": "UDP"}]},
                {"name": "d", "ports": [{"containerPort": 53, "protocol": "TCP"}, {"containerPort": 9, "protocol": "SCTP"}]}]}),
        );
        let got: Vec<String> = ports_of(&p).iter().map(|l| l.to_string()).collect();
        assert_eq!(got, ["8080/tcp", "53/udp", "53/tcp"]);
        assert_eq!(ports_of(&p)[0].name.as_deref(), Some("http"));
    }

    #[test]
    fn starts_new_pods_on_the_least_loaded_node_and_stops_gone_ones() {
        // node-1 has 2 pods, node-2 has 2; lab pods pod-1-1.. are not in the
        // store any more except pod-1-1, so three stop.
        let st = sample_state("kubenet", None, 2, 2);
        let (_, mut kept) = pod("default", "pod-1-1", json!({}));
        kept.metadata.uid = None; // recorded before uids: still the same pod
        let pods = vec![
            (ObjectId::new(Kind::Pod, "default", "pod-1-1"), kept),
            pod("shop", "a", json!({})),
            pod("shop", "b", json!({})),
            pod("shop", "c", json!({"nodeName": "node-2"})),
            pod("shop", "d", json!({"nodeName": "node-9"})),
            pod("shop", "e", json!({"hostNetwork": true})),
        ];
        let acts = plan(&st, &pods);
        let stops: Vec<&str> = acts
            .iter()
            .filter_map(|a| match a {
                Action::Stop(s) => Some(s.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(
            stops,
            ["default/pod-1-2", "default/pod-2-1", "default/pod-2-2"]
        );
        let starts: Vec<(String, String)> = acts
            .iter()
            .filter_map(|a| match a {
                Action::Start(n) => Some((n.name.clone(), n.node.clone())),
                _ => None,
            })
            .collect();
        // After the stops node-1 holds 1 and node-2 none: a → node-2, b → node-1
        // (1 each, lowest index), c where it asks.
        assert_eq!(
            starts,
            [
                ("a".to_string(), "node-2".to_string()),
                ("b".into(), "node-1".into()),
                ("c".into(), "node-2".into())
            ]
        );
        let pending: Vec<&String> = acts
            .iter()
            .filter_map(|a| match a {
                Action::Pending(id, why) => Some((id, why)),
                _ => None,
            })
            .map(|(_, w)| w)
            .collect();
        assert_eq!(pending.len(), 2);
        assert!(pending[0].contains("node-9") && pending[0].contains("node-1, node-2"));
        assert!(pending[1].contains("hostNetwork"));
    }

    #[test]
    fn a_pod_applied_again_under_its_name_is_restarted_and_ports_follow() {
        let mut st = sample_state("kubenet", None, 1, 1);
        st.pods[0].uid = Some("old".into());
        let (id, mut p) = pod("default", "pod-1-1", json!({}));
        p.metadata.uid = Some("new".into());
        let acts = plan(&st, &[(id.clone(), p.clone())]);
        assert!(matches!(&acts[0], Action::Stop(s) if s == "default/pod-1-1"));
        assert!(matches!(&acts[1], Action::Start(n) if n.uid.as_deref() == Some("new")));
        p.metadata.uid = Some("old".into());
        p.spec.containers[0].ports =
            vec![serde_json::from_value(json!({"containerPort": 9000})).unwrap()];
        let acts = plan(&st, &[(id, p)]);
        assert_eq!(
            acts,
            [Action::Ports(
                "default/pod-1-1".into(),
                vec![Listen::new(9000, Protocol::Tcp)]
            )]
        );
    }

    #[test]
    fn status_written_once() {
        let st = sample_state("kubenet", None, 1, 1);
        let lp = &st.pods[0];
        let (_, p) = pod("default", "pod-1-1", json!({}));
        let r = running(&p, lp, "10.224.0.4", "2026-01-01T00:00:00Z").unwrap();
        assert_eq!(r.spec.node_name.as_deref(), Some("node-1"));
        assert_eq!(r.pod_ipv4(), lp.ip);
        assert!(r.readiness().ready);
        assert_eq!(r.phase(), Some("Running"));
        assert!(
            running(&r, lp, "10.224.0.4", "later").is_none(),
            "nothing to change"
        );
        let pe = pending(&p, "Unschedulable", "no").unwrap();
        assert_eq!(pe.phase(), Some("Pending"));
        assert!(!pe.readiness().ready);
        assert!(pending(&pe, "Unschedulable", "no").is_none());
    }
}
