//! Network policy timings for docs/BENCHMARKS.md (root; creates
//! `ak4-pbench-*` namespaces and a temporary SQLite store, removes them at
//! the end; nothing in the root namespace).
//!
//! ```text
//! cargo build --release -p aksnet-agent --example policy_bench
//! target/release/examples/policy_bench [RUNS]
//! ```
//!
//! A node namespace with a bridge and 100 local pods (two of them real
//! namespaces, `a` → `b`, the other 98 addresses only), and, in one run:
//!
//! 1. Programming time for 10, 100 and 1,000 policies (each selecting one
//!    of the 100 pods, three peers — a podSelector, a namespaceSelector AND
//!    podSelector, an ipBlock with except — and two ports, one named):
//!    computing the table, creating it in the kernel, and a pod label
//!    change applied as a diff on top.
//! 2. Apply → enforced through the agent: with the 1,000 policies in the
//!    store, a policy denying `a`'s egress is written; one agent reconcile
//!    later (the pass a store watch triggers) a connection from `a` to `b`
//!    is refused; measured from before the write to the first failed
//!    connect.
//! 3. First-packet latency: TCP connect time from `a` to `b` (SYN to
//!    SYN-ACK, each a new connection through conntrack; the Services
//!    table is in place, as on every node), with no policy table, with 1,000 policies (10 per pod), and with 1,000 policies all
//!    selecting `b` (the worst case: 1,000 jumps for `b`'s first packets),
//!    interleaved round by round.

#![allow(
    clippy::unwrap_used,
    reason = "a benchmark: a failed step ends the run"
)]

use std::collections::BTreeMap;
use std::net::{SocketAddrV4, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aksnet_agent::kernel::netlink::NetlinkKernel;
use aksnet_agent::policy::{self, NamedPort, PodInfo, PolicyInput};
use aksnet_agent::services::{self, PortInput, ServicesInput};
use aksnet_agent::{Agent, AgentConfig};
use aksnet_core::cluster::{RouteMode, NETWORK_KEY};
use aksnet_core::k8s::netpol::NetworkPolicy;
use aksnet_core::k8s::store::object_key;
use aksnet_core::k8s::{Kind, ObjectId};
use aksnet_core::planner;
use aksnet_core::spec::{Sourced, SpecInput};
use aksnet_nft::{Driver, L4Proto, Owner};
use serde_json::json;

const A: &str = "10.244.0.10";
const B: &str = "10.244.0.11";
const NODE: &str = "bench-0";

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
    fn new(tag: &str) -> Ns {
        let name = format!("ak4-pbench-{}-{tag}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        sh(&format!("ip netns add {name}"));
        sh(&format!("ip -n {name} link set lo up"));
        Ns(name)
    }
    fn path(&self) -> PathBuf {
        format!("/run/netns/{}", self.0).into()
    }
    fn exec(&self, cmd: &str) {
        sh(&format!("ip netns exec {} {cmd}", self.0));
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

fn pct(mut v: Vec<Duration>, p: usize) -> Duration {
    v.sort();
    v[(v.len() * p / 100).min(v.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn pod_ip(i: usize) -> String {
    format!("10.244.0.{}", 10 + i)
}

/// Pod `i` of 100: `a` is 0 (a client), `b` is 1 (serves http on 8080).
fn pods() -> Vec<PodInfo> {
    (0..100)
        .map(|i| {
            let mut labels: BTreeMap<String, String> =
                [("app".to_string(), format!("p{i}"))].into();
            if i == 0 {
                labels.insert("role".into(), "client".into());
            }
            PodInfo {
                namespace: "bench".into(),
                name: format!("pod-{i}"),
                labels,
                ip: pod_ip(i).parse().unwrap(),
                node: Some(NODE.into()),
                ports: vec![NamedPort {
                    name: "http".into(),
                    protocol: L4Proto::Tcp,
                    port: 8080,
                }],
            }
        })
        .collect()
}

fn policy_json(i: usize, target: usize) -> serde_json::Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": format!("p{i}"), "namespace": "bench"},
        "spec": {"podSelector": {"matchLabels": {"app": format!("p{target}")}},
            "ingress": [{"from": [
                {"podSelector": {"matchLabels": {"role": "client"}}},
                {"namespaceSelector": {"matchLabels": {"team": "ops"}}, "podSelector": {"matchLabels": {"tier": "web"}}},
                {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}],
                "ports": [{"port": 8000 + (i % 100)}, {"port": "http"}]}]}})
}

fn policies(n: usize, all_on_b: bool) -> Vec<NetworkPolicy> {
    (0..n)
        .map(|i| {
            let mut p: NetworkPolicy =
                serde_json::from_value(policy_json(i, if all_on_b { 1 } else { i % 100 })).unwrap();
            p.set_defaults();
            p
        })
        .collect()
}

fn input(n: usize, all_on_b: bool) -> PolicyInput {
    PolicyInput {
        node: NODE.into(),
        node_ips: vec!["10.224.0.4".parse().unwrap()],
        pods: pods(),
        namespaces: BTreeMap::new(),
        policies: policies(n, all_on_b),
    }
}

/// A node namespace with a bridge and the two real pods.
struct Node {
    node: Ns,
    a: Ns,
    _b: Ns,
}

fn node() -> Node {
    let node = Ns::new("node");
    let a = Ns::new("a");
    let b = Ns::new("b");
    node.exec("sysctl -qw net.ipv4.ip_forward=1");
    node.exec("ip link add eth0 type veth peer name eth1");
    node.exec("ip link set eth1 up");
    node.exec("ip addr add 10.224.0.4/16 dev eth0");
    node.exec("ip link set eth0 up");
    node.exec("ip link add cbr0 type bridge");
    node.exec("ip addr add 10.244.0.1/24 dev cbr0");
    node.exec("ip link set cbr0 up");
    if std::path::Path::new("/proc/sys/net/bridge/bridge-nf-call-iptables").exists() {
        node.exec("sysctl -qw net.bridge.bridge-nf-call-iptables=1");
    }
    for (p, ip, veth) in [(&a, A, "va"), (&b, B, "vb")] {
        node.exec(&format!(
            "ip link add {veth} type veth peer name eth0 netns {}",
            p.0
        ));
        node.exec(&format!("ip link set {veth} master cbr0 up"));
        p.exec(&format!("ip addr add {ip}/24 dev eth0"));
        p.exec("ip link set eth0 up");
        p.exec("ip route add default via 10.244.0.1");
    }
    let path = b.path();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let ns = aksnet_linux::netns::Netns::open(&path).unwrap();
        let _in = ns.enter().unwrap();
        let l = TcpListener::bind(SocketAddrV4::new(B.parse().unwrap(), 8080)).unwrap();
        tx.send(()).unwrap();
        for s in l.incoming().flatten() {
            drop(s);
        }
    });
    rx.recv().unwrap();
    Node { node, a, _b: b }
}

/// Connect times from `a` to `b:8080` (`None`: refused or timed out).
fn connects(a: &Ns, n: usize, timeout: Duration) -> Vec<Option<Duration>> {
    let path = a.path();
    std::thread::spawn(move || {
        let ns = aksnet_linux::netns::Netns::open(&path).unwrap();
        let _in = ns.enter().unwrap();
        let to = SocketAddrV4::new(B.parse().unwrap(), 8080).into();
        (0..n)
            .map(|_| {
                let t = Instant::now();
                TcpStream::connect_timeout(&to, timeout)
                    .ok()
                    .map(|_| t.elapsed())
            })
            .collect()
    })
    .join()
    .unwrap()
}

fn programming(n: &Node, runs: usize) {
    println!(
        "| policies | compute | create in kernel | one label change (diff) | commands created |"
    );
    println!("|---:|---:|---:|---:|---:|");
    for count in [10usize, 100, 1000] {
        let (mut compute, mut create, mut update) = (vec![], vec![], vec![]);
        let mut commands = 0;
        for _ in 0..runs {
            let mut d = aksnet_linux::nft::Nft::at(n.node.path()).unwrap();
            let inp = input(count, false);
            let t = Instant::now();
            let want = policy::desired(&inp).table;
            compute.push(t.elapsed());
            let _ = d.apply(&aksnet_nft::diff::delete(&want.id()));
            let mut owner = Owner::new(want.id());
            // The owner lists the (absent) table first, as an agent does at
            // start; that read is part of programming.
            let t = Instant::now();
            match owner.sync(&mut d, &want).unwrap() {
                aksnet_nft::Synced::Applied(c) => commands = c,
                s => panic!("{s:?}"),
            }
            create.push(t.elapsed());
            let mut next = inp.clone();
            next.pods[5].labels.insert("role".into(), "client".into());
            let t = Instant::now();
            let want2 = policy::desired(&next).table;
            owner.sync(&mut d, &want2).unwrap();
            update.push(t.elapsed());
        }
        println!(
            "| {count} | {} | {} | {} | {commands} |",
            ms(median(compute)),
            ms(median(create)),
            ms(median(update))
        );
    }
}

fn put_policy(kv: &dyn aksnet_store::Store, v: &serde_json::Value) {
    let id = ObjectId::new(
        Kind::NetworkPolicy,
        v["metadata"]["namespace"].as_str().unwrap(),
        v["metadata"]["name"].as_str().unwrap(),
    );
    kv.put(&object_key(&id), &serde_json::to_vec(v).unwrap(), None)
        .unwrap();
}

fn apply_to_enforced(n: &Node, runs: usize) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("cluster.db").display());
    let kv = aksnet_store::open(&url).unwrap();
    let input = SpecInput {
        network_plugin: Some(Sourced::new("kubenet".into(), "bench")),
        ..Default::default()
    };
    let net = planner::plan_input(&input).unwrap().network;
    kv.put(NETWORK_KEY, &serde_json::to_vec(&net).unwrap(), None)
        .unwrap();
    for p in pods() {
        let id = ObjectId::new(Kind::Pod, &p.namespace, &p.name);
        let v = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": p.name, "namespace": p.namespace, "labels": p.labels},
            "spec": {"nodeName": NODE, "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {"podIP": p.ip.to_string(), "phase": "Running"}});
        kv.put(&object_key(&id), &serde_json::to_vec(&v).unwrap(), None)
            .unwrap();
    }
    for i in 0..1000 {
        put_policy(kv.as_ref(), &policy_json(i, i % 100));
    }
    let mut cfg = AgentConfig::new(NODE, "10.224.0.4".parse().unwrap());
    cfg.netns = Some(n.node.path());
    cfg.cni_conf_dir = dir.path().join("net.d");
    cfg.ipam_data_dir = dir.path().join("ipam");
    cfg.routes = RouteMode::HostGw;
    let kernel = NetlinkKernel::new(Some(&n.node.path())).unwrap();
    let mut agent = Agent::start(cfg, Arc::clone(&kv), Box::new(kernel)).unwrap();
    let t = Instant::now();
    agent.reconcile().unwrap();
    let first = t.elapsed();
    let st = agent.record().policy.clone().unwrap();
    assert_eq!(st.policies, 1000, "{st:?}");
    assert!(
        connects(&n.a, 1, Duration::from_millis(500))[0].is_some(),
        "a → b is allowed"
    );
    let deny = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "a-no-egress", "namespace": "bench"},
        "spec": {"podSelector": {"matchLabels": {"app": "p0"}}, "policyTypes": ["Egress"]}});
    let (mut enforced, mut passes) = (vec![], vec![]);
    for _ in 0..runs {
        let t = Instant::now();
        put_policy(kv.as_ref(), &deny);
        let p = Instant::now();
        agent.reconcile().unwrap();
        passes.push(p.elapsed());
        while connects(&n.a, 1, Duration::from_millis(20))[0].is_some() {
            assert!(t.elapsed() < Duration::from_secs(10), "never enforced");
        }
        enforced.push(t.elapsed());
        kv.delete(&object_key(&ObjectId::new(
            Kind::NetworkPolicy,
            "bench",
            "a-no-egress",
        )))
        .unwrap();
        agent.reconcile().unwrap();
        assert!(
            connects(&n.a, 1, Duration::from_millis(500))[0].is_some(),
            "open again"
        );
    }
    println!(
        "| first reconcile, 1,000 policies over 100 pods (empty kernel) | {} |",
        ms(first)
    );
    println!(
        "| apply → enforced (store write, one reconcile, first refused connect) | {} |",
        ms(median(enforced))
    );
    println!("| of which the reconcile pass | {} |", ms(median(passes)));
    let mut d = aksnet_linux::nft::Nft::at(n.node.path()).unwrap();
    let _ = d.apply(&aksnet_nft::diff::delete(&policy::table_id()));
}

fn latency(n: &Node, rounds: usize, per_round: usize) {
    let configs: [(&str, Option<PolicyInput>); 3] = [
        ("no policy table", None),
        ("1,000 policies, 10 per pod", Some(input(1000, false))),
        ("1,000 policies, all selecting b", Some(input(1000, true))),
    ];
    let mut d = aksnet_linux::nft::Nft::at(n.node.path()).unwrap();
    // As on every aksnet node, the Services table is there (and with it
    // conntrack): the baseline is a node without policy, not a bare
    // namespace.
    let svc = services_table();
    Owner::new(svc.id()).sync(&mut d, &svc).unwrap();
    let mut got: Vec<Vec<Duration>> = vec![vec![]; configs.len()];
    let mut lost = vec![0usize; configs.len()];
    for _ in 0..rounds {
        for (i, (_, inp)) in configs.iter().enumerate() {
            let _ = d.apply(&aksnet_nft::diff::delete(&policy::table_id()));
            if let Some(inp) = inp {
                let want = policy::desired(inp).table;
                Owner::new(want.id()).sync(&mut d, &want).unwrap();
            }
            // Warm the path (ARP, caches), then measure.
            connects(&n.a, 20, Duration::from_secs(1));
            let rs = connects(&n.a, per_round, Duration::from_secs(1));
            let failed = rs.iter().filter(|r| r.is_none()).count();
            lost[i] += failed;
            assert!(
                failed * 10 < per_round,
                "a → b must be allowed in every configuration"
            );
            got[i].extend(rs.into_iter().flatten());
        }
    }
    let base = median(got[0].clone());
    println!("| configuration | connects | median | p90 | vs no policy | timed out (1 s) |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (i, (name, _)) in configs.iter().enumerate() {
        let m = median(got[i].clone());
        println!(
            "| {name} | {} | {} | {} | {:+.1}% | {} |",
            got[i].len(),
            us(m),
            us(pct(got[i].clone(), 90)),
            (m.as_secs_f64() / base.as_secs_f64() - 1.0) * 100.0,
            lost[i]
        );
    }
    let _ = d.apply(&aksnet_nft::diff::delete(&policy::table_id()));
    let _ = d.apply(&aksnet_nft::diff::delete(&svc.id()));
}

/// One ClusterIP Service (10.0.0.20:80 → b:8080).
fn services_table() -> aksnet_nft::Table {
    let mut s: aksnet_core::k8s::Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "b", "namespace": "bench"},
        "spec": {"clusterIP": "10.0.0.20", "ports": [{"port": 80, "targetPort": 8080}]}}))
    .unwrap();
    s.set_defaults();
    let port = s.spec.ports[0].clone();
    services::desired(&ServicesInput {
        node: NODE.into(),
        node_ips: vec!["10.224.0.4".parse().unwrap()],
        cluster_cidrs: vec!["10.244.0.0/16".parse().unwrap()],
        services: vec![(
            s,
            vec![PortInput {
                namespace: "bench".into(),
                name: "b".into(),
                port,
                backends: vec![aksnet_core::k8s::endpoints::Backend {
                    ip: B.parse().unwrap(),
                    port: 8080,
                    node: Some(NODE.into()),
                    ready: true,
                    serving: true,
                    terminating: false,
                }],
            }],
        )],
    })
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let n = node();
    println!("### Programming time (median of {runs})\n");
    programming(&n, runs);
    println!("\n### First-packet latency (TCP connect a → b, bridged, same node)\n");
    latency(&n, runs, 400);
    // Last: the agent also programs its routes, SNAT and Services tables
    // into this node.
    println!("\n### Apply → enforced, through the agent (median of {runs})\n");
    println!("| what | time |\n|---|---:|");
    apply_to_enforced(&n, runs);
}
