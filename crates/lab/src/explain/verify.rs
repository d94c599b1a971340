//! `--verify`: the probes against the explanation; and the state of a
//! store alone for `--store`.

use super::*;

/// A state for a store alone (`explain --store`): its nodes (the cluster
/// view's records) and its Pods with an address, so that FROM and TO are
/// read with the lab's own target syntax.
pub fn store_state(
    network: aksnet_core::spec::ClusterNetwork,
    snap: &Snapshot,
    k8s: &K8sState,
) -> crate::error::Result<LabState> {
    let addressing = crate::topology::Addressing::plan(&network, None)?;
    let mut st = LabState::new("store", network, addressing, "aksnet".into(), "".into());
    for (i, n) in snap.node_records().enumerate() {
        st.nodes.push(NodeState {
            name: n.name.clone(),
            index: i as u32 + 1,
            ip: n.ip,
            agent_pid: None,
            probe_pid: None,
        });
    }
    for (j, pod) in k8s
        .objects
        .values()
        .filter_map(|s| s.value.as_pod())
        .filter(|p| p.spec.host_network != Some(true) && !p.is_finished())
        .enumerate()
    {
        let Some(ip) = pod.pod_ipv4() else { continue };
        let node = pod.spec.node_name.clone().unwrap_or_default();
        let node_index = st
            .nodes
            .iter()
            .find(|n| n.name == node)
            .map_or(0, |n| n.index);
        st.pods.push(PodState {
            name: pod.metadata.name.clone(),
            namespace: pod
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into()),
            node,
            node_index,
            index: j as u32 + 1,
            container_id: String::new(),
            ip: Some(ip),
            probe_pid: None,
            dns_pid: None,
            ports: crate::kubelet::schedule::ports_of(pod),
            uid: None,
        });
    }
    Ok(st)
}

/// Compares probes with the explanation: reachable must be what it says,
/// and a reached backend must be one whose path is allowed.
pub fn verify(e: &Explanation, outcomes: &[crate::probe::Outcome]) -> Verification {
    let reached: Vec<&crate::probe::Outcome> = outcomes.iter().filter(|o| o.reachable).collect();
    let answered_by: Vec<String> = {
        let mut v: Vec<String> = reached.iter().filter_map(|o| o.label.clone()).collect();
        v.sort();
        v.dedup();
        v
    };
    let allowed_to: Vec<&str> = e
        .paths
        .iter()
        .filter(|p| p.allowed)
        .filter_map(|p| p.delivered_to.as_deref())
        .collect();
    let any_allowed = e.paths.iter().any(|p| p.allowed);
    // Each answer's source is the one its path says (the NATs on the way).
    let wrong_source = reached.iter().find_map(|o| {
        let path = e
            .paths
            .iter()
            .find(|p| p.allowed && p.delivered_to.as_deref() == o.label.as_deref())?;
        let want = path.source_ip_seen.as_deref()?;
        let got = o.source.map(|s| s.to_string()).unwrap_or_default();
        (want != got).then(|| format!("source seen {got}, explained {want}"))
    });
    let agrees = wrong_source.is_none()
        && if e.allowed {
            reached.len() == outcomes.len()
                && answered_by.iter().all(|a| allowed_to.contains(&a.as_str()))
        } else if any_allowed {
            // Some backends allowed, some denied: whatever answered must be one
            // of the allowed.
            answered_by.iter().all(|a| allowed_to.contains(&a.as_str()))
        } else {
            reached.is_empty()
        };
    let note = if agrees {
        None
    } else if let Some(w) = wrong_source {
        Some(w)
    } else if reached.is_empty() {
        Some(
            outcomes
                .iter()
                .find_map(|o| o.error.clone())
                .unwrap_or_else(|| "the data plane dropped or refused it".into()),
        )
    } else if e.allowed && reached.len() < outcomes.len() {
        Some(format!(
            "{} of {} probes reached it",
            reached.len(),
            outcomes.len()
        ))
    } else {
        Some(format!("answered by {}", answered_by.join(", ")))
    };
    Verification {
        probes: outcomes.len() as u32,
        reached: reached.len() as u32,
        source_ip_seen: reached
            .first()
            .and_then(|o| o.source)
            .map(|s| s.to_string()),
        answered_by,
        reachable: !reached.is_empty(),
        agrees,
        note,
    }
}
