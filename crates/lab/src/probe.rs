//! The probe: a tiny server in every pod, node, the VM and the internet
//! host that answers each TCP connection and each UDP datagram with the
//! source address it saw and its own label (`10.224.0.4 default/pod-2-1\n`),
//! so NAT and the backend that answered are visible; and the client side,
//! run from a thread inside the source namespace.
//!
//! A pod's server listens on the lab's probe port ([`PROBE_PORT`], TCP and
//! UDP, what `lab check` uses) and on every container port of its Pod; a
//! UDP answer leaves from the address the datagram was sent to
//! (`IP_PKTINFO`), so a client's connected socket accepts it wherever the
//! namespace routes the reply from.

use std::fmt;
use std::io::{BufRead, BufReader, ErrorKind, IoSlice, IoSliceMut, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::socket::{
    recvmsg, sendmsg, setsockopt, sockopt, ControlMessage, ControlMessageOwned, MsgFlags,
    SockaddrIn,
};
use serde::{Deserialize, Serialize};

use crate::netns;
pub use crate::topology::PROBE_PORT;

/// What a UDP probe sends (any datagram gets an answer).
pub const UDP_HELLO: &[u8] = b"aksnet-probe\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }

    /// A container port's or Service port's `protocol` (`TCP`, `UDP`;
    /// unset is TCP). `SCTP` and anything else: `None`.
    pub fn from_k8s(p: Option<&str>) -> Option<Self> {
        match p.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            _ => None,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            _ => Err(format!("protocol '{s}': expected tcp or udp")),
        }
    }
}

/// One port a probe server listens on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Listen {
    pub port: u16,
    pub protocol: Protocol,
    /// The container port's `name`, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Listen {
    pub fn new(port: u16, protocol: Protocol) -> Self {
        Self {
            port,
            protocol,
            name: None,
        }
    }

    /// What a container without ports serves (upstream has no such
    /// default; the lab's pods answer on 80/TCP so a Service with the
    /// usual `port: 80` reaches them).
    pub fn default_pod_port() -> Self {
        Self::new(80, Protocol::Tcp)
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.port, self.protocol)
    }
}

impl FromStr for Listen {
    type Err = String;
    /// `80`, `80/tcp`, `53/udp`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (port, proto) = s.split_once('/').unwrap_or((s, "tcp"));
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("'{s}': expected PORT[/tcp|udp] with a port of 1-65535"))?;
        Ok(Self::new(port, proto.parse()?))
    }
}

/// Every port a server listens on: the probe port (TCP and UDP) and
/// `extra`, each once.
pub fn listens(probe_port: u16, extra: &[Listen]) -> Vec<Listen> {
    let mut v = vec![
        Listen::new(probe_port, Protocol::Tcp),
        Listen::new(probe_port, Protocol::Udp),
    ];
    for l in extra {
        if !v
            .iter()
            .any(|x| x.port == l.port && x.protocol == l.protocol)
        {
            v.push(l.clone());
        }
    }
    v
}

/// Serves forever on `bind:port`, TCP and UDP (every address of the
/// current namespace with `0.0.0.0`).
pub fn serve(bind: Ipv4Addr, port: u16, label: &str) -> std::io::Result<()> {
    serve_on(
        bind,
        &[
            Listen::new(port, Protocol::Tcp),
            Listen::new(port, Protocol::Udp),
        ],
        label,
    )
}

/// Serves forever on every port of `ports`, on every address of the
/// current namespace.
pub fn serve_ports(ports: &[Listen], label: &str) -> std::io::Result<()> {
    serve_on(Ipv4Addr::UNSPECIFIED, ports, label)
}

/// A port that cannot be bound is logged and skipped; an error only when
/// none could be bound.
fn serve_on(bind: Ipv4Addr, ports: &[Listen], label: &str) -> std::io::Result<()> {
    let mut bound = 0;
    let mut last_err = None;
    std::thread::scope(|s| {
        for l in ports {
            let addr = SocketAddrV4::new(bind, l.port);
            match l.protocol {
                Protocol::Tcp => match TcpListener::bind(addr) {
                    Ok(listener) => {
                        bound += 1;
                        s.spawn(move || serve_tcp(listener, label));
                    }
                    Err(e) => {
                        tracing::warn!("cannot listen on {l}: {e}");
                        last_err = Some(e);
                    }
                },
                Protocol::Udp => match udp_socket(addr) {
                    Ok(sock) => {
                        bound += 1;
                        s.spawn(move || serve_udp(sock, label));
                    }
                    Err(e) => {
                        tracing::warn!("cannot listen on {l}: {e}");
                        last_err = Some(e);
                    }
                },
            }
        }
        if bound == 0 {
            // Nothing to wait for: the spawned set is empty.
            return;
        }
        tracing::info!(label, bound, "probe server listening");
    });
    match (bound, last_err) {
        (0, Some(e)) => Err(e),
        (0, None) => Err(std::io::Error::new(
            ErrorKind::InvalidInput,
            "no port to listen on",
        )),
        _ => Ok(()),
    }
}

fn serve_tcp(listener: TcpListener, label: &str) {
    for conn in listener.incoming() {
        let Ok(mut s) = conn else { continue };
        let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
        let peer = s
            .peer_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_else(|_| "?".into());
        let _ = s.write_all(format!("{peer} {label}\n").as_bytes());
    }
}

fn udp_socket(addr: SocketAddrV4) -> std::io::Result<UdpSocket> {
    let sock = UdpSocket::bind(addr)?;
    setsockopt(&sock, sockopt::Ipv4PacketInfo, &true).map_err(std::io::Error::from)?;
    Ok(sock)
}

/// Answers every datagram from the address it was sent to.
fn serve_udp(sock: UdpSocket, label: &str) {
    let fd = sock.as_raw_fd();
    let mut buf = [0u8; 1500];
    loop {
        let mut cmsg = nix::cmsg_space!(libc::in_pktinfo);
        let (peer, local) = {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let msg = match recvmsg::<SockaddrIn>(fd, &mut iov, Some(&mut cmsg), MsgFlags::empty())
            {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!("udp probe server: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            };
            let local = msg.cmsgs().ok().and_then(|mut it| {
                it.find_map(|c| match c {
                    ControlMessageOwned::Ipv4PacketInfo(pi) => Some(pi.ipi_addr),
                    _ => None,
                })
            });
            (msg.address, local)
        };
        let Some(peer) = peer else { continue };
        let answer = format!("{} {label}\n", peer.ip());
        let iov = [IoSlice::new(answer.as_bytes())];
        let r = match local {
            Some(addr) => {
                let info = libc::in_pktinfo {
                    ipi_ifindex: 0,
                    ipi_spec_dst: addr,
                    ipi_addr: libc::in_addr { s_addr: 0 },
                };
                sendmsg(
                    fd,
                    &iov,
                    &[ControlMessage::Ipv4PacketInfo(&info)],
                    MsgFlags::empty(),
                    Some(&peer),
                )
            }
            None => sendmsg(fd, &iov, &[], MsgFlags::empty(), Some(&peer)),
        };
        if let Err(e) = r {
            tracing::debug!("udp answer to {peer}: {e}");
        }
    }
}

/// One probe to make.
#[derive(Debug, Clone)]
pub struct Probe {
    /// The source namespace (`/run/netns/...`).
    pub from_netns: PathBuf,
    pub to: Ipv4Addr,
    pub port: u16,
    pub protocol: Protocol,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// A probe server answered.
    pub reachable: bool,
    /// Actively refused: a TCP reset or an ICMP port unreachable
    /// (`ECONNREFUSED`), not a timeout or a missing route.
    pub refused: bool,
    /// The address the destination saw.
    pub source: Option<Ipv4Addr>,
    /// The destination's label.
    pub label: Option<String>,
    pub error: Option<String>,
    /// From the first packet sent to the answer (or the failure).
    pub elapsed: Duration,
}

impl Outcome {
    pub fn failed(e: impl ToString) -> Self {
        Self {
            reachable: false,
            refused: false,
            source: None,
            label: None,
            error: Some(e.to_string()),
            elapsed: Duration::ZERO,
        }
    }

    fn io_error(e: &std::io::Error, start: Instant) -> Self {
        Self {
            refused: e.kind() == ErrorKind::ConnectionRefused,
            elapsed: start.elapsed(),
            ..Self::failed(e)
        }
    }

    /// Reads `SRC LABEL` as a probe server writes it.
    fn answer(line: &str, start: Instant) -> Self {
        let mut parts = line.split_whitespace();
        let source = parts.next().and_then(|p| p.parse().ok());
        Outcome {
            reachable: source.is_some(),
            refused: false,
            source,
            label: parts.next().map(str::to_string),
            error: if source.is_some() {
                None
            } else {
                Some(format!("unexpected answer {line:?}"))
            },
            elapsed: start.elapsed(),
        }
    }
}

/// Connects (TCP) from the current thread's namespace.
pub fn connect(to: Ipv4Addr, port: u16, timeout: Duration) -> Outcome {
    let start = Instant::now();
    let addr = SocketAddr::V4(SocketAddrV4::new(to, port));
    let s = match TcpStream::connect_timeout(&addr, timeout) {
        Ok(s) => s,
        Err(e) => return Outcome::io_error(&e, start),
    };
    let _ = s.set_read_timeout(Some(
        timeout
            .saturating_sub(start.elapsed())
            .max(Duration::from_millis(1)),
    ));
    let mut line = String::new();
    if let Err(e) = BufReader::new(s).read_line(&mut line) {
        return Outcome::io_error(&e, start);
    }
    Outcome::answer(&line, start)
}

/// Sends one datagram (UDP) from the current thread's namespace and waits
/// for the answer. A connected socket reports an ICMP port unreachable as
/// `ECONNREFUSED`.
pub fn datagram(to: Ipv4Addr, port: u16, timeout: Duration) -> Outcome {
    let start = Instant::now();
    let sock = match UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)) {
        Ok(s) => s,
        Err(e) => return Outcome::io_error(&e, start),
    };
    if let Err(e) = sock.connect((to, port)) {
        return Outcome::io_error(&e, start);
    }
    let _ = sock.set_read_timeout(Some(timeout.max(Duration::from_millis(1))));
    if let Err(e) = sock.send(UDP_HELLO) {
        return Outcome::io_error(&e, start);
    }
    let mut buf = [0u8; 512];
    match sock.recv(&mut buf) {
        Ok(n) => Outcome::answer(&String::from_utf8_lossy(&buf[..n]), start),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Outcome {
            elapsed: start.elapsed(),
            ..Outcome::failed(format!("no answer within {} ms", timeout.as_millis()))
        },
        Err(e) => Outcome::io_error(&e, start),
    }
}

/// One probe of `protocol`, from the current thread's namespace.
pub fn once(to: Ipv4Addr, port: u16, protocol: Protocol, timeout: Duration) -> Outcome {
    match protocol {
        Protocol::Tcp => connect(to, port, timeout),
        Protocol::Udp => datagram(to, port, timeout),
    }
}

/// Runs every probe, `parallel` at a time, each from its own namespace.
pub fn run_all(probes: &[Probe], parallel: usize, timeout: Duration) -> Vec<Outcome> {
    let next = Mutex::new(0usize);
    let results: Mutex<Vec<Option<Outcome>>> = Mutex::new(vec![None; probes.len()]);
    std::thread::scope(|s| {
        for _ in 0..parallel.clamp(1, 64).min(probes.len().max(1)) {
            s.spawn(|| loop {
                let i = {
                    let Ok(mut n) = next.lock() else { return };
                    let i = *n;
                    *n += 1;
                    i
                };
                let Some(p) = probes.get(i) else { return };
                let outcome = match netns::enter(&p.from_netns) {
                    Ok(_guard) => once(p.to, p.port, p.protocol, timeout),
                    Err(e) => Outcome::failed(e),
                };
                if let Ok(mut r) = results.lock() {
                    r[i] = Some(outcome);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .map(|o| o.unwrap_or_else(|| Outcome::failed("not run")))
        .collect()
}

/// Runs `count` probes one after the other from one namespace (each a new
/// connection or socket, so a new source port), on one thread that
/// entered it.
pub fn run_sequence(
    from_netns: &std::path::Path,
    to: Ipv4Addr,
    port: u16,
    protocol: Protocol,
    count: u32,
    timeout: Duration,
) -> crate::error::Result<Vec<Outcome>> {
    netns::run_in(from_netns, || {
        (0..count)
            .map(|_| once(to, port, protocol, timeout))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn free_port() -> u16 {
        // A port free for both protocols on loopback.
        loop {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = l.local_addr().unwrap().port();
            if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }

    fn until(f: impl Fn() -> Outcome) -> Outcome {
        let mut out = f();
        for _ in 0..200 {
            if out.reachable {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
            out = f();
        }
        out
    }

    #[test]
    fn answers_with_the_source_address_on_tcp_and_udp() {
        let port = free_port();
        let ports = vec![
            Listen::new(port, Protocol::Tcp),
            Listen::new(port, Protocol::Udp),
        ];
        std::thread::spawn(move || serve_ports(&ports, "shop/web-1"));
        for proto in [Protocol::Tcp, Protocol::Udp] {
            let out = until(|| once(Ipv4Addr::LOCALHOST, port, proto, Duration::from_secs(1)));
            assert!(out.reachable, "{proto}: {out:?}");
            assert!(!out.refused);
            assert_eq!(out.source, Some(Ipv4Addr::LOCALHOST));
            assert_eq!(out.label.as_deref(), Some("shop/web-1"));
            assert!(out.elapsed < Duration::from_secs(1));
        }
    }

    #[test]
    fn a_closed_port_is_refused_on_tcp_and_udp() {
        let port = free_port();
        for proto in [Protocol::Tcp, Protocol::Udp] {
            let out = once(Ipv4Addr::LOCALHOST, port, proto, Duration::from_millis(500));
            assert!(!out.reachable && out.refused, "{proto}: {out:?}");
            assert!(out.error.is_some());
        }
    }

    #[test]
    fn udp_answers_from_the_address_it_was_sent_to() {
        // 127.0.0.2 is loopback too; the default source towards 127.0.0.1
        // would be 127.0.0.1, so a reply from the wrong address would be
        // dropped by the connected client socket.
        let port = free_port();
        let ports = vec![Listen::new(port, Protocol::Udp)];
        std::thread::spawn(move || serve_ports(&ports, "x"));
        let out = until(|| datagram("127.0.0.2".parse().unwrap(), port, Duration::from_secs(1)));
        assert!(out.reachable, "{out:?}");
    }

    #[test]
    fn serve_fails_when_no_port_binds() {
        let l = TcpListener::bind("0.0.0.0:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(serve_ports(&[Listen::new(port, Protocol::Tcp)], "x").is_err());
        assert!(serve_ports(&[], "x").is_err());
    }

    #[test]
    fn listen_specs() {
        assert_eq!(
            "80".parse::<Listen>().unwrap(),
            Listen::new(80, Protocol::Tcp)
        );
        assert_eq!(
            "53/UDP".parse::<Listen>().unwrap(),
            Listen::new(53, Protocol::Udp)
        );
        assert!("0/tcp".parse::<Listen>().is_err());
        assert!("80/sctp".parse::<Listen>().is_err());
        assert!("x".parse::<Listen>().is_err());
        let all = listens(
            PROBE_PORT,
            &[
                Listen::new(PROBE_PORT, Protocol::Tcp),
                Listen::new(80, Protocol::Tcp),
            ],
        );
        assert_eq!(all.len(), 3, "{all:?}");
        assert_eq!(Protocol::from_k8s(None), Some(Protocol::Tcp));
        assert_eq!(Protocol::from_k8s(Some("UDP")), Some(Protocol::Udp));
        assert_eq!(Protocol::from_k8s(Some("SCTP")), None);
    }
}
