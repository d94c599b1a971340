//! Test harness: named network namespaces that delete themselves, running
//! a plugin with its network namespace set to a test's "host" namespace,
//! an ICMP echo from inside a namespace, TCP/UDP probe servers and clients,
//! and root/binary checks that skip outside CI and fail under `CI=true`.
//!
//! Nothing here touches the root namespace: every kernel object lives in
//! namespaces the test created.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::IpAddr;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use aksnet_linux::addr::AddrOptions;
use aksnet_linux::link::LinkChange;
use aksnet_linux::{Netns, Socket};
use serde_json::Value;

/// The reference plugins (Debian `containernetworking-plugins`).
pub const REF_DIR: &str = "/usr/lib/cni";

// Not every test binary that includes this module uses every helper.
#[allow(unused_imports)]
pub use aksnet_linux::testing::can_run;

/// Root is needed: skip (with a reason) unless CI=true, where it fails.
pub fn need_root() -> bool {
    can_run("these tests", &[])
}

/// A binary is needed (a reference plugin from `containernetworking-plugins`):
/// skip (with a reason) unless CI=true, where it fails.
pub fn need_binary(p: &str) -> bool {
    can_run("these tests", &[p])
}

/// The directory holding our plugin binaries (for CNI_PATH).
pub fn bin_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_aksnet-cni"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// `CNI_PATH`: our binaries, then the reference plugins.
pub fn cni_path() -> String {
    format!("{}:{REF_DIR}", bin_dir().display())
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A unique short name: `<prefix><pid>-<n>`.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A namespace made with `ip netns add`, deleted on drop (also when the
/// test panics).
pub struct NamedNs {
    /// Its name.
    pub name: String,
    /// Its path under /run/netns.
    pub path: String,
    /// An open handle.
    pub ns: Netns,
}

impl NamedNs {
    /// A new namespace named `<prefix><pid>-<n>`.
    pub fn new(prefix: &str) -> NamedNs {
        let name = unique(prefix);
        let st = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("run ip netns add");
        assert!(st.success(), "ip netns add {name}");
        let path = format!("/run/netns/{name}");
        let ns = Netns::open(&path).expect("open netns");
        NamedNs { name, path, ns }
    }

    /// A netlink socket in it.
    pub fn socket(&self) -> Socket {
        Socket::new_in(&self.ns).expect("socket in netns")
    }

    /// Bring `lo` up and give it `addr` (a "node IP" for a host namespace,
    /// so that it has a source address to reach pods with).
    pub fn with_node_ip(self, addr: &str) -> NamedNs {
        let mut s = self.socket();
        let lo = s.link_by_name("lo").unwrap().unwrap();
        s.set_link(
            lo.index,
            &LinkChange {
                up: Some(true),
                ..Default::default()
            },
        )
        .unwrap();
        s.add_address(lo.index, addr.parse().unwrap(), AddrOptions::default())
            .unwrap();
        self
    }

    /// A new namespace with `lo` up.
    pub fn with_lo_up(prefix: &str) -> NamedNs {
        let ns = NamedNs::new(prefix);
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n NAME ARGS...`, checked.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut v = vec!["ip", "-n", &self.name];
        v.extend_from_slice(args);
        run(&v)
    }

    /// `ip netns exec NAME ARGS...`, checked.
    pub fn exec(&self, args: &[&str]) -> String {
        let mut v = vec!["ip", "netns", "exec", &self.name];
        v.extend_from_slice(args);
        run(&v)
    }

    /// Run `f` on the calling thread inside this namespace.
    pub fn within<T>(&self, f: impl FnOnce() -> T) -> T {
        let _g = self.ns.enter().expect("enter netns");
        f()
    }

    /// Delete it now (like a pod that went away).
    pub fn delete(&self) {
        if !Path::new(&self.path).exists() {
            return;
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

impl Drop for NamedNs {
    fn drop(&mut self) {
        self.delete();
    }
}

/// What a plugin run gave back.
#[derive(Debug)]
pub struct Outcome {
    /// Exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Stdout as JSON (Null when empty or not JSON).
    pub json: Value,
    /// Raw stdout.
    pub stdout: String,
    /// Stderr.
    pub stderr: String,
}

impl Outcome {
    /// Assert success and return the JSON.
    pub fn ok(&self) -> &Value {
        assert_eq!(
            self.code,
            Some(0),
            "plugin failed: stdout {} stderr {}",
            self.stdout,
            self.stderr
        );
        &self.json
    }

    /// Assert failure with CNI error `code` and return the message.
    pub fn err(&self, code: u64) -> String {
        assert_eq!(
            self.code,
            Some(1),
            "expected error {code}: stdout {} stderr {}",
            self.stdout,
            self.stderr
        );
        assert_eq!(
            self.json["code"].as_u64(),
            Some(code),
            "stdout {} stderr {}",
            self.stdout,
            self.stderr
        );
        assert!(self.json["cniVersion"].is_string(), "{}", self.stdout);
        self.json["msg"].as_str().unwrap_or_default().to_string()
    }
}

/// A plugin invocation.
#[derive(Debug, Clone)]
pub struct Call {
    /// Binary.
    pub bin: PathBuf,
    /// CNI_COMMAND.
    pub command: String,
    /// CNI_CONTAINERID.
    pub id: String,
    /// CNI_IFNAME.
    pub ifname: String,
    /// CNI_NETNS.
    pub netns: String,
    /// CNI_ARGS.
    pub args: String,
    /// CNI_PATH.
    pub path: String,
    /// Extra environment.
    pub env: Vec<(String, String)>,
}

impl Call {
    /// A call of `bin` with `command` for container `id`, ifname eth0.
    pub fn new(bin: impl Into<PathBuf>, command: &str, id: &str, netns: &str) -> Call {
        Call {
            bin: bin.into(),
            command: command.into(),
            id: id.into(),
            ifname: "eth0".into(),
            netns: netns.into(),
            args: String::new(),
            path: cni_path(),
            env: Vec::new(),
        }
    }

    /// Run with `stdin`, the process in network namespace `host`.
    pub fn run(&self, host: &Netns, stdin: &[u8]) -> Outcome {
        let mut cmd = Command::new(&self.bin);
        cmd.env_clear()
            .env("CNI_COMMAND", &self.command)
            .env("CNI_CONTAINERID", &self.id)
            .env("CNI_IFNAME", &self.ifname)
            .env("CNI_NETNS", &self.netns)
            .env("CNI_ARGS", &self.args)
            .env("CNI_PATH", &self.path)
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        host.set_for_command(&mut cmd)
            .expect("plugin in the host netns");
        let mut child = cmd.spawn().expect("spawn plugin");
        if let Some(mut s) = child.stdin.take() {
            let _ = s.write_all(stdin);
        }
        let out = child.wait_with_output().expect("wait plugin");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        Outcome {
            code: out.status.code(),
            json: serde_json::from_str(&stdout).unwrap_or(Value::Null),
            stdout,
            stderr: String::from_utf8_lossy(&out.stderr).to_string(),
        }
    }
}

/// The address of the first IP of a result.
pub fn first_ip(r: &Value) -> IpAddr {
    let a = r["ips"][0]["address"].as_str().expect("result has an IP");
    a.split('/').next().unwrap().parse().unwrap()
}

/// ICMP echo from inside a namespace (raw socket code lives in
/// `aksnet-linux`, with the crate's other unsafe code).
#[allow(unused_imports)]
pub use aksnet_linux::testing::ping;

/// Files named by an address in an IPAM store directory.
pub fn allocated(dir: &Path) -> Vec<IpAddr> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<IpAddr> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .collect();
    v.sort();
    v
}

/// A fresh temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Create one.
    pub fn new() -> TempDir {
        let p = std::env::temp_dir().join(unique("aksnet-cni-test-"));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    /// Its path as a string.
    pub fn s(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Run a command; panic with its output if it fails.
pub fn run(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A TCP server in `ns` on `port` answering each connection with
/// `from <peer address>\n`, and a UDP server on `port` answering each
/// datagram the same way. Both serve from background threads until the
/// test process exits; their sockets belong to `ns`.
pub fn probe_server(ns: &NamedNs, port: u16) {
    probe_server_on(ns, "0.0.0.0", port);
}

/// [`probe_server`] bound to `addr` (`"::"` for IPv6).
pub fn probe_server_on(ns: &NamedNs, addr: &str, port: u16) {
    let (tcp, udp) = ns.within(|| {
        (
            TcpListener::bind((addr, port)).expect("bind tcp"),
            UdpSocket::bind((addr, port)).expect("bind udp"),
        )
    });
    std::thread::spawn(move || {
        for s in tcp.incoming() {
            let Ok(mut s) = s else { continue };
            if let Ok(peer) = s.peer_addr() {
                let _ = writeln!(s, "from {}", peer.ip());
            }
        }
    });
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((_, peer)) = udp.recv_from(&mut buf) {
            let _ = udp.send_to(format!("from {}\n", peer.ip()).as_bytes(), peer);
        }
    });
}

/// Connect over TCP from inside `ns` to `to` and return the server's
/// answer (`from ADDR`), or the error as text.
pub fn tcp_probe(ns: &NamedNs, to: &str) -> Result<String, String> {
    let addr: SocketAddr = to.parse().map_err(|e| format!("{to}: {e}"))?;
    let mut s = ns
        .within(|| TcpStream::connect_timeout(&addr, Duration::from_secs(3)))
        .map_err(|e| format!("connect {to}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out)
        .map_err(|e| format!("read {to}: {e}"))?;
    Ok(out.trim().to_string())
}

/// Send a UDP datagram from inside `ns` to `to` and return the answer.
pub fn udp_probe(ns: &NamedNs, to: &str) -> Result<String, String> {
    let any = if to.starts_with('[') {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    };
    let sock = ns
        .within(|| UdpSocket::bind(any))
        .map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(|e| e.to_string())?;
    sock.send_to(b"hi", to)
        .map_err(|e| format!("send {to}: {e}"))?;
    let mut buf = [0u8; 512];
    let (n, _) = sock
        .recv_from(&mut buf)
        .map_err(|e| format!("recv from {to}: {e}"))?;
    Ok(String::from_utf8_lossy(&buf[..n]).trim().to_string())
}

/// Run a CNI plugin binary with `ns` as its host namespace, `command`, the
/// container ID/ifname/netns given, no `CNI_PATH` to delegate through, and
/// `conf` on stdin.
pub fn cni(
    bin: &str,
    ns: &NamedNs,
    command: &str,
    id: &str,
    ifname: &str,
    netns: &str,
    conf: &serde_json::Value,
) -> Outcome {
    let mut call = Call::new(bin, command, id, netns);
    call.ifname = ifname.into();
    call.path = "/nonexistent".into();
    call.run(&ns.ns, conf.to_string().as_bytes())
}
