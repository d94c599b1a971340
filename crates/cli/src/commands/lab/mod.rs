//! `aksnet lab`: an Azure VNet with nodes and pods in network namespaces.
//!
//! Exit statuses: 0 done (for `check`/`demo`: every result matches DESIGN
//! §1), 1 a design the planner rejects or a result that does not match, 2
//! anything that cannot be done (bad input, not root, a missing program).

mod demo;
mod probe_cmd;
mod render;

pub use render::kubelet as render_kubelet;

use std::path::PathBuf;
use std::process::ExitCode;

use aksnet_core::planner;
use aksnet_core::spec::Sourced;
use aksnet_lab::lab::{self, Env, Progress, UpOptions};
use aksnet_lab::nsg::{Access, Direction, NsgRule, Protocol};
use aksnet_lab::state::LabDir;
use aksnet_lab::{bench, diagram, probe, store, teardown};
use anyhow::{anyhow, Context};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use super::design::DesignArgs;
use super::store::EtcdTlsArgs;
use super::{Output, EXIT_INVALID, EXIT_UNUSABLE};

#[derive(Args, Debug)]
pub struct LabArgs {
    #[command(subcommand)]
    pub command: LabCommand,
}

#[derive(Args, Debug, Clone)]
pub struct NameArg {
    /// The lab's name (its namespaces are aksnet-lab-NAME-*).
    #[arg(long, short = 'n', default_value = "default", env = "AKSNET_LAB")]
    pub name: String,
}

#[derive(Args, Debug, Clone)]
pub struct OutputArg {
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Args, Debug, Clone)]
pub struct BinArg {
    /// Where aksnet-cni, aksnet-ipam and aksnet-portmap are. Default: beside this binary.
    #[arg(long, value_name = "DIR", env = "AKSNET_CNI_BIN_DIR")]
    pub cni_bin_dir: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct UpArgs {
    #[command(flatten)]
    pub name: NameArg,
    /// Nodes to start (the design's --node-count defaults to this).
    #[arg(long, default_value_t = 2)]
    pub nodes: u32,
    #[arg(long, default_value_t = 2)]
    pub pods_per_node: u32,
    /// The VM's subnet, inside the VNet. Default 10.225.0.0/24, or the first free /24.
    #[arg(long, value_name = "CIDR")]
    pub vm_subnet_cidr: Option<String>,
    #[command(flatten)]
    pub bin: BinArg,
    #[command(flatten)]
    pub output: OutputArg,
    #[command(flatten)]
    pub design: DesignArgs,
    /// The cluster store the lab's agents share (e.g. etcds://127.0.0.1:2379
    /// with --etcd-ca/--etcd-cert/--etcd-key). Default: a SQLite file in the lab directory.
    #[arg(long = "store", value_name = "URL")]
    pub store: Option<String>,
    #[command(flatten)]
    pub etcd_tls: EtcdTlsArgs,
}

#[derive(Subcommand, Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "parsed once per run; the design flags make Up large"
)]
pub enum LabCommand {
    /// Build a lab: fabric, nodes with their agents, pods, a VNet VM and an internet host.
    Up(Box<UpArgs>),
    /// Nodes, pods, addresses, route table and processes of a lab.
    Status {
        #[command(flatten)]
        name: NameArg,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Run a command inside a pod (with its resolv.conf: the cluster DNS), node, `vm`, `internet`, `apiserver` or `fabric`.
    Exec {
        #[command(flatten)]
        name: NameArg,
        /// A pod (NAMESPACE/NAME, or NAME in default: pod-1-1), a node (node-2), vm, internet, apiserver or fabric.
        target: String,
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// Remove every namespace, process and file of a lab (also a half-built or crashed one).
    Down {
        #[command(flatten)]
        name: NameArg,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Add pods to a node (CNI ADD with the conflist its agent wrote).
    AddPod {
        #[command(flatten)]
        name: NameArg,
        /// The node (default: the one with the fewest pods).
        #[arg(long)]
        node: Option<String>,
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        count: u32,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Remove a pod (CNI DEL, then its namespace) and its Pod in the store; a Deployment replaces its Pods.
    RmPod {
        #[command(flatten)]
        name: NameArg,
        /// NAMESPACE/NAME, or NAME in default.
        pod: String,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Probe from a pod, node, vm or internet to a pod, node, Service, NodePort, load-balancer IP or address.
    Probe(probe_cmd::ProbeArgs),
    /// Add nodes (each with its own agent), optionally with pods.
    AddNode {
        #[command(flatten)]
        name: NameArg,
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        count: u32,
        /// Pods to start on each new node.
        #[arg(long, default_value_t = 0)]
        pods: u32,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Remove a node: its pods, its agent, its cluster records, its NIC.
    RmNode {
        #[command(flatten)]
        name: NameArg,
        node: String,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Restart a node's agent (stopped first if it still runs) and wait until it has registered.
    RestartAgent {
        #[command(flatten)]
        name: NameArg,
        node: String,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Probe every kind of connection and compare with what the model does (DESIGN §1).
    Check {
        #[command(flatten)]
        name: NameArg,
        /// Instead: probe every pod from every pod on every port they serve, beside the table the NetworkPolicies (and routes, NSG) give.
        #[arg(long)]
        policy: bool,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Build a small lab of each model in turn, check each, compare them, tear them down.
    Demo(demo::DemoArgs),
    /// Draw the lab as it stands (SVG).
    Diagram {
        #[command(flatten)]
        name: NameArg,
        /// Write the SVG here (default: standard output).
        #[arg(long, short = 'o', value_name = "FILE.svg")]
        output: Option<PathBuf>,
    },
    /// Network security group rules on the node subnet.
    Nsg {
        #[command(subcommand)]
        command: NsgCommand,
    },
    /// iperf3: pod → pod same node, cross node, and a bare veth pair.
    Bench {
        #[command(flatten)]
        name: NameArg,
        /// Seconds per iperf3 run.
        #[arg(long, default_value_t = 3)]
        seconds: u32,
        /// Runs per case (the median is reported).
        #[arg(long, default_value_t = 3)]
        repeats: u32,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Change a running lab: the API server's authorized IP ranges (enforced by the fabric before this returns).
    Update {
        #[command(flatten)]
        name: NameArg,
        /// Comma-separated CIDRs (or addresses) allowed to reach the API server, besides the cluster's outbound IP, which is always allowed; "" opens it to every address again.
        #[arg(long, value_name = "CIDR[,CIDR...]")]
        api_server_authorized_ip_ranges: Option<String>,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Labs on this machine.
    List,
    /// (internal) The internet host's DNS server: the lab's public zone.
    #[command(hide = true)]
    PublicDns {
        #[arg(long)]
        lab_dir: PathBuf,
        #[arg(long, value_name = "ADDR:PORT")]
        listen: std::net::SocketAddr,
    },
    /// (internal) A probe server: answers each connection with the source address it saw.
    #[command(hide = true)]
    ProbeServe {
        #[arg(long)]
        lab_dir: PathBuf,
        #[arg(long)]
        label: String,
        /// The lab's probe port (TCP and UDP).
        #[arg(long)]
        port: u16,
        /// A container port too: PORT/tcp or PORT/udp (repeatable).
        #[arg(long, value_name = "PORT/PROTO")]
        listen: Vec<String>,
    },
    /// (internal) The fabric controller: programs the fabric's routes from the store.
    #[command(hide = true)]
    Controller {
        #[arg(long)]
        lab_dir: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum NsgCommand {
    /// Add a rule (Azure priority order: the lowest number wins).
    Add {
        #[command(flatten)]
        name: NameArg,
        #[arg(long)]
        priority: u16,
        #[arg(long, value_name = "inbound|outbound")]
        direction: String,
        #[arg(long, value_name = "allow|deny")]
        access: String,
        #[arg(long, value_name = "CIDR")]
        source: Option<String>,
        #[arg(long, value_name = "CIDR")]
        destination: Option<String>,
        /// Destination port.
        #[arg(long)]
        port: Option<u16>,
        #[arg(long, value_name = "tcp|udp")]
        protocol: Option<String>,
        #[command(flatten)]
        output: OutputArg,
    },
    /// The rules in evaluation order, Azure's defaults included.
    List {
        #[command(flatten)]
        name: NameArg,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Remove the rule of a direction and priority.
    Remove {
        #[command(flatten)]
        name: NameArg,
        #[arg(long)]
        priority: u16,
        #[arg(long, value_name = "inbound|outbound")]
        direction: String,
        #[command(flatten)]
        output: OutputArg,
    },
}

pub fn run(args: LabArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        LabCommand::Up(a) => up(&a),
        LabCommand::Status { name, output } => {
            let st = lab::status(&dir(&name)?)?;
            match output.output {
                Output::Json => outln!("{}", serde_json::to_string_pretty(&st)?),
                Output::Table => out!("{}", render::status(&st)),
            }
            Ok(ExitCode::SUCCESS)
        }
        LabCommand::Exec {
            name,
            target,
            command,
        } => exec(&dir(&name)?, &target, &command),
        LabCommand::Down { name, output } => {
            let r = teardown::down(&dir(&name)?)?;
            match output.output {
                Output::Json => outln!("{}", serde_json::to_string_pretty(&r)?),
                Output::Table => out!("{}", render::down(&r)),
            }
            Ok(if r.left.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_UNUSABLE)
            })
        }
        LabCommand::AddPod {
            name,
            node,
            count,
            output,
        } => {
            let d = dir(&name)?;
            let node = match node {
                Some(n) => n,
                None => least_loaded(&d)?,
            };
            let bar = bar(output.output == Output::Json);
            let added = lab::add_pods(&d, &node, count, &bar);
            bar.done();
            changed(output.output, "added", "pods", &added?);
            Ok(ExitCode::SUCCESS)
        }
        LabCommand::RmPod { name, pod, output } => {
            let r = lab::remove_pod(&dir(&name)?, &pod)?;
            changed(output.output, "removed", "pods", &[pod]);
            if output.output == Output::Table {
                out!("{}", render::kubelet(&r));
            }
            Ok(ExitCode::SUCCESS)
        }
        LabCommand::Probe(a) => probe_cmd::run(&a),
        LabCommand::AddNode {
            name,
            count,
            pods,
            output,
        } => {
            let bar = bar(output.output == Output::Json);
            let added = lab::add_nodes(&dir(&name)?, count, pods, &bar);
            bar.done();
            changed(output.output, "added", "nodes", &added?);
            Ok(ExitCode::SUCCESS)
        }
        LabCommand::RmNode { name, node, output } => {
            lab::remove_node(&dir(&name)?, &node)?;
            changed(output.output, "removed", "nodes", &[node]);
            Ok(ExitCode::SUCCESS)
        }
        LabCommand::RestartAgent { name, node, output } => {
            let pid = lab::restart_agent(&dir(&name)?, &node)?;
            match output.output {
                Output::Json => outln!(
                    "{}",
                    serde_json::json!({ "restarted": { "node": node, "agent_pid": pid } })
                ),
                Output::Table => outln!("restarted the agent of {node} (pid {pid})"),
            }
            Ok(ExitCode::SUCCESS)
        }
        LabCommand::Check {
            name,
            policy: true,
            output,
        } => {
            let r = lab::check_policy(&dir(&name)?)?;
            match output.output {
                Output::Json => outln!("{}", serde_json::to_string_pretty(&r)?),
                Output::Table => out!("{}", aksnet_lab::policy_check::render(&r)),
            }
            Ok(if r.all_match() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_INVALID)
            })
        }
        LabCommand::Check {
            name,
            policy: false,
            output,
        } => {
            let r = lab::check(&dir(&name)?)?;
            match output.output {
                Output::Json => outln!("{}", serde_json::to_string_pretty(&r)?),
                Output::Table => out!("{}", render::check(&r)),
            }
            Ok(if r.all_match() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_INVALID)
            })
        }
        LabCommand::Demo(a) => demo::run(&a),
        LabCommand::Diagram { name, output } => {
            let d = dir(&name)?;
            let state = d.load()?;
            let snap = store::snapshot(&d).unwrap_or_default();
            let svg = diagram::render(
                &diagram::Model::new(&state, &snap)
                    .with_load_balancer(&aksnet_lab::lb::LbStatus::load(&d).unwrap_or_default()),
            );
            match output {
                Some(p) => {
                    std::fs::write(&p, svg).with_context(|| p.display().to_string())?;
                    errln!("wrote {}", p.display());
                }
                None => out!("{svg}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        LabCommand::Nsg { command } => nsg(command),
        LabCommand::Bench {
            name,
            seconds,
            repeats,
            output,
        } => {
            let r = bench::run(&dir(&name)?, seconds, repeats)?;
            match output.output {
                Output::Json => outln!("{}", serde_json::to_string_pretty(&r)?),
                Output::Table => out!("{}", render::bench(&r)),
            }
            Ok(ExitCode::SUCCESS)
        }
        LabCommand::Update {
            name,
            api_server_authorized_ip_ranges,
            output,
        } => update(
            &name,
            api_server_authorized_ip_ranges.as_deref(),
            output.output,
        ),
        LabCommand::PublicDns { lab_dir, listen } => public_dns(&lab_dir, listen),
        LabCommand::List => {
            for n in lab::list() {
                outln!("{n}");
            }
            Ok(ExitCode::SUCCESS)
        }
        LabCommand::ProbeServe {
            label,
            port,
            listen,
            ..
        } => {
            let extra = listen
                .iter()
                .map(|l| {
                    l.parse::<probe::Listen>()
                        .map_err(|e| anyhow!("--listen {e}"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let ports = probe::listens(port, &extra);
            probe::serve_ports(&ports, &label)
                .with_context(|| format!("probe server {label} on {ports:?}"))?;
            Ok(ExitCode::SUCCESS)
        }
        LabCommand::Controller { lab_dir } => {
            let name = lab_dir
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| anyhow!("{}: not a lab directory", lab_dir.display()))?;
            let d = LabDir {
                name: name.to_string(),
                path: lab_dir.clone(),
            };
            lab::run_controller(&d)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn dir(name: &NameArg) -> anyhow::Result<LabDir> {
    Ok(LabDir::new(&name.name)?)
}

/// The binary's directory holds the plugins when built with the workspace.
pub fn env(bin: &BinArg) -> anyhow::Result<Env> {
    let exe = std::env::current_exe().context("cannot find the aksnet binary")?;
    let cni_bin_dir = match &bin.cni_bin_dir {
        Some(d) => d.clone(),
        None => exe
            .parent()
            .map(PathBuf::from)
            .ok_or_else(|| anyhow!("{} has no directory", exe.display()))?,
    };
    Ok(Env { exe, cni_bin_dir })
}

/// Resolves and plans the design; `None` (after printing why) when invalid.
pub fn design(
    d: &DesignArgs,
    nodes: u32,
) -> anyhow::Result<Result<aksnet_core::spec::ClusterNetwork, ExitCode>> {
    let mut input = match d.to_input() {
        Ok(i) => i,
        Err(e) => {
            errln!("aksnet lab up: {e}");
            return Ok(Err(ExitCode::from(EXIT_UNUSABLE)));
        }
    };
    if input.node_count.is_none() {
        input.node_count = Some(Sourced::new(nodes, "--nodes"));
    }
    let plan = match planner::plan_input(&input) {
        Ok(p) => p,
        Err(e) => {
            errln!("aksnet lab up: {e}");
            return Ok(Err(ExitCode::from(EXIT_UNUSABLE)));
        }
    };
    if !plan.valid {
        errln!("aksnet lab up: the planner rejects this design, so no lab is built:");
        for f in &plan.errors {
            errln!("  {}: {}", f.code, f.message);
        }
        return Ok(Err(ExitCode::from(EXIT_INVALID)));
    }
    Ok(Ok(plan.network))
}

/// `--store` and the TLS flags, checked (URL syntax, TLS files for an
/// `etcds://` URL only) before anything is built.
fn store_config(a: &UpArgs) -> anyhow::Result<Option<aksnet_lab::state::StoreConfig>> {
    let tls = a.etcd_tls.tls();
    let Some(url) = &a.store else {
        if !tls.is_empty() {
            return Err(anyhow!(
                "--etcd-ca, --etcd-cert and --etcd-key need --store etcds://HOST:PORT"
            ));
        }
        return Ok(None);
    };
    let parsed: aksnet_store::StoreUrl = url.parse()?;
    if parsed.is_tls() {
        tls.check()?;
    } else if !tls.is_empty() {
        return Err(anyhow!(
            "--etcd-ca, --etcd-cert and --etcd-key apply to etcds:// stores, not to --store {url}"
        ));
    }
    // Children run from other directories: absolute paths.
    let abs = |p: &Option<PathBuf>| -> anyhow::Result<Option<PathBuf>> {
        p.as_ref()
            .map(|p| std::path::absolute(p).with_context(|| format!("{}", p.display())))
            .transpose()
    };
    Ok(Some(aksnet_lab::state::StoreConfig {
        url: parsed.to_string(),
        etcd_ca: abs(&a.etcd_tls.ca)?,
        etcd_cert: abs(&a.etcd_tls.cert)?,
        etcd_key: abs(&a.etcd_tls.key)?,
    }))
}

fn up(a: &UpArgs) -> anyhow::Result<ExitCode> {
    let network = match design(&a.design, a.nodes)? {
        Ok(n) => n,
        Err(code) => return Ok(code),
    };
    let vm_subnet = match &a.vm_subnet_cidr {
        Some(s) => {
            Some(aksnet_core::cidr::parse_cidr(s).map_err(|e| anyhow!("--vm-subnet-cidr: {e}"))?)
        }
        None => None,
    };
    let opts = UpOptions {
        name: a.name.name.clone(),
        network,
        nodes: a.nodes,
        pods_per_node: a.pods_per_node,
        vm_subnet,
        store: store_config(a)?,
    };
    let env = env(&a.bin)?;
    let bar = bar(a.output.output == Output::Json);
    let started = std::time::Instant::now();
    let result = lab::up(&env, &opts, &bar);
    bar.done();
    let state = match result {
        Ok(s) => s,
        Err(e) => {
            if !matches!(e, aksnet_lab::LabError::Exists(_)) {
                // Leave nothing of a lab that did not come up.
                if let Ok(d) = LabDir::new(&opts.name) {
                    let _ = teardown::down(&d);
                }
            }
            return Err(e.into());
        }
    };
    let secs = started.elapsed().as_secs_f64();
    match a.output.output {
        Output::Json => {
            let st = lab::status(&LabDir::new(&state.name)?)?;
            let mut v = serde_json::to_value(&st)?;
            v["up_seconds"] = serde_json::json!((secs * 100.0).round() / 100.0);
            outln!("{}", serde_json::to_string_pretty(&v)?);
        }
        Output::Table => {
            outln!(
                "lab {} is up in {secs:.1} s: {} network, {}, {}; `aksnet lab check --name {}` probes it, `aksnet lab down --name {}` removes it",
                state.name,
                state.network.network_plugin,
                crate::render::count(state.nodes.len(), "node"),
                crate::render::count(
                    state
                        .pods
                        .iter()
                        .filter(|p| !aksnet_lab::cluster_dns::is_dns_pod(p))
                        .count(),
                    "pod"
                ),
                state.name,
                state.name
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What a command added or removed: `added pod-1-3, pod-1-4`, or with
/// `--output json` `{"added": {"pods": ["pod-1-3", "pod-1-4"]}}`.
fn changed(output: Output, verb: &str, kind: &str, names: &[String]) {
    match output {
        Output::Json => outln!("{}", serde_json::json!({ verb: { kind: names } })),
        Output::Table => outln!("{verb} {}", names.join(", ")),
    }
}

fn least_loaded(d: &LabDir) -> anyhow::Result<String> {
    let st = d.load()?;
    st.nodes
        .iter()
        .min_by_key(|n| st.pods_on(&n.name).count())
        .map(|n| n.name.clone())
        .ok_or_else(|| {
            anyhow!(
                "lab {} has no node; `aksnet lab add-node` adds one",
                st.name
            )
        })
}

fn exec(d: &LabDir, target: &str, command: &[String]) -> anyhow::Result<ExitCode> {
    let ns = lab::target_netns(d, target)?;
    let Some((prog, args)) = command.split_first() else {
        return Err(anyhow!("no command given; write it after `--`"));
    };
    let ns_name = ns
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let etc = std::path::Path::new(aksnet_lab::cluster_dns::ETC_NETNS).join(&ns_name);
    let mut cmd = if etc.is_dir() {
        // A pod with the kubelet's resolv.conf: `ip netns exec` mounts
        // /etc/netns/<ns>/* over /etc in a mount namespace of the command's
        // own, so its resolver uses the cluster DNS.
        let mut c = std::process::Command::new("ip");
        c.args(["netns", "exec", &ns_name, prog]).args(args);
        c
    } else {
        let mut c = std::process::Command::new(prog);
        c.args(args);
        aksnet_lab::netns::command_in(&mut c, &ns)?;
        c
    };
    let status = cmd.status().with_context(|| format!("cannot run {prog}"))?;
    Ok(ExitCode::from(
        status.code().unwrap_or(1).clamp(0, 255) as u8
    ))
}

/// `lab update`: exit 2 for ranges that cannot be used or nothing to change.
fn update(name: &NameArg, ranges: Option<&str>, output: Output) -> anyhow::Result<ExitCode> {
    let Some(text) = ranges else {
        errln!("aksnet lab update: nothing to change; give --api-server-authorized-ip-ranges CIDR[,CIDR...] (\"\" opens the API server again)");
        return Ok(ExitCode::from(EXIT_UNUSABLE));
    };
    let nets = match aksnet_lab::apiserver::parse_list(text) {
        Ok(n) => n,
        Err(e) => {
            errln!("aksnet lab update: --api-server-authorized-ip-ranges: {e}");
            return Ok(ExitCode::from(EXIT_UNUSABLE));
        }
    };
    let r = lab::update_api_server_ranges(&dir(name)?, &nets)?;
    match output {
        Output::Json => outln!("{}", serde_json::to_string_pretty(&r)?),
        Output::Table => match &r.allowed_sources {
            None => outln!(
                "the API server of lab {} is open to every address (applied in {} ms)",
                name.name, r.applied_ms
            ),
            Some(v) => outln!(
                "the API server of lab {} takes {} (the ranges, the outbound IP and its own; applied in {} ms)",
                name.name,
                v.join(", "),
                r.applied_ms
            ),
        },
    }
    Ok(ExitCode::SUCCESS)
}

/// The internet host's DNS server, until SIGTERM or SIGINT.
fn public_dns(lab_dir: &std::path::Path, listen: std::net::SocketAddr) -> anyhow::Result<ExitCode> {
    let name = lab_dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| anyhow!("{}: not a lab directory", lab_dir.display()))?;
    let d = LabDir {
        name: name.to_string(),
        path: lab_dir.to_path_buf(),
    };
    let state = d.load()?;
    let records = aksnet_lab::cluster_dns::public_records(&state);
    let zone = aksnet_dns::zone::StaticZone::new(&aksnet_lab::cluster_dns::PUBLIC_ZONES, &records)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(aksnet_dns::zone::serve(zone, listen, async {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut t), Ok(mut i)) => {
                tokio::select! {
                    _ = t.recv() => {}
                    _ = i.recv() => {}
                }
            }
            _ => std::future::pending::<()>().await,
        }
    }))?;
    Ok(ExitCode::SUCCESS)
}

fn nsg(c: NsgCommand) -> anyhow::Result<ExitCode> {
    // A bare address is that one host (/32), as in an Azure NSG rule; a
    // prefix with host bits set is refused rather than silently widened.
    let cidr = |s: &Option<String>, flag: &str| -> anyhow::Result<Option<ipnet::Ipv4Net>> {
        let Some(v) = s.as_deref() else {
            return Ok(None);
        };
        let net = match aksnet_core::cidr::parse_cidr(v) {
            Ok(n) => n,
            Err(aksnet_core::cidr::CidrParseError::MissingPrefix(_)) => {
                let a = aksnet_core::cidr::parse_ipv4(v).map_err(|e| anyhow!("{flag}: {e}"))?;
                ipnet::Ipv4Net::from(a)
            }
            Err(e) => return Err(anyhow!("{flag}: {e}")),
        };
        if aksnet_core::cidr::has_host_bits(&net) {
            return Err(anyhow!(
                "{flag}: '{v}' has host bits set beyond /{}; write the network address, {}",
                net.prefix_len(),
                net.trunc()
            ));
        }
        Ok(Some(net))
    };
    match c {
        NsgCommand::Add {
            name,
            priority,
            direction,
            access,
            source,
            destination,
            port,
            protocol,
            output,
        } => {
            let rule = NsgRule {
                priority,
                direction: direction.parse::<Direction>()?,
                access: access.parse::<Access>()?,
                source: cidr(&source, "--source")?,
                destination: cidr(&destination, "--destination")?,
                port,
                protocol: protocol
                    .as_deref()
                    .map(str::parse::<Protocol>)
                    .transpose()?,
            };
            let n = rule.name();
            lab::nsg_add(&dir(&name)?, rule)?;
            changed(output.output, "added", "rules", &[n]);
        }
        NsgCommand::List { name, output } => {
            let rules = lab::nsg_list(&dir(&name)?)?;
            match output.output {
                Output::Json => outln!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({ "rules": rules }))?
                ),
                Output::Table => out!("{}", render::nsg(&rules)),
            }
        }
        NsgCommand::Remove {
            name,
            priority,
            direction,
            output,
        } => {
            let r = lab::nsg_remove(&dir(&name)?, direction.parse::<Direction>()?, priority)?;
            changed(output.output, "removed", "rules", &[r.name()]);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A progress bar on standard error (drawn only on a terminal).
pub struct Bar(ProgressBar);

pub fn bar(hidden: bool) -> Bar {
    let pb = if hidden {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
    {
        pb.set_style(style);
    }
    Bar(pb)
}

impl Bar {
    pub fn done(&self) {
        self.0.finish_and_clear();
    }
}

impl Progress for Bar {
    fn length(&self, total: u64) {
        self.0.set_length(total);
    }
    fn step(&self, msg: &str) {
        self.0.inc(1);
        self.0.set_message(msg.to_string());
    }
}
