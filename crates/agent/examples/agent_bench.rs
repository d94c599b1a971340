//! Agent timings for docs/BENCHMARKS.md (root; creates `ak4-bench-*`
//! namespaces and a temporary directory, removes them at the end).
//!
//! ```text
//! cargo build --release -p aksnet -p aksnet-agent --examples
//! target/release/examples/agent_bench target/release/aksnet [RUNS]
//! ```
//!
//! 1. Cold start: `aksnet agent` spawned on a fresh SQLite store (cluster
//!    initialised beforehand) until its conflist exists.
//! 2. Reconcile of 100 nodes' routes: an agent that is up (block, conflist,
//!    SNAT in place) sees 99 peer records appear; one reconcile reads the
//!    cluster and programs all 99 peers (host-gw: 99 routes; vxlan: 99
//!    neighbours, FDB entries and routes); the next one finds nothing to
//!    change.

#![allow(
    clippy::unwrap_used,
    reason = "a benchmark: a failed step ends the run"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aksnet_agent::kernel::netlink::NetlinkKernel;
use aksnet_agent::routes::vxlan::vtep_mac;
use aksnet_agent::{Agent, AgentConfig};
use aksnet_core::cluster::{self, NodeRecord, RouteMode};
use aksnet_store::{Store, Txn, TxnOp};

fn sh(cmd: &str) {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "`{cmd}` failed");
}

struct Ns(String);
impl Ns {
    fn new(name: &str) -> Ns {
        let _ = Command::new("ip").args(["netns", "del", name]).output();
        sh(&format!("ip netns add {name}"));
        sh(&format!("ip -n {name} link set lo up"));
        sh(&format!(
            "ip -n {name} link add eth0 type veth peer name eth1"
        ));
        sh(&format!("ip -n {name} addr add 10.224.0.4/16 dev eth0"));
        sh(&format!("ip -n {name} link set eth0 up"));
        sh(&format!("ip -n {name} link set eth1 up"));
        Ns(name.to_string())
    }
    fn path(&self) -> PathBuf {
        format!("/run/netns/{}", self.0).into()
    }
}
impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn init(aksnet: &Path, store: &str) {
    let out = Command::new(aksnet)
        .args([
            "cluster",
            "init",
            "--store",
            store,
            "--network-plugin",
            "kubenet",
        ])
        .output()
        .expect("aksnet cluster init");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn cold_start(aksnet: &Path, dir: &Path, runs: usize) -> Vec<Duration> {
    let ns = Ns::new(&format!("ak4-bench-{}-cold", std::process::id()));
    let mut out = Vec::new();
    for i in 0..runs {
        let run = dir.join(format!("cold{i}"));
        std::fs::create_dir_all(&run).unwrap();
        let store = format!("sqlite:{}", run.join("cluster.db").display());
        init(aksnet, &store);
        let conf = run.join("net.d");
        let start = Instant::now();
        let mut child = Command::new(aksnet)
            .args([
                "agent",
                "--store",
                &store,
                "--node",
                "bench-0",
                "--node-ip",
                "10.224.0.4",
            ])
            .arg("--netns")
            .arg(ns.path())
            .arg("--cni-conf-dir")
            .arg(&conf)
            .arg("--ipam-data-dir")
            .arg(run.join("ipam"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn aksnet agent");
        let file = conf.join("10-aksnet.conflist");
        while !file.exists() {
            assert!(start.elapsed() < Duration::from_secs(20), "no conflist");
            std::thread::sleep(Duration::from_micros(200));
        }
        out.push(start.elapsed());
        stop(child.id());
        let _ = child.wait();
        // Routes/SNAT left by this run stay; the next run's agent finds them.
    }
    out
}

/// SIGTERM to a child this program started.
fn stop(pid: u32) {
    let _ = Command::new("kill").arg(pid.to_string()).status();
}

fn seed(store: &dyn Store, peers: usize) {
    for i in 1..=peers {
        let name = format!("peer-{i}");
        let ip = format!("10.224.{}.{}", 1 + i / 250, 1 + i % 250);
        let rec = NodeRecord {
            block: Some(format!("10.244.{i}.0/24").parse().unwrap()),
            vtep_mac: Some(vtep_mac(&name)),
            ..NodeRecord::new(&name, ip.parse().unwrap(), RouteMode::HostGw)
        };
        let block = rec.block.unwrap();
        let claim = cluster::Claim {
            node: name.clone(),
            kind: cluster::ClaimKind::PodBlock,
        };
        store
            .txn(Txn::new().and_then([
                TxnOp::put(cluster::node_key(&name), serde_json::to_vec(&rec).unwrap()),
                TxnOp::put(
                    cluster::block_key(&block),
                    serde_json::to_vec(&claim).unwrap(),
                ),
            ]))
            .unwrap();
    }
}

fn reconcile_100(
    aksnet: &Path,
    dir: &Path,
    mode: RouteMode,
    runs: usize,
) -> (Vec<Duration>, Vec<Duration>) {
    let mut full = Vec::new();
    let mut noop = Vec::new();
    for i in 0..runs {
        let run = dir.join(format!("rec-{mode:?}-{i}"));
        std::fs::create_dir_all(&run).unwrap();
        let store = format!("sqlite:{}", run.join("cluster.db").display());
        init(aksnet, &store);
        let kv = aksnet_store::open(&store).unwrap();
        let ns = Ns::new(&format!("ak4-bench-{}-r{i}", std::process::id()));
        let mut cfg = AgentConfig::new("bench-0", "10.224.0.4".parse().unwrap());
        cfg.netns = Some(ns.path());
        cfg.cni_conf_dir = run.join("net.d");
        cfg.ipam_data_dir = run.join("ipam");
        cfg.routes = mode;
        let kernel = NetlinkKernel::new(Some(&ns.path())).unwrap();
        let mut agent = Agent::start(cfg, Arc::clone(&kv), Box::new(kernel)).unwrap();
        // The node is up (block, conflist, SNAT) before its 99 peers appear.
        agent.reconcile().unwrap();
        seed(kv.as_ref(), 99);
        let t = Instant::now();
        let r = agent.reconcile().unwrap();
        full.push(t.elapsed());
        assert_eq!(r.routes_changed, 99, "{r:?}");
        let t = Instant::now();
        let r = agent.reconcile().unwrap();
        noop.push(t.elapsed());
        assert!(!r.changed(), "{r:?}");
    }
    (full, noop)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let aksnet = PathBuf::from(
        args.next()
            .expect("usage: agent_bench PATH/TO/aksnet [RUNS]"),
    );
    let runs: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(9);
    let dir = std::env::temp_dir().join(format!("ak4-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cold = cold_start(&aksnet, &dir, runs);
    println!("cold start to conflist written (sqlite, kubenet): median {} over {runs} runs (min {}, max {})",
        ms(median(cold.clone())), ms(*cold.iter().min().unwrap()), ms(*cold.iter().max().unwrap()));
    for mode in [RouteMode::HostGw, RouteMode::Vxlan] {
        let (full, noop) = reconcile_100(&aksnet, &dir, mode, runs);
        println!(
            "reconcile of 100 nodes' routes ({mode:?}): first (99 peers programmed) median {} (min {}, max {}); unchanged median {}",
            ms(median(full.clone())), ms(*full.iter().min().unwrap()), ms(*full.iter().max().unwrap()), ms(median(noop))
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
