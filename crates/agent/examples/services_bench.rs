//! Services at scale, aksnet's nftables table against kube-proxy's iptables
//! layout of the same Services, side by side in one run (issue 11 §5):
//!
//! ```sh
//! cargo build --release -p aksnet-agent --example services_bench
//! target/release/examples/services_bench [--runs 5] [--sizes 100,1000,10000] [--connects 2000]
//! ```
//!
//! For every size N (Services of one TCP port and 2 endpoints each) and
//! every layout, in a network namespace of its own (`svcb-<pid>-…`, removed
//! at the end, also on failure):
//!
//! * **aksnet**: the agent's path: `services::desired` renders the table,
//!   an `aksnet_nft::Owner` diffs it and the real `nft` applies the batch.
//! * **iptables-nft / iptables-legacy**: what kube-proxy's iptables mode
//!   writes, generated here: one `KUBE-SERVICES` rule per service port, a
//!   `KUBE-SVC-*` chain spreading with `statistic --mode random`, a
//!   `KUBE-SEP-*` chain per endpoint (hairpin mark, DNAT), the masquerade
//!   chains; fed to `iptables-nft-restore` / `iptables-legacy-restore`.
//!   A change is written as kube-proxy's partial sync writes it (KEP-3453):
//!   `--noflush`, the whole `KUBE-SERVICES` chain again plus the changed
//!   Service's chains.
//!
//! Measured: (a) programming all N from an empty table, and one Service's
//! endpoint changed; (b) first-packet latency: TCP connects (each a new
//! conntrack entry, so each goes through the NAT rules) from the namespace
//! to the ClusterIPs of Services picked at random, answered by two
//! listeners behind every Service; (c) memory: for aksnet, the growth of
//! this process's resident set while it holds what the agent holds
//! (the input, the desired table and the owner's applied copy); for the
//! iptables layouts, the size of the restore text kube-proxy builds each
//! full sync. Medians of `--runs` runs.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aksnet_agent::services::{desired, PortInput, ServicesInput};
use aksnet_core::k8s::endpoints::Backend;
use aksnet_core::k8s::service::Service;
use aksnet_linux::nft::Nft;
use aksnet_linux::Netns;
use aksnet_nft::{Owner, Synced};

type Res<T> = Result<T, Box<dyn std::error::Error>>;
/// One layout's measurement, run when its turn comes.
type Layout = Box<dyn Fn() -> Res<Figures>>;

const EP: [Ipv4Addr; 3] = [
    Ipv4Addr::new(10, 244, 1, 5),
    Ipv4Addr::new(10, 244, 1, 6),
    Ipv4Addr::new(10, 244, 1, 7),
];
const EP_PORT: u16 = 8080;

fn cluster_ip(i: usize) -> Ipv4Addr {
    // 10.0.0.0/16; never .0 or .255 of a /24.
    let i = u32::try_from(i).unwrap_or(0);
    Ipv4Addr::new(10, 0, (1 + i / 250) as u8, (1 + i % 250) as u8)
}

/// Endpoints of Service `i`: two of the three listeners; `changed` moves
/// Service 0's second endpoint to the third listener.
fn endpoints(i: usize, changed: bool) -> [Ipv4Addr; 2] {
    if i == 0 && changed {
        [EP[0], EP[2]]
    } else {
        [EP[0], EP[1]]
    }
}

fn input(n: usize, changed: bool) -> Res<ServicesInput> {
    let mut services = Vec::with_capacity(n);
    for i in 0..n {
        let mut s: Service = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": format!("svc-{i}"), "namespace": "bench"},
            "spec": {"clusterIP": cluster_ip(i).to_string(),
                     "ports": [{"port": 80, "targetPort": EP_PORT}]},
        }))?;
        s.set_defaults();
        let backends: Vec<Backend> = endpoints(i, changed)
            .iter()
            .map(|ip| Backend {
                ip: *ip,
                port: EP_PORT,
                node: Some("node-1".into()),
                ready: true,
                serving: true,
                terminating: false,
            })
            .collect();
        let ports = s
            .spec
            .ports
            .iter()
            .map(|p| PortInput {
                namespace: "bench".into(),
                name: s.metadata.name.clone(),
                port: p.clone(),
                backends: backends.clone(),
            })
            .collect();
        services.push((s, ports));
    }
    Ok(ServicesInput {
        node: "node-1".into(),
        node_ips: vec![Ipv4Addr::new(10, 224, 0, 4)],
        cluster_cidrs: vec!["10.244.0.0/16".parse()?],
        services,
    })
}

/// kube-proxy's chain-name hash: 16 characters of a hash of the name.
fn hash16(s: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016X}")
}

fn svc_chain(i: usize) -> String {
    format!("KUBE-SVC-{}", hash16(&format!("bench/svc-{i}:tcp")))
}

fn sep_chain(i: usize, ep: Ipv4Addr) -> String {
    format!("KUBE-SEP-{}", hash16(&format!("bench/svc-{i}:tcp{ep}")))
}

/// The rules of Service `i` (its `KUBE-SVC` and `KUBE-SEP` chains).
fn service_rules(out: &mut String, i: usize, changed: bool) {
    let svc = svc_chain(i);
    let cip = cluster_ip(i);
    let eps = endpoints(i, changed);
    out.push_str(&format!(
        "-A {svc} ! -s 10.244.0.0/16 -d {cip}/32 -p tcp -m comment --comment \"bench/svc-{i} cluster IP\" -m tcp --dport 80 -j KUBE-MARK-MASQ\n"
    ));
    out.push_str(&format!(
        "-A {svc} -m comment --comment \"bench/svc-{i} -> {}:{EP_PORT}\" -m statistic --mode random --probability 0.50000000000 -j {}\n",
        eps[0],
        sep_chain(i, eps[0])
    ));
    out.push_str(&format!(
        "-A {svc} -m comment --comment \"bench/svc-{i} -> {}:{EP_PORT}\" -j {}\n",
        eps[1],
        sep_chain(i, eps[1])
    ));
    for ep in eps {
        let sep = sep_chain(i, ep);
        out.push_str(&format!(
            "-A {sep} -s {ep}/32 -m comment --comment bench/svc-{i} -j KUBE-MARK-MASQ\n"
        ));
        out.push_str(&format!(
            "-A {sep} -p tcp -m comment --comment bench/svc-{i} -m tcp -j DNAT --to-destination {ep}:{EP_PORT}\n"
        ));
    }
}

fn kube_services_rules(out: &mut String, n: usize) {
    for i in 0..n {
        out.push_str(&format!(
            "-A KUBE-SERVICES -d {}/32 -p tcp -m comment --comment \"bench/svc-{i} cluster IP\" -m tcp --dport 80 -j {}\n",
            cluster_ip(i),
            svc_chain(i)
        ));
    }
    out.push_str("-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\n");
}

/// A full sync of kube-proxy's nat table.
fn iptables_full(n: usize, changed: bool) -> String {
    let mut out = String::with_capacity(n * 1200);
    out.push_str("*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n");
    out.push_str(":KUBE-SERVICES - [0:0]\n:KUBE-NODEPORTS - [0:0]\n:KUBE-POSTROUTING - [0:0]\n:KUBE-MARK-MASQ - [0:0]\n");
    for i in 0..n {
        out.push_str(&format!(":{} - [0:0]\n", svc_chain(i)));
        for ep in endpoints(i, changed) {
            out.push_str(&format!(":{} - [0:0]\n", sep_chain(i, ep)));
        }
    }
    out.push_str(
        "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n",
    );
    out.push_str(
        "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n",
    );
    out.push_str("-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING\n");
    out.push_str("-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000\n");
    out.push_str("-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n");
    out.push_str("-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0\n");
    out.push_str("-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully\n");
    for i in 0..n {
        service_rules(&mut out, i, changed);
    }
    kube_services_rules(&mut out, n);
    out.push_str("COMMIT\n");
    out
}

/// kube-proxy's partial sync after Service 0's endpoints changed: the
/// whole `KUBE-SERVICES` chain, Service 0's chains, the stale SEP deleted.
fn iptables_change(n: usize, changed: bool) -> String {
    let mut out = String::with_capacity(n * 200);
    out.push_str("*nat\n:KUBE-SERVICES - [0:0]\n");
    out.push_str(&format!(":{} - [0:0]\n", svc_chain(0)));
    for ep in endpoints(0, changed) {
        out.push_str(&format!(":{} - [0:0]\n", sep_chain(0, ep)));
    }
    service_rules(&mut out, 0, changed);
    kube_services_rules(&mut out, n);
    let gone = endpoints(0, !changed)[1];
    out.push_str(&format!(":{0} - [0:0]\n-X {0}\n", sep_chain(0, gone)));
    out.push_str("COMMIT\n");
    out
}

fn restore(ns: &Netns, bin: &str, text: &str, noflush: bool) -> Res<()> {
    let mut cmd = Command::new(bin);
    if noflush {
        cmd.arg("--noflush");
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    ns.set_for_command(&mut cmd)?;
    let mut ch = cmd.spawn()?;
    ch.stdin
        .take()
        .ok_or("no stdin")?
        .write_all(text.as_bytes())?;
    let out = ch.wait_with_output()?;
    if !out.status.success() {
        return Err(format!("{bin}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(())
}

/// A namespace of the benchmark: lo up, the three endpoint addresses on
/// it with a listener each, the service range routed to lo. Deleted on
/// drop.
struct BenchNs {
    name: String,
    ns: Netns,
}

fn sh(args: &[&str]) -> Res<()> {
    let out = Command::new(args[0]).args(&args[1..]).output()?;
    if !out.status.success() {
        return Err(format!("{args:?}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(())
}

impl BenchNs {
    fn new(tag: &str) -> Res<BenchNs> {
        let name = format!("svcb-{}-{tag}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        sh(&["ip", "netns", "add", &name])?;
        let b = BenchNs {
            ns: Netns::open(PathBuf::from(format!("/run/netns/{name}")))?,
            name,
        };
        sh(&["ip", "-n", &b.name, "link", "set", "lo", "up"])?;
        for ep in EP {
            sh(&[
                "ip",
                "-n",
                &b.name,
                "addr",
                "add",
                &format!("{ep}/32"),
                "dev",
                "lo",
            ])?;
        }
        sh(&[
            "ip",
            "-n",
            &b.name,
            "route",
            "add",
            "10.0.0.0/16",
            "dev",
            "lo",
        ])?;
        // Fewer TIME_WAIT sockets in the way of thousands of connects.
        let _ = Command::new("ip")
            .args(["netns", "exec", &b.name, "sysctl", "-qw"])
            .args([
                "net.ipv4.tcp_tw_reuse=1",
                "net.ipv4.ip_local_port_range=10000 65000",
            ])
            .output();
        for ep in EP {
            let l = b.in_ns(move || TcpListener::bind((ep, EP_PORT)))??;
            std::thread::spawn(move || {
                for s in l.incoming().flatten() {
                    let mut s = s;
                    let _ = s.write_all(b"x");
                }
            });
        }
        Ok(b)
    }

    /// Runs `f` on a thread that entered the namespace (its sockets stay
    /// there).
    fn in_ns<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Res<T> {
        let ns = self.ns.try_clone()?;
        let h = std::thread::spawn(move || -> Result<T, String> {
            let _g = ns.enter().map_err(|e| e.to_string())?;
            Ok(f())
        });
        Ok(h.join().map_err(|_| "namespace thread panicked")??)
    }
}

impl Drop for BenchNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// TCP connect times (µs) to the ClusterIPs of `count` Services picked at
/// random among `n`; every connect must be answered.
fn connects(b: &BenchNs, n: usize, count: usize, seed: u64) -> Res<Vec<f64>> {
    let r = b.in_ns(move || -> Result<Vec<f64>, String> {
        let mut x = seed | 1;
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = usize::try_from(x % n as u64).unwrap_or(0);
            let to = SocketAddr::from((cluster_ip(i), 80));
            let t = Instant::now();
            let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(2))
                .map_err(|e| format!("connect {to}: {e}"))?;
            out.push(t.elapsed().as_secs_f64() * 1e6);
            let mut one = [0u8; 1];
            s.read_exact(&mut one)
                .map_err(|e| format!("read from {to}: {e}"))?;
        }
        Ok(out)
    })??;
    Ok(r)
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

fn median(mut v: Vec<f64>) -> f64 {
    pct(&mut v, 0.5)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[derive(Default)]
struct Figures {
    cold_ms: Vec<f64>,
    change_ms: Vec<f64>,
    p50_us: Vec<f64>,
    p99_us: Vec<f64>,
    memory: String,
}

fn latency(b: &BenchNs, n: usize, connects_per_run: usize, run: usize, f: &mut Figures) -> Res<()> {
    let mut v = connects(b, n, connects_per_run, 0x9e37_79b9_7f4a_7c15 ^ run as u64)?;
    f.p50_us.push(pct(&mut v, 0.5));
    f.p99_us.push(pct(&mut v, 0.99));
    Ok(())
}

fn bench_aksnet(n: usize, runs: usize, connects_per_run: usize) -> Res<Figures> {
    let b = BenchNs::new(&format!("a{n}"))?;
    let mut nft = Nft::in_netns(std::sync::Arc::new(b.ns.try_clone()?));
    let mut f = Figures::default();
    // What an agent holds between passes: its input, the desired table and
    // the owner's copy of what it applied (measured before any batch is
    // built, whose buffers the allocator would keep).
    let before = rss_kib();
    let base = input(n, false)?;
    let held = desired(&base);
    let applied = held.clone();
    f.memory = format!(
        "{:.1} MiB",
        rss_kib().saturating_sub(before) as f64 / 1024.0
    );
    drop((held, applied));
    let changed = input(n, true)?;
    for run in 0..runs {
        let mut owner = Owner::new(aksnet_agent::services::table_id());
        owner.remove(&mut nft)?; // from an empty namespace
        let t = Instant::now();
        let want = desired(&base);
        let r = owner.sync(&mut nft, &want)?;
        f.cold_ms.push(t.elapsed().as_secs_f64() * 1e3);
        if !matches!(r, Synced::Applied(_)) {
            return Err(format!("cold sync did not apply: {r:?}").into());
        }
        for k in 0..2 {
            // The agent's pass: render everything, diff, apply the change.
            let t = Instant::now();
            let want = desired(if k == 0 { &changed } else { &base });
            let r = owner.sync(&mut nft, &want)?;
            f.change_ms.push(t.elapsed().as_secs_f64() * 1e3);
            let Synced::Applied(cmds) = r else {
                return Err(format!("change did not apply: {r:?}").into());
            };
            if run == 0 && k == 0 {
                eprintln!("  aksnet {n}: one change = {cmds} nft commands");
            }
        }
        latency(&b, n, connects_per_run, run, &mut f)?;
    }
    Ok(f)
}

fn bench_iptables(
    bin: &str,
    tag: &str,
    n: usize,
    runs: usize,
    connects_per_run: usize,
) -> Res<Figures> {
    let b = BenchNs::new(&format!("{tag}{n}"))?;
    let mut f = Figures::default();
    let empty = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n";
    let mut size = 0;
    for run in 0..runs {
        restore(&b.ns, bin, empty, false)?;
        let t = Instant::now();
        let text = iptables_full(n, false);
        restore(&b.ns, bin, &text, false)?;
        f.cold_ms.push(t.elapsed().as_secs_f64() * 1e3);
        size = text.len();
        for k in 0..2 {
            let t = Instant::now();
            let text = iptables_change(n, k == 0);
            restore(&b.ns, bin, &text, true)?;
            f.change_ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        latency(&b, n, connects_per_run, run, &mut f)?;
    }
    f.memory = format!("{:.1} MiB restore text", size as f64 / 1_048_576.0);
    Ok(f)
}

fn main() -> Res<()> {
    let mut runs = 5;
    let mut sizes = vec![100, 1000, 10000];
    let mut connects_per_run = 2000;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let v = it.next().ok_or(format!("{a} needs a value"))?;
        match a.as_str() {
            "--runs" => runs = v.parse()?,
            "--connects" => connects_per_run = v.parse()?,
            "--sizes" => sizes = v.split(',').map(str::parse).collect::<Result<_, _>>()?,
            _ => return Err(format!("unknown argument {a}").into()),
        }
    }
    if runs == 0 || connects_per_run == 0 || sizes.contains(&0) {
        return Err("--runs, --connects and every size must be positive".into());
    }
    let root = std::fs::read_to_string("/proc/self/status")?
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        .unwrap_or(false);
    if !root {
        return Err("services_bench needs root (it creates network namespaces)".into());
    }
    for bin in ["iptables-nft-restore", "iptables-legacy-restore"] {
        if Command::new(bin).arg("--version").output().is_err() {
            eprintln!("{bin} missing: installing the Debian package iptables");
            sh(&["apt-get", "install", "-y", "-qq", "iptables"])?;
        }
    }
    println!("| Services | layout | program all, cold (ms) | one Service changed (ms) | connect p50 (µs) | connect p99 (µs) | memory |");
    println!("|---:|---|---:|---:|---:|---:|---|");
    for n in sizes {
        let layouts: [(&str, Layout); 3] = [
            (
                "aksnet (nftables)",
                Box::new(move || bench_aksnet(n, runs, connects_per_run)),
            ),
            (
                "iptables-nft",
                Box::new(move || {
                    bench_iptables("iptables-nft-restore", "n", n, runs, connects_per_run)
                }),
            ),
            (
                "iptables-legacy",
                Box::new(move || {
                    bench_iptables("iptables-legacy-restore", "l", n, runs, connects_per_run)
                }),
            ),
        ];
        for (name, run) in layouts {
            let f = run()?;
            println!(
                "| {n} | {name} | {:.1} | {:.2} | {:.1} | {:.1} | {} |",
                median(f.cold_ms),
                median(f.change_ms),
                median(f.p50_us),
                median(f.p99_us),
                f.memory
            );
        }
    }
    Ok(())
}
