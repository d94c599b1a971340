//! `aksnet dns`: the cluster DNS server, until SIGINT/SIGTERM.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use aksnet_dns::{DnsConfig, DnsServer, PodMode};
use anyhow::Context;
use clap::{Args, ValueEnum};

use super::store::StoreArgs;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Pods {
    /// a-b-c-d.NS.pod.DOMAIN only for a Pod of NS with that IP.
    Verified,
    /// a-b-c-d.NS.pod.DOMAIN for any IP (CoreDNS `pods insecure`, as on AKS).
    Insecure,
    /// No pod records.
    Disabled,
}

#[derive(Args, Debug)]
pub struct DnsArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Address and port to serve on, UDP and TCP (port 0: a free one, printed at start).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: SocketAddr,
    /// Server for names outside the cluster domain (repeatable; port 53 when omitted).
    #[arg(long = "upstream", value_name = "ADDR:PORT", value_parser = parse_upstream)]
    pub upstreams: Vec<SocketAddr>,
    /// The cluster domain the server is authoritative for.
    #[arg(long, value_name = "DOMAIN", default_value = "cluster.local")]
    pub cluster_domain: String,
    /// TTL of every answer, in seconds (0 to 3600, as CoreDNS).
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub ttl: u32,
    /// Pod records (a-b-c-d.NS.pod.DOMAIN).
    #[arg(long, value_enum, default_value_t = Pods::Verified)]
    pub pods: Pods,
    /// Longest time between two full reads of the store, in seconds (changes come sooner, by watch).
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub resync: u64,
    /// Serve inside this network namespace (e.g. /run/netns/NAME: a lab's DNS pod), listening and forwarding there, while the store is reached from the namespace it was started in.
    #[arg(long, value_name = "PATH")]
    pub netns: Option<std::path::PathBuf>,
}

fn parse_upstream(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    Err(format!(
        "'{s}' is not ADDR:PORT or ADDR (e.g. 192.0.2.53:53, [2001:db8::53]:53, 192.0.2.53)"
    ))
}

pub fn run(args: &DnsArgs) -> anyhow::Result<ExitCode> {
    let domain = aksnet_dns::names::cluster_domain(&args.cluster_domain)?;
    let mut cfg = DnsConfig::new(args.listen, domain);
    cfg.upstreams = args.upstreams.clone();
    cfg.ttl = args.ttl;
    cfg.pods = match args.pods {
        Pods::Verified => PodMode::Verified,
        Pods::Insecure => PodMode::Insecure,
        Pods::Disabled => PodMode::Disabled,
    };
    cfg.resync = Duration::from_secs(args.resync.max(1));
    cfg.validate()?;
    let store = args.store.open()?;
    // The store's connections (an etcd client's threads) were made above,
    // in the starting namespace; from here on this thread, and every
    // thread it starts (the runtime's, the UDP workers, the forwarder's
    // sockets), is in `--netns`. The guard lives until the process ends.
    let _netns = match &args.netns {
        Some(p) => Some(
            aksnet_linux::Netns::open(p)
                .and_then(|n| n.enter())
                .with_context(|| format!("--netns {}", p.display()))?,
        ),
        None => None,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("dns")
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let server = DnsServer::start(store.clone(), &cfg)?;
        let upstreams: Vec<String> = cfg.upstreams.iter().map(|u| u.to_string()).collect();
        // The line below means "answering from the store": wait for the
        // first read (cluster names are SERVFAIL until then), a few
        // seconds at most, so a store that is down does not hold it back.
        if !server.wait_revision(0, Duration::from_secs(5)).await {
            tracing::warn!(
                "the store has not been read yet; cluster names answer SERVFAIL until it is"
            );
        }
        // One line on stdout, so a script (or the lab) knows the port.
        outln!(
            "aksnet dns: serving {} on {} (udp, tcp) from {}; upstreams: {}",
            cfg.cluster_domain,
            server.local_addr(),
            store.url(),
            if upstreams.is_empty() {
                "none (other names are refused)".to_string()
            } else {
                upstreams.join(", ")
            }
        );
        wait_for_signal().await?;
        server.shutdown().await?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot catch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot catch SIGINT")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
