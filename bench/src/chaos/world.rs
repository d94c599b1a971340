//! What a chaos run is made of: a node namespace with an agent on a
//! SQLite store, pod namespaces, and the kernel and disk reads the checks
//! use. Everything it makes is removed on drop, also after a failure.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aksnet_linux::Netns;
use anyhow::{bail, Context, Result};
use serde_json::Value;

use aksnet_store::testing::etcd::{require_etcd, EtcdCluster};

use crate::{Args, StoreKind};

const NODE_IP: &str = "10.224.0.4";
const NETWORK: &str = "aksnet";

pub struct World {
    pub pid: u32,
    pub run: usize,
    pub dir: PathBuf,
    pub bin_dir: PathBuf,
    pub node_ns: String,
    agent: Mutex<Option<Child>>,
    store_url: String,
    /// With `--store etcd`: the three members, and which of them a fault
    /// thread restarted (see [`World::adopt_etcd_members`]).
    etcd: Option<Mutex<EtcdCluster>>,
    etcd_restarted: Mutex<BTreeSet<usize>>,
}

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("run ip")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

pub fn netns_add(name: &str) -> Result<()> {
    ip(&["netns", "add", name])?;
    ip(&["-n", name, "link", "set", "lo", "up"])
}

pub fn netns_del(name: &str) -> Result<()> {
    ip(&["netns", "del", name])
}

/// Namespaces (under /run/netns) whose name starts with `prefix`.
pub fn netns_with_prefix(prefix: &str) -> BTreeSet<String> {
    std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// Output of a command run in namespace `ns` (empty if it fails).
pub fn text_of(ns: &str, cmd: &[&str]) -> String {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).args(cmd).stdin(Stdio::null());
    c.output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// The IPv4 addresses of `dev` in namespace `ns`, from the kernel.
pub fn addrs(ns: &str, dev: &str) -> Vec<Ipv4Addr> {
    let out = Command::new("ip")
        .args(["-n", ns, "-j", "-4", "addr", "show", "dev", dev])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    let Ok(out) = out else { return Vec::new() };
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    v.as_array()
        .into_iter()
        .flatten()
        .flat_map(|l| {
            l.get("addr_info")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|a| a.get("local")?.as_str()?.parse().ok())
        .collect()
}

/// Veths in namespace `ns`.
pub fn veth_count(ns: &str) -> usize {
    let out = Command::new("ip")
        .args(["-n", ns, "-j", "link", "show", "type", "veth"])
        .stdin(Stdio::null())
        .output();
    out.ok()
        .and_then(|o| serde_json::from_slice::<Value>(&o.stdout).ok())
        .and_then(|v| v.as_array().map(Vec::len))
        .unwrap_or(0)
}

fn exe_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."))
}

impl World {
    pub fn new(args: &Args, run: usize) -> Result<World> {
        let pid = std::process::id();
        let bin_dir = args.bin_dir.clone().unwrap_or_else(exe_dir);
        for b in ["aksnet", "aksnet-cni", "aksnet-ipam", "aksnet-portmap"] {
            if !bin_dir.join(b).is_file() {
                bail!(
                    "{} is missing: build it (cargo build --release --bins) or give --bin-dir",
                    bin_dir.join(b).display()
                );
            }
        }
        let dir = std::env::temp_dir().join(format!("aksnet-chaos-{pid}-{run}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("conf")).context("create the run directory")?;
        let (etcd, store_url) = match args.store {
            StoreKind::Sqlite => (None, format!("sqlite:{}", dir.join("cluster.db").display())),
            StoreKind::Etcd => {
                let Some(bin) = require_etcd("cni-chaos --store etcd") else {
                    bail!("--store etcd needs etcd (apt-get install -y etcd-server)");
                };
                // Started from this (the run's) thread: members die with it.
                let cluster = EtcdCluster::start(&bin, 3)
                    .map_err(|e| anyhow::anyhow!("start a 3-member etcd: {e}"))?;
                let url = cluster.store_url();
                (Some(Mutex::new(cluster)), url)
            }
        };
        let w = World {
            pid,
            run,
            dir,
            bin_dir,
            store_url,
            etcd,
            etcd_restarted: Mutex::new(BTreeSet::new()),
            node_ns: format!("aksnet-chaos-{pid}-{run}-node"),
            agent: Mutex::new(None),
        };
        netns_add(&w.node_ns)?;
        // A veth pair inside the node (no dummy module needed): eth0 holds
        // the node IP, its peer stays in the same namespace.
        ip(&[
            "-n", &w.node_ns, "link", "add", "eth0", "type", "veth", "peer", "name", "uplink",
        ])?;
        ip(&["-n", &w.node_ns, "link", "set", "uplink", "up"])?;
        ip(&[
            "-n",
            &w.node_ns,
            "addr",
            "add",
            &format!("{NODE_IP}/16"),
            "dev",
            "eth0",
        ])?;
        ip(&["-n", &w.node_ns, "link", "set", "eth0", "up"])?;
        let init = Command::new(w.bin_dir.join("aksnet"))
            .args([
                "cluster",
                "init",
                "--store",
                &w.store_url(),
                "--network-plugin",
                "kubenet",
            ])
            .stdin(Stdio::null())
            .output()
            .context("aksnet cluster init")?;
        if !init.status.success() {
            bail!(
                "aksnet cluster init: {}",
                String::from_utf8_lossy(&init.stderr)
            );
        }
        w.start_agent()?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while !w.conflist_path().exists() {
            if Instant::now() > deadline {
                bail!(
                    "the agent wrote no conflist in 60 s; see {}",
                    w.log().display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(w)
    }

    pub fn store_url(&self) -> String {
        self.store_url.clone()
    }

    /// Kills etcd member `turn % 3` (SIGKILL), waits `down` (or until
    /// `stop`), starts it again on its data directory and waits until the
    /// cluster answers.
    pub fn bounce_etcd_member(&self, turn: usize, down: Duration, stop: &AtomicBool) -> Result<()> {
        let Some(etcd) = &self.etcd else {
            bail!("not an etcd run");
        };
        let i = {
            let mut c = etcd.lock().unwrap_or_else(|e| e.into_inner());
            let i = turn % c.len().max(1);
            c.stop_member(i);
            i
        };
        let t = Instant::now();
        while t.elapsed() < down && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.etcd_restarted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(i);
        etcd.lock()
            .unwrap_or_else(|e| e.into_inner())
            .restart_member(i)
            .map_err(|e| anyhow::anyhow!("restart etcd member {i}: {e}"))
    }

    /// Restarts, from the calling thread, every member a fault thread
    /// restarted: a member gets the parent-death signal of the thread that
    /// spawned it, so it would die when that thread ends.
    pub fn adopt_etcd_members(&self) -> Result<()> {
        let Some(etcd) = &self.etcd else {
            return Ok(());
        };
        let members = std::mem::take(
            &mut *self
                .etcd_restarted
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        let members: Vec<usize> = members.into_iter().collect();
        etcd.lock()
            .unwrap_or_else(|e| e.into_inner())
            .restart_members(&members)
            .map_err(|e| anyhow::anyhow!("restart etcd members {members:?}: {e}"))
    }

    pub fn conflist_path(&self) -> PathBuf {
        self.dir.join("conf").join("10-aksnet.conflist")
    }

    fn ipam_dir(&self) -> PathBuf {
        self.dir.join("ipam")
    }

    fn log(&self) -> PathBuf {
        self.dir.join("agent.log")
    }

    pub fn netns_path(&self, ns: &str) -> PathBuf {
        PathBuf::from("/run/netns").join(ns)
    }

    pub fn pod_prefix(&self) -> String {
        format!("aksnet-chaos-{}-{}-p-", self.pid, self.run)
    }

    pub fn pod_ns(&self, id: &str) -> String {
        format!("{}{id}", self.pod_prefix())
    }

    fn start_agent(&self) -> Result<()> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log())
            .context("open the agent log")?;
        let child = Command::new(self.bin_dir.join("aksnet"))
            .args([
                "agent",
                "--store",
                &self.store_url(),
                "--node",
                "chaos-node",
            ])
            .args(["--node-ip", NODE_IP])
            .arg("--netns")
            .arg(self.netns_path(&self.node_ns))
            .arg("--cni-conf-dir")
            .arg(self.dir.join("conf"))
            .arg("--ipam-data-dir")
            .arg(self.ipam_dir())
            .arg("--cni-bin-dir")
            .arg(&self.bin_dir)
            .args(["--routes", "fabric", "--resync", "1"])
            .env("AKSNET_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("start aksnet agent")?;
        *self.agent.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
        Ok(())
    }

    /// `kill -9` of the agent (by its PID, a child of this process), then
    /// a new one.
    pub fn restart_agent(&self) -> Result<()> {
        if let Some(mut c) = self.agent.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.start_agent()
    }

    /// Starts the agent if it is not running.
    pub fn ensure_agent(&self) -> Result<()> {
        let running = self
            .agent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)));
        if running {
            Ok(())
        } else {
            self.start_agent()
        }
    }

    /// Holds the SQLite store under an exclusive transaction for `d` (or
    /// until `stop`): every other writer and reader waits or fails.
    pub fn hold_store_locked(&self, d: Duration, stop: &AtomicBool) -> Result<()> {
        let db = rusqlite::Connection::open(self.dir.join("cluster.db"))?;
        db.busy_timeout(Duration::from_secs(10))?;
        db.execute_batch("BEGIN EXCLUSIVE")?;
        let t = Instant::now();
        while t.elapsed() < d && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
        }
        db.execute_batch("ROLLBACK")?;
        Ok(())
    }

    /// The addresses with an IPAM file, and how many other files (not the
    /// lock or last_reserved_ip) are there: temporary or ownerless ones.
    pub fn ipam_files(&self) -> (BTreeSet<Ipv4Addr>, usize) {
        let mut ips = BTreeSet::new();
        let mut stray = 0;
        let dir = self.ipam_dir().join(NETWORK);
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name == "lock" || name.starts_with("last_reserved_ip.") {
                continue;
            }
            match name.parse::<Ipv4Addr>() {
                Ok(ip) if std::fs::metadata(e.path()).is_ok_and(|m| m.len() > 0) => {
                    ips.insert(ip);
                }
                _ => {
                    eprintln!("chaos: stray file {}", e.path().display());
                    stray += 1;
                }
            }
        }
        (ips, stray)
    }

    /// ICMP echo from the node namespace.
    pub fn ping(&self, ip: Ipv4Addr) -> bool {
        match Netns::open(self.netns_path(&self.node_ns)) {
            Ok(ns) => aksnet_linux::testing::ping(&ns, ip, Duration::from_secs(3)),
            Err(_) => false,
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(mut c) = self.agent.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in netns_with_prefix(&self.pod_prefix()) {
            let _ = netns_del(&ns);
        }
        let _ = netns_del(&self.node_ns);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TCP connection from one pod to another, kept open through the run.
pub struct Conversation {
    client: Mutex<TcpStream>,
    done: std::sync::Arc<AtomicBool>,
}

impl Conversation {
    pub fn start(w: &World, from: &str, to: &str, to_ip: Ipv4Addr) -> Result<Conversation> {
        let addr = SocketAddr::from((to_ip, 7777));
        let listener = {
            let ns = Netns::open(w.netns_path(to))?;
            let _g = ns.enter()?;
            TcpListener::bind(addr).context("listen in the sentinel pod")?
        };
        let done = std::sync::Arc::new(AtomicBool::new(false));
        let d = done.clone();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = listener.accept() {
                let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                let mut buf = [0u8; 8];
                while !d.load(Ordering::SeqCst) {
                    match s.read_exact(&mut buf) {
                        Ok(()) => {
                            if s.write_all(&buf).is_err() {
                                break;
                            }
                        }
                        Err(e)
                            if e.kind() == std::io::ErrorKind::WouldBlock
                                || e.kind() == std::io::ErrorKind::TimedOut => {}
                        Err(_) => break,
                    }
                }
            }
        });
        let client = {
            let ns = Netns::open(w.netns_path(from))?;
            let _g = ns.enter()?;
            TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                .context("connect sentinel a -> sentinel b")?
        };
        client.set_read_timeout(Some(Duration::from_secs(2)))?;
        Ok(Conversation {
            client: Mutex::new(client),
            done,
        })
    }

    /// One message there and back; false if the connection broke.
    pub fn exchange(&self) -> bool {
        let mut c = self.client.lock().unwrap_or_else(|e| e.into_inner());
        let msg = *b"aksnet!\n";
        let mut back = [0u8; 8];
        c.write_all(&msg).is_ok() && c.read_exact(&mut back).is_ok() && back == msg
    }
}

impl Drop for Conversation {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
    }
}
