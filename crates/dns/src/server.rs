//! The server: sockets, hickory-server's UDP and TCP loops around the
//! [`Handler`], and the store follower thread.
//!
//! Nothing here needs root: it listens where it is told (a port of 1024 or
//! more, or port 53 with `CAP_NET_BIND_SERVICE` or in a network namespace
//! whose `net.ipv4.ip_unprivileged_port_start` allows it) and reads the
//! store by URL, so the lab can run it inside a pod's network namespace.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use aksnet_store::Store;
use hickory_proto::rr::{LowerName, Name};
use hickory_server::Server;
use socket2::{Domain, Protocol as SockProtocol, SockAddr, Socket, Type};

use crate::error::DnsError;
use crate::follow::follow;
use crate::forward::Forwarder;
use crate::handler::{Handler, Shared};
use crate::index::{Index, PodMode, Settings};

/// TCP connections idle this long are closed (RFC 7766 suggests seconds).
const TCP_IDLE: Duration = Duration::from_secs(10);
/// CoreDNS's range for the TTL.
pub const MAX_TTL: u32 = 3600;

#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// UDP and TCP; port 0 picks a free port (the same for both).
    pub listen: SocketAddr,
    pub upstreams: Vec<SocketAddr>,
    /// Absolute and lower-case (see [`crate::names::cluster_domain`]).
    pub cluster_domain: Name,
    pub ttl: u32,
    pub pods: PodMode,
    /// Longest time between two full reads of the store (the watch brings
    /// changes sooner).
    pub resync: Duration,
    /// UDP sockets on the listen address (SO_REUSEPORT), each with its own
    /// receive loop, so queries are taken in parallel.
    pub udp_sockets: usize,
}

impl DnsConfig {
    pub fn new(listen: SocketAddr, cluster_domain: Name) -> Self {
        DnsConfig {
            listen,
            upstreams: vec![],
            cluster_domain,
            ttl: 5,
            pods: PodMode::Verified,
            resync: Duration::from_secs(30),
            udp_sockets: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
        }
    }

    pub fn validate(&self) -> Result<(), DnsError> {
        if self.ttl > MAX_TTL {
            return Err(DnsError::BadTtl { ttl: self.ttl });
        }
        for up in &self.upstreams {
            let same_port = up.port() == self.listen.port();
            let same_ip = up.ip() == self.listen.ip()
                || (self.listen.ip().is_unspecified() && (up.ip().is_loopback()));
            if same_port && same_ip {
                return Err(DnsError::UpstreamLoop { addr: *up });
            }
        }
        Ok(())
    }

    fn settings(&self) -> Settings {
        Settings {
            domain: self.cluster_domain.clone(),
            ttl: self.ttl,
            pods: self.pods,
        }
    }
}

fn udp_socket(addr: SocketAddr, reuse_port: bool) -> Result<std::net::UdpSocket, DnsError> {
    let bind = |e: std::io::Error| DnsError::Bind {
        addr,
        proto: "udp",
        source: e,
    };
    let s = Socket::new(
        Domain::for_address(addr),
        Type::DGRAM,
        Some(SockProtocol::UDP),
    )
    .map_err(bind)?;
    if reuse_port {
        s.set_reuse_port(true).map_err(bind)?;
    }
    if addr.is_ipv6() {
        s.set_only_v6(false).ok();
    }
    s.set_nonblocking(true).map_err(bind)?;
    s.bind(&SockAddr::from(addr)).map_err(bind)?;
    Ok(s.into())
}

fn tcp_listener(addr: SocketAddr) -> Result<std::net::TcpListener, DnsError> {
    let bind = |e: std::io::Error| DnsError::Bind {
        addr,
        proto: "tcp",
        source: e,
    };
    let s = Socket::new(
        Domain::for_address(addr),
        Type::STREAM,
        Some(SockProtocol::TCP),
    )
    .map_err(bind)?;
    s.set_reuse_address(true).map_err(bind)?;
    if addr.is_ipv6() {
        s.set_only_v6(false).ok();
    }
    s.set_nonblocking(true).map_err(bind)?;
    s.bind(&SockAddr::from(addr)).map_err(bind)?;
    s.listen(1024).map_err(bind)?;
    Ok(s.into())
}

/// Binds UDP and TCP on one address; with port 0, on one free port.
fn bind_all(
    listen: SocketAddr,
    udp_count: usize,
) -> Result<(Vec<std::net::UdpSocket>, std::net::TcpListener, SocketAddr), DnsError> {
    let reuse = udp_count > 1;
    let mut tries = 0;
    loop {
        tries += 1;
        let first = udp_socket(listen, reuse)?;
        let addr = first.local_addr()?;
        let tcp = match tcp_listener(addr) {
            Ok(t) => t,
            // The free UDP port may be a taken TCP one: pick another.
            Err(_) if listen.port() == 0 && tries < 16 => continue,
            Err(e) => return Err(e),
        };
        let mut udp = vec![first];
        for _ in 1..udp_count {
            udp.push(udp_socket(addr, true)?);
        }
        return Ok((udp, tcp, addr));
    }
}

/// A running server.
pub struct DnsServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// TCP, on the caller's runtime.
    server: Server<Handler>,
    /// One thread per UDP socket, each with a single-threaded runtime of its
    /// own: a query is received, answered and sent on one thread, without
    /// the cross-thread wake-ups a shared runtime costs per packet (about a
    /// third of the throughput on a 2-CPU machine).
    udp: Vec<JoinHandle<()>>,
    stop: tokio::sync::watch::Sender<bool>,
    follower: Option<JoinHandle<()>>,
}

fn udp_worker(
    sock: std::net::UdpSocket,
    handler: Handler,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<JoinHandle<()>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("dns-udp".into())
        .spawn(move || {
            rt.block_on(async move {
                let sock = match tokio::net::UdpSocket::from_std(sock) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!("UDP socket unusable: {e}");
                        return;
                    }
                };
                let mut server = Server::new(handler);
                server.register_socket(sock);
                while !*stop.borrow_and_update() {
                    if stop.changed().await.is_err() {
                        break;
                    }
                }
                server.shutdown_gracefully().await.ok();
            })
        })
}

impl DnsServer {
    /// Binds the sockets, starts the store follower and the server loops
    /// (on the current tokio runtime).
    pub fn start(store: Arc<dyn Store>, cfg: &DnsConfig) -> Result<DnsServer, DnsError> {
        cfg.validate()?;
        let (udp, tcp, addr) = bind_all(cfg.listen, cfg.udp_sockets.max(1))?;
        let shared = Arc::new(Shared::default());
        let forwarder = Arc::new(Forwarder::new(cfg.upstreams.clone()));
        let domain = LowerName::new(&cfg.cluster_domain);
        let handler = || Handler::new(shared.clone(), forwarder.clone(), domain.clone());
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let mut workers = vec![];
        for s in udp {
            workers.push(udp_worker(s, handler(), stop_rx.clone())?);
        }
        let mut server = Server::new(handler());
        server.register_listener(tokio::net::TcpListener::from_std(tcp)?, TCP_IDLE, 64 * 1024);
        let follower = {
            let shared = shared.clone();
            let settings = cfg.settings();
            let resync = cfg.resync;
            std::thread::Builder::new()
                .name("dns-follow".into())
                .spawn(move || follow(store, shared, settings, resync))?
        };
        Ok(DnsServer {
            addr,
            shared,
            server,
            udp: workers,
            stop,
            follower: Some(follower),
        })
    }

    /// The address bound (the port picked when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The index being served, once the store has been read.
    pub fn index(&self) -> Option<Arc<Index>> {
        self.shared.index()
    }

    /// Waits until the store has been read at `revision` or later.
    pub async fn wait_revision(&self, revision: i64, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        loop {
            if self.index().is_some_and(|i| i.revision() >= revision) {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the loops and the follower.
    pub async fn shutdown(mut self) -> Result<(), DnsError> {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.stop.send(true).ok();
        let res = self
            .server
            .shutdown_gracefully()
            .await
            .map_err(|e| DnsError::Io(std::io::Error::other(e.to_string())));
        let mut threads: Vec<JoinHandle<()>> = self.udp.drain(..).collect();
        threads.extend(self.follower.take());
        tokio::task::spawn_blocking(move || {
            for t in threads {
                t.join().ok();
            }
        })
        .await
        .ok();
        res
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        // A server dropped without `shutdown` still stops its follower.
        self.shared.stop.store(true, Ordering::Relaxed);
        self.stop.send(true).ok();
        self.server.shutdown_token().cancel();
    }
}
