use std::path::PathBuf;

use aksnet_cluster::ClusterError;
use aksnet_store::StoreError;

use crate::kernel::KernelError;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading the cluster, or a claim.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("cannot encode the value for {key}: {source}")]
    Encode {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("node IP {ip} is outside the cluster's node subnet {subnet}")]
    NodeIpOutsideSubnet {
        ip: std::net::Ipv4Addr,
        subnet: ipnet::Ipv4Net,
    },
    #[error("--routes {mode} needs a model with per-node blocks (kubenet or overlay); {plugin} pods are routed by the fabric, use --routes fabric")]
    RoutesUnsupported { mode: String, plugin: String },
    #[error("kernel: {0}")]
    Kernel(#[source] KernelError),
    #[error("node '{0}' was removed from the cluster (`aksnet node remove`); the agent stops")]
    Removed(String),
}

impl From<KernelError> for AgentError {
    fn from(e: KernelError) -> Self {
        AgentError::Kernel(e)
    }
}
