//! `aksnet agent`: the node agent, until SIGINT/SIGTERM.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use aksnet_agent::kernel::netlink::NetlinkKernel;
use aksnet_agent::{Agent, AgentConfig, AgentError};
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
    let agent = Agent::start(cfg, kv, Box::new(kernel))?;
    tracing::info!(node = %args.node, "agent started");
    match agent.run(stop) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e @ AgentError::Removed(_)) => {
            eprintln!("aksnet agent: {e}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(e.into()),
    }
}
