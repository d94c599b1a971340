//! Helpers of the portmap and podman tests: named network namespaces that are deleted
//! when dropped, commands run inside them, and root/binary checks that
//! skip outside CI and fail under `CI=true`.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use aksnet_linux::Netns;

/// True when the test may run: root and every binary in `bins` present.
/// Otherwise it prints why and returns false, or panics when `CI=true`.
pub fn can_run(test: &str, bins: &[&str]) -> bool {
    let ci = std::env::var("CI").as_deref() == Ok("true");
    let mut why = Vec::new();
    if !nix::unistd::geteuid().is_root() {
        why.push("root is needed".to_string());
    }
    for b in bins {
        if !Path::new(b).exists() {
            why.push(format!("{b} is missing"));
        }
    }
    if why.is_empty() {
        return true;
    }
    let msg = format!("{test}: {}", why.join(", "));
    if ci {
        panic!("{msg} (CI=true: kernel tests must run)");
    }
    eprintln!("skipped: {msg}");
    false
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

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A named namespace (`/run/netns/NAME`), deleted on drop.
pub struct Ns {
    pub name: String,
}

impl Ns {
    /// A new namespace named `pm<pid>-<seq>-<role>` with `lo` up.
    pub fn new(role: &str) -> Ns {
        let name = format!(
            "pm{}-{}-{role}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        run(&["ip", "netns", "add", &name]);
        let ns = Ns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `/run/netns/NAME`.
    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// `ip -n NAME ARGS...`.
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

    /// Open it.
    pub fn open(&self) -> Netns {
        Netns::open(self.path()).expect("open netns")
    }

    /// Run `f` on the calling thread inside this namespace.
    pub fn within<T>(&self, f: impl FnOnce() -> T) -> T {
        let ns = self.open();
        let _g = ns.enter().expect("enter netns");
        f()
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

/// A TCP server in `ns` on `port` answering each connection with
/// `from <peer address>\n`, and a UDP server on `port` answering each
/// datagram the same way. Both serve from background threads until the
/// test process exits; their sockets belong to `ns`.
pub fn probe_server(ns: &Ns, port: u16) {
    probe_server_on(ns, "0.0.0.0", port);
}

/// [`probe_server`] bound to `addr` (`"::"` for IPv6).
pub fn probe_server_on(ns: &Ns, addr: &str, port: u16) {
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
pub fn tcp_probe(ns: &Ns, to: &str) -> Result<String, String> {
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
pub fn udp_probe(ns: &Ns, to: &str) -> Result<String, String> {
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

/// Run a CNI plugin binary inside `ns` with `command`, the container
/// ID/ifname/netns given, and `conf` on stdin.
pub fn cni(
    bin: &str,
    ns: &Ns,
    command: &str,
    id: &str,
    ifname: &str,
    netns: &str,
    conf: &serde_json::Value,
) -> Output {
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns.name, bin])
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", id)
        .env("CNI_IFNAME", ifname)
        .env("CNI_NETNS", netns)
        .env("CNI_PATH", "/nonexistent")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn plugin");
    let data = conf.to_string();
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(data.as_bytes())
        .expect("write conf");
    child.wait_with_output().expect("wait plugin")
}
