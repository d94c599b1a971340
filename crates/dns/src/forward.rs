//! Forwarding to the upstream servers (`--upstream`), as CoreDNS's
//! `forward` plugin: the query goes out over the protocol the client used
//! (UDP from a fresh socket with a random ID, so answers cannot be spoofed
//! by guessing either; TCP with the 2-byte length prefix of RFC 1035
//! §4.2.2), upstreams are tried in turn starting from a rotating one, and a
//! truncated UDP answer is passed on truncated so the client retries over
//! TCP. Every message is encoded and decoded by hickory-proto.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

/// How long one upstream gets to answer before the next is tried. Clients
/// (glibc) wait 5 s, so two upstreams fit before the client gives up.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// The UDP payload size asked of upstreams (the DNS flag day 2020 value).
pub const UDP_PAYLOAD: u16 = 1232;

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("no upstream is configured")]
    NoUpstream,
    #[error("upstream {addr}: {reason}")]
    Upstream { addr: SocketAddr, reason: String },
}

/// Which transport the client used, and so the one used upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

#[derive(Debug)]
pub struct Forwarder {
    upstreams: Vec<SocketAddr>,
    next: AtomicUsize,
    timeout: Duration,
}

fn random_u16() -> u16 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish() as u16
}

impl Forwarder {
    pub fn new(upstreams: Vec<SocketAddr>) -> Self {
        Forwarder {
            upstreams,
            next: AtomicUsize::new(0),
            timeout: UPSTREAM_TIMEOUT,
        }
    }

    pub fn with_timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    pub fn is_empty(&self) -> bool {
        self.upstreams.is_empty()
    }

    /// Resolves one question upstream; the answer as the upstream sent it.
    pub async fn forward(
        &self,
        query: &Query,
        recursion_desired: bool,
        checking_disabled: bool,
        transport: Transport,
    ) -> Result<Message, ForwardError> {
        if self.upstreams.is_empty() {
            return Err(ForwardError::NoUpstream);
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut last = None;
        for i in 0..self.upstreams.len() {
            let addr = self.upstreams[(start + i) % self.upstreams.len()];
            let mut msg = Message::new(random_u16(), MessageType::Query, OpCode::Query);
            msg.metadata.recursion_desired = recursion_desired;
            msg.metadata.checking_disabled = checking_disabled;
            msg.add_query(query.clone());
            let mut edns = Edns::new();
            edns.set_max_payload(UDP_PAYLOAD);
            msg.set_edns(edns);
            let res = match transport {
                Transport::Udp => timeout(self.timeout, udp(addr, &msg)).await,
                Transport::Tcp => timeout(self.timeout, tcp(addr, &msg)).await,
            };
            let err = match res {
                Ok(Ok(answer)) => return Ok(answer),
                Ok(Err(reason)) => reason,
                Err(_) => format!("no answer within {:?}", self.timeout),
            };
            tracing::debug!(%addr, %err, "upstream failed; trying the next");
            last = Some(ForwardError::Upstream { addr, reason: err });
        }
        Err(last.unwrap_or(ForwardError::NoUpstream))
    }
}

fn encode(msg: &Message) -> Result<Vec<u8>, String> {
    msg.to_vec().map_err(|e| format!("cannot encode the query: {e}"))
}

/// An answer is ours if it has our ID, is a response and asks our question.
fn matches(sent: &Message, got: &Message) -> bool {
    got.metadata.id == sent.metadata.id
        && got.metadata.message_type == MessageType::Response
        && got.queries == sent.queries
}

async fn udp(addr: SocketAddr, msg: &Message) -> Result<Message, String> {
    let bind: SocketAddr = if addr.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal")
    } else {
        "[::]:0".parse().expect("literal")
    };
    let sock = UdpSocket::bind(bind).await.map_err(|e| e.to_string())?;
    sock.connect(addr).await.map_err(|e| e.to_string())?;
    sock.send(&encode(msg)?).await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 65535];
    loop {
        let n = sock.recv(&mut buf).await.map_err(|e| e.to_string())?;
        // Anything that is not the answer (garbage, a stale or forged
        // reply) is dropped and the wait goes on until the time-out.
        match Message::from_vec(&buf[..n]) {
            Ok(got) if matches(msg, &got) => return Ok(got),
            Ok(_) => tracing::debug!(%addr, "dropped a reply that is not the answer"),
            Err(e) => tracing::debug!(%addr, "dropped an undecodable reply: {e}"),
        }
    }
}

async fn tcp(addr: SocketAddr, msg: &Message) -> Result<Message, String> {
    let mut s = TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let bytes = encode(msg)?;
    let len = u16::try_from(bytes.len()).map_err(|_| "query too long".to_string())?;
    let mut framed = Vec::with_capacity(bytes.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(&bytes);
    s.write_all(&framed).await.map_err(|e| e.to_string())?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len).await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
    let got = Message::from_vec(&buf).map_err(|e| format!("undecodable answer: {e}"))?;
    if !matches(msg, &got) {
        return Err("the answer is not for the question asked".into());
    }
    Ok(got)
}
