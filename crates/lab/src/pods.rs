//! Pods, created the way a container runtime does it: a network namespace
//! (the sandbox), then CNI ADD of the conflist the node's agent wrote, with
//! the plugins running in the node namespace; then the pod's probe server
//! on its container ports. Removal is CNI DEL with the cached result, then
//! the namespace.
//!
//! A pod's namespace is named by its node and its index on that node
//! (`aksnet-lab-NAME-pod-<node>-<j>`), whatever its Kubernetes namespace and
//! name are, so `lab down` finds it by name alone.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use aksnet_core::k8s::namespace::DEFAULT_NAMESPACE;
use aksnet_core::spec::ClusterNetwork;
use serde_json::Value;

use crate::cluster_dns;
use crate::cni::{self, Attachment, Runtime};
use crate::error::{LabError, Result};
use crate::ip;
use crate::nodes;
use crate::probe::Listen;
use crate::process;
use crate::state::{LabDir, LabState, PodState};
use crate::topology::{self, netns_path};

/// CNI ADDs run at once (a kubelet runs several sandboxes in parallel too).
const PARALLEL_ADDS: usize = 4;

fn result_path(dir: &LabDir, p: &PodState) -> PathBuf {
    dir.pod_dir().join(format!(
        "{}.json",
        topology::pod_name(p.node_index, p.index)
    ))
}

fn runtime(state: &LabState, node_index: u32) -> Runtime {
    Runtime {
        bin_dir: state.cni_bin_dir.clone(),
        host_netns: netns_path(&state.names().node(node_index)),
    }
}

/// The key of a node's next pod index: workload and DNS pods apart.
fn index_key(node: &str, dns: bool) -> String {
    format!("{node}{}", if dns { "/dns" } else { "" })
}

/// Refuses, before any work, pods beyond what a node may hold: its pool's
/// max pods (`--max-pods`, AKS's per-model default otherwise; at most 250,
/// which a kubenet or overlay node's /24 always has room for).
pub fn check_room(net: &ClusterNetwork, on_node: usize, adding: u32) -> Result<()> {
    if adding == 0 {
        return Ok(());
    }
    let max_pods = net.max_pods_per_node();
    let wanted = on_node + adding as usize;
    if wanted > max_pods as usize {
        return Err(LabError::Design(format!(
            "a node holds at most {max_pods} pods (max pods of this {} cluster); it has {on_node} and {adding} more were asked for",
            net.network_plugin
        )));
    }
    Ok(())
}

/// A pod to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPod {
    pub namespace: String,
    pub name: String,
    pub node: String,
    pub ports: Vec<Listen>,
    /// Its Pod's `metadata.uid`, when it runs for a Pod of the store.
    pub uid: Option<String>,
}

/// `lab add-pod`: `count` pods on `node`, named `pod-<node>-<j>` in
/// `default`; returns their names. A pod whose ADD fails is removed again
/// and the first failure is returned after the others were tried (an
/// exhausted node shows exactly which pods did not fit).
pub fn add(
    dir: &LabDir,
    state: &mut LabState,
    node: &str,
    count: u32,
    tick: &dyn Fn(&str),
) -> Result<Vec<String>> {
    let n = state.require_node(node)?.clone();
    let mut j = state
        .pods_on(node)
        .filter(|p| !cluster_dns::is_dns_pod(p))
        .map(|p| p.index)
        .max()
        .unwrap_or(0);
    let mut new = vec![];
    for _ in 0..count {
        // The next index whose name no Pod of `default` has taken.
        loop {
            j += 1;
            let name = topology::pod_name(n.index, j);
            if state.pod(&name).is_none() && !new.iter().any(|p: &NewPod| p.name == name) {
                break;
            }
        }
        new.push(NewPod {
            namespace: DEFAULT_NAMESPACE.into(),
            name: topology::pod_name(n.index, j),
            node: n.name.clone(),
            ports: vec![Listen::default_pod_port()],
            uid: None,
        });
    }
    let results = create(dir, state, new, tick)?;
    let added: Vec<String> = results
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(p, _)| p.name.clone())
        .collect();
    let first_err = results.into_iter().find_map(|(_, r)| r.err());
    match first_err {
        Some(e) if added.is_empty() => Err(e),
        Some(e) => Err(LabError::Invalid(format!(
            "added {} of {count} pods to {node} ({}); then: {e}",
            added.len(),
            added.join(", ")
        ))),
        None => Ok(added),
    }
}

/// Creates pods on their nodes (CNI ADDs in parallel), each with its probe
/// server; returns every pod with its outcome, in the order given. A pod
/// whose ADD fails is removed again. `Err` only for what stops them all
/// (a missing plugin, an unknown node, the state not saved).
pub fn create(
    dir: &LabDir,
    state: &mut LabState,
    new: Vec<NewPod>,
    tick: &dyn Fn(&str),
) -> Result<Vec<(NewPod, Result<()>)>> {
    create_gated(dir, state, new, tick, &|_, _| Ok(()))
}

/// Before a pod's "containers" start: the state with the new pods'
/// addresses, and the pods (`NAMESPACE/NAME`) whose ADD succeeded.
pub type Gate<'a> = &'a dyn Fn(&LabState, &[String]) -> Result<()>;

/// [`create`], with `gate` run between the ADDs and the probe servers: the
/// kubelet writes the Pods' addresses and waits there for their nodes'
/// agents to enforce network policy on them. When the gate fails, no
/// server starts and every new pod fails with its error.
pub fn create_gated(
    dir: &LabDir,
    state: &mut LabState,
    new: Vec<NewPod>,
    tick: &dyn Fn(&str),
    gate: Gate<'_>,
) -> Result<Vec<(NewPod, Result<()>)>> {
    if new.is_empty() {
        return Ok(vec![]);
    }
    // Max pods per node, checked for all of them before any is made.
    let mut per_node: BTreeMap<&str, u32> = BTreeMap::new();
    for p in &new {
        *per_node.entry(p.node.as_str()).or_default() += 1;
    }
    for (node, adding) in per_node {
        check_room(&state.network, state.pods_on(node).count(), adding)?;
    }
    cni::check_plugins(&state.cni_bin_dir)?;
    let mut conflists: BTreeMap<String, Value> = BTreeMap::new();
    let mut next_index: BTreeMap<String, u32> = BTreeMap::new();
    for p in &new {
        let n = state.require_node(&p.node)?.clone();
        if !conflists.contains_key(&n.name) {
            conflists.insert(
                n.name.clone(),
                Runtime::load_conflist(&nodes::conflist_path(dir, &n.name))?,
            );
        }
        // Workload pods and DNS pods count up apart, so that `lab up`'s
        // `pod-<node>-<j>` stays in namespace `…-pod-<node>-<j>`.
        let dns = cluster_dns::is_dns_name(&p.namespace, &p.name);
        next_index
            .entry(index_key(&n.name, dns))
            .or_insert_with(|| {
                state
                    .pods_on(&n.name)
                    .filter(|x| cluster_dns::is_dns_pod(x) == dns)
                    .map(|x| x.index)
                    .max()
                    .map_or(if dns { cluster_dns::DNS_POD_INDEX } else { 1 }, |m| m + 1)
            });
        if state.pod(&format!("{}/{}", p.namespace, p.name)).is_some() {
            return Err(LabError::Invalid(format!(
                "pod {}/{} already runs in lab {}",
                p.namespace, p.name, state.name
            )));
        }
    }
    let names = state.names();
    let mut planned: Vec<PodState> = vec![];
    for p in &new {
        let n = state.require_node(&p.node)?.clone();
        let key = index_key(&n.name, cluster_dns::is_dns_name(&p.namespace, &p.name));
        let j = next_index.get_mut(&key).map_or(1, |j| {
            *j += 1;
            *j - 1
        });
        let role = topology::pod_name(n.index, j);
        planned.push(PodState {
            name: p.name.clone(),
            namespace: p.namespace.clone(),
            node: n.name.clone(),
            node_index: n.index,
            index: j,
            container_id: format!("aksnetlab-{}-{role}", state.name),
            ip: None,
            probe_pid: None,
            ports: p.ports.clone(),
            uid: p.uid.clone(),
            dns_pid: None,
        });
    }
    state.pods.extend(planned.iter().cloned());
    dir.save(state)?;
    ip::netns_batch(
        &planned
            .iter()
            .map(|p| format!("netns add {}", names.pod(p.node_index, p.index)))
            .collect::<Vec<_>>(),
    )?;
    for p in &planned {
        ip::batch(
            &names.pod(p.node_index, p.index),
            &["link set dev lo up".into()],
        )?;
        // The kubelet's resolv.conf for the pod (the cluster DNS).
        cluster_dns::write_resolv_conf(state, p)?;
    }
    let results: Mutex<Vec<(String, Result<Value>)>> = Mutex::new(vec![]);
    let queue = Mutex::new(planned.iter());
    let st: &LabState = state;
    std::thread::scope(|s| {
        for _ in 0..PARALLEL_ADDS.min(planned.len()) {
            s.spawn(|| loop {
                let Some(p) = queue.lock().ok().and_then(|mut q| q.next()) else {
                    return;
                };
                let ns = netns_path(&names.pod(p.node_index, p.index));
                let r = match conflists.get(&p.node) {
                    Some(conflist) => runtime(st, p.node_index).add(
                        conflist,
                        &Attachment {
                            container_id: &p.container_id,
                            netns: &ns,
                            ifname: "eth0",
                            pod_namespace: &p.namespace,
                            pod_name: &p.name,
                        },
                    ),
                    None => Err(LabError::Invalid(format!("no conflist for {}", p.node))),
                };
                // The ADD result, kept for DEL (best effort: never an empty file).
                if let Some(bytes) = r.as_ref().ok().and_then(|v| serde_json::to_vec(v).ok()) {
                    let _ = std::fs::write(result_path(dir, p), bytes);
                }
                if let Ok(mut out) = results.lock() {
                    out.push((p.id(), r));
                }
            });
        }
    });
    let mut outcome: BTreeMap<String, Result<()>> = BTreeMap::new();
    for (id, r) in results.into_inner().unwrap_or_default() {
        match r {
            Ok(v) => {
                let ip = cni::result_ipv4(&v);
                if let Some(p) = state.pods.iter_mut().find(|p| p.is(&id)) {
                    p.ip = ip;
                }
                outcome.insert(id, Ok(()));
            }
            Err(e) => {
                if let Err(e2) = remove_one(dir, state, &id) {
                    tracing::warn!("removing {id} after its failed ADD: {e2}");
                }
                outcome.insert(id, Err(e));
            }
        }
    }
    dir.save(state)?;
    let added: Vec<String> = planned
        .iter()
        .map(PodState::id)
        .filter(|id| matches!(outcome.get(id), Some(Ok(()))))
        .collect();
    if !added.is_empty() {
        if let Err(e) = gate(state, &added) {
            for id in &added {
                outcome.insert(id.clone(), Err(LabError::Invalid(e.to_string())));
            }
        }
    }
    for p in &planned {
        if !matches!(outcome.get(&p.id()), Some(Ok(()))) {
            continue;
        }
        let dns = if cluster_dns::is_dns_pod(p) {
            cluster_dns::start_server(dir, state, p).map(Some)
        } else {
            Ok(None)
        };
        match dns.and_then(|dns| Ok((start_server(dir, state, p)?, dns))) {
            Ok((pid, dns)) => {
                if let Some(s) = state.pods.iter_mut().find(|x| x.is(&p.id())) {
                    s.probe_pid = Some(pid);
                    s.dns_pid = dns;
                }
                tick(&format!("{} on {}", p.display(), p.node));
            }
            Err(e) => {
                outcome.insert(p.id(), Err(e));
            }
        }
    }
    dir.save(state)?;
    Ok(new
        .into_iter()
        .map(|p| {
            let id = format!("{}/{}", p.namespace, p.name);
            let r = outcome
                .remove(&id)
                .unwrap_or_else(|| Err(LabError::Invalid(format!("{id} was not created"))));
            (p, r)
        })
        .collect())
}

fn start_server(dir: &LabDir, state: &LabState, p: &PodState) -> Result<u32> {
    // A DNS pod's port 53 is its `aksnet dns`; the probe server takes the rest.
    let ports: Vec<Listen> = p
        .ports
        .iter()
        .filter(|l| !(cluster_dns::is_dns_pod(p) && l.port == cluster_dns::DNS_PORT))
        .cloned()
        .collect();
    nodes::start_probe_on(
        dir,
        state,
        &state.names().pod(p.node_index, p.index),
        &p.id(),
        &ports,
    )
}

/// Gives a running pod new container ports: its probe server is restarted
/// on them.
pub fn set_ports(
    dir: &LabDir,
    state: &mut LabState,
    reference: &str,
    ports: Vec<Listen>,
) -> Result<()> {
    let mut p = state.require_pod(reference)?.clone();
    if let Some(pid) = p.probe_pid {
        process::stop(pid, &dir.marker(), Duration::from_millis(500));
    }
    p.ports = ports;
    let pid = start_server(dir, state, &p)?;
    if let Some(s) = state.pods.iter_mut().find(|x| x.is(reference)) {
        s.ports = p.ports;
        s.probe_pid = Some(pid);
    }
    dir.save(state)
}

/// CNI DEL, probe stopped, namespace removed, state entry dropped.
/// `reference` is `NAMESPACE/NAME`, or `NAME` in `default`.
pub fn remove_one(dir: &LabDir, state: &mut LabState, reference: &str) -> Result<()> {
    let p = state.require_pod(reference)?.clone();
    if let Some(pid) = p.probe_pid {
        process::stop(pid, &dir.marker(), Duration::from_millis(500));
    }
    cluster_dns::stop_server(state, &p);
    let del = cni_del(dir, state, &p);
    let ns = state.names().pod(p.node_index, p.index);
    if ip::netns_exists(&ns) {
        ip::netns_batch(&[format!("netns del {ns}")])?;
    }
    cluster_dns::remove_etc(&ns);
    let _ = std::fs::remove_file(result_path(dir, &p));
    state.pods.retain(|x| !x.is(&p.id()));
    dir.save(state)?;
    del
}

/// CNI DEL of one pod through its node's conflist (if the node still has one).
pub fn cni_del(dir: &LabDir, state: &LabState, p: &PodState) -> Result<()> {
    let path = nodes::conflist_path(dir, &p.node);
    if !path.exists() {
        return Ok(());
    }
    let conflist = Runtime::load_conflist(&path)?;
    let cached: Option<Value> = std::fs::read(result_path(dir, p))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let ns = netns_path(&state.names().pod(p.node_index, p.index));
    runtime(state, p.node_index).del(
        &conflist,
        &Attachment {
            container_id: &p.container_id,
            netns: &ns,
            ifname: "eth0",
            pod_namespace: &p.namespace,
            pod_name: &p.name,
        },
        cached.as_ref(),
    )
}
