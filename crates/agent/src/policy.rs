//! Kubernetes NetworkPolicy as the desired state of a table the agent owns
//! (`ip aksnet-policy`), for the pods of its own node.
//!
//! ```text
//! table ip aksnet-policy {
//!   set node-ips     { ipv4_addr }                 # the node's own addresses
//!   map egress-pods  { ipv4_addr : verdict }       # isolated local pod → goto eg-IP
//!   map ingress-pods { ipv4_addr : verdict }       # isolated local pod → goto in-IP
//!   chain egress  { type filter hook forward priority -1;
//!                   ct state established,related accept
//!                   ip saddr vmap @egress-pods }
//!   chain ingress { type filter hook forward priority 0;
//!                   ct state established,related accept
//!                   ip saddr @node-ips accept
//!                   ip daddr vmap @ingress-pods }
//!   chain in-10.244.0.5 { jump pol-TAG-NS-NAME-in; …; drop }   # one jump per policy selecting it
//!   chain pol-TAG-…-in  { ip saddr @TAG-in0 accept                       # from: peers
//!                         ip saddr @TAG-in1 meta l4proto tcp th dport 80 accept
//!                         ip saddr @TAG-in1 ip daddr . meta l4proto . th dport @TAG-in1p1 accept }  # named port
//!   set TAG-in0   { ipv4_addr; interval }           # peer pods' IPs and ipBlocks (less except)
//!   set TAG-in1p1 { ipv4_addr . inet_proto . inet_service }  # named port, resolved per pod
//! }
//! ```
//!
//! The packet path is two verdict-map lookups (one per direction), then
//! one jump per policy that selects the pod, each a few set lookups: never
//! a rule per peer pod. A pod or namespace label change moves set
//! elements; a policy change rewrites that policy's chain; both go through
//! [`aksnet_nft::diff`] as O(change).
//!
//! The chains hook `forward` at the filter priority, after the Services
//! table's DNAT (prerouting) and before SNAT (postrouting): policy sees a
//! Service's backend as the destination and the pod as the source. With
//! kubenet, same-node traffic is bridged; `br_netfilter` hands bridged
//! IPv4 to the same `forward` hook (tested in `tests/policy_kernel.rs`).
//! Egress is evaluated first (priority -1): a packet leaving an isolated
//! local pod must be allowed by its egress policies and, when its
//! destination is a local pod too, by that pod's ingress policies.
//! Traffic from the node itself (the output hook, and `ip saddr
//! @node-ips`) is never isolated, as upstream requires.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use aksnet_core::k8s::meta::{IntOrString, LabelSelector, Labels};
use aksnet_core::k8s::namespace::NAME_LABEL;
use aksnet_core::k8s::netpol::{IpBlock, NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use aksnet_core::k8s::pod::Pod;
use aksnet_nft::build::{accept, ct_state, drop, eq, in_set, jump, l4proto};
use aksnet_nft::{
    priority, BaseChain, Chain, ChainType, CtState, ElemData, Element, Expr, Family, Hook, KeyType,
    L4Proto, MetaKey, Payload, Rule, Set, Stmt, Table, TableId, Value, Verdict, VmapRef,
};
use ipnet::{IpNet, Ipv4Net};

pub const FAMILY: Family = Family::Ip;
pub const TABLE: &str = "aksnet-policy";
pub const INGRESS_PODS: &str = "ingress-pods";
pub const EGRESS_PODS: &str = "egress-pods";
pub const NODE_IPS: &str = "node-ips";
/// Egress before ingress on the same hook (see the module comment).
const EGRESS_PRIORITY: i32 = priority::FILTER - 1;
const INGRESS_PRIORITY: i32 = priority::FILTER;

pub fn table_id() -> TableId {
    TableId::new(FAMILY, TABLE)
}

/// One named container port of a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedPort {
    pub name: String,
    pub protocol: L4Proto,
    pub port: u16,
}

/// A pod as policy sees it: where it is, what labels it has, what it
/// serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub labels: Labels,
    pub ip: Ipv4Addr,
    pub node: Option<String>,
    pub ports: Vec<NamedPort>,
}

impl PodInfo {
    /// A pod with an IPv4 address; hostNetwork pods (the node's address,
    /// undefined for policy upstream) and finished pods are left out.
    pub fn from_pod(p: &Pod) -> Option<PodInfo> {
        if p.spec.host_network == Some(true) || p.is_finished() {
            return None;
        }
        let ip = p.pod_ipv4()?;
        let ports = p
            .spec
            .containers
            .iter()
            .flat_map(|c| c.ports.iter())
            .filter_map(|cp| {
                Some(NamedPort {
                    name: cp.name.clone()?,
                    protocol: proto(Some(cp.protocol()))?,
                    port: u16::try_from(cp.container_port).ok().filter(|n| *n > 0)?,
                })
            })
            .collect();
        Some(PodInfo {
            namespace: p
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into()),
            name: p.metadata.name.clone(),
            labels: p.metadata.labels.clone(),
            ip,
            node: p.spec.node_name.clone(),
            ports,
        })
    }

    /// The number a named port has on this pod, for a protocol.
    pub fn named(&self, name: &str, protocol: L4Proto) -> Option<u16> {
        self.ports
            .iter()
            .find(|p| p.name == name && p.protocol == protocol)
            .map(|p| p.port)
    }
}

/// Everything the policy table is computed from.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PolicyInput {
    /// This node's name: its pods are the ones policed here.
    pub node: String,
    /// This node's addresses: traffic from them is always allowed.
    pub node_ips: Vec<Ipv4Addr>,
    /// Every pod of the cluster with an address (peers are cluster-wide).
    pub pods: Vec<PodInfo>,
    /// Namespace labels by name (a namespace missing here has only its
    /// name label, as the API server gives every namespace).
    pub namespaces: BTreeMap<String, Labels>,
    /// Every NetworkPolicy, defaulted.
    pub policies: Vec<NetworkPolicy>,
}

impl PolicyInput {
    fn ns_labels(&self, ns: &str) -> Labels {
        self.namespaces.get(ns).cloned().unwrap_or_else(|| {
            let mut l = Labels::new();
            l.insert(NAME_LABEL.into(), ns.into());
            l
        })
    }
}

/// What was computed besides the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Compiled {
    pub table: Table,
    /// Policies that select at least one pod of this node.
    pub policies: usize,
    /// Local pods isolated for ingress, for egress.
    pub isolated_ingress: usize,
    pub isolated_egress: usize,
}

/// Direction of a rule set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    pub fn policy_type(self) -> &'static str {
        match self {
            Direction::Ingress => "Ingress",
            Direction::Egress => "Egress",
        }
    }

    fn short(self) -> &'static str {
        match self {
            Direction::Ingress => "in",
            Direction::Egress => "eg",
        }
    }

    /// The field holding the peer: the source for ingress.
    fn peer_addr(self) -> Payload {
        match self {
            Direction::Ingress => Payload::IpSaddr,
            Direction::Egress => Payload::IpDaddr,
        }
    }
}

/// `TCP`, `UDP`, `SCTP` (absent: TCP, the API's default).
pub fn proto(p: Option<&str>) -> Option<L4Proto> {
    match p.unwrap_or("TCP") {
        "TCP" => Some(L4Proto::Tcp),
        "UDP" => Some(L4Proto::Udp),
        "SCTP" => Some(L4Proto::Sctp),
        _ => None,
    }
}

/// FNV-1a, 32 bits (as the Services table): stable short names.
fn tag(s: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{h:08x}")
}

fn policy_ns(p: &NetworkPolicy) -> &str {
    p.metadata.namespace.as_deref().unwrap_or("default")
}

/// Whether a policy selects a pod (its namespace, its podSelector).
pub fn selects(p: &NetworkPolicy, pod: &PodInfo) -> bool {
    pod.namespace == policy_ns(p) && p.spec.pod_selector.matches(&pod.labels)
}

/// The pods one peer names (`ipBlock` peers name none here: they are
/// address ranges). A podSelector alone is the policy's namespace; a
/// namespaceSelector alone every pod of the matching namespaces; both in
/// one peer must both match.
pub fn peer_pods<'a>(
    input: &'a PolicyInput,
    policy_namespace: &str,
    peer: &NetworkPolicyPeer,
) -> Vec<&'a PodInfo> {
    let (ps, ns): (Option<&LabelSelector>, Option<&LabelSelector>) =
        (peer.pod_selector.as_ref(), peer.namespace_selector.as_ref());
    if ps.is_none() && ns.is_none() {
        return vec![];
    }
    input
        .pods
        .iter()
        .filter(|pod| match ns {
            None => pod.namespace == policy_namespace,
            Some(sel) => sel.matches(&input.ns_labels(&pod.namespace)),
        })
        .filter(|pod| ps.is_none_or(|sel| sel.matches(&pod.labels)))
        .collect()
}

/// An inclusive IPv4 range.
type Range = (u32, u32);

fn net_range(n: &Ipv4Net) -> Range {
    (u32::from(n.network()), u32::from(n.broadcast()))
}

/// `cidr` less every `except`, as ranges. An IPv6 block never matches an
/// IPv4 packet: nothing.
pub fn block_ranges(b: &IpBlock) -> Vec<Range> {
    let Ok(cidr) = b.cidr.parse::<Ipv4Net>() else {
        return vec![];
    };
    let mut out = vec![net_range(&cidr.trunc())];
    for e in &b.except {
        let Ok(ex) = e.parse::<Ipv4Net>() else {
            continue;
        };
        let (elo, ehi) = net_range(&ex.trunc());
        out = out
            .into_iter()
            .flat_map(|(lo, hi)| {
                let mut keep = vec![];
                if ehi < lo || elo > hi {
                    keep.push((lo, hi));
                } else {
                    if elo > lo {
                        keep.push((lo, elo - 1));
                    }
                    if ehi < hi {
                        keep.push((ehi + 1, hi));
                    }
                }
                keep
            })
            .collect();
    }
    out
}

/// Sorted, overlapping and adjacent ranges joined: what an interval set
/// accepts (the kernel refuses overlapping elements).
fn merge(mut v: Vec<Range>) -> Vec<Range> {
    v.sort_unstable();
    let mut out: Vec<Range> = vec![];
    for (lo, hi) in v {
        match out.last_mut() {
            Some(last) if u64::from(lo) <= u64::from(last.1) + 1 => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

/// A merged range as one element: an address, a prefix, or `a-b`. (Never
/// split into adjacent prefixes: the kernel keeps adjacent intervals apart
/// on insert but nft may list them joined, and the listing would no longer
/// read back equal to the rendering.)
fn range_value((lo, hi): Range) -> Value {
    let (a, b) = (Ipv4Addr::from(lo), Ipv4Addr::from(hi));
    if lo == hi {
        return addr(a);
    }
    let size = u64::from(hi) - u64::from(lo) + 1;
    if size.is_power_of_two() && u64::from(lo) % size == 0 {
        let len = 32 - u8::try_from(size.trailing_zeros()).unwrap_or(32);
        if let Ok(n) = Ipv4Net::new(a, len) {
            return Value::net(IpNet::V4(n));
        }
    }
    Value::AddrRange(IpAddr::V4(a), IpAddr::V4(b))
}

fn addr_set(ranges: Vec<Range>) -> Set {
    let mut s = Set::new(vec![KeyType::Ipv4Addr]).interval();
    for r in merge(ranges) {
        s.insert(range_value(r), Element::default());
    }
    s
}

fn verdict_elem(v: Verdict) -> Element {
    Element {
        data: Some(ElemData::Verdict(v)),
        ..Element::default()
    }
}

fn addr(ip: Ipv4Addr) -> Value {
    Value::Addr(IpAddr::V4(ip))
}

fn daddr_proto_dport() -> Expr {
    Expr::Concat(vec![
        Expr::Payload(Payload::IpDaddr),
        Expr::Meta(MetaKey::L4Proto),
        Expr::Payload(Payload::ThDport),
    ])
}

/// A policy's chain for one direction: `pol-TAG-NS-NAME-in`.
pub fn policy_chain(p: &NetworkPolicy, d: Direction) -> String {
    let ns = policy_ns(p);
    let short = |s: &str| s.chars().take(40).collect::<String>();
    format!(
        "pol-{}-{}-{}-{}",
        policy_tag(p),
        short(ns),
        short(&p.metadata.name),
        d.short()
    )
}

fn policy_tag(p: &NetworkPolicy) -> String {
    tag(&format!("{}/{}", policy_ns(p), p.metadata.name))
}

/// The chain of one isolated local pod and direction: `in-10.244.0.5`.
pub fn pod_chain(ip: Ipv4Addr, d: Direction) -> String {
    format!("{}-{ip}", d.short())
}

/// One rule (`ingress[i]` / `egress[i]`) of a policy as nft rules in its
/// chain, with the sets they look up.
struct RuleOut {
    rules: Vec<Rule>,
    sets: Vec<(String, Set)>,
}

fn compile_rule(
    input: &PolicyInput,
    p: &NetworkPolicy,
    d: Direction,
    index: usize,
    ports: &[NetworkPolicyPort],
    peers: &[NetworkPolicyPeer],
    local_selected: &[&PodInfo],
) -> RuleOut {
    let ns = policy_ns(p);
    let base = format!("{}-{}{index}", policy_tag(p), d.short());
    let mut out = RuleOut {
        rules: vec![],
        sets: vec![],
    };
    let what = format!("{}[{index}]", d.policy_type().to_lowercase());
    // `from`/`to` empty: every peer; else the union of its peers.
    let peer_pods: Vec<&PodInfo> = peers
        .iter()
        .flat_map(|peer| peer_pods(input, ns, peer))
        .collect();
    let peer_match = if peers.is_empty() {
        None
    } else {
        let mut ranges: Vec<Range> = peer_pods
            .iter()
            .map(|pod| (u32::from(pod.ip), u32::from(pod.ip)))
            .collect();
        for peer in peers {
            if let Some(b) = &peer.ip_block {
                ranges.extend(block_ranges(b));
            }
        }
        out.sets.push((base.clone(), addr_set(ranges)));
        Some(in_set(Expr::Payload(d.peer_addr()), &base))
    };
    if ports.is_empty() {
        let mut stmts: Vec<Stmt> = peer_match.into_iter().collect();
        stmts.push(accept());
        out.rules
            .push(Rule::new(stmts).comment(format!("{what}: all ports")));
        return out;
    }
    for (j, port) in ports.iter().enumerate() {
        let Some(protocol) = proto(port.protocol.as_deref()) else {
            // Validation refuses other protocols; a rule that cannot be
            // read allows nothing (the pod stays isolated).
            continue;
        };
        let mut stmts: Vec<Stmt> = vec![];
        let comment = match &port.port {
            None => {
                if let Some(m) = &peer_match {
                    stmts.push(m.clone());
                }
                stmts.push(l4proto(protocol));
                format!("{what}.ports[{j}]: every {} port", protocol.as_str())
            }
            Some(IntOrString::Int(n)) => {
                let Ok(lo) = u16::try_from(*n) else { continue };
                if let Some(m) = &peer_match {
                    stmts.push(m.clone());
                }
                stmts.push(l4proto(protocol));
                let hi = port
                    .end_port
                    .and_then(|e| u16::try_from(e).ok())
                    .filter(|e| *e > lo);
                let v = match hi {
                    Some(hi) => Value::PortRange(lo, hi),
                    None => Value::Port(lo),
                };
                stmts.push(eq(Expr::Payload(Payload::ThDport), v));
                format!("{what}.ports[{j}]")
            }
            Some(IntOrString::Str(name)) => {
                // Named ports resolve on the destination pod: the selected
                // (local) pod for ingress, each peer pod for egress (every
                // pod when `to` is empty). Never an ipBlock destination.
                let dests: Vec<&PodInfo> = match d {
                    Direction::Ingress => local_selected.to_vec(),
                    Direction::Egress if peers.is_empty() => input.pods.iter().collect(),
                    Direction::Egress => peer_pods.clone(),
                };
                let set_name = format!("{base}p{j}");
                let mut set = Set::new(vec![
                    KeyType::Ipv4Addr,
                    KeyType::InetProto,
                    KeyType::InetService,
                ]);
                for pod in dests {
                    if let Some(n) = pod.named(name, protocol) {
                        set.insert(
                            Value::Concat(vec![
                                addr(pod.ip),
                                Value::Proto(protocol),
                                Value::Port(n),
                            ]),
                            Element::default(),
                        );
                    }
                }
                out.sets.push((set_name.clone(), set));
                if d == Direction::Ingress {
                    if let Some(m) = &peer_match {
                        stmts.push(m.clone());
                    }
                }
                stmts.push(in_set(daddr_proto_dport(), &set_name));
                format!("{what}.ports[{j}]: named port {name}")
            }
        };
        stmts.push(accept());
        out.rules.push(Rule::new(stmts).comment(comment));
    }
    out
}

fn base(hook: Hook, prio: i32, rules: Vec<Rule>) -> Chain {
    Chain::base(BaseChain::new(ChainType::Filter, hook, prio), rules)
}

/// The desired table for `input`.
pub fn desired(input: &PolicyInput) -> Compiled {
    let mut t = Table::new(FAMILY, TABLE);
    let mut node_ips = Set::new(vec![KeyType::Ipv4Addr]);
    for ip in &input.node_ips {
        node_ips.insert(addr(*ip), Element::default());
    }
    let local: Vec<&PodInfo> = input
        .pods
        .iter()
        .filter(|p| p.node.as_deref() == Some(input.node.as_str()))
        .collect();
    // Per local pod and direction, the policy chains to jump to, in the
    // order of the policies (order does not change the union; it keeps
    // the chains stable).
    let mut jumps: BTreeMap<(Ipv4Addr, Direction), Vec<String>> = BTreeMap::new();
    let mut isolated: BTreeSet<(Ipv4Addr, Direction)> = BTreeSet::new();
    let mut programmed = 0;
    let mut policies: Vec<&NetworkPolicy> = input.policies.iter().collect();
    policies
        .sort_by(|a, b| (policy_ns(a), &a.metadata.name).cmp(&(policy_ns(b), &b.metadata.name)));
    for p in policies {
        let selected: Vec<&PodInfo> = local
            .iter()
            .copied()
            .filter(|pod| selects(p, pod))
            .collect();
        if selected.is_empty() {
            continue; // nothing of this node: no chain, no sets here
        }
        programmed += 1;
        for d in [Direction::Ingress, Direction::Egress] {
            if !p.isolates(d.policy_type()) {
                continue;
            }
            let mut rules = vec![];
            match d {
                Direction::Ingress => {
                    for (i, r) in p.spec.ingress.iter().flatten().enumerate() {
                        let o = compile_rule(input, p, d, i, &r.ports, &r.from, &selected);
                        rules.extend(o.rules);
                        for (n, s) in o.sets {
                            t.set(&n, s);
                        }
                    }
                }
                Direction::Egress => {
                    for (i, r) in p.spec.egress.iter().flatten().enumerate() {
                        let o = compile_rule(input, p, d, i, &r.ports, &r.to, &selected);
                        rules.extend(o.rules);
                        for (n, s) in o.sets {
                            t.set(&n, s);
                        }
                    }
                }
            }
            let chain = policy_chain(p, d);
            let has_rules = !rules.is_empty();
            if has_rules {
                t.chain(&chain, Chain::regular(rules));
            }
            for pod in &selected {
                isolated.insert((pod.ip, d));
                if has_rules {
                    jumps.entry((pod.ip, d)).or_default().push(chain.clone());
                }
            }
        }
    }
    let mut ingress_pods = Set::vmap(vec![KeyType::Ipv4Addr]);
    let mut egress_pods = Set::vmap(vec![KeyType::Ipv4Addr]);
    let (mut n_in, mut n_eg) = (0, 0);
    for (ip, d) in &isolated {
        let name = pod_chain(*ip, *d);
        let mut rules: Vec<Rule> = jumps
            .get(&(*ip, *d))
            .into_iter()
            .flatten()
            .map(|c| Rule::new([jump(c)]))
            .collect();
        rules.push(Rule::new([drop()]).comment(format!(
            "isolated for {}: no policy allows it",
            d.policy_type().to_lowercase()
        )));
        t.chain(&name, Chain::regular(rules));
        let map = match d {
            Direction::Ingress => {
                n_in += 1;
                &mut ingress_pods
            }
            Direction::Egress => {
                n_eg += 1;
                &mut egress_pods
            }
        };
        map.insert(addr(*ip), verdict_elem(Verdict::Goto(name)));
    }
    base_chains(&mut t, node_ips, ingress_pods, egress_pods);
    Compiled {
        table: t,
        policies: programmed,
        isolated_ingress: n_in,
        isolated_egress: n_eg,
    }
}

fn base_chains(t: &mut Table, node_ips: Set, ingress_pods: Set, egress_pods: Set) {
    t.set(NODE_IPS, node_ips);
    t.set(INGRESS_PODS, ingress_pods);
    t.set(EGRESS_PODS, egress_pods);
    let established = || {
        Rule::new([
            ct_state(&[CtState::Established, CtState::Related]),
            accept(),
        ])
        .comment("replies of allowed connections")
    };
    t.chain(
        "egress",
        base(
            Hook::Forward,
            EGRESS_PRIORITY,
            vec![
                established(),
                Rule::new([Stmt::Vmap {
                    key: Expr::Payload(Payload::IpSaddr),
                    map: VmapRef::Named(EGRESS_PODS.into()),
                }]),
            ],
        ),
    );
    t.chain(
        "ingress",
        base(
            Hook::Forward,
            INGRESS_PRIORITY,
            vec![
                established(),
                Rule::new([in_set(Expr::Payload(Payload::IpSaddr), NODE_IPS), accept()])
                    .comment("from the pod's own node"),
                Rule::new([Stmt::Vmap {
                    key: Expr::Payload(Payload::IpDaddr),
                    map: VmapRef::Named(INGRESS_PODS.into()),
                }]),
            ],
        ),
    );
}

/// The table when the desired one cannot be programmed: every local pod a
/// policy isolates dropped in that direction, nothing allowed but replies
/// and the node. Smaller than the desired table (no peer sets), so it goes
/// in where that one did not; a pod is never left open.
pub fn lockdown(input: &PolicyInput) -> Table {
    let full = desired(input).table;
    let mut t = Table::new(FAMILY, TABLE);
    let mut ingress_pods = Set::vmap(vec![KeyType::Ipv4Addr]);
    let mut egress_pods = Set::vmap(vec![KeyType::Ipv4Addr]);
    for (src, dst) in [
        (INGRESS_PODS, &mut ingress_pods),
        (EGRESS_PODS, &mut egress_pods),
    ] {
        if let Some(s) = full.sets.get(src) {
            for k in s.elements.keys() {
                dst.insert(k.clone(), verdict_elem(Verdict::Drop));
            }
        }
    }
    let node_ips = full.sets.get(NODE_IPS).cloned().unwrap_or_default();
    base_chains(&mut t, node_ips, ingress_pods, egress_pods);
    t
}

#[cfg(test)]
mod tests;
