//! The lab's operations: up, add/remove nodes and pods, status, check, and
//! the fabric controller. Each takes the lab's lock while it changes the
//! lab and saves the state after each step.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aksnet_core::spec::ClusterNetwork;
use ipnet::Ipv4Net;
use serde::Serialize;

use crate::check::{self, CheckReport};
use crate::error::{LabError, Result};
use crate::fabric;
use crate::ip;
use crate::nodes;
use crate::pods;
use crate::process::{self, Spawn};
use crate::snapshot::Snapshot;
use crate::state::{LabDir, LabState, Phase};
use crate::store;
use crate::topology::{netns_path, Addressing, Names};

/// Where the lab finds its programs.
#[derive(Debug, Clone)]
pub struct Env {
    /// The `aksnet` binary (agents, probe servers, the controller).
    pub exe: PathBuf,
    /// `aksnet-cni`, `aksnet-ipam`, `aksnet-portmap`.
    pub cni_bin_dir: PathBuf,
}

/// Progress of a long operation (the CLI draws a bar).
pub trait Progress: Sync {
    fn length(&self, total: u64);
    fn step(&self, msg: &str);
}

/// No progress shown.
pub struct Quiet;

impl Progress for Quiet {
    fn length(&self, _: u64) {}
    fn step(&self, _: &str) {}
}

#[derive(Debug, Clone)]
pub struct UpOptions {
    pub name: String,
    /// The design, already accepted by the planner.
    pub network: ClusterNetwork,
    pub nodes: u32,
    pub pods_per_node: u32,
    pub vm_subnet: Option<Ipv4Net>,
    /// The cluster store (`None`: a SQLite file in the lab directory).
    pub store: Option<crate::state::StoreConfig>,
}

pub fn require_root() -> Result<()> {
    if !aksnet_linux::process::is_root() {
        return Err(LabError::NotRoot);
    }
    Ok(())
}

fn check_programs(env: &Env, pods: bool) -> Result<()> {
    if pods {
        crate::cni::check_plugins(&env.cni_bin_dir)?;
    }
    for tool in ["ip", "nft"] {
        if !which(tool) {
            return Err(LabError::Invalid(format!(
                "`{tool}` is not installed; install iproute2 and nftables"
            )));
        }
    }
    Ok(())
}

pub fn which(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}

/// Builds a lab. On failure the half-built lab stays for `lab down` (the
/// CLI runs it at once).
pub fn up(env: &Env, opts: &UpOptions, progress: &dyn Progress) -> Result<LabState> {
    require_root()?;
    let dir = LabDir::new(&opts.name)?;
    let names = Names::new(&opts.name);
    if dir.exists() || ip::netns_exists(&names.fabric()) {
        return Err(LabError::Exists(opts.name.clone()));
    }
    check_programs(env, opts.pods_per_node > 0)?;
    let addressing = Addressing::plan(&opts.network, opts.vm_subnet)?;
    // Limits first, before anything is built (a lab that cannot hold its
    // pods would otherwise fail halfway, after minutes of work).
    pods::check_room(&opts.network, 0, opts.pods_per_node)?;
    nodes::check_room(&opts.network, &BTreeSet::new(), 0, opts.nodes)?;
    progress.length(6 + u64::from(opts.nodes) * (2 + u64::from(opts.pods_per_node)));
    dir.create()?;
    let _lock = dir.lock()?;
    if let Some(store) = &opts.store {
        dir.save_store_config(store)?;
    }
    let mut state = LabState::new(
        &opts.name,
        opts.network.clone(),
        addressing,
        env.exe.clone(),
        env.cni_bin_dir.clone(),
    );
    dir.save(&state)?;
    ip::netns_batch(&[
        format!("netns add {}", names.fabric()),
        format!("netns add {}", names.vm()),
        format!("netns add {}", names.internet()),
        format!("netns add {}", names.apiserver()),
    ])?;
    fabric::build(&state)?;
    progress.step("fabric, VM and internet host");
    state.vm_probe_pid = Some(nodes::start_probe(&dir, &state, &names.vm(), "vm")?);
    state.internet_probe_pid = Some(nodes::start_probe(
        &dir,
        &state,
        &names.internet(),
        "internet",
    )?);
    state.apiserver_probe_pid = Some(nodes::start_probe_on(
        &dir,
        &state,
        &names.apiserver(),
        "apiserver",
        &[crate::probe::Listen::new(
            crate::topology::APISERVER_PORT_NUMBER,
            crate::probe::Protocol::Tcp,
        )],
    )?);
    state.internet_dns_pid = Some(crate::cluster_dns::start_public_dns(&dir, &state)?);
    dir.save(&state)?;
    store::init(&dir, &state.network)?;
    progress.step("cluster store initialised");
    state.controller_pid = Some(start_controller(&dir, &state)?);
    dir.save(&state)?;
    progress.step("fabric controller");
    let snap = store::snapshot(&dir)?;
    let added = nodes::add(&dir, &mut state, &snap, opts.nodes, &|m| progress.step(m))?;
    settle(&dir, &state, SETTLE)?;
    for n in &added {
        if opts.pods_per_node > 0 {
            pods::add(&dir, &mut state, n, opts.pods_per_node, &|m| {
                progress.step(m)
            })?;
        }
    }
    settle(&dir, &state, SETTLE)?;
    crate::kubelet::record(&dir, &mut state)?;
    progress.step("pods recorded in the store");
    crate::cluster_dns::install(&dir, &mut state)?;
    settle(&dir, &state, SETTLE)?;
    crate::cluster_dns::wait_ready(&state, crate::cluster_dns::READY_TIMEOUT);
    progress.step("cluster DNS (kube-system/coredns behind kube-dns)");
    state.phase = Phase::Ready;
    dir.save(&state)?;
    progress.step("ready");
    Ok(state)
}

fn start_controller(dir: &LabDir, state: &LabState) -> Result<u32> {
    process::spawn_detached(Spawn {
        program: &state.exe,
        args: vec![
            "lab".into(),
            "controller".into(),
            "--lab-dir".into(),
            dir.marker(),
        ],
        netns: None,
        log: dir.log_dir().join("controller.log"),
        env: vec![],
    })
}

/// Whether every node's agent has published what the fabric routes by:
/// its route (or `NetworkUnavailable`) for kubenet, its block for overlay,
/// its addresses for Azure CNI.
pub fn converged(state: &LabState, snap: &Snapshot) -> bool {
    use aksnet_core::spec::NetworkPlugin;
    state.nodes.iter().all(|n| {
        let Some(rec) = snap.node(&n.name) else {
            return false;
        };
        match state.network.network_plugin {
            NetworkPlugin::Kubenet => {
                rec.network_unavailable() || snap.route_slots_of(&n.name).next().is_some()
            }
            NetworkPlugin::Overlay => snap.block_of(&n.name).is_some(),
            NetworkPlugin::Azure => !snap.pod_ips_of(&n.name).is_empty(),
        }
    })
}

/// Waits (up to `timeout`) until the agents have published their nodes'
/// routes, blocks or addresses, then programs the fabric from the store.
pub fn settle(dir: &LabDir, state: &LabState, timeout: Duration) -> Result<Snapshot> {
    let start = Instant::now();
    loop {
        let snap = store::snapshot(dir)?;
        if converged(state, &snap) || start.elapsed() > timeout {
            if !converged(state, &snap) {
                tracing::warn!("the agents have not published every node within {timeout:?}");
            }
            fabric::sync_routes(dir, state, &snap)?;
            return Ok(snap);
        }
        store::wait_change(dir, snap.revision, Duration::from_millis(100));
    }
}

/// How long commands wait for the agents to publish their nodes.
pub const SETTLE: Duration = Duration::from_secs(15);

/// Programs the fabric from the store now.
pub fn sync(dir: &LabDir, state: &LabState) -> Result<crate::routes::Desired> {
    let snap = store::snapshot(dir)?;
    fabric::sync_routes(dir, state, &snap)
}

/// The fabric controller (Azure's route programming): keeps the fabric's
/// route tables equal to the store until the lab is gone.
pub fn run_controller(dir: &LabDir) -> Result<()> {
    // The load balancer (frontends, probes, rules) beside the routes.
    let lb_dir = dir.clone();
    std::thread::Builder::new()
        .name("load-balancer".into())
        .spawn(move || crate::lb::controller::run(&lb_dir))
        .map_err(|e| LabError::Invalid(format!("load balancer thread: {e}")))?;
    let mut last_rev = -1;
    let mut last_nodes: Vec<(String, Ipv4Addr)> = vec![];
    loop {
        let Ok(state) = dir.load() else {
            // The lab is being torn down.
            return Ok(());
        };
        let nodes: Vec<(String, Ipv4Addr)> =
            state.nodes.iter().map(|n| (n.name.clone(), n.ip)).collect();
        match store::snapshot(dir) {
            Ok(snap) if snap.revision != last_rev || nodes != last_nodes => {
                match fabric::sync_routes(dir, &state, &snap) {
                    Ok(d) => {
                        last_rev = snap.revision;
                        last_nodes = nodes;
                        for s in d.skipped {
                            tracing::info!("{s}");
                        }
                    }
                    Err(e) => tracing::warn!("fabric sync: {e}"),
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("store: {e}"),
        }
        store::wait_change(dir, last_rev, Duration::from_millis(250));
    }
}

/// `lab add-node`: `count` nodes with `pods` pods each.
pub fn add_nodes(
    dir: &LabDir,
    count: u32,
    pods_each: u32,
    progress: &dyn Progress,
) -> Result<Vec<String>> {
    require_root()?;
    let _lock = dir.lock()?;
    let mut state = dir.load()?;
    pods::check_room(&state.network, 0, pods_each)?;
    progress.length(u64::from(count) * (2 + u64::from(pods_each)));
    let snap = store::snapshot(dir)?;
    let before: BTreeSet<String> = state.nodes.iter().map(|n| n.name.clone()).collect();
    let mut build = || -> Result<Vec<String>> {
        let added = nodes::add(dir, &mut state, &snap, count, &|m| progress.step(m))?;
        settle(dir, &state, SETTLE)?;
        for n in &added {
            if pods_each > 0 {
                pods::add(dir, &mut state, n, pods_each, &|m| progress.step(m))?;
            }
        }
        settle(dir, &state, SETTLE)?;
        crate::kubelet::record(dir, &mut state)?;
        Ok(added)
    };
    let result = build();
    if result.is_err() {
        // A failed add-node leaves no half-made node behind (nor its agent,
        // records or NIC): a retry starts from where the lab was.
        let made: Vec<String> = state
            .nodes
            .iter()
            .filter(|n| !before.contains(&n.name))
            .map(|n| n.name.clone())
            .collect();
        for n in made {
            if let Err(e) = remove_node_locked(dir, &mut state, &n) {
                tracing::warn!(node = %n, "removing the half-made node: {e}");
            }
        }
    }
    result
}

/// `lab rm-node`: its pods deleted (CNI DEL), its agent stopped, the node
/// removed from the cluster (giving back its block, addresses and route),
/// its NIC unplugged and its namespace removed.
pub fn remove_node(dir: &LabDir, name: &str) -> Result<()> {
    require_root()?;
    let _lock = dir.lock()?;
    let mut state = dir.load()?;
    remove_node_locked(dir, &mut state, name)
}

/// `remove_node` for a caller that holds the lab's lock.
fn remove_node_locked(dir: &LabDir, state: &mut LabState, name: &str) -> Result<()> {
    let node = state.require_node(name)?.clone();
    let pod_names: Vec<String> = state.pods_on(name).map(|p| p.id()).collect();
    let mut first_err = None;
    for p in &pod_names {
        if let Err(e) = pods::remove_one(dir, state, p) {
            first_err.get_or_insert(e);
        }
    }
    // A node that is gone takes its Pods along (the pod garbage collector
    // deletes Pods bound to a node that no longer exists).
    crate::kubelet::forget(dir, &pod_names)?;
    nodes::stop_processes(dir, state, &node);
    store::remove_node(dir, name)?;
    fabric::unplug_node(state, node.index)?;
    let ns = state.names().node(node.index);
    if ip::netns_exists(&ns) {
        ip::netns_batch(&[format!("netns del {ns}")])?;
    }
    let nd = dir.node_dir(name);
    let _ = std::fs::remove_dir_all(&nd);
    state.nodes.retain(|n| n.name != name);
    dir.save(state)?;
    sync(dir, state)?;
    // Deployments get their replicas back on the nodes that are left.
    if let Err(e) = crate::kubelet::sync_locked(dir, state) {
        first_err.get_or_insert(e);
    }
    first_err.map_or(Ok(()), Err)
}

pub fn add_pods(
    dir: &LabDir,
    node: &str,
    count: u32,
    progress: &dyn Progress,
) -> Result<Vec<String>> {
    require_root()?;
    let _lock = dir.lock()?;
    let mut state = dir.load()?;
    progress.length(u64::from(count));
    let r = pods::add(dir, &mut state, node, count, &|m| progress.step(m));
    // Azure CNI dynamic: the agent may have claimed addresses for them.
    sync(dir, &state)?;
    crate::kubelet::record(dir, &mut state)?;
    r
}

/// `lab restart-agent`: a new agent for the node, once it has registered.
pub fn restart_agent(dir: &LabDir, node: &str) -> Result<u32> {
    require_root()?;
    let _lock = dir.lock()?;
    let mut state = dir.load()?;
    nodes::restart_agent(dir, &mut state, node)
}

/// `lab rm-pod NAMESPACE/NAME` (or `NAME` in `default`): the pod goes and
/// so does its Pod in the store; a Deployment's Pod is replaced by a new
/// one, as its ReplicaSet would.
pub fn remove_pod(dir: &LabDir, pod: &str) -> Result<crate::kubelet::Report> {
    require_root()?;
    let _lock = dir.lock()?;
    let mut state = dir.load()?;
    let id = state.require_pod(pod)?.id();
    pods::remove_one(dir, &mut state, &id)?;
    crate::kubelet::forget(dir, &[id])?;
    crate::kubelet::sync_locked(dir, &mut state)
}

/// `lab check`.
pub fn check(dir: &LabDir) -> Result<CheckReport> {
    // A dead agent is said at once (not after the settle timeout), with
    // what to run.
    let (state, snap) = ready_and_settled(dir)?;
    let k8s = crate::kubelet::objects(dir)?;
    let mut report = check::run(&state, &snap, &k8s, fabric::udr_entries(&state));
    // The load balancer's kinds, as each Service says (issue 13).
    report.results.extend(crate::lb::check::run(dir, &state)?);
    Ok(report)
}

/// `lab check --policy`: the pod × pod × port matrix, probed and expected.
pub fn check_policy(dir: &LabDir) -> Result<crate::policy_check::PolicyReport> {
    let (state, snap) = ready_and_settled(dir)?;
    let k8s = crate::kubelet::objects(dir)?;
    let w = crate::explain::World {
        state: &state,
        snap: &snap,
        k8s: &k8s,
        lab: true,
    };
    Ok(crate::policy_check::run(&w))
}

/// A lab that is up, with every agent running, and its store settled.
pub fn ready_and_settled(dir: &LabDir) -> Result<(LabState, Snapshot)> {
    require_root()?;
    let state = dir.load()?;
    if state.phase != Phase::Ready {
        return Err(LabError::NotReady(state.name));
    }
    let snap = store::snapshot(dir)?;
    for n in &state.nodes {
        let a = nodes::agent_state(&state, n, &snap);
        if a != nodes::AgentState::Running {
            return Err(LabError::Invalid(format!(
                "the agent of {} is {} (its log: {}); restart it with `aksnet lab restart-agent --name {} {}`",
                n.name,
                a.as_str(),
                nodes::agent_log(dir, &n.name).display(),
                state.name,
                n.name
            )));
        }
    }
    let snap = settle(dir, &state, SETTLE)?;
    Ok((state, snap))
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeStatus {
    pub name: String,
    pub ip: Ipv4Addr,
    pub netns: String,
    pub pod_range: Option<String>,
    pub network_unavailable: bool,
    pub conditions: Vec<String>,
    pub agent_running: bool,
    /// running, lease-expired or dead.
    pub agent: nodes::AgentState,
    pub pods: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct PodStatus {
    pub name: String,
    pub namespace: String,
    pub node: String,
    pub ip: Option<Ipv4Addr>,
    pub netns: String,
    pub probe_running: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub name: String,
    pub network_plugin: String,
    pub phase: Phase,
    pub vnet: Vec<Ipv4Net>,
    pub node_subnet: Ipv4Net,
    pub vm_subnet: Ipv4Net,
    pub vm_ip: Ipv4Addr,
    pub internet_ip: Ipv4Addr,
    pub public_ip: Ipv4Addr,
    /// The API server's public endpoint.
    pub apiserver_ip: Ipv4Addr,
    pub api_server: ApiServerStatus,
    pub cluster_dns: ClusterDnsStatus,
    pub route_table_entries: usize,
    pub route_table_limit: u32,
    pub vnet_ips_used: usize,
    pub controller_running: bool,
    pub nodes: Vec<NodeStatus>,
    pub pods: Vec<PodStatus>,
    pub nsg_rules: usize,
    pub directory: PathBuf,
    /// Records of the cluster store that cannot be read.
    pub store_problems: Vec<aksnet_cluster::Problem>,
    /// The load balancer: frontends, rules, pool members and their probes.
    pub load_balancer: crate::lb::LbStatus,
}

/// The API server endpoint in `lab status`.
#[derive(Debug, Clone, Serialize)]
pub struct ApiServerStatus {
    pub ip: Ipv4Addr,
    pub port: u16,
    pub fqdn: String,
    /// As given (`--api-server-authorized-ip-ranges`); empty: open to all.
    pub authorized_ip_ranges: Vec<String>,
    /// What the fabric lets in: the ranges plus the outbound public IP and
    /// the API server's own; `null` when open.
    pub allowed_sources: Option<Vec<String>>,
    pub listening: bool,
}

/// One DNS pod: `NAMESPACE/NAME`, where, and whether its `aksnet dns` runs.
#[derive(Debug, Clone, Serialize)]
pub struct DnsPodStatus {
    pub pod: String,
    pub node: String,
    pub ip: Option<Ipv4Addr>,
    pub dns_running: bool,
}

/// The cluster DNS in `lab status`.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterDnsStatus {
    /// `kube-system/kube-dns`'s ClusterIP (the pods' nameserver).
    pub service_ip: Ipv4Addr,
    pub cluster_domain: String,
    pub pods: Vec<DnsPodStatus>,
    /// The internet host's public DNS (the cluster DNS's upstream).
    pub upstream: String,
    pub upstream_running: bool,
}

pub fn status(dir: &LabDir) -> Result<Status> {
    let state = dir.load()?;
    let snap = store::snapshot(dir).unwrap_or_default();
    let names = state.names();
    let ranges = check::pod_ranges(&state, &snap);
    let range_of = |node: &str| {
        ranges
            .iter()
            .find_map(|r| r.strip_prefix(&format!("{node}: ")).map(str::to_string))
    };
    let nodes = state
        .nodes
        .iter()
        .map(|n| {
            let rec = snap.node(&n.name);
            NodeStatus {
                name: n.name.clone(),
                ip: n.ip,
                netns: names.node(n.index),
                pod_range: range_of(&n.name),
                network_unavailable: rec.is_some_and(|r| r.network_unavailable()),
                conditions: rec
                    .map(|r| {
                        r.conditions
                            .iter()
                            .map(|c| format!("{}={} ({})", c.kind, c.status, c.reason))
                            .collect()
                    })
                    .unwrap_or_default(),
                agent_running: n
                    .agent_pid
                    .is_some_and(|p| process::is_ours(p, &nodes::agent_marker(&state, n))),
                agent: nodes::agent_state(&state, n, &snap),
                pods: state
                    .pods_on(&n.name)
                    .filter(|p| !crate::cluster_dns::is_dns_pod(p))
                    .count(),
            }
        })
        .collect();
    // The workload pods; the cluster DNS pods are under `cluster_dns`.
    let pods = state
        .pods
        .iter()
        .filter(|p| !crate::cluster_dns::is_dns_pod(p))
        .map(|p| PodStatus {
            name: p.name.clone(),
            namespace: p.namespace.clone(),
            node: p.node.clone(),
            ip: p.ip,
            netns: names.pod(p.node_index, p.index),
            probe_running: p
                .probe_pid
                .is_some_and(|pid| process::is_ours(pid, &dir.marker())),
        })
        .collect();
    Ok(Status {
        name: state.name.clone(),
        network_plugin: state.network.network_plugin.as_str().into(),
        phase: state.phase,
        vnet: state.network.vnet_cidrs.clone(),
        node_subnet: state.addressing.node_subnet,
        vm_subnet: state.addressing.vm_subnet,
        vm_ip: state.addressing.vm_ip,
        internet_ip: state.addressing.internet_ip,
        public_ip: state.addressing.public_ip,
        apiserver_ip: state.addressing.apiserver_ip,
        api_server: ApiServerStatus {
            ip: state.addressing.apiserver_ip,
            port: crate::topology::APISERVER_PORT_NUMBER,
            fqdn: crate::cluster_dns::apiserver_fqdn(&state),
            authorized_ip_ranges: state.network.authorized_ip_ranges.clone(),
            allowed_sources: crate::apiserver::allowed(&state)
                .map(|v| v.iter().map(|n| n.to_string()).collect()),
            listening: state
                .apiserver_probe_pid
                .is_some_and(|p| process::is_ours(p, &dir.marker())),
        },
        cluster_dns: ClusterDnsStatus {
            service_ip: state.network.dns_service_ip,
            cluster_domain: crate::cluster_dns::CLUSTER_DOMAIN.into(),
            pods: state
                .pods
                .iter()
                .filter(|p| crate::cluster_dns::is_dns_pod(p))
                .map(|p| DnsPodStatus {
                    pod: p.id(),
                    node: p.node.clone(),
                    ip: p.ip,
                    dns_running: p
                        .dns_pid
                        .is_some_and(|pid| crate::cluster_dns::is_ours(&state, p, pid)),
                })
                .collect(),
            upstream: format!(
                "{}:{}",
                state.addressing.internet_ip,
                crate::cluster_dns::DNS_PORT
            ),
            upstream_running: state
                .internet_dns_pid
                .is_some_and(|p| process::is_ours(p, &dir.marker())),
        },
        route_table_entries: fabric::udr_entries(&state),
        route_table_limit: state.network.route_table_limit,
        vnet_ips_used: snap.vnet_ips_used(),
        controller_running: state
            .controller_pid
            .is_some_and(|p| process::is_ours(p, &dir.marker())),
        nodes,
        pods,
        nsg_rules: state.nsg.len(),
        directory: dir.path.clone(),
        store_problems: snap.problems.clone(),
        load_balancer: crate::lb::LbStatus::load(dir).unwrap_or_default(),
    })
}

/// Waits until `node` reports (or stops reporting) `NetworkUnavailable`.
pub fn wait_network_unavailable(
    dir: &LabDir,
    node: &str,
    want: bool,
    timeout: Duration,
) -> Result<Snapshot> {
    let start = Instant::now();
    loop {
        let snap = store::snapshot(dir)?;
        if snap
            .node(node)
            .is_some_and(|n| n.network_unavailable() == want)
        {
            return Ok(snap);
        }
        if start.elapsed() > timeout {
            return Err(LabError::Timeout {
                what: format!("{node} NetworkUnavailable={want}"),
                secs: timeout.as_secs(),
                detail: String::new(),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Lab names with a directory under the lab root.
pub fn list() -> Vec<String> {
    let mut v: BTreeSet<String> = std::fs::read_dir(crate::state::root())
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    // Labs whose directory is gone but whose namespaces are not.
    for ns in ip::netns_list() {
        if let Some(rest) = ns.strip_prefix(crate::topology::NS_PREFIX) {
            if let Some(name) = rest.strip_suffix("-fabric") {
                v.insert(name.to_string());
            }
        }
    }
    v.into_iter().collect()
}

/// What `lab update` changed.
#[derive(Debug, Clone, Serialize)]
pub struct UpdateReport {
    pub api_server_authorized_ip_ranges: Vec<String>,
    /// What the fabric now lets in (`null`: open to every source).
    pub allowed_sources: Option<Vec<String>>,
    /// From the command's start until the fabric's table held the change.
    pub applied_ms: f64,
}

/// `lab update --api-server-authorized-ip-ranges`: the ranges (empty:
/// open again) are enforced by the fabric in one nftables transaction
/// before this returns.
pub fn update_api_server_ranges(dir: &LabDir, ranges: &[Ipv4Net]) -> Result<UpdateReport> {
    let start = Instant::now();
    require_root()?;
    let _lock = dir.lock()?;
    let mut state = dir.load()?;
    if state.phase != Phase::Ready {
        return Err(LabError::NotReady(state.name));
    }
    state.network.authorized_ip_ranges = ranges.iter().map(|n| n.to_string()).collect();
    fabric::apply_nft(&state)?;
    dir.save(&state)?;
    Ok(UpdateReport {
        api_server_authorized_ip_ranges: state.network.authorized_ip_ranges.clone(),
        allowed_sources: crate::apiserver::allowed(&state)
            .map(|v| v.iter().map(|n| n.to_string()).collect()),
        applied_ms: (start.elapsed().as_secs_f64() * 1e6).round() / 1e3,
    })
}

/// The namespace path of a lab target, for `lab exec`.
pub fn target_netns(dir: &LabDir, target: &str) -> Result<PathBuf> {
    let state = dir.load()?;
    Ok(netns_path(&state.target_netns(target)?))
}

/// `lab nsg add`: the rule joins the list and the fabric's table is
/// replaced in one nftables transaction.
pub fn nsg_add(dir: &LabDir, rule: crate::nsg::NsgRule) -> Result<()> {
    require_root()?;
    let _lock = dir.lock()?;
    let mut state = dir.load()?;
    crate::nsg::add(&mut state.nsg, rule)?;
    fabric::apply_nft(&state)?;
    dir.save(&state)
}

pub fn nsg_remove(
    dir: &LabDir,
    direction: crate::nsg::Direction,
    priority: u16,
) -> Result<crate::nsg::NsgRule> {
    require_root()?;
    let _lock = dir.lock()?;
    let mut state = dir.load()?;
    let r = crate::nsg::remove(&mut state.nsg, direction, priority)?;
    fabric::apply_nft(&state)?;
    dir.save(&state)?;
    Ok(r)
}

pub fn nsg_list(dir: &LabDir) -> Result<Vec<crate::nsg::ListedRule>> {
    let state = dir.load()?;
    Ok(crate::nsg::listing(
        &state.nsg,
        &fabric::virtual_network(&state),
    ))
}
