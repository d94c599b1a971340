//! `cni-chaos`: randomized concurrent CNI ADD / DEL / CHECK / GC on one
//! node, with faults, then the runtime's recovery, checked from the kernel
//! and the disk.
//!
//! The node is a network namespace of its own (`aksnet-chaos-PID-node`,
//! a dummy `eth0` with the node IP) managed by a real `aksnet agent` on a
//! SQLite store; pods are namespaces of their own, set up by the conflist
//! the agent wrote and the real plugins. Per run:
//!
//! * `--workers` threads run `--ops` calls; `--kill-percent` of the plugin
//!   processes get `SIGKILL` at a random moment of their call;
//! * the agent is `kill -9`ed and restarted every `--agent-kill-ms`;
//! * the SQLite store is held under an exclusive transaction for
//!   `--store-lock-ms` every `--store-lock-every-ms`; or, with
//!   `--store etcd`, the store is a three-member etcd cluster on loopback
//!   and one member in turn (so the leader too) is killed for
//!   `--etcd-member-down-ms` every `--etcd-member-stop-every-ms`;
//! * a TCP connection between two sentinel pods exchanges a message every
//!   100 ms throughout, through the node's bridge and the agent's tables;
//! * every 2 s all pods' `eth0` addresses are read from the kernel: an
//!   address in two pods is a duplicate, as is an ADD answering with an
//!   address a live pod holds.
//!
//! Then recovery, as a runtime does it: DEL of every container whose ADD
//! or DEL failed or was killed, GC with the live containers as the valid
//! attachments. Then the checks: the IPAM files are exactly the live pods'
//! addresses (no temporary file), the node has exactly one veth per live
//! pod, no route or nftables rule names a gone pod's address, every live
//! pod answers ping from the node, the sentinel connection never broke.
//! Nothing touches the root namespace; everything made is removed, also
//! on failure.

mod runtime;
mod world;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::Parser;
use serde_json::{json, Value};

use runtime::{Outcome, Runtime};
use world::World;

#[derive(Parser, Debug, Clone)]
#[command(
    about = "Chaos under load for aksnet's CNI plugins and agent, checked from the kernel and the disk"
)]
pub struct Args {
    /// CNI calls per run (ADD, DEL, CHECK and GC, randomized).
    #[arg(long, default_value_t = 600)]
    pub ops: usize,
    /// Concurrent workers.
    #[arg(long, default_value_t = 16)]
    pub workers: usize,
    /// Runs (each on a fresh node).
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    /// Percent of plugin processes killed (SIGKILL) in mid-call.
    #[arg(long, default_value_t = 25)]
    pub kill_percent: u64,
    /// Kill -9 and restart the agent this often (0: never).
    #[arg(long, default_value_t = 1500)]
    pub agent_kill_ms: u64,
    /// Hold the SQLite store locked this long...
    #[arg(long, default_value_t = 1500)]
    pub store_lock_ms: u64,
    /// ...this often (0: never).
    #[arg(long, default_value_t = 3000)]
    pub store_lock_every_ms: u64,
    /// The agent's store: `sqlite` (one file, locked by the store fault) or
    /// `etcd` (three members on loopback, one killed and restarted in turn).
    #[arg(long, value_enum, default_value_t = StoreKind::Sqlite)]
    pub store: StoreKind,
    /// With `--store etcd`: kill one member this often (0: never)...
    #[arg(long, default_value_t = 3000)]
    pub etcd_member_stop_every_ms: u64,
    /// ...and start it again after this long.
    #[arg(long, default_value_t = 1500)]
    pub etcd_member_down_ms: u64,
    /// Random seed (default: from the clock).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Directory holding aksnet, aksnet-cni, aksnet-ipam, aksnet-portmap (default: beside this binary).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// Print the runs as JSON instead of a Markdown table.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::ValueEnum, Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    #[default]
    Sqlite,
    Etcd,
}

/// A small xorshift generator: reproducible runs from `--seed`.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

#[derive(Debug, Clone)]
struct Pod {
    ns: String,
    ip: Ipv4Addr,
    result: Value,
}

#[derive(Default)]
struct State {
    next: u64,
    live: BTreeMap<String, Pod>,
    /// Containers whose ADD or DEL failed or was killed: the runtime DELs
    /// them again (their namespace stays until a DEL succeeds).
    pending: BTreeMap<String, String>,
    inflight: BTreeSet<String>,
    /// Live containers whose DEL is running: their address may already be
    /// free (DEL removes the veth, then gives the address back) before the
    /// call returns.
    deleting: BTreeSet<String>,
    /// Every address ever handed out, for the leak checks.
    ever: BTreeSet<Ipv4Addr>,
}

#[derive(Default, Debug, Clone, serde::Serialize)]
pub struct Report {
    pub run: usize,
    pub seed: u64,
    pub ops: u64,
    pub adds: u64,
    pub dels: u64,
    pub checks: u64,
    pub gcs: u64,
    pub plugin_kills: u64,
    pub agent_restarts: u64,
    pub store: StoreKind,
    pub store_locks: u64,
    pub etcd_member_stops: u64,
    pub errors: u64,
    pub check_failures: u64,
    pub duplicates: u64,
    pub leaked_addresses: u64,
    pub leaked_files: u64,
    pub leaked_veths: u64,
    pub leaked_routes: u64,
    pub leaked_nft: u64,
    pub leaked_netns: u64,
    pub survivors: u64,
    pub unreachable: u64,
    pub connection_breaks: u64,
    pub seconds: f64,
}

#[derive(Default)]
struct Counters {
    ops: AtomicU64,
    adds: AtomicU64,
    dels: AtomicU64,
    checks: AtomicU64,
    gcs: AtomicU64,
    kills: AtomicU64,
    errors: AtomicU64,
    check_failures: AtomicU64,
    duplicates: AtomicU64,
    agent_restarts: AtomicU64,
    store_locks: AtomicU64,
    etcd_member_stops: AtomicU64,
}

fn bump(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

enum Op {
    Add(String),
    Del(String, String),
    Check(String, Pod),
    Gc,
}

/// Picks the next operation (and reserves its container).
fn pick(st: &mut State, rng: &mut Rng, pid: u32) -> Op {
    if !st.pending.is_empty() && rng.below(2) == 0 {
        let (id, ns) = st.pending.pop_first().unwrap_or_default();
        st.inflight.insert(id.clone());
        return Op::Del(id, ns);
    }
    let free: Vec<&String> = st
        .live
        .keys()
        .filter(|k| !st.inflight.contains(*k) && !k.starts_with("sentinel"))
        .collect();
    let r = rng.below(100);
    if r < 45 || free.is_empty() {
        st.next += 1;
        let id = format!("chaos{pid}c{}", st.next);
        st.inflight.insert(id.clone());
        return Op::Add(id);
    }
    let id = free[rng.below(free.len() as u64) as usize].clone();
    if r < 72 {
        let ns = st.live.get(&id).map(|p| p.ns.clone()).unwrap_or_default();
        st.inflight.insert(id.clone());
        st.deleting.insert(id.clone());
        Op::Del(id, ns)
    } else if r < 92 {
        let pod = st.live.get(&id).cloned();
        st.inflight.insert(id.clone());
        match pod {
            Some(p) => Op::Check(id, p),
            None => Op::Gc,
        }
    } else {
        Op::Gc
    }
}

fn valid_attachments(st: &State) -> Vec<String> {
    st.live
        .keys()
        .chain(st.pending.keys())
        .chain(st.inflight.iter())
        .cloned()
        .collect()
}

/// GC runs alone: a runtime computes its valid attachments and must not
/// start an ADD that the list misses while the GC runs (an allocation
/// made during the GC, by a container the list does not name, is stale
/// as far as the plugin can tell). ADD, DEL and CHECK share the gate.
type Gate = std::sync::RwLock<()>;

fn worker(
    w: &World,
    rt: &Runtime,
    st: &Mutex<State>,
    c: &Counters,
    args: &Args,
    seed: u64,
    gate: &Gate,
) {
    let mut rng = Rng::new(seed);
    let lock = || st.lock().unwrap_or_else(|e| e.into_inner());
    while c.ops.fetch_add(1, Ordering::SeqCst) < args.ops as u64 {
        let kill =
            (rng.below(100) < args.kill_percent).then(|| Duration::from_micros(rng.below(40_000)));
        let op = pick(&mut lock(), &mut rng, w.pid);
        match op {
            Op::Add(id) => {
                bump(&c.adds);
                let ns = w.pod_ns(&id);
                if let Err(e) = world::netns_add(&ns) {
                    eprintln!("chaos: {e}");
                    bump(&c.errors);
                    lock().inflight.remove(&id);
                    continue;
                }
                let out = {
                    let _g = gate.read().unwrap_or_else(|e| e.into_inner());
                    rt.add(&id, &w.netns_path(&ns), kill)
                };
                let mut s = lock();
                s.inflight.remove(&id);
                match out {
                    Outcome::Done(result) => {
                        let Some(ip) = aksnet_lab::cni::result_ipv4(&result) else {
                            bump(&c.errors);
                            s.pending.insert(id, ns);
                            continue;
                        };
                        if let Some((other, _)) = s
                            .live
                            .iter()
                            .find(|(k, p)| p.ip == ip && !s.deleting.contains(*k))
                        {
                            eprintln!("chaos: DUPLICATE {ip}: ADD {id} while {other} holds it");
                            bump(&c.duplicates);
                        }
                        s.ever.insert(ip);
                        s.live.insert(id, Pod { ns, ip, result });
                    }
                    Outcome::Killed => {
                        bump(&c.kills);
                        s.pending.insert(id, ns);
                    }
                    Outcome::Failed(e) => {
                        bump(&c.errors);
                        tracing_line("ADD", &id, &e);
                        s.pending.insert(id, ns);
                    }
                }
            }
            Op::Del(id, ns) => {
                bump(&c.dels);
                let cached = lock().live.get(&id).map(|p| p.result.clone());
                let out = {
                    let _g = gate.read().unwrap_or_else(|e| e.into_inner());
                    rt.del(&id, &w.netns_path(&ns), cached.as_ref(), kill)
                };
                let done = matches!(out, Outcome::Done(_));
                match &out {
                    Outcome::Killed => bump(&c.kills),
                    Outcome::Failed(e) => {
                        bump(&c.errors);
                        tracing_line("DEL", &id, e);
                    }
                    Outcome::Done(_) => {}
                }
                if done {
                    let _ = world::netns_del(&ns);
                }
                let mut s = lock();
                s.inflight.remove(&id);
                s.deleting.remove(&id);
                s.live.remove(&id);
                if !done {
                    s.pending.insert(id, ns);
                }
            }
            Op::Check(id, pod) => {
                bump(&c.checks);
                let out = {
                    let _g = gate.read().unwrap_or_else(|e| e.into_inner());
                    rt.check(&id, &w.netns_path(&pod.ns), &pod.result, kill)
                };
                match out {
                    Outcome::Killed => bump(&c.kills),
                    Outcome::Failed(e) => {
                        bump(&c.check_failures);
                        tracing_line("CHECK", &id, &e);
                    }
                    Outcome::Done(_) => {}
                }
                lock().inflight.remove(&id);
            }
            Op::Gc => {
                bump(&c.gcs);
                let _g = gate.write().unwrap_or_else(|e| e.into_inner());
                let valid = valid_attachments(&lock());
                match rt.gc(&valid, kill) {
                    Outcome::Killed => bump(&c.kills),
                    Outcome::Failed(e) => {
                        bump(&c.errors);
                        tracing_line("GC", "", &e);
                    }
                    Outcome::Done(_) => {}
                }
            }
        }
    }
}

fn tracing_line(cmd: &str, id: &str, e: &str) {
    if std::env::var_os("AKSNET_CHAOS_VERBOSE").is_some() {
        eprintln!("chaos: {cmd} {id}: {e}");
    }
}

/// Reads every pod's `eth0` address from the kernel; counts addresses
/// held by two namespaces at once.
fn kernel_duplicates(st: &Mutex<State>) -> u64 {
    let names: Vec<String> = {
        let s = st.lock().unwrap_or_else(|e| e.into_inner());
        s.live
            .values()
            .map(|p| p.ns.clone())
            .chain(s.pending.values().cloned())
            .collect()
    };
    let mut seen: HashMap<Ipv4Addr, String> = HashMap::new();
    let mut dups = 0;
    for ns in names {
        for ip in world::addrs(&ns, "eth0") {
            if let Some(other) = seen.insert(ip, ns.clone()) {
                eprintln!("chaos: DUPLICATE in the kernel: {ip} in {other} and {ns}");
                dups += 1;
            }
        }
    }
    dups
}

struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn run_once(args: &Args, run: usize, seed: u64) -> Result<Report> {
    let started = Instant::now();
    let w = World::new(args, run)?;
    let rt = Runtime::new(&w)?;
    let c = Arc::new(Counters::default());
    let st = Mutex::new(State::default());
    let stop = AtomicBool::new(false);

    // Sentinels: two pods with a TCP conversation through the whole run.
    let mut sentinels = Vec::new();
    for n in ["sentinel-a", "sentinel-b"] {
        let ns = w.pod_ns(n);
        world::netns_add(&ns)?;
        let result = match rt.add(n, &w.netns_path(&ns), None) {
            Outcome::Done(r) => r,
            other => bail!("ADD of {n}: {other:?}"),
        };
        let ip = aksnet_lab::cni::result_ipv4(&result)
            .ok_or_else(|| anyhow::anyhow!("{n}: no IPv4 in {result}"))?;
        let mut s = st.lock().unwrap_or_else(|e| e.into_inner());
        s.ever.insert(ip);
        s.live.insert(
            n.to_string(),
            Pod {
                ns: ns.clone(),
                ip,
                result,
            },
        );
        sentinels.push((ns, ip));
    }
    let conn = world::Conversation::start(&w, &sentinels[0].0, &sentinels[1].0, sentinels[1].1)?;
    let breaks = AtomicUsize::new(0);
    let gate = Gate::default();

    std::thread::scope(|s| -> Result<()> {
        let (w, rt, st, c, stop, conn, breaks, gate) =
            (&w, &rt, &st, &c, &stop, &conn, &breaks, &gate);
        // The fault threads end when the workers do, also on a panic.
        let _stop = StopOnDrop(stop);
        s.spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                if !conn.exchange() {
                    breaks.fetch_add(1, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        s.spawn(move || {
            let mut last = Instant::now();
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(200));
                if last.elapsed() >= Duration::from_secs(2) {
                    let d = kernel_duplicates(st);
                    c.duplicates.fetch_add(d, Ordering::SeqCst);
                    last = Instant::now();
                }
            }
        });
        if args.agent_kill_ms > 0 {
            s.spawn(move || {
                let mut since = Instant::now();
                while !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(50));
                    if since.elapsed() >= Duration::from_millis(args.agent_kill_ms) {
                        if let Err(e) = w.restart_agent() {
                            eprintln!("chaos: agent restart: {e}");
                        }
                        bump(&c.agent_restarts);
                        since = Instant::now();
                    }
                }
            });
        }
        if args.store == StoreKind::Etcd && args.etcd_member_stop_every_ms > 0 {
            s.spawn(move || {
                let mut since = Instant::now();
                let mut turn = 0;
                while !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(50));
                    if since.elapsed() >= Duration::from_millis(args.etcd_member_stop_every_ms) {
                        match w.bounce_etcd_member(
                            turn,
                            Duration::from_millis(args.etcd_member_down_ms),
                            stop,
                        ) {
                            Ok(()) => bump(&c.etcd_member_stops),
                            Err(e) => eprintln!("chaos: etcd member: {e}"),
                        }
                        turn += 1;
                        since = Instant::now();
                    }
                }
            });
        }
        if args.store == StoreKind::Sqlite && args.store_lock_every_ms > 0 {
            s.spawn(move || {
                let mut since = Instant::now();
                while !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(50));
                    if since.elapsed() >= Duration::from_millis(args.store_lock_every_ms) {
                        match w.hold_store_locked(Duration::from_millis(args.store_lock_ms), stop) {
                            Ok(()) => bump(&c.store_locks),
                            Err(e) => eprintln!("chaos: store lock: {e}"),
                        }
                        since = Instant::now();
                    }
                }
            });
        }
        let workers: Vec<_> = (0..args.workers)
            .map(|i| {
                let seed = seed ^ (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                s.spawn(move || worker(w, rt, st, c, args, seed, gate))
            })
            .collect();
        for h in workers {
            let _ = h.join();
        }
        stop.store(true, Ordering::SeqCst);
        Ok(())
    })?;
    // Members the fault thread restarted die with it (their parent-death
    // signal follows the thread that spawned them): start them again from
    // this thread before recovery needs the store.
    w.adopt_etcd_members()?;

    // Recovery, as the runtime does it, with the agent up.
    w.ensure_agent()?;
    let recovery_deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let pending: Vec<(String, String)> = {
            let mut s = st.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut s.pending).into_iter().collect()
        };
        if pending.is_empty() {
            break;
        }
        for (id, ns) in pending {
            match rt.del(&id, &w.netns_path(&ns), None, None) {
                Outcome::Done(_) => {
                    let _ = world::netns_del(&ns);
                }
                other => {
                    eprintln!("chaos: recovery DEL {id}: {other:?}");
                    st.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .pending
                        .insert(id, ns);
                }
            }
        }
        if Instant::now() > recovery_deadline {
            bail!("recovery: DELs kept failing");
        }
    }
    let (live, ever) = {
        let s = st.lock().unwrap_or_else(|e| e.into_inner());
        (s.live.clone(), s.ever.clone())
    };
    let valid: Vec<String> = live.keys().cloned().collect();
    match rt.gc(&valid, None) {
        Outcome::Done(_) => {}
        other => bail!("recovery GC failed: {other:?}"),
    }

    // The checks, from the disk and the kernel.
    let live_ips: BTreeSet<Ipv4Addr> = live.values().map(|p| p.ip).collect();
    let gone: BTreeSet<Ipv4Addr> = ever.difference(&live_ips).copied().collect();
    let (disk_ips, stray_files) = w.ipam_files();
    let leaked_addresses = disk_ips.difference(&live_ips).count() as u64;
    let lost = live_ips.difference(&disk_ips).count();
    if lost > 0 {
        eprintln!("chaos: {lost} live pods' addresses have no IPAM file");
    }
    let veths = world::veth_count(&w.node_ns);
    // The node's own eth0/uplink pair is two of them.
    let leaked_veths = veths.saturating_sub(live.len() + 2) as u64;
    let routes = world::text_of(&w.node_ns, &["ip", "-j", "route", "show", "table", "all"]);
    let nft = world::text_of(&w.node_ns, &["nft", "-j", "list", "ruleset"]);
    let names = |text: &str| {
        gone.iter()
            .filter(|ip| text.contains(&format!("\"{ip}\"")) || text.contains(&format!("\"{ip}/")))
            .count() as u64
    };
    let leaked_netns = world::netns_with_prefix(&w.pod_prefix())
        .difference(&live.values().map(|p| p.ns.clone()).collect())
        .count() as u64;
    let kernel_dups = kernel_duplicates(&st);
    let unreachable = live
        .values()
        .filter(|p| !w.ping(p.ip))
        .inspect(|p| eprintln!("chaos: {} ({}) does not answer ping", p.ns, p.ip))
        .count() as u64;
    let final_exchange_ok = conn.exchange();

    let ld = |a: &AtomicU64| a.load(Ordering::SeqCst);
    let report = Report {
        run,
        seed,
        ops: ld(&c.ops).min(args.ops as u64),
        adds: ld(&c.adds),
        dels: ld(&c.dels),
        checks: ld(&c.checks),
        gcs: ld(&c.gcs),
        plugin_kills: ld(&c.kills),
        agent_restarts: ld(&c.agent_restarts),
        store: args.store,
        store_locks: ld(&c.store_locks),
        etcd_member_stops: ld(&c.etcd_member_stops),
        errors: ld(&c.errors),
        check_failures: ld(&c.check_failures),
        duplicates: ld(&c.duplicates) + kernel_dups,
        leaked_addresses,
        leaked_files: stray_files as u64,
        leaked_veths,
        leaked_routes: names(&routes),
        leaked_nft: names(&nft),
        leaked_netns,
        survivors: live.len() as u64,
        unreachable,
        connection_breaks: breaks.load(Ordering::SeqCst) as u64 + u64::from(!final_exchange_ok),
        seconds: (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
    };
    // Clean up the survivors the way a runtime stops them.
    for (id, p) in &live {
        let _ = rt.del(id, &w.netns_path(&p.ns), Some(&p.result), None);
    }
    drop(conn);
    drop(w);
    Ok(report)
}

impl StoreKind {
    fn label(self) -> &'static str {
        match self {
            StoreKind::Sqlite => "sqlite",
            StoreKind::Etcd => "etcd ×3",
        }
    }
}

impl Report {
    /// The store faults injected: SQLite locks, or etcd member kills.
    fn store_faults(&self) -> String {
        match self.store {
            StoreKind::Sqlite => format!("{} locks", self.store_locks),
            StoreKind::Etcd => format!("{} member kills", self.etcd_member_stops),
        }
    }

    /// True when nothing was handed out twice, leaked, lost or broken.
    pub fn clean(&self) -> bool {
        self.duplicates == 0
            && self.leaked_addresses == 0
            && self.leaked_files == 0
            && self.leaked_veths == 0
            && self.leaked_routes == 0
            && self.leaked_nft == 0
            && self.leaked_netns == 0
            && self.unreachable == 0
            && self.connection_breaks == 0
    }
}

fn table(rs: &[Report]) -> String {
    let mut out = String::from(
        "| run | store | ops | ADD/DEL/CHECK/GC | plugin kills | agent restarts | store faults | errors | duplicates | leaked addr/files/veths/routes/nft/netns | survivors | unreachable | conn. breaks | s |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rs {
        out.push_str(&format!(
            "| {} | {} | {} | {}/{}/{}/{} | {} | {} | {} | {} | {} | {}/{}/{}/{}/{}/{} | {} | {} | {} | {} |\n",
            r.run, r.store.label(), r.ops, r.adds, r.dels, r.checks, r.gcs, r.plugin_kills,
            r.agent_restarts, r.store_faults(), r.errors + r.check_failures, r.duplicates, r.leaked_addresses,
            r.leaked_files, r.leaked_veths, r.leaked_routes, r.leaked_nft, r.leaked_netns,
            r.survivors, r.unreachable, r.connection_breaks, r.seconds
        ));
    }
    out
}

fn main() -> Result<()> {
    let args = Args::parse();
    if !aksnet_linux::testing::is_root() {
        bail!("cni-chaos needs root (it creates network namespaces)");
    }
    let base = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let mut reports = Vec::new();
    for run in 1..=args.runs {
        let seed = base.wrapping_add(run as u64);
        let r = run_once(&args, run, seed)?;
        eprintln!(
            "chaos: run {run}: {} ops, {} kills, {} agent restarts, {}: {}",
            r.ops,
            r.plugin_kills,
            r.agent_restarts,
            r.store_faults(),
            if r.clean() { "clean" } else { "NOT CLEAN" }
        );
        reports.push(r);
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "runs": reports }))?
        );
    } else {
        print!("{}", table(&reports));
    }
    if reports.iter().all(Report::clean) {
        Ok(())
    } else {
        bail!("a run was not clean")
    }
}
