//! Nodes: a namespace whose `eth0` is a NIC of the node subnet (plugged
//! into the fabric), managed by one real `aksnet agent` process on the lab's
//! store, with a probe server on the node IP.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aksnet_core::spec::ClusterNetwork;
use ipnet::Ipv4Net;

use crate::cni::CONFLIST;
use crate::error::{LabError, Result};
use crate::fabric;
use crate::ip;
use crate::process::{self, Spawn};
use crate::snapshot::Snapshot;
use crate::state::{LabDir, LabState, NodeState};
use crate::topology::{self, netns_path, PROBE_PORT};

/// How long a new agent may take to write its node's conflist.
pub const AGENT_START_TIMEOUT: Duration = Duration::from_secs(60);

/// Where each node's agent serves /metrics and /healthz: the agent's
/// default, on the node namespace's own loopback (`ip netns exec NODE curl
/// 127.0.0.1:9965/metrics`), never the host's.
pub const AGENT_METRICS_ADDR: &str = "127.0.0.1:9965";

/// The arguments of `aksnet agent` for a lab node.
pub fn agent_args(dir: &LabDir, state: &LabState, node: &NodeState) -> Result<Vec<String>> {
    let ns = netns_path(&state.names().node(node.index));
    let mut args = vec!["agent".to_string()];
    args.extend(dir.store_args()?);
    args.extend([
        "--node".into(),
        node.name.clone(),
        "--node-ip".into(),
        node.ip.to_string(),
        "--netns".into(),
        ns.display().to_string(),
        "--cni-conf-dir".into(),
        dir.conf_dir(&node.name).display().to_string(),
        "--cni-bin-dir".into(),
        state.cni_bin_dir.display().to_string(),
        "--ipam-data-dir".into(),
        dir.ipam_dir(&node.name).display().to_string(),
        "--routes".into(),
        "fabric".into(),
        "--metrics-addr".into(),
        AGENT_METRICS_ADDR.into(),
    ]);
    Ok(args)
}

/// The argument that identifies a node's agent process as the lab's.
pub fn agent_marker(state: &LabState, node: &NodeState) -> String {
    netns_path(&state.names().node(node.index))
        .display()
        .to_string()
}

/// Starts a probe server inside `ns`, answering as `label` on the probe port.
pub fn start_probe(dir: &LabDir, state: &LabState, ns: &str, label: &str) -> Result<u32> {
    start_probe_on(dir, state, ns, label, &[])
}

/// Starts a probe server inside `ns`, answering as `label` on the probe
/// port and on `ports` (a pod's container ports).
pub fn start_probe_on(
    dir: &LabDir,
    state: &LabState,
    ns: &str,
    label: &str,
    ports: &[crate::probe::Listen],
) -> Result<u32> {
    let mut args: Vec<String> = vec![
        "lab".into(),
        "probe-serve".into(),
        "--lab-dir".into(),
        dir.marker(),
        "--label".into(),
        label.into(),
        "--port".into(),
        PROBE_PORT.to_string(),
    ];
    for p in ports {
        args.push("--listen".into());
        args.push(p.to_string());
    }
    process::spawn_detached(Spawn {
        program: &state.exe,
        args,
        netns: Some(netns_path(ns)),
        log: dir
            .log_dir()
            .join(format!("probe-{}.log", label.replace('/', "_"))),
        env: vec![],
    })
}

/// Addresses of the node subnet already taken: lab nodes and every claim
/// in the store (the agent reserves Azure CNI pod addresses there), also
/// a claim whose value cannot be read.
fn used_ips(state: &LabState, snap: &Snapshot) -> BTreeSet<Ipv4Addr> {
    let mut used: BTreeSet<Ipv4Addr> = state.nodes.iter().map(|n| n.ip).collect();
    used.extend(snap.ips.keys().copied());
    used.insert(state.addressing.vm_ip);
    // Internal load-balancer frontends live in the node subnet too.
    if let Ok(dir) = LabDir::new(&state.name) {
        let lb = crate::lb::LbStatus::load(&dir).unwrap_or_default();
        used.extend(lb.frontends.iter().map(|f| f.ip));
    }
    used
}

/// Refuses, before any work, nodes the pod CIDR has no /24 block for
/// (kubenet and overlay). `taken` are the blocks the store has claimed;
/// `waiting` nodes have no block yet but will each claim one.
pub fn check_room(
    net: &ClusterNetwork,
    taken: &BTreeSet<Ipv4Net>,
    waiting: usize,
    adding: u32,
) -> Result<()> {
    let Some(pod_cidr) = net.effective_pod_cidr() else {
        return Ok(());
    };
    let free = aksnet_cluster::claims::block::candidates(&pod_cidr, taken, None).len();
    let total =
        aksnet_core::cidr::subnet_count(&pod_cidr, aksnet_cluster::claims::block::BLOCK_PREFIX);
    let free = free.saturating_sub(waiting);
    if adding as usize > free {
        return Err(LabError::Design(format!(
            "the pod CIDR {pod_cidr} has {total} /24 node blocks and {free} free; {adding} more node(s) asked for, so nothing was added"
        )));
    }
    Ok(())
}

/// Adds `count` nodes: namespaces, NICs, agents, probe servers; returns
/// their names once every agent has written its conflist. The state is
/// saved after each step so `lab down` finds everything if this fails.
pub fn add(
    dir: &LabDir,
    state: &mut LabState,
    snap: &Snapshot,
    count: u32,
    tick: &dyn Fn(&str),
) -> Result<Vec<String>> {
    let taken: BTreeSet<Ipv4Net> = snap.blocks.keys().copied().collect();
    let waiting = state
        .nodes
        .iter()
        .filter(|n| snap.block_of(&n.name).is_none())
        .count();
    check_room(&state.network, &taken, waiting, count)?;
    let mut used = used_ips(state, snap);
    let mut new = vec![];
    for _ in 0..count {
        let ip = state.addressing.next_node_ip(&used).ok_or_else(|| {
            let subnet = state.addressing.node_subnet;
            // Only what is in this subnet (the VM has its own), so the
            // figure adds up with the subnet's size.
            let in_use = used.iter().filter(|a| subnet.contains(*a)).count();
            let usable = aksnet_core::cidr::size(&subnet).saturating_sub(5);
            LabError::Design(format!(
                "the node subnet {subnet} has no free address for another node: \
                 {in_use} of its {usable} usable addresses (Azure reserves 5) are in use by nodes and pods"
            ))
        })?;
        used.insert(ip);
        let index = state.next_node;
        state.next_node += 1;
        new.push(NodeState {
            name: topology::node_name(index),
            index,
            ip,
            agent_pid: None,
            probe_pid: None,
        });
    }
    let names = state.names();
    state.nodes.extend(new.iter().cloned());
    dir.save(state)?;
    ip::netns_batch(
        &new.iter()
            .map(|n| format!("netns add {}", names.node(n.index)))
            .collect::<Vec<_>>(),
    )?;
    let fabric_lines: Vec<String> = new
        .iter()
        .flat_map(|n| fabric::plug_node_lines(state, n.index, n.ip).0)
        .collect();
    ip::batch(&names.fabric(), &fabric_lines)?;
    fabric::port_sysctls(
        state,
        &new.iter()
            .map(|n| topology::node_port(n.index))
            .collect::<Vec<_>>(),
    )?;
    // The node side once its veth exists.
    for n in &new {
        let (_, node_lines) = fabric::plug_node_lines(state, n.index, n.ip);
        ip::batch(&names.node(n.index), &node_lines)?;
        for d in [dir.conf_dir(&n.name), dir.ipam_dir(&n.name)] {
            std::fs::create_dir_all(&d).map_err(|e| LabError::io(&d, e))?;
        }
    }
    for n in &new {
        let pid = spawn_agent(dir, state, n)?;
        let probe = start_probe(dir, state, &names.node(n.index), &n.name)?;
        if let Some(s) = state.nodes.iter_mut().find(|s| s.name == n.name) {
            s.agent_pid = Some(pid);
            s.probe_pid = Some(probe);
        }
        dir.save(state)?;
        tick(&format!("agent started on {}", n.name));
    }
    wait_for_conflists(dir, state, &new, tick)?;
    Ok(new.into_iter().map(|n| n.name).collect())
}

/// Starts a node's agent (its log appended to `agent-NODE.log`).
fn spawn_agent(dir: &LabDir, state: &LabState, n: &NodeState) -> Result<u32> {
    process::spawn_detached(Spawn {
        program: &state.exe,
        args: agent_args(dir, state, n)?,
        netns: None,
        log: agent_log(dir, &n.name),
        env: vec![(
            "AKSNET_LOG".into(),
            std::env::var("AKSNET_LOG").unwrap_or_else(|_| "info".into()),
        )],
    })
}

/// The state of a node's agent as `lab status` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AgentState {
    /// Its process runs and its node record is held by a live lease.
    Running,
    /// Its process runs but the store has no live record of the node (the
    /// lease expired, e.g. after the agent was stopped for longer than the
    /// lease's TTL).
    LeaseExpired,
    /// No process: it crashed, was killed, or was never started.
    Dead,
}

impl AgentState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::LeaseExpired => "lease expired",
            Self::Dead => "dead",
        }
    }
}

/// Whether a node's agent runs and holds its lease.
pub fn agent_state(state: &LabState, node: &NodeState, snap: &Snapshot) -> AgentState {
    let alive = node
        .agent_pid
        .is_some_and(|p| process::is_ours(p, &agent_marker(state, node)));
    if !alive {
        AgentState::Dead
    } else if snap.node_present(&node.name) {
        AgentState::Running
    } else {
        AgentState::LeaseExpired
    }
}

/// `lab restart-agent`: stops the node's agent if it still runs (by PID,
/// verified), starts a new one with the same flags, and waits until it has
/// registered and written its conflist again.
pub fn restart_agent(dir: &LabDir, state: &mut LabState, name: &str) -> Result<u32> {
    let node = state.require_node(name)?.clone();
    if let Some(pid) = node.agent_pid {
        process::stop_all(&[(pid, agent_marker(state, &node))], Duration::from_secs(3));
        process::reap(pid);
    }
    let pid = spawn_agent(dir, state, &node)?;
    if let Some(s) = state.nodes.iter_mut().find(|s| s.name == name) {
        s.agent_pid = Some(pid);
    }
    dir.save(state)?;
    let start = Instant::now();
    loop {
        let view = crate::store::snapshot(dir)?;
        if view.node_present(name) && conflist_path(dir, name).exists() {
            return Ok(pid);
        }
        if !process::alive(pid) {
            process::reap(pid);
            return Err(LabError::Invalid(format!(
                "the restarted agent of {name} exited; its log ({}) ends with:\n{}",
                agent_log(dir, name).display(),
                log_tail(&agent_log(dir, name), 15)
            )));
        }
        if start.elapsed() > AGENT_START_TIMEOUT {
            return Err(LabError::Timeout {
                what: format!("{name}'s restarted agent registering"),
                secs: AGENT_START_TIMEOUT.as_secs(),
                detail: format!(
                    "; its log ends with:\n{}",
                    log_tail(&agent_log(dir, name), 15)
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until each new node's agent has written `10-aksnet.conflist`.
fn wait_for_conflists(
    dir: &LabDir,
    state: &LabState,
    new: &[NodeState],
    tick: &dyn Fn(&str),
) -> Result<()> {
    let start = Instant::now();
    let mut pending: Vec<&NodeState> = new.iter().collect();
    while !pending.is_empty() {
        let mut still = vec![];
        for n in pending {
            if conflist_path(dir, &n.name).exists() {
                tick(&format!("{} ready", n.name));
                continue;
            }
            let pid = state.node(&n.name).and_then(|s| s.agent_pid);
            if pid.is_none_or(|p| !process::alive(p)) {
                if let Some(p) = pid {
                    process::reap(p);
                }
                return Err(LabError::Invalid(format!(
                    "the agent of {} exited before writing its conflist; its log ({}) ends with:\n{}",
                    n.name,
                    agent_log(dir, &n.name).display(),
                    log_tail(&agent_log(dir, &n.name), 15)
                )));
            }
            still.push(n);
        }
        pending = still;
        if pending.is_empty() {
            break;
        }
        if start.elapsed() > AGENT_START_TIMEOUT {
            let n = pending[0];
            return Err(LabError::Timeout {
                what: format!("{}'s agent writing {CONFLIST}", n.name),
                secs: AGENT_START_TIMEOUT.as_secs(),
                detail: format!(
                    "; its log ends with:\n{}",
                    log_tail(&agent_log(dir, &n.name), 15)
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

pub fn conflist_path(dir: &LabDir, node: &str) -> PathBuf {
    dir.conf_dir(node).join(CONFLIST)
}

pub fn agent_log(dir: &LabDir, node: &str) -> PathBuf {
    dir.log_dir().join(format!("agent-{node}.log"))
}

/// The last `n` lines of a log file.
pub fn log_tail(path: &std::path::Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A node's agent and probe server, with the argument that proves each PID
/// is still the lab's.
pub fn processes(dir: &LabDir, state: &LabState, node: &NodeState) -> Vec<(u32, String)> {
    let mut v = vec![];
    if let Some(pid) = node.agent_pid {
        v.push((pid, agent_marker(state, node)));
    }
    if let Some(pid) = node.probe_pid {
        v.push((pid, dir.marker()));
    }
    v
}

/// Stops a node's agent and probe server (by PID, verified).
pub fn stop_processes(dir: &LabDir, state: &LabState, node: &NodeState) -> Vec<u32> {
    process::stop_all(&processes(dir, state, node), Duration::from_secs(3))
}
