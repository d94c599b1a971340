//! `lab down`: removes every namespace, process and file of a lab, also of
//! a half-built or crashed one. What the state file records is removed by
//! PID and name; what it may have missed is found by the lab's namespace
//! names (`aksnet-lab-NAME-<role>`), by the namespaces processes run in,
//! and by arguments naming the lab's directory or namespaces.

use std::collections::HashSet;
use std::time::Duration;

use serde::Serialize;

use crate::error::{LabError, Result};
use crate::ip;
use crate::netns;
use crate::nodes;
use crate::pods;
use crate::process;
use crate::state::LabDir;
use crate::topology::{netns_path, Names, Role};

#[derive(Debug, Clone, Default, Serialize)]
pub struct DownReport {
    pub name: String,
    pub processes_stopped: Vec<u32>,
    pub namespaces_removed: Vec<String>,
    pub directory_removed: bool,
    /// Anything that could not be removed (empty when all went).
    pub left: Vec<String>,
}

/// The lab's namespaces that exist now, pods first and the fabric last.
pub fn lab_namespaces(names: &Names) -> Vec<String> {
    let mut v: Vec<(u8, String)> = ip::netns_list()
        .into_iter()
        .filter_map(|ns| {
            let order = match names.role_of(&ns)? {
                Role::Pod(..) => 0,
                Role::Bench(_) => 1,
                Role::Node(_) => 2,
                Role::Vm | Role::Internet | Role::ApiServer => 3,
                Role::Fabric => 4,
            };
            Some((order, ns))
        })
        .collect();
    v.sort();
    v.into_iter().map(|(_, ns)| ns).collect()
}

/// Processes that belong to the lab: inside one of its namespaces, or
/// started with its directory or one of its namespaces as an argument.
pub fn lab_processes(dir: &LabDir, names: &Names) -> Vec<u32> {
    let inodes: HashSet<u64> = lab_namespaces(names)
        .iter()
        .filter_map(|ns| netns::inode(&netns_path(ns)))
        .collect();
    let marker = dir.marker();
    let inside = format!("{marker}/");
    let ns_dir = format!("{}/", crate::topology::NETNS_DIR);
    let args_match = |args: &[String]| {
        args.iter().any(|a| {
            a == &marker
                || a.contains(&inside)
                || a.strip_prefix(&ns_dir)
                    .is_some_and(|ns| names.role_of(ns).is_some())
        })
    };
    process::find(&inodes, &args_match)
}

/// Tears the lab down. Safe to run again, and on a lab that never finished
/// building.
pub fn down(dir: &LabDir) -> Result<DownReport> {
    let names = Names::new(&dir.name);
    let mut report = DownReport {
        name: dir.name.clone(),
        ..Default::default()
    };
    let state = dir.load().ok();
    let existed = dir.path.exists();
    if let Some(st) = &state {
        // The controller first, so it stops reprogramming the fabric.
        if let Some(pid) = st.controller_pid {
            if process::stop(pid, &dir.marker(), Duration::from_secs(1)) {
                report.processes_stopped.push(pid);
            }
        }
        // Pods are released the way a runtime releases them (CNI DEL), so
        // nothing the plugins keep outside the lab directory is left.
        let probes: Vec<(u32, String)> = st
            .pods
            .iter()
            .filter_map(|p| p.probe_pid)
            .chain(
                [
                    st.vm_probe_pid,
                    st.internet_probe_pid,
                    st.internet_dns_pid,
                    st.apiserver_probe_pid,
                ]
                .into_iter()
                .flatten(),
            )
            .map(|pid| (pid, dir.marker()))
            .collect();
        report
            .processes_stopped
            .extend(process::stop_all(&probes, Duration::from_millis(500)));
        // The cluster DNS pods' servers (each an `aksnet dns` in its pod).
        for p in &st.pods {
            if let Some(pid) = p
                .dns_pid
                .filter(|pid| crate::cluster_dns::is_ours(st, p, *pid))
            {
                process::stop_pid(pid, Duration::from_secs(1));
                report.processes_stopped.push(pid);
            }
        }
        let names = &names;
        std::thread::scope(|s| {
            for chunk in st.pods.chunks(st.pods.len().div_ceil(4).max(1)) {
                s.spawn(move || {
                    for p in chunk {
                        if ip::netns_exists(&names.pod(p.node_index, p.index)) {
                            if let Err(e) = pods::cni_del(dir, st, p) {
                                tracing::warn!(pod = %p.name, "CNI DEL: {e}");
                            }
                        }
                    }
                });
            }
        });
        let node_procs: Vec<(u32, String)> = st
            .nodes
            .iter()
            .flat_map(|n| nodes::processes(dir, st, n))
            .collect();
        report
            .processes_stopped
            .extend(process::stop_all(&node_procs, Duration::from_secs(3)));
        // A store outside the lab directory (`lab up --store`, e.g. a TLS
        // etcd) outlives the lab: its nodes are removed from it, giving
        // back their blocks, addresses and route slots.
        if dir.has_external_store() {
            for n in &st.nodes {
                if let Err(e) = crate::store::remove_node(dir, &n.name) {
                    report
                        .left
                        .push(format!("node {} in the store: {e}", n.name));
                }
            }
        }
    }
    // Whatever is left, found by namespace and arguments.
    for _ in 0..3 {
        let found = lab_processes(dir, &names);
        if found.is_empty() {
            break;
        }
        for pid in found {
            process::stop_pid(pid, Duration::from_secs(1));
            report.processes_stopped.push(pid);
        }
    }
    let ns = lab_namespaces(&names);
    if !ns.is_empty() {
        let lines: Vec<String> = ns.iter().map(|n| format!("netns del {n}")).collect();
        if let Err(e) = ip::netns_batch(&lines) {
            // One at a time, so one stubborn namespace does not keep the rest.
            tracing::warn!("{e}");
            for l in &lines {
                let _ = ip::netns_batch(std::slice::from_ref(l));
            }
        }
        report.namespaces_removed = ns;
    }
    // The pods' resolver files (`/etc/netns/<namespace>/`), found by name.
    for ns in crate::cluster_dns::lab_etc_dirs(&names) {
        crate::cluster_dns::remove_etc(&ns);
    }
    if dir.path.exists() {
        match std::fs::remove_dir_all(&dir.path) {
            Ok(()) => report.directory_removed = true,
            Err(e) => report.left.push(format!("{}: {e}", dir.path.display())),
        }
    }
    report.left.extend(lab_namespaces(&names));
    report.left.extend(
        crate::cluster_dns::lab_etc_dirs(&names)
            .iter()
            .map(|n| format!("{}/{n}", crate::cluster_dns::ETC_NETNS)),
    );
    report.left.extend(
        lab_processes(dir, &names)
            .iter()
            .map(|p| format!("process {p}")),
    );
    report.processes_stopped.sort_unstable();
    report.processes_stopped.dedup();
    // A name that matched nothing at all is a mistake (a typo), not a
    // successful teardown.
    if !existed && report.processes_stopped.is_empty() && report.namespaces_removed.is_empty() {
        return Err(LabError::NoLab(dir.name.clone(), dir.path.clone()));
    }
    Ok(report)
}
