use std::path::PathBuf;

use aksnet_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the cluster is not initialised in this store (no {key}); run `aksnet cluster init --store URL` first")]
    NotInitialised { key: String },
    #[error("stored value at {key} is not valid: {reason}")]
    BadValue { key: String, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("node IP {ip} is already held by node '{holder}'; give each node its own --node-ip")]
    NodeIpTaken {
        ip: std::net::Ipv4Addr,
        holder: String,
    },
    #[error("node IP {ip} is outside the cluster's node subnet {subnet}")]
    NodeIpOutsideSubnet {
        ip: std::net::Ipv4Addr,
        subnet: ipnet::Ipv4Net,
    },
    #[error("--routes {mode} needs a model with per-node blocks (kubenet or overlay); {plugin} pods are routed by the fabric, use --routes fabric")]
    RoutesUnsupported { mode: String, plugin: String },
    #[error("kernel: {0}")]
    Kernel(String),
    #[error("node '{0}' was removed from the cluster (`aksnet node remove`); the agent stops")]
    Removed(String),
    #[error("{0}")]
    Exhausted(String),
    #[error(transparent)]
    Lock(#[from] aksnet_linux::flock::LockError),
}
