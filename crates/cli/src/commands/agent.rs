//! `aksnet agent`: the node agent, until SIGINT/SIGTERM.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use aksnet_agent::kernel::netlink::NetlinkKernel;
use aksnet_agent::metrics::Metrics;
use aksnet_agent::{http, Agent, AgentConfig, AgentError};
use aksnet_core::cluster::RouteMode;
use anyhow::Context;
use clap::{Args, ValueEnum};

use super::store::StoreArgs;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Routes {
    /// Publish the node's route to the cluster route table (kubenet); the
    /// fabric routes between nodes.
    Fabric,
    /// Route peers' blocks via their node IPs (nodes share an L2 network).
    HostGw,
    /// A flannel-style VXLAN overlay between nodes.
    Vxlan,
}

#[derive(Args, Debug)]
pub struct AgentArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// This node's name.
    #[arg(long, value_name = "NAME")]
    pub node: String,
    /// This node's address in the node subnet.
    #[arg(long, value_name = "IP")]
    pub node_ip: Ipv4Addr,
    /// Network namespace to manage (a file such as /run/netns/NAME); the agent's own when omitted.
    #[arg(long, value_name = "PATH")]
    pub netns: Option<PathBuf>,
    #[arg(long, value_name = "DIR", default_value = "/etc/cni/net.d")]
    pub cni_conf_dir: PathBuf,
    /// Where the CNI plugins are installed (checked at start).
    #[arg(long, value_name = "DIR", default_value = "/opt/cni/bin")]
    pub cni_bin_dir: PathBuf,
    /// aksnet-ipam's data directory for this node (host-local's default).
    #[arg(long, value_name = "DIR", default_value = "/var/lib/cni/networks")]
    pub ipam_data_dir: PathBuf,
    #[arg(long, value_enum, default_value_t = Routes::Fabric)]
    pub routes: Routes,
    /// Max pods on this node (default: the cluster's setting).
    #[arg(long, value_name = "N")]
    pub max_pods: Option<u32>,
    /// Pod MTU (default: the node link's, less 50 with --routes vxlan).
    #[arg(long, value_name = "BYTES")]
    pub mtu: Option<u32>,
    /// Node lease TTL in seconds: a node silent this long is gone.
    #[arg(long, value_name = "SECONDS", default_value_t = 15)]
    pub lease_ttl: u64,
    /// Longest time between two reconciles, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub resync: u64,
    /// Where /metrics (Prometheus) and /healthz listen, inside the managed
    /// namespace (--netns) when one is given; "off" to serve neither.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_METRICS_ADDR, value_parser = parse_metrics_addr)]
    pub metrics_addr: MetricsAddr,
}

/// `--metrics-addr`'s default: loopback only.
pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9965";

/// An address to serve metrics on, or none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricsAddr {
    Off,
    On(SocketAddr),
}

fn parse_metrics_addr(s: &str) -> Result<MetricsAddr, String> {
    if s == "off" {
        return Ok(MetricsAddr::Off);
    }
    s.parse()
        .map(MetricsAddr::On)
        .map_err(|_| format!("'{s}' is not IP:PORT (such as {DEFAULT_METRICS_ADDR}) or off"))
}

pub fn run(args: &AgentArgs) -> anyhow::Result<ExitCode> {
    for plugin in ["aksnet-cni", "aksnet-ipam", "aksnet-portmap"] {
        if !args.cni_bin_dir.join(plugin).exists() {
            tracing::warn!(
                "{plugin} is not in {}; pods cannot start until it is installed",
                args.cni_bin_dir.display()
            );
        }
    }
    // One agent per node: the one holding the lock in the conf dir owns
    // the conflist and the node's record; a second one refuses to start
    // instead of fighting it. The lock goes with the process, also with
    // kill -9, so a restarted agent takes it at once.
    let _one_agent = one_agent_lock(args)?;
    let mut cfg = AgentConfig::new(&args.node, args.node_ip);
    cfg.netns = args.netns.clone();
    cfg.cni_conf_dir = args.cni_conf_dir.clone();
    cfg.ipam_data_dir = args.ipam_data_dir.clone();
    cfg.routes = match args.routes {
        Routes::Fabric => RouteMode::Fabric,
        Routes::HostGw => RouteMode::HostGw,
        Routes::Vxlan => RouteMode::Vxlan,
    };
    cfg.max_pods = args.max_pods;
    cfg.mtu = args.mtu;
    cfg.lease_ttl = Duration::from_secs(args.lease_ttl.max(2));
    cfg.resync = Duration::from_secs(args.resync.max(1));
    let stop = aksnet_agent::signals::stop_flag();
    // The namespace first: a wrong --netns is refused before the store is
    // opened (or created) and before anything is registered in it.
    let kernel = NetlinkKernel::new(cfg.netns.as_deref()).with_context(|| match &cfg.netns {
        Some(p) => format!(
            "--netns {}: cannot manage this network namespace",
            p.display()
        ),
        None => "cannot manage the agent's own network namespace".to_string(),
    })?;
    let kv = args.store.open()?;
    // Bound before the agent registers, so a taken port fails the start
    // instead of leaving a node that nobody can scrape.
    let listener = match args.metrics_addr {
        MetricsAddr::On(addr) => Some(http::bind(addr, cfg.netns.as_deref())?),
        MetricsAddr::Off => None,
    };
    // Unhealthy when no pass has succeeded for three resyncs or one lease
    // (the store would soon drop the node anyway).
    let stale_after = (cfg.resync * 3).max(cfg.lease_ttl);
    cfg.info = Some(aksnet_core::cluster::AgentInfo {
        pid: std::process::id(),
        hostname: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default(),
        netns: cfg.netns.as_ref().map(|p| p.display().to_string()),
        cni_conf_dir: absolute(&cfg.cni_conf_dir),
        cni_bin_dir: absolute(&args.cni_bin_dir),
        ipam_data_dir: absolute(&cfg.ipam_data_dir),
        metrics_addr: listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map(|a| a.to_string()),
    });
    let mut agent = Agent::start(cfg, kv, Box::new(kernel))?;
    if let Some(l) = listener {
        let metrics = Arc::new(Metrics::new(stale_after));
        let addr = http::serve(l, Arc::clone(&metrics))?;
        tracing::info!(%addr, "serving /metrics and /healthz");
        agent.set_metrics(metrics);
    }
    // kube-proxy's healthCheckNodePort servers, on the node's address in
    // the managed namespace (the load balancer's probes ask them).
    agent.set_health_server(aksnet_agent::healthcheck::HealthServer::new(
        std::net::IpAddr::V4(args.node_ip),
        args.netns.clone(),
    )?);
    tracing::info!(node = %args.node, "agent started");
    match agent.run(stop) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e @ AgentError::Removed(_)) => {
            errln!("aksnet agent: {e}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(e.into()),
    }
}

/// `--cni-conf-dir/.aksnet-agent.lock` (a dot file without the conflist
/// suffix, which runtimes ignore), taken without waiting.
fn one_agent_lock(args: &AgentArgs) -> anyhow::Result<aksnet_linux::flock::FileLock> {
    use aksnet_linux::flock::{lock_exclusive, LockError, Wait};
    std::fs::create_dir_all(&args.cni_conf_dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", args.cni_conf_dir.display()))?;
    let path = args.cni_conf_dir.join(".aksnet-agent.lock");
    match lock_exclusive(&path, Wait::No) {
        Ok(l) => Ok(l),
        Err(LockError::Busy { .. }) => Err(anyhow::anyhow!(
            "another aksnet agent is running with --cni-conf-dir {} (it holds {}); one agent per node: stop it first",
            args.cni_conf_dir.display(),
            path.display()
        )),
        Err(e) => Err(e.into()),
    }
}

/// A directory as `aksnet status` can find it from anywhere.
fn absolute(p: &std::path::Path) -> String {
    std::path::absolute(p)
        .unwrap_or_else(|_| p.to_path_buf())
        .display()
        .to_string()
}
