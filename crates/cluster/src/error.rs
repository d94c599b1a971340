//! Errors of the cluster library: each names the key, node or range that
//! is wrong and what would be right.

use std::net::Ipv4Addr;

use aksnet_store::StoreError;
use ipnet::Ipv4Net;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the cluster is not initialised in this store (no {key}); run `aksnet cluster init --store URL` first")]
    NotInitialised { key: String },
    #[error("stored value at {key} is not valid: {source}")]
    BadValue {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot encode the value for {key}: {source}")]
    Encode {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{key} already holds a different cluster network; use a new store, or `aksnet cluster show` to see it")]
    OtherNetwork { key: String },
    #[error("node IP {ip} is already held by node '{holder}'; give each node its own --node-ip")]
    NodeIpTaken { ip: Ipv4Addr, holder: String },
    #[error("node IP {ip} is claimed by {key}, whose value does not decode; remove the key or give the node another --node-ip")]
    NodeIpUnreadable { ip: Ipv4Addr, key: String },
    #[error("the cluster has no pod CIDR")]
    NoPodCidr,
    #[error("pod CIDR {pod_cidr} has no free /{prefix} left ({blocks} blocks, all held); use a larger --pod-cidr")]
    PodCidrFull {
        pod_cidr: Ipv4Net,
        prefix: u8,
        blocks: u64,
    },
    #[error("subnet {subnet} is too small to hold pod addresses")]
    SubnetTooSmall { subnet: Ipv4Net },
    #[error("could not claim {what} after {rounds} rounds of races")]
    RacesLost { what: String, rounds: usize },
    #[error("no node '{name}' in the cluster (no record and no claim)")]
    NoNode { name: String },
    #[error("node '{name}' was re-registered while being removed; stop its agent first")]
    ReRegistered { name: String },
}

impl ClusterError {
    /// The cluster has no room left for what was asked (a condition to
    /// report on the node, not a failure of the agent).
    pub fn is_exhausted(&self) -> bool {
        matches!(
            self,
            ClusterError::NoPodCidr
                | ClusterError::PodCidrFull { .. }
                | ClusterError::SubnetTooSmall { .. }
                | ClusterError::RacesLost { .. }
        )
    }
}

pub type Result<T, E = ClusterError> = std::result::Result<T, E>;

/// JSON of a value written to the store (never a silent empty value).
pub(crate) fn encode<T: serde::Serialize>(key: &str, v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|source| ClusterError::Encode {
        key: key.to_string(),
        source,
    })
}
