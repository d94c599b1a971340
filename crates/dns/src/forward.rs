//! Forwarding to the upstream servers (`--upstream`), as CoreDNS's
//! `forward` plugin: the query goes out over the protocol the client used
//! (UDP from a fresh socket with a random ID, so answers cannot be spoofed
//! by guessing either; TCP with the 2-byte length prefix of RFC 1035
//! §4.2.2), upstreams are tried in turn starting from a rotating one, and a
//! truncated UDP answer is passed on truncated so the client retries over
//! TCP. Every message is encoded and decoded by hickory-proto.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use tokio::time::timeout;

use crate::client::{tcp, udp};

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

pub use crate::client::Transport;

#[derive(Debug)]
pub struct Forwarder {
    upstreams: Vec<SocketAddr>,
    next: AtomicUsize,
    timeout: Duration,
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
            let mut msg = Message::new(
                crate::client::random_id(),
                MessageType::Query,
                OpCode::Query,
            );
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
