//! The one decoder of the store's keys (layout in [`super`]) into a typed
//! view of the cluster. The agent, the lab and the CLI all read the cluster
//! through it, so they all follow one rule for a record they cannot read:
//!
//! - it is **reported**: [`ClusterView::problems`] names its key and why;
//! - what it names is **taken**: a block, address or route slot whose value
//!   does not decode stays in the view with no holder (`value: None`), so no
//!   node claims it again and no orphan sweep gives it back; a node record
//!   that does not decode keeps its name present
//!   ([`ClusterView::node_present`]), so its claims are not orphans.
//!
//! Nothing is dropped silently. Commands that list the cluster show the
//! problems and exit non-zero; the agent logs them and keeps working.
//!
//! The decoder is pure: it takes the key/values of one listing
//! ([`Entry`], no store types), so it is tested without a store.
//!
//! Adding a kind of record (Kubernetes objects under their own prefix,
//! issue 11) is one field of [`ClusterView`] and one arm in
//! [`ClusterView::insert`]: the rule above comes with it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{
    parse_block_key, parse_ip_key, parse_route_key, Claim, ClaimKind, ClusterNetwork, NodeRecord,
    RouteEntry, BLOCKS_PREFIX, IPS_PREFIX, NETWORK_KEY, NODES_PREFIX, ROUTES_PREFIX,
};

/// One key/value of a store listing, as the decoder needs it.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub key: &'a str,
    pub value: &'a [u8],
    /// Revision of the key's last change (for compare-and-swap).
    pub mod_revision: i64,
    /// The lease the key is attached to (the store's lease id), if any.
    pub lease: Option<i64>,
}

/// A decoded value with the revision it was read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct At<T> {
    pub value: T,
    pub mod_revision: i64,
    pub lease: Option<i64>,
}

impl<T> At<T> {
    /// A value as if written at revision 0 (views built by hand in tests).
    pub fn new(value: T) -> Self {
        At {
            value,
            mod_revision: 0,
            lease: None,
        }
    }
}

/// A claim whose value did not decode still holds its key (`value: None`).
pub type ClaimAt = At<Option<Claim>>;

/// A record of the store that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Problem {
    pub key: String,
    pub reason: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.reason)
    }
}

/// The cluster as one listing of `/aksnet/` shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterView {
    /// The store revision of the listing.
    pub revision: i64,
    pub network: Option<At<ClusterNetwork>>,
    /// Node records that decode, by name.
    pub nodes: BTreeMap<String, At<NodeRecord>>,
    pub blocks: BTreeMap<Ipv4Net, ClaimAt>,
    pub ips: BTreeMap<Ipv4Addr, ClaimAt>,
    pub routes: BTreeMap<u32, At<Option<RouteEntry>>>,
    /// Node names whose record exists but does not decode.
    pub unreadable_nodes: BTreeSet<String>,
    /// Every record that could not be read, in key order.
    pub problems: Vec<Problem>,
}

impl ClusterView {
    /// Decodes one listing (the key/values under `/aksnet/` at `revision`).
    pub fn decode<'a>(revision: i64, entries: impl IntoIterator<Item = Entry<'a>>) -> Self {
        let mut v = ClusterView {
            revision,
            ..Default::default()
        };
        for e in entries {
            v.insert(e);
        }
        v.problems.sort();
        v
    }

    /// Adds one entry. Keys outside the sections below (other parts of the
    /// cluster that this version does not read) are left alone.
    fn insert(&mut self, e: Entry<'_>) {
        fn at<T>(e: &Entry<'_>, value: T) -> At<T> {
            At {
                value,
                mod_revision: e.mod_revision,
                lease: e.lease,
            }
        }
        if e.key == NETWORK_KEY {
            if let Some(n) = self.value(&e) {
                self.network = Some(at(&e, n));
            }
        } else if let Some(name) = e.key.strip_prefix(NODES_PREFIX) {
            match self.value::<NodeRecord>(&e) {
                Some(n) if n.name == name => {
                    self.nodes.insert(name.to_string(), at(&e, n));
                }
                Some(n) => {
                    self.problem(&e, format!("the record names another node, '{}'", n.name));
                    self.unreadable_nodes.insert(name.to_string());
                }
                None => {
                    self.unreadable_nodes.insert(name.to_string());
                }
            }
        } else if e.key.starts_with(BLOCKS_PREFIX) {
            match parse_block_key(e.key) {
                Some(b) => {
                    let c = self.value(&e);
                    self.blocks.insert(b, at(&e, c));
                }
                None => self.problem(
                    &e,
                    "not a block key (expected /aksnet/blocks/A.B.C.D-LEN)".into(),
                ),
            }
        } else if e.key.starts_with(IPS_PREFIX) {
            match parse_ip_key(e.key) {
                Some(ip) => {
                    let c = self.value(&e);
                    self.ips.insert(ip, at(&e, c));
                }
                None => self.problem(
                    &e,
                    "not an address key (expected /aksnet/ips/A.B.C.D)".into(),
                ),
            }
        } else if e.key.starts_with(ROUTES_PREFIX) {
            match parse_route_key(e.key) {
                Some(slot) => {
                    let r = self.value(&e);
                    self.routes.insert(slot, at(&e, r));
                }
                None => self.problem(
                    &e,
                    "not a route slot key (expected /aksnet/routes/NNNNN)".into(),
                ),
            }
        }
    }

    /// The entry's value, or `None` with a problem recorded.
    fn value<T: DeserializeOwned>(&mut self, e: &Entry<'_>) -> Option<T> {
        match serde_json::from_slice(e.value) {
            Ok(v) => Some(v),
            Err(err) => {
                self.problem(e, format!("the value does not decode: {err}"));
                None
            }
        }
    }

    fn problem(&mut self, e: &Entry<'_>, reason: String) {
        self.problems.push(Problem {
            key: e.key.to_string(),
            reason,
        });
    }

    /// Whether every record decoded.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    /// Whether the node has a record, readable or not.
    pub fn node_present(&self, name: &str) -> bool {
        self.nodes.contains_key(name) || self.unreadable_nodes.contains(name)
    }

    pub fn node(&self, name: &str) -> Option<&NodeRecord> {
        self.nodes.get(name).map(|a| &a.value)
    }

    /// Readable node records, in name order.
    pub fn node_records(&self) -> impl Iterator<Item = &NodeRecord> {
        self.nodes.values().map(|a| &a.value)
    }

    /// The node's blocks (normally one).
    pub fn blocks_of<'a>(&'a self, node: &'a str) -> impl Iterator<Item = Ipv4Net> + 'a {
        self.blocks
            .iter()
            .filter(move |(_, c)| holder(c) == Some(node))
            .map(|(b, _)| *b)
    }

    /// The node's /24 of the pod CIDR: the one its record names, else the
    /// one it holds a claim on.
    pub fn block_of(&self, node: &str) -> Option<Ipv4Net> {
        self.node(node).and_then(|n| n.block).or_else(|| {
            self.blocks
                .iter()
                .find(|(_, c)| {
                    c.value
                        .as_ref()
                        .is_some_and(|c| c.node == node && c.kind == ClaimKind::PodBlock)
                })
                .map(|(b, _)| *b)
        })
    }

    /// Azure CNI pod addresses the node holds, in address order.
    pub fn pod_ips_of(&self, node: &str) -> Vec<Ipv4Addr> {
        self.ips
            .iter()
            .filter(|(_, c)| {
                c.value
                    .as_ref()
                    .is_some_and(|c| c.node == node && c.kind == ClaimKind::PodIp)
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

    /// Whether any claim or route slot names the node.
    pub fn holds_anything(&self, node: &str) -> bool {
        self.blocks_of(node).next().is_some()
            || self
                .ips
                .values()
                .any(|c| c.value.as_ref().is_some_and(|c| c.node == node))
            || self.route_slots_of(node).next().is_some()
    }

    /// Addresses of the VNet the cluster holds: node IPs, Azure CNI pod
    /// addresses, and every address claim that does not decode (taken, by
    /// the rule above). What DESIGN §1 calls "VNet IPs consumed".
    pub fn vnet_ips_used(&self) -> usize {
        let mut all: BTreeSet<Ipv4Addr> = self.node_records().map(|n| n.ip).collect();
        all.extend(self.ips.keys().copied());
        all.len()
    }

    /// Builders for views made by hand (tests, fakes).
    pub fn with_node(mut self, n: NodeRecord) -> Self {
        self.nodes.insert(n.name.clone(), At::new(n));
        self
    }

    pub fn with_block(mut self, block: Ipv4Net, c: Claim) -> Self {
        self.blocks.insert(block, At::new(Some(c)));
        self
    }

    pub fn with_ip(mut self, ip: Ipv4Addr, c: Claim) -> Self {
        self.ips.insert(ip, At::new(Some(c)));
        self
    }

    pub fn with_route(mut self, slot: u32, r: RouteEntry) -> Self {
        self.routes.insert(slot, At::new(Some(r)));
        self
    }
}

/// Who holds a claim (`None` when its value is unreadable).
pub fn holder(c: &ClaimAt) -> Option<&str> {
    c.value.as_ref().map(|c| c.node.as_str())
}

#[cfg(test)]
mod tests {
    use super::super::{block_key, ip_key, node_key, route_key, RouteMode};
    use super::*;

    fn claim(node: &str, kind: ClaimKind) -> Vec<u8> {
        serde_json::to_vec(&Claim {
            node: node.into(),
            kind,
        })
        .unwrap()
    }

    fn decode(kvs: &[(String, Vec<u8>)]) -> ClusterView {
        ClusterView::decode(
            7,
            kvs.iter().enumerate().map(|(i, (k, v))| Entry {
                key: k,
                value: v,
                mod_revision: i as i64 + 1,
                lease: None,
            }),
        )
    }

    #[test]
    fn decodes_the_key_layout() {
        let n1 = NodeRecord {
            block: Some("10.244.0.0/24".parse().unwrap()),
            ..NodeRecord::new("node-1", "10.224.0.4".parse().unwrap(), RouteMode::Fabric)
        };
        let route = RouteEntry {
            node: "node-1".into(),
            destination: "10.244.0.0/24".parse().unwrap(),
            next_hop: "10.224.0.4".parse().unwrap(),
        };
        let kvs = vec![
            (node_key("node-1"), serde_json::to_vec(&n1).unwrap()),
            (
                block_key(&"10.244.0.0/24".parse().unwrap()),
                claim("node-1", ClaimKind::PodBlock),
            ),
            (
                ip_key("10.224.0.4".parse().unwrap()),
                claim("node-1", ClaimKind::NodeIp),
            ),
            (
                ip_key("10.224.0.9".parse().unwrap()),
                claim("node-1", ClaimKind::PodIp),
            ),
            (route_key(0), serde_json::to_vec(&route).unwrap()),
            ("/aksnet/services/x".into(), b"{}".to_vec()),
        ];
        let v = decode(&kvs);
        assert_eq!(v.revision, 7);
        assert!(v.is_clean(), "{:?}", v.problems);
        assert_eq!(v.node("node-1"), Some(&n1));
        assert_eq!(v.nodes["node-1"].mod_revision, 1);
        assert_eq!(v.blocks.len(), 1);
        assert_eq!(v.ips.len(), 2);
        assert_eq!(v.routes[&0].value, Some(route));
        assert_eq!(v.block_of("node-1").unwrap().to_string(), "10.244.0.0/24");
        assert_eq!(v.pod_ips_of("node-1").len(), 1);
        assert_eq!(v.route_slots_of("node-1").collect::<Vec<_>>(), vec![0]);
        assert_eq!(v.vnet_ips_used(), 2);
        assert!(v.holds_anything("node-1") && !v.holds_anything("node-2"));
    }

    #[test]
    fn unreadable_records_are_reported_and_what_they_name_stays_taken() {
        let kvs = vec![
            ("/aksnet/nodes/broken".into(), b"not json".to_vec()),
            (
                node_key("liar"),
                serde_json::to_vec(&NodeRecord::new(
                    "other",
                    "10.224.0.5".parse().unwrap(),
                    RouteMode::Fabric,
                ))
                .unwrap(),
            ),
            (
                block_key(&"10.244.3.0/24".parse().unwrap()),
                b"{\"node\":".to_vec(),
            ),
            (ip_key("10.224.0.77".parse().unwrap()), b"[]".to_vec()),
            (route_key(4), b"garbage".to_vec()),
            ("/aksnet/routes/junk".into(), b"{}".to_vec()),
            ("/aksnet/blocks/junk".into(), b"{}".to_vec()),
            (NETWORK_KEY.into(), b"{}".to_vec()),
        ];
        let v = decode(&kvs);
        let keys: Vec<&str> = v.problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "/aksnet/blocks/10.244.3.0-24",
                "/aksnet/blocks/junk",
                "/aksnet/cluster/network",
                "/aksnet/ips/10.224.0.77",
                "/aksnet/nodes/broken",
                "/aksnet/nodes/liar",
                "/aksnet/routes/00004",
                "/aksnet/routes/junk",
            ]
        );
        assert!(v.problems[0].reason.contains("does not decode"));
        assert!(v.problems[5].reason.contains("another node, 'other'"));
        // Taken, with no holder.
        let b: Ipv4Net = "10.244.3.0/24".parse().unwrap();
        assert_eq!(v.blocks[&b].value, None);
        assert!(v.ips.contains_key(&"10.224.0.77".parse().unwrap()));
        assert_eq!(v.routes[&4].value, None);
        assert_eq!(v.vnet_ips_used(), 1);
        // The nodes are present, though not readable.
        assert!(v.nodes.is_empty());
        assert!(v.node_present("broken") && v.node_present("liar"));
        assert!(!v.node_present("other"));
        assert!(v.network.is_none());
    }
}
