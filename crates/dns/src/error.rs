//! Errors of the cluster DNS server.

use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("invalid DNS name {name:?}: {reason}")]
    BadName { name: String, reason: String },

    #[error("invalid TTL {ttl}: CoreDNS allows 0 to 3600 seconds")]
    BadTtl { ttl: u32 },

    #[error(
        "upstream {addr} is this server's own listen address: forwarding to it would loop; \
         give the address of another DNS server"
    )]
    UpstreamLoop { addr: SocketAddr },

    #[error("cannot listen on {addr} ({proto}): {source}")]
    Bind {
        addr: SocketAddr,
        proto: &'static str,
        source: std::io::Error,
    },

    #[error("DNS server I/O: {0}")]
    Io(#[from] std::io::Error),

    #[error(transparent)]
    Store(#[from] aksnet_store::StoreError),
}
