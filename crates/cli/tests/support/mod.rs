//! A cluster on one machine for the agent's kernel tests: node namespaces
//! on a bridge in a "switch" namespace, an "outside" host on the same
//! switch, `aksnet agent` processes, and pods set up by the real CNI plugins
//! with the conflist the agents wrote. Everything is named `ak4-<pid>-…`
//! and removed on drop, whatever the outcome.

#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Namespaces and the node bridge, shared with the agent's kernel tests.
#[path = "../../../agent/tests/common/mod.rs"]
mod common;
use aksnet_linux::testing;
pub use common::{Netns, L2};

pub const PLUGINS: [&str; 3] = ["aksnet-cni", "aksnet-ipam", "aksnet-portmap"];

pub fn aksnet() -> &'static str {
    env!("CARGO_BIN_EXE_aksnet")
}

/// Where the CNI plugins are: `AKSNET_CNI_BIN_DIR`, else beside `aksnet`.
pub fn cni_bin_dir() -> PathBuf {
    std::env::var_os("AKSNET_CNI_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(aksnet()).parent().unwrap().to_path_buf())
}

/// Root, the tools, and the CNI plugins; under `CI=true` a missing one fails.
pub fn can_run(what: &str, tools: &[&str], plugins: bool) -> bool {
    let mut missing = testing::missing(tools);
    if plugins {
        let dir = cni_bin_dir();
        missing.extend(PLUGINS.iter().filter(|p| !dir.join(p).exists()).map(|p| {
            format!(
                "{} (build the cni crates, or set AKSNET_CNI_BIN_DIR)",
                dir.join(p).display()
            )
        }));
    }
    testing::ready(what, &missing)
}

/// Runs `f` on a thread that has entered the namespace (only that thread
/// moves; sockets it creates stay in the namespace).
pub fn in_netns<T: Send + 'static>(ns: &Path, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = aksnet_linux::Netns::open(ns).expect("open netns");
    std::thread::spawn(move || {
        // The thread ends in the namespace: the guard switches it back.
        let _guard = ns.enter().expect("setns");
        f()
    })
    .join()
    .expect("netns thread")
}

/// A TCP server in a namespace that answers each connection with the
/// peer's address, as the lab's probe does (so NAT is visible).
pub struct Probe {
    pub addr: SocketAddr,
}

impl Probe {
    pub fn start(ns: &Path, ip: Ipv4Addr) -> Probe {
        let listener = in_netns(ns, move || TcpListener::bind((ip, 0)).expect("bind probe"));
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(false).unwrap();
        std::thread::spawn(move || {
            for s in listener.incoming().flatten() {
                let mut s = s;
                let peer = s
                    .peer_addr()
                    .map(|p| p.ip().to_string())
                    .unwrap_or_default();
                let _ = s.write_all(peer.as_bytes());
            }
        });
        Probe { addr }
    }
}

/// An echo server in a namespace (each connection gets its bytes back).
pub fn echo_server(ns: &Path, ip: Ipv4Addr) -> SocketAddr {
    let listener = in_netns(ns, move || TcpListener::bind((ip, 0)).expect("bind echo"));
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = s;
                let mut buf = [0u8; 512];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// A connection opened from a namespace (it stays there).
pub fn connect_from(ns: &Path, to: SocketAddr) -> TcpStream {
    let s = in_netns(ns, move || {
        TcpStream::connect_timeout(&to, Duration::from_secs(3)).expect("connect")
    });
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s
}

/// Sends `msg` and reads it back.
pub fn echo(s: &mut TcpStream, msg: &str) -> Result<(), String> {
    s.write_all(msg.as_bytes()).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; msg.len()];
    s.read_exact(&mut buf).map_err(|e| e.to_string())?;
    (buf == msg.as_bytes())
        .then_some(())
        .ok_or_else(|| "echo differs".to_string())
}

/// Connects from a namespace; returns what the probe saw as our address.
pub fn probe_from(ns: &Path, to: SocketAddr) -> Result<String, String> {
    in_netns(ns, move || {
        let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(3))
            .map_err(|e| format!("connect {to}: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(3))).ok();
        let mut out = String::new();
        s.read_to_string(&mut out)
            .map_err(|e| format!("read from {to}: {e}"))?;
        Ok(out)
    })
}

pub fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

/// A running `aksnet agent`, stopped (SIGTERM, then SIGKILL) on drop.
pub struct AgentProc {
    pub child: Child,
    pub log: PathBuf,
}

impl AgentProc {
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One node: its namespace and its files.
pub struct Node {
    pub name: String,
    pub ip: Ipv4Addr,
    pub ns: Netns,
    pub dir: PathBuf,
}

impl Node {
    pub fn conf_dir(&self) -> PathBuf {
        self.dir.join("net.d")
    }
    pub fn ipam_dir(&self) -> PathBuf {
        self.dir.join("ipam")
    }
    pub fn conflist(&self) -> Option<Value> {
        let text = std::fs::read_to_string(self.conf_dir().join("10-aksnet.conflist")).ok()?;
        serde_json::from_str(&text).ok()
    }
}

/// Nodes `10.224.0.{4+i}/16` and an outside host `10.224.0.200/16` on one
/// bridge in a switch namespace.
pub struct Fabric {
    pub tag: String,
    pub tmp: tempfile::TempDir,
    pub outside: Netns,
    pub nodes: Vec<Node>,
    // Dropped last: the switch.
    pub switch: Netns,
}

pub const OUTSIDE_IP: &str = "10.224.0.200";

impl Fabric {
    pub fn new(tag: &str, count: usize) -> Fabric {
        let l2 = L2::new(tag, count);
        let outside = Netns::new(&format!("{tag}-out"));
        l2.plug(&outside, "pout", OUTSIDE_IP);
        let tmp = tempfile::Builder::new().prefix("ak4-").tempdir().unwrap();
        let L2 { switch, nodes } = l2;
        let nodes = nodes
            .into_iter()
            .enumerate()
            .map(|(i, ns)| {
                let dir = tmp.path().join(format!("node{i}"));
                std::fs::create_dir_all(&dir).unwrap();
                Node {
                    name: format!("node-{i}"),
                    ip: format!("10.224.0.{}", 4 + i).parse().unwrap(),
                    ns,
                    dir,
                }
            })
            .collect();
        Fabric {
            tag: format!("ak4-{}-{tag}", std::process::id()),
            tmp,
            outside,
            nodes,
            switch,
        }
    }

    pub fn start_agent(&self, store: &str, i: usize, routes: &str) -> AgentProc {
        let n = &self.nodes[i];
        let log = n.dir.join("agent.log");
        let logf = File::create(&log).unwrap();
        let child = Command::new(aksnet())
            .args(["agent", "--store", store, "--node", &n.name])
            .args(["--node-ip", &n.ip.to_string()])
            .arg("--netns")
            .arg(n.ns.path())
            .arg("--cni-conf-dir")
            .arg(n.conf_dir())
            .arg("--ipam-data-dir")
            .arg(n.ipam_dir())
            .arg("--cni-bin-dir")
            .arg(cni_bin_dir())
            .args(["--routes", routes, "--resync", "1", "--lease-ttl", "6"])
            .env("AKSNET_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(logf)
            .spawn()
            .expect("start aksnet agent");
        AgentProc { child, log }
    }
}

/// A pod: a namespace set up by running the conflist's plugin chain (ADD)
/// inside its node's namespace, as a runtime would.
pub struct Pod {
    pub ns: Netns,
    pub ip: Ipv4Addr,
    pub id: String,
}

fn run_plugin(
    node: &Node,
    command: &str,
    conf: &Value,
    pod: &Netns,
    id: &str,
) -> Result<Value, String> {
    let plugin = conf["type"].as_str().unwrap_or_default().to_string();
    let mut child = Command::new("ip")
        .args(["netns", "exec", &node.ns.name])
        .arg(cni_bin_dir().join(&plugin))
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", id)
        .env("CNI_NETNS", pod.path())
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", cni_bin_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{plugin}: {e}"))?;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(conf.to_string().as_bytes())
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "{plugin} {command}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    if out.stdout.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("{plugin} output: {e}"))
}

/// Runs the conflist's chain like libcni: each plugin's config gets the
/// network's name and version, and the previous result on ADD.
pub fn cni_chain(node: &Node, command: &str, pod: &Netns, id: &str) -> Result<Value, String> {
    let list = node.conflist().ok_or("no conflist")?;
    let mut plugins: Vec<Value> = list["plugins"].as_array().cloned().unwrap_or_default();
    if command == "DEL" {
        plugins.reverse();
    }
    let mut prev = Value::Null;
    for p in plugins {
        let mut conf = p.clone();
        conf["cniVersion"] = list["cniVersion"].clone();
        conf["name"] = list["name"].clone();
        if command == "ADD" && !prev.is_null() {
            conf["prevResult"] = prev.clone();
        }
        if conf.get("capabilities").is_some() {
            conf["runtimeConfig"] = json!({ "portMappings": [] });
        }
        let r = run_plugin(node, command, &conf, pod, id)?;
        if command == "ADD" {
            prev = r;
        }
    }
    Ok(prev)
}

impl Pod {
    pub fn add(node: &Node, tag: &str) -> Pod {
        let ns = Netns::named(format!("{}-{tag}", node.ns.name));
        let id = format!("{tag}-{}", std::process::id());
        let result = cni_chain(node, "ADD", &ns, &id)
            .unwrap_or_else(|e| panic!("ADD on {}: {e}", node.name));
        let ip = result["ips"][0]["address"]
            .as_str()
            .and_then(|a| a.split('/').next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no IP in {result}"));
        Pod { ns, ip, id }
    }

    pub fn del(&self, node: &Node) {
        cni_chain(node, "DEL", &self.ns, &self.id).unwrap_or_else(|e| panic!("DEL: {e}"));
    }
}
