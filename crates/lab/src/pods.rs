//! Pods, created the way a container runtime does it: a network namespace
//! (the sandbox), then CNI ADD of the conflist the node's agent wrote, with
//! the plugins running in the node namespace; then the pod's probe server.
//! Removal is CNI DEL with the cached result, then the namespace.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use aksnet_core::spec::ClusterNetwork;
use serde_json::Value;

use crate::cni::{self, Attachment, Runtime};
use crate::error::{LabError, Result};
use crate::ip;
use crate::nodes;
use crate::process;
use crate::state::{LabDir, LabState, PodState};
use crate::topology::{self, netns_path};

/// CNI ADDs run at once (a kubelet runs several sandboxes in parallel too).
const PARALLEL_ADDS: usize = 4;

fn result_path(dir: &LabDir, pod: &str) -> PathBuf {
    dir.pod_dir().join(format!("{pod}.json"))
}

fn runtime(state: &LabState, node_index: u32) -> Runtime {
    Runtime {
        bin_dir: state.cni_bin_dir.clone(),
        host_netns: netns_path(&state.names().node(node_index)),
    }
}

/// Adds `count` pods to `node`; returns their names. A pod whose ADD fails
/// is removed again and the first failure is returned after the others
/// were tried (an exhausted node shows exactly which pods did not fit).
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

pub fn add(
    dir: &LabDir,
    state: &mut LabState,
    node: &str,
    count: u32,
    tick: &dyn Fn(&str),
) -> Result<Vec<String>> {
    let n = state.require_node(node)?.clone();
    check_room(&state.network, state.pods_on(node).count(), count)?;
    cni::check_plugins(&state.cni_bin_dir)?;
    let conflist = Runtime::load_conflist(&nodes::conflist_path(dir, node))?;
    let first = state.pods_on(node).map(|p| p.index).max().unwrap_or(0) + 1;
    let names = state.names();
    let new: Vec<PodState> = (first..first + count)
        .map(|j| PodState {
            name: topology::pod_name(n.index, j),
            node: n.name.clone(),
            node_index: n.index,
            index: j,
            container_id: format!(
                "aksnetlab-{}-{}",
                state.name,
                topology::pod_name(n.index, j)
            ),
            ip: None,
            probe_pid: None,
        })
        .collect();
    state.pods.extend(new.iter().cloned());
    dir.save(state)?;
    ip::netns_batch(
        &new.iter()
            .map(|p| format!("netns add {}", names.pod(p.node_index, p.index)))
            .collect::<Vec<_>>(),
    )?;
    for p in &new {
        ip::batch(
            &names.pod(p.node_index, p.index),
            &["link set dev lo up".into()],
        )?;
    }
    let rt = runtime(state, n.index);
    let results: Mutex<Vec<(String, Result<Value>)>> = Mutex::new(vec![]);
    let queue = Mutex::new(new.iter());
    std::thread::scope(|s| {
        for _ in 0..PARALLEL_ADDS.min(new.len()) {
            s.spawn(|| loop {
                let Some(p) = queue.lock().ok().and_then(|mut q| q.next()) else {
                    return;
                };
                let ns = netns_path(&names.pod(p.node_index, p.index));
                let r = rt.add(
                    &conflist,
                    &Attachment {
                        container_id: &p.container_id,
                        netns: &ns,
                        ifname: "eth0",
                        pod_name: &p.name,
                    },
                );
                // The ADD result, kept for DEL (best effort: never an empty file).
                if let Some(bytes) = r.as_ref().ok().and_then(|v| serde_json::to_vec(v).ok()) {
                    let _ = std::fs::write(result_path(dir, &p.name), bytes);
                }
                if let Ok(mut out) = results.lock() {
                    out.push((p.name.clone(), r));
                }
            });
        }
    });
    let mut first_err = None;
    let mut added = vec![];
    for (name, r) in results.into_inner().unwrap_or_default() {
        match r {
            Ok(v) => {
                let ip = cni::result_ipv4(&v);
                if let Some(p) = state.pods.iter_mut().find(|p| p.name == name) {
                    p.ip = ip;
                }
                added.push(name);
            }
            Err(e) => {
                first_err.get_or_insert(e);
                remove_one(dir, state, &name)?;
            }
        }
    }
    added.sort_by_key(|name| state.pod(name).map(|p| p.index));
    for name in &added {
        let Some(p) = state.pod(name).cloned() else {
            continue;
        };
        let pid = nodes::start_probe(dir, state, &names.pod(p.node_index, p.index), &p.name)?;
        if let Some(p) = state.pods.iter_mut().find(|x| x.name == *name) {
            p.probe_pid = Some(pid);
        }
        tick(&format!("{name} on {node}"));
    }
    dir.save(state)?;
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

/// CNI DEL, probe stopped, namespace removed, state entry dropped.
pub fn remove_one(dir: &LabDir, state: &mut LabState, pod: &str) -> Result<()> {
    let p = state
        .pod(pod)
        .cloned()
        .ok_or_else(|| LabError::UnknownTarget {
            lab: state.name.clone(),
            target: pod.to_string(),
            hint: "a pod of the lab (`aksnet lab status` lists them)".into(),
        })?;
    if let Some(pid) = p.probe_pid {
        process::stop(pid, &dir.marker(), Duration::from_millis(500));
    }
    let del = cni_del(dir, state, &p);
    let ns = state.names().pod(p.node_index, p.index);
    if ip::netns_exists(&ns) {
        ip::netns_batch(&[format!("netns del {ns}")])?;
    }
    let _ = std::fs::remove_file(result_path(dir, &p.name));
    state.pods.retain(|x| x.name != pod);
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
    let cached: Option<Value> = std::fs::read(result_path(dir, &p.name))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let ns = netns_path(&state.names().pod(p.node_index, p.index));
    runtime(state, p.node_index).del(
        &conflist,
        &Attachment {
            container_id: &p.container_id,
            netns: &ns,
            ifname: "eth0",
            pod_name: &p.name,
        },
        cached.as_ref(),
    )
}
