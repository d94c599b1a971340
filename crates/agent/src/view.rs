//! The cluster as one listing of the store shows it: nodes, blocks, address
//! claims and route slots, decoded. Entries that do not decode are skipped
//! with a warning (a bad value never stops an agent), except that a claim key
//! always counts as taken, whatever its value.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use aksnet_core::cluster::{
    self, Claim, ClusterNetwork, NodeRecord, RouteEntry, BLOCKS_PREFIX, IPS_PREFIX, NODES_PREFIX,
    ROUTES_PREFIX,
};
use ipnet::Ipv4Net;
use serde::de::DeserializeOwned;

use crate::error::AgentError;
use crate::kv::{Kv, KvEntry};

/// A decoded value with the revision it was read at (for compare-and-swap).
#[derive(Debug, Clone)]
pub struct At<T> {
    pub value: T,
    pub mod_revision: i64,
    pub lease: i64,
}

/// A claim whose value did not decode still holds its key.
pub type ClaimAt = At<Option<Claim>>;

#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    pub revision: i64,
    pub nodes: BTreeMap<String, At<NodeRecord>>,
    pub blocks: BTreeMap<Ipv4Net, ClaimAt>,
    pub ips: BTreeMap<Ipv4Addr, ClaimAt>,
    pub routes: BTreeMap<u32, At<Option<RouteEntry>>>,
}

fn decode<T: DeserializeOwned>(e: &KvEntry) -> Option<T> {
    match serde_json::from_slice(&e.value) {
        Ok(v) => Some(v),
        Err(err) => {
            tracing::warn!(key = %e.key, error = %err, "skipping a value that does not decode");
            None
        }
    }
}

fn at<T>(e: &KvEntry, value: T) -> At<T> {
    At {
        value,
        mod_revision: e.mod_revision,
        lease: e.lease,
    }
}

impl ClusterView {
    /// Reads everything under `/aksnet/` in one listing (one revision).
    pub fn read(kv: &dyn Kv) -> Result<Self, AgentError> {
        let listing = kv.list(cluster::PREFIX)?;
        let mut v = ClusterView {
            revision: listing.revision,
            ..Default::default()
        };
        for e in &listing.entries {
            if let Some(name) = e.key.strip_prefix(NODES_PREFIX) {
                if let Some(n) = decode::<NodeRecord>(e) {
                    if n.name == name {
                        v.nodes.insert(name.to_string(), at(e, n));
                    } else {
                        tracing::warn!(key = %e.key, "node record names another node; skipped");
                    }
                }
            } else if e.key.starts_with(BLOCKS_PREFIX) {
                if let Some(b) = cluster::parse_block_key(&e.key) {
                    v.blocks.insert(b, at(e, decode(e)));
                }
            } else if e.key.starts_with(IPS_PREFIX) {
                if let Some(ip) = cluster::parse_ip_key(&e.key) {
                    v.ips.insert(ip, at(e, decode(e)));
                }
            } else if let Some(slot) = e.key.strip_prefix(ROUTES_PREFIX) {
                if let Ok(slot) = slot.parse::<u32>() {
                    v.routes.insert(slot, at(e, decode(e)));
                }
            }
        }
        Ok(v)
    }

    /// The node's blocks (normally one).
    pub fn blocks_of<'a>(&'a self, node: &'a str) -> impl Iterator<Item = Ipv4Net> + 'a {
        self.blocks
            .iter()
            .filter(move |(_, c)| holder(c) == Some(node))
            .map(|(b, _)| *b)
    }

    /// Pod addresses the node holds, in address order.
    pub fn pod_ips_of(&self, node: &str) -> Vec<Ipv4Addr> {
        self.ips
            .iter()
            .filter(|(_, c)| {
                c.value
                    .as_ref()
                    .is_some_and(|c| c.node == node && c.kind == cluster::ClaimKind::PodIp)
            })
            .map(|(ip, _)| *ip)
            .collect()
    }

    /// Route slots holding an entry for the node.
    pub fn route_slots_of<'a>(&'a self, node: &'a str) -> impl Iterator<Item = u32> + 'a {
        self.routes
            .iter()
            .filter(move |(_, r)| r.value.as_ref().is_some_and(|r| r.node == node))
            .map(|(s, _)| *s)
    }
}

/// Who holds a claim (`None` when its value is unreadable).
pub fn holder(c: &ClaimAt) -> Option<&str> {
    c.value.as_ref().map(|c| c.node.as_str())
}

/// Reads the cluster network `cluster init` stored.
pub fn read_network(kv: &dyn Kv) -> Result<ClusterNetwork, AgentError> {
    let e = kv
        .get(cluster::NETWORK_KEY)?
        .ok_or_else(|| AgentError::NotInitialised {
            key: cluster::NETWORK_KEY.to_string(),
        })?;
    serde_json::from_slice(&e.value).map_err(|err| AgentError::BadValue {
        key: e.key,
        reason: err.to_string(),
    })
}
