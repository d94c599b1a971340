//! Where Kubernetes objects live in the cluster store, and a pure decoder of
//! one key/value, for whoever lists `/aksnet/` (the cluster view, `aksnet
//! get`, the agent's Services controller).
//!
//! | key | value |
//! |---|---|
//! | `/aksnet/k8s/<resource>/<namespace>/<name>` | the object as JSON (`Service`, `Pod`, …; resource = `services`, `pods`, `deployments`, `endpointslices`, `networkpolicies`) |
//! | `/aksnet/k8s/namespaces/<name>` | a `Namespace` |
//! | `/aksnet/k8s/ipaddresses/<a.b.c.d>` | [`Allocation`]: the Service holding that ClusterIP |
//! | `/aksnet/k8s/nodeports/<port>` | [`Allocation`]: the Service holding that NodePort (or `healthCheckNodePort`) |
//!
//! Every allocation is its own key, created in the same transaction as the
//! Service that holds it (create-if-absent), so two Services can never hold
//! one ClusterIP or NodePort, and the key goes with the Service.
//! `ipaddresses` follows upstream's `IPAddress` objects (networking.k8s.io,
//! the ClusterIP allocator since 1.33). `metadata.resourceVersion` is not
//! stored: it is the key's `mod_revision`, set when read.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::kind::Kind;
use super::object::{DecodeError, Object, ObjectId};

pub const K8S_PREFIX: &str = "/aksnet/k8s/";
pub const IPADDRESSES_PREFIX: &str = "/aksnet/k8s/ipaddresses/";
pub const NODEPORTS_PREFIX: &str = "/aksnet/k8s/nodeports/";

/// `/aksnet/k8s/services/default/web`, `/aksnet/k8s/namespaces/shop`.
pub fn object_key(id: &ObjectId) -> String {
    if id.kind.namespaced() {
        format!(
            "{K8S_PREFIX}{}/{}/{}",
            id.kind.plural(),
            id.namespace,
            id.name
        )
    } else {
        format!("{K8S_PREFIX}{}/{}", id.kind.plural(), id.name)
    }
}

/// Every object of a kind (in one namespace, or all).
pub fn kind_prefix(kind: Kind, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) if kind.namespaced() => format!("{K8S_PREFIX}{}/{ns}/", kind.plural()),
        _ => format!("{K8S_PREFIX}{}/", kind.plural()),
    }
}

pub fn cluster_ip_key(ip: Ipv4Addr) -> String {
    format!("{IPADDRESSES_PREFIX}{ip}")
}

/// Zero-padded so a listing is in port order.
pub fn node_port_key(port: u16) -> String {
    format!("{NODEPORTS_PREFIX}{port:05}")
}

/// Which Service holds a ClusterIP or a NodePort.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    pub namespace: String,
    pub service: String,
}

/// What a key under [`K8S_PREFIX`] names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyKind {
    Object(ObjectId),
    ClusterIp(Ipv4Addr),
    NodePort(u16),
}

/// Reads a key; `None` when it is not one of ours.
pub fn parse_key(key: &str) -> Option<KeyKind> {
    let rest = key.strip_prefix(K8S_PREFIX)?;
    let (resource, rest) = rest.split_once('/')?;
    match resource {
        "ipaddresses" => return rest.parse().ok().map(KeyKind::ClusterIp),
        "nodeports" => return rest.parse().ok().map(KeyKind::NodePort),
        _ => {}
    }
    let kind = Kind::ALL.into_iter().find(|k| k.plural() == resource)?;
    let (ns, name) = if kind.namespaced() {
        rest.split_once('/')?
    } else {
        ("", rest)
    };
    (!name.is_empty() && !name.contains('/'))
        .then(|| KeyKind::Object(ObjectId::new(kind, ns, name)))
}

/// One decoded entry.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Object(Box<Object>),
    ClusterIp(Ipv4Addr, Allocation),
    NodePort(u16, Allocation),
}

/// Why a key under [`K8S_PREFIX`] did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct BadEntry {
    pub key: String,
    pub reason: String,
}

/// Decodes one key/value: `None` for a key that is not ours, an error for
/// one that is but does not decode (the caller reports it; for an
/// allocation the key still counts as taken).
pub fn decode(key: &str, value: &[u8], mod_revision: i64) -> Option<Result<Entry, BadEntry>> {
    let kind = parse_key(key)?;
    let bad = |reason: String| BadEntry {
        key: key.to_string(),
        reason,
    };
    Some(match kind {
        KeyKind::Object(id) => Object::from_slice(id.kind, value)
            .map_err(|e: DecodeError| bad(e.to_string()))
            .and_then(|mut o| {
                if o.id() != id {
                    return Err(bad(format!("the value is {}, not {id}", o.id())));
                }
                o.meta_mut().resource_version = Some(mod_revision.to_string());
                Ok(Entry::Object(Box::new(o)))
            }),
        KeyKind::ClusterIp(ip) => serde_json::from_slice(value)
            .map(|a| Entry::ClusterIp(ip, a))
            .map_err(|e| bad(e.to_string())),
        KeyKind::NodePort(p) => serde_json::from_slice(value)
            .map(|a| Entry::NodePort(p, a))
            .map_err(|e| bad(e.to_string())),
    })
}

/// A stored value with the revision it was read at (for compare-and-swap).
#[derive(Debug, Clone, PartialEq)]
pub struct Stored<T> {
    pub value: T,
    pub mod_revision: i64,
}

/// Every Kubernetes object and allocation of one listing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct K8sState {
    pub objects: BTreeMap<ObjectId, Stored<Object>>,
    /// `None`: the key exists but its value does not decode; it still
    /// holds the address.
    pub cluster_ips: BTreeMap<Ipv4Addr, Stored<Option<Allocation>>>,
    pub node_ports: BTreeMap<u16, Stored<Option<Allocation>>>,
    /// Object keys whose value does not decode (they still exist: an apply
    /// of that name replaces them).
    pub undecodable: BTreeMap<ObjectId, i64>,
    pub bad: Vec<BadEntry>,
}

impl K8sState {
    /// Adds one key/value of a listing; keys that are not ours are ignored.
    pub fn insert(&mut self, key: &str, value: &[u8], mod_revision: i64) {
        let Some(res) = decode(key, value, mod_revision) else {
            return;
        };
        match res {
            Ok(Entry::Object(o)) => {
                self.objects.insert(
                    o.id(),
                    Stored {
                        value: *o,
                        mod_revision,
                    },
                );
            }
            Ok(Entry::ClusterIp(ip, a)) => {
                self.cluster_ips.insert(
                    ip,
                    Stored {
                        value: Some(a),
                        mod_revision,
                    },
                );
            }
            Ok(Entry::NodePort(p, a)) => {
                self.node_ports.insert(
                    p,
                    Stored {
                        value: Some(a),
                        mod_revision,
                    },
                );
            }
            Err(e) => {
                match parse_key(key) {
                    Some(KeyKind::ClusterIp(ip)) => {
                        self.cluster_ips.insert(
                            ip,
                            Stored {
                                value: None,
                                mod_revision,
                            },
                        );
                    }
                    Some(KeyKind::NodePort(p)) => {
                        self.node_ports.insert(
                            p,
                            Stored {
                                value: None,
                                mod_revision,
                            },
                        );
                    }
                    Some(KeyKind::Object(id)) => {
                        self.undecodable.insert(id, mod_revision);
                    }
                    None => {}
                }
                self.bad.push(e);
            }
        }
    }

    pub fn get(&self, id: &ObjectId) -> Option<&Object> {
        self.objects.get(id).map(|s| &s.value)
    }

    /// Objects of one kind, in one namespace or all, in key order.
    pub fn of_kind<'a>(
        &'a self,
        kind: Kind,
        namespace: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Object> + 'a {
        self.objects
            .iter()
            .filter(move |(id, _)| id.kind == kind && namespace.is_none_or(|n| id.namespace == n))
            .map(|(_, s)| &s.value)
    }

    /// Whether a namespace exists: stored, or one of the system namespaces
    /// every initialised cluster has.
    pub fn namespace_exists(&self, name: &str) -> bool {
        super::namespace::is_system(name)
            || self
                .objects
                .contains_key(&ObjectId::new(Kind::Namespace, "", name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let id = ObjectId::new(Kind::Service, "default", "web");
        assert_eq!(object_key(&id), "/aksnet/k8s/services/default/web");
        assert_eq!(parse_key(&object_key(&id)), Some(KeyKind::Object(id)));
        let ns = ObjectId::new(Kind::Namespace, "", "shop");
        assert_eq!(object_key(&ns), "/aksnet/k8s/namespaces/shop");
        assert_eq!(parse_key(&object_key(&ns)), Some(KeyKind::Object(ns)));
        assert_eq!(node_port_key(30080), "/aksnet/k8s/nodeports/30080");
        assert_eq!(
            parse_key(&node_port_key(30080)),
            Some(KeyKind::NodePort(30080))
        );
        let ip: Ipv4Addr = "10.0.0.7".parse().unwrap();
        assert_eq!(parse_key(&cluster_ip_key(ip)), Some(KeyKind::ClusterIp(ip)));
        assert_eq!(parse_key("/aksnet/nodes/node-1"), None);
        assert_eq!(parse_key("/aksnet/k8s/services/default"), None);
        assert_eq!(parse_key("/aksnet/k8s/configmaps/default/x"), None);
        assert_eq!(kind_prefix(Kind::Pod, Some("a")), "/aksnet/k8s/pods/a/");
    }

    #[test]
    fn decode_keeps_what_it_cannot_read() {
        let mut st = K8sState::default();
        st.insert("/aksnet/k8s/ipaddresses/10.0.0.9", b"garbage", 7);
        st.insert(
            "/aksnet/k8s/nodeports/30001",
            br#"{"namespace":"default","service":"web"}"#,
            8,
        );
        st.insert(
            "/aksnet/k8s/services/default/web",
            br#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"web","namespace":"default"},"spec":{"ports":[{"port":80}]}}"#,
            9,
        );
        st.insert(
            "/aksnet/k8s/pods/default/other",
            br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"default"}}"#,
            10,
        );
        st.insert("/aksnet/nodes/n1", b"{}", 11);
        assert_eq!(st.cluster_ips[&"10.0.0.9".parse().unwrap()].value, None);
        assert_eq!(st.node_ports[&30001].value.as_ref().unwrap().service, "web");
        let web = st
            .get(&ObjectId::new(Kind::Service, "default", "web"))
            .unwrap();
        assert_eq!(web.meta().resource_version.as_deref(), Some("9"));
        assert_eq!(st.bad.len(), 2, "{:?}", st.bad);
        assert!(st
            .undecodable
            .contains_key(&ObjectId::new(Kind::Pod, "default", "other")));
        assert!(st.namespace_exists("default") && st.namespace_exists("kube-system"));
        assert!(!st.namespace_exists("shop"));
    }
}
