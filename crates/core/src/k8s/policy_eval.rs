//! NetworkPolicy (networking.k8s.io/v1) as a function of one flow: given
//! the store's Pods, Namespaces and NetworkPolicies and a connection (source
//! address, destination address after any Service DNAT, port, protocol),
//! whether the source pod's egress and the destination pod's ingress allow
//! it, and why. Pure; what `aksnet explain` and `lab check --policy` compute
//! their expectations with, and the specification the agent's nftables
//! rendering is tested against.
//!
//! Upstream semantics (`k8s.io/api/networking/v1/types.go`, the e2e netpol
//! suite), each with a test below:
//! - a pod is isolated for a direction iff a policy of its namespace selects
//!   it and has that direction in its `policyTypes`; when `policyTypes` is
//!   empty it is `[Ingress]`, plus `Egress` when the policy has egress rules;
//! - allowed = the union of every rule of every policy isolating the pod;
//!   a connection needs the source's egress AND the destination's ingress;
//! - a peer's `podSelector` alone selects pods of the policy's namespace,
//!   `namespaceSelector` alone every pod of the matching namespaces, both in
//!   one peer their AND; `ipBlock` (minus `except`) matches any address,
//!   pod addresses included;
//! - a port's protocol defaults to TCP; no `port` means every port of the
//!   protocol; `endPort` makes a range; a named port is resolved on the
//!   destination pod (the selected pod for ingress, the peer for egress),
//!   protocol included, and never matches a destination that is no pod;
//! - traffic from the destination pod's own node is always allowed
//!   (kubelet probes); a pod can always reach itself.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::Serialize;

use super::kind::Kind;
use super::meta::{IntOrString, Labels};
use super::namespace::{Namespace, SYSTEM_NAMESPACES};
use super::netpol::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use super::object::Object;
use super::pod::Pod;
use super::store::K8sState;

/// One direction of a pod's traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    /// As `policyTypes` writes it.
    pub fn policy_type(self) -> &'static str {
        match self {
            Direction::Ingress => "Ingress",
            Direction::Egress => "Egress",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

/// One connection, as the policy sees it: the destination after DNAT (a
/// Service's backend), the source as the destination receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub port: u16,
    /// `TCP`, `UDP` or `SCTP` (any case).
    pub protocol: String,
}

impl Flow {
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr, port: u16, protocol: &str) -> Self {
        Flow {
            src,
            dst,
            port,
            protocol: protocol.to_ascii_uppercase(),
        }
    }
}

/// A pod the policies can select: it has an address, is not on the host's
/// network and has not finished.
#[derive(Debug, Clone)]
pub struct PolicyPod<'a> {
    pub namespace: String,
    pub name: String,
    pub ip: Ipv4Addr,
    pub pod: &'a Pod,
}

impl PolicyPod<'_> {
    /// `NAMESPACE/NAME`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// A policy rule that allowed the flow: `ns/name`, its direction and the
/// rule's index in that direction's list (0-based).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleRef {
    pub policy: String,
    pub direction: Direction,
    pub rule: usize,
}

/// Why a direction allows or denies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// No policy isolates the pod in this direction.
    NotIsolated,
    /// Isolated, and at least one rule allows.
    AllowedByRule,
    /// Ingress from the pod's own node.
    OwnNode,
    /// The pod talking to itself.
    SamePod,
    /// Isolated and no rule allows.
    NoRuleAllows,
}

/// The verdict of one direction for one pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DirectionVerdict {
    pub direction: Direction,
    /// `NAMESPACE/NAME` of the pod whose policies decide.
    pub pod: String,
    pub allowed: bool,
    pub reason: Reason,
    /// Policies (`ns/name`) that select the pod and isolate it in this
    /// direction.
    pub isolated_by: Vec<String>,
    /// Every rule that allows the flow (empty unless `reason` is
    /// `allowed-by-rule`).
    pub allowed_by: Vec<RuleRef>,
    /// One line for a person.
    pub message: String,
}

/// Both directions. `None` where that end is no pod (an external address,
/// a node): no policy applies there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub egress: Option<DirectionVerdict>,
    pub ingress: Option<DirectionVerdict>,
    pub allowed: bool,
}

/// The objects policy is evaluated over, read once from a [`K8sState`].
#[derive(Debug, Clone, Default)]
pub struct PolicyView<'a> {
    pods: Vec<PolicyPod<'a>>,
    namespaces: BTreeMap<String, Labels>,
    policies: Vec<&'a NetworkPolicy>,
    /// Node name → its addresses, for "traffic from the pod's own node".
    node_ips: BTreeMap<String, Vec<Ipv4Addr>>,
}

impl<'a> PolicyView<'a> {
    /// Pods, Namespaces (the system ones included, labelled as the API
    /// server labels them) and NetworkPolicies of the state.
    pub fn new(state: &'a K8sState) -> Self {
        let mut v = PolicyView::default();
        for name in SYSTEM_NAMESPACES {
            v.namespaces
                .insert(name.to_string(), Namespace::new(name).metadata.labels);
        }
        for s in state.objects.values() {
            match &s.value {
                Object::Namespace(ns) => {
                    let mut ns = ns.clone();
                    ns.set_defaults();
                    v.namespaces
                        .insert(ns.metadata.name.clone(), ns.metadata.labels);
                }
                Object::Pod(p) => {
                    let host = p.spec.host_network == Some(true);
                    if let (false, false, Some(ip)) = (host, p.is_finished(), p.pod_ipv4()) {
                        v.pods.push(PolicyPod {
                            namespace: p
                                .metadata
                                .namespace
                                .clone()
                                .unwrap_or_else(|| "default".into()),
                            name: p.metadata.name.clone(),
                            ip,
                            pod: p,
                        });
                    }
                }
                Object::NetworkPolicy(np) => v.policies.push(np),
                _ => {}
            }
        }
        // A pod's namespace always exists for selectors, stored or not.
        for p in &v.pods {
            v.namespaces
                .entry(p.namespace.clone())
                .or_insert_with(|| Namespace::new(&p.namespace).metadata.labels);
        }
        debug_assert!(Kind::NetworkPolicy.namespaced());
        v
    }

    /// Node addresses by node name (the cluster view's records), so that
    /// ingress from a pod's own node is recognised even when the Pod's
    /// `status.hostIP` is not set.
    pub fn with_node_ips(self, node_ips: BTreeMap<String, Ipv4Addr>) -> Self {
        self.with_node_addresses(node_ips.into_iter().map(|(n, ip)| (n, vec![ip])).collect())
    }

    /// Every address of each node (its IP, a bridge's address: whatever
    /// source the node's own traffic to a pod can have).
    pub fn with_node_addresses(mut self, node_ips: BTreeMap<String, Vec<Ipv4Addr>>) -> Self {
        self.node_ips = node_ips;
        self
    }

    pub fn pods(&self) -> &[PolicyPod<'a>] {
        &self.pods
    }

    pub fn pod_by_ip(&self, ip: Ipv4Addr) -> Option<&PolicyPod<'a>> {
        self.pods.iter().find(|p| p.ip == ip)
    }

    pub fn pod(&self, namespace: &str, name: &str) -> Option<&PolicyPod<'a>> {
        self.pods
            .iter()
            .find(|p| p.namespace == namespace && p.name == name)
    }

    /// The namespace's labels (empty for one the store does not know).
    fn ns_labels(&self, ns: &str) -> Labels {
        self.namespaces.get(ns).cloned().unwrap_or_default()
    }

    /// The addresses of the node a pod runs on.
    fn node_addresses_of(&self, p: &PolicyPod<'_>) -> Vec<Ipv4Addr> {
        let mut v: Vec<Ipv4Addr> = p
            .pod
            .spec
            .node_name
            .as_deref()
            .and_then(|n| self.node_ips.get(n).cloned())
            .unwrap_or_default();
        v.extend(
            p.pod
                .status
                .as_ref()
                .and_then(|s| s.host_ip.as_deref())
                .and_then(|h| h.parse::<Ipv4Addr>().ok()),
        );
        v
    }

    /// Policies of the pod's namespace whose podSelector selects it and
    /// that isolate it for `dir`.
    pub fn isolating(&self, pod: &PolicyPod<'_>, dir: Direction) -> Vec<&'a NetworkPolicy> {
        self.policies
            .iter()
            .copied()
            .filter(|np| np.metadata.namespace.as_deref().unwrap_or("default") == pod.namespace)
            .filter(|np| np.spec.pod_selector.matches(&pod.pod.metadata.labels))
            .filter(|np| policy_types(np).contains(&dir))
            .collect()
    }

    /// Whether `peer` (one element of `from`/`to`) of a policy in
    /// `policy_ns` matches the remote end at `ip` (a pod when `remote` is).
    fn peer_matches(
        &self,
        peer: &NetworkPolicyPeer,
        policy_ns: &str,
        ip: Ipv4Addr,
        remote: Option<&PolicyPod<'_>>,
    ) -> bool {
        if let Some(b) = &peer.ip_block {
            let inside = |c: &str| c.parse::<Ipv4Net>().is_ok_and(|n| n.contains(&ip));
            return inside(&b.cidr) && !b.except.iter().any(|e| inside(e));
        }
        let Some(r) = remote else {
            // Selectors select pods only, never external addresses.
            return false;
        };
        match (&peer.pod_selector, &peer.namespace_selector) {
            (None, None) => false,
            (Some(ps), None) => r.namespace == policy_ns && ps.matches(&r.pod.metadata.labels),
            (ps, Some(nss)) => {
                nss.matches(&self.ns_labels(&r.namespace))
                    && ps
                        .as_ref()
                        .is_none_or(|ps| ps.matches(&r.pod.metadata.labels))
            }
        }
    }

    /// One direction for `pod`, `remote_ip` being the other end.
    fn direction(
        &self,
        dir: Direction,
        pod: &PolicyPod<'_>,
        remote_ip: Ipv4Addr,
        remote: Option<&PolicyPod<'_>>,
        flow: &Flow,
    ) -> DirectionVerdict {
        let isolating = self.isolating(pod, dir);
        let mut v = DirectionVerdict {
            direction: dir,
            pod: pod.id(),
            allowed: true,
            reason: Reason::NotIsolated,
            isolated_by: isolating.iter().map(|p| policy_id(p)).collect(),
            allowed_by: vec![],
            message: String::new(),
        };
        if remote.is_some_and(|r| r.ip == pod.ip) {
            v.reason = Reason::SamePod;
            v.message = format!("{} talking to itself is always allowed", v.pod);
            return v;
        }
        if dir == Direction::Ingress && self.node_addresses_of(pod).contains(&remote_ip) {
            v.reason = Reason::OwnNode;
            v.message = format!(
                "from {remote_ip}, the node {} runs on: always allowed",
                v.pod
            );
            return v;
        }
        if isolating.is_empty() {
            v.message = format!(
                "no policy selects {} for {}: not isolated, allowed",
                v.pod,
                dir.as_str()
            );
            return v;
        }
        // The pod whose container ports name a named port.
        let dst_pod = match dir {
            Direction::Ingress => Some(pod),
            Direction::Egress => remote,
        };
        for np in &isolating {
            let ns = np.metadata.namespace.as_deref().unwrap_or("default");
            let rules: Vec<(&[NetworkPolicyPort], &[NetworkPolicyPeer])> = match dir {
                Direction::Ingress => np
                    .spec
                    .ingress
                    .iter()
                    .flatten()
                    .map(|r| (r.ports.as_slice(), r.from.as_slice()))
                    .collect(),
                Direction::Egress => np
                    .spec
                    .egress
                    .iter()
                    .flatten()
                    .map(|r| (r.ports.as_slice(), r.to.as_slice()))
                    .collect(),
            };
            for (i, (ports, peers)) in rules.into_iter().enumerate() {
                let port_ok =
                    ports.is_empty() || ports.iter().any(|p| port_matches(p, flow, dst_pod));
                let peer_ok = peers.is_empty()
                    || peers
                        .iter()
                        .any(|p| self.peer_matches(p, ns, remote_ip, remote));
                if port_ok && peer_ok {
                    v.allowed_by.push(RuleRef {
                        policy: policy_id(np),
                        direction: dir,
                        rule: i,
                    });
                }
            }
        }
        let peer = match remote {
            Some(r) => format!("{} ({remote_ip})", r.id()),
            None => remote_ip.to_string(),
        };
        let what = format!(
            "{}/{} {} {peer}",
            flow.protocol,
            flow.port,
            match dir {
                Direction::Ingress => "from",
                Direction::Egress => "to",
            },
        );
        if v.allowed_by.is_empty() {
            v.allowed = false;
            v.reason = Reason::NoRuleAllows;
            v.message = format!(
                "{} is isolated for {} by {}; no rule allows {what}",
                v.pod,
                dir.as_str(),
                v.isolated_by.join(", ")
            );
        } else {
            v.reason = Reason::AllowedByRule;
            v.message = format!(
                "{what}: allowed by {}",
                v.allowed_by
                    .iter()
                    .map(|r| format!("{} {} rule {}", r.policy, r.direction.as_str(), r.rule))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        v
    }

    /// The egress of the pod at `flow.src` (none when it is no pod), to
    /// `flow.dst` after DNAT.
    pub fn egress(&self, flow: &Flow) -> Option<DirectionVerdict> {
        let src = self.pod_by_ip(flow.src)?;
        let dst = self.pod_by_ip(flow.dst);
        Some(self.direction(Direction::Egress, src, flow.dst, dst, flow))
    }

    /// The ingress of the pod at `flow.dst` (none when it is no pod), from
    /// `flow.src` as the pod receives it (after any SNAT).
    pub fn ingress(&self, flow: &Flow) -> Option<DirectionVerdict> {
        let dst = self.pod_by_ip(flow.dst)?;
        let src = self.pod_by_ip(flow.src);
        Some(self.direction(Direction::Ingress, dst, flow.src, src, flow))
    }

    /// The source pod's egress and the destination pod's ingress for `flow`.
    pub fn evaluate(&self, flow: &Flow) -> Verdict {
        let src = self.pod_by_ip(flow.src);
        let dst = self.pod_by_ip(flow.dst);
        let egress = src.map(|s| self.direction(Direction::Egress, s, flow.dst, dst, flow));
        let ingress = dst.map(|d| self.direction(Direction::Ingress, d, flow.src, src, flow));
        let allowed =
            egress.as_ref().is_none_or(|v| v.allowed) && ingress.as_ref().is_none_or(|v| v.allowed);
        Verdict {
            egress,
            ingress,
            allowed,
        }
    }
}

/// `NAMESPACE/NAME` of a policy.
pub fn policy_id(np: &NetworkPolicy) -> String {
    format!(
        "{}/{}",
        np.metadata.namespace.as_deref().unwrap_or("default"),
        np.metadata.name
    )
}

/// The directions a policy isolates, with the API server's defaulting
/// applied (for objects stored before it or written by hand).
pub fn policy_types(np: &NetworkPolicy) -> Vec<Direction> {
    let s = &np.spec;
    if s.policy_types.is_empty() {
        let mut t = vec![Direction::Ingress];
        if s.egress.as_ref().is_some_and(|e| !e.is_empty()) {
            t.push(Direction::Egress);
        }
        return t;
    }
    let mut t = vec![];
    for d in [Direction::Ingress, Direction::Egress] {
        if s.policy_types.iter().any(|x| x == d.policy_type()) {
            t.push(d);
        }
    }
    t
}

/// Whether one `ports` entry matches the flow; a named port is looked up
/// on `dst_pod` (none: it matches nothing).
fn port_matches(p: &NetworkPolicyPort, flow: &Flow, dst_pod: Option<&PolicyPod<'_>>) -> bool {
    let proto = p.protocol.as_deref().unwrap_or("TCP").to_ascii_uppercase();
    if proto != flow.protocol {
        return false;
    }
    match &p.port {
        None => true,
        Some(IntOrString::Int(n)) => {
            let end = p.end_port.unwrap_or(*n);
            (*n..=end).contains(&i64::from(flow.port))
        }
        Some(IntOrString::Str(name)) => dst_pod.is_some_and(|d| {
            d.pod
                .spec
                .containers
                .iter()
                .flat_map(|c| c.ports.iter())
                .any(|cp| {
                    cp.name.as_deref() == Some(name.as_str())
                        && cp.protocol().eq_ignore_ascii_case(&flow.protocol)
                        && cp.container_port == i64::from(flow.port)
                })
        }),
    }
}

#[cfg(test)]
#[path = "policy_eval_tests.rs"]
mod tests;
