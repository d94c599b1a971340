//! `aksnet explain FROM TO`: every step one connection takes through the
//! cluster network and why, computed from the lab's state and the store
//! (pure): the route at each hop (pod, node, fabric route table, other
//! node), each NAT (a Service's DNAT and the backend chosen, SNAT to the
//! node IP or the public IP), the NSG rule that decides at the fabric, the
//! NetworkPolicies (by name and rule index) of the source's egress and the
//! destination's ingress, and the verdict.
//!
//! The packet is followed as the data plane moves it: the source node's
//! agent (kube-proxy) DNATs a ClusterIP or load-balancer IP, a NodePort is
//! DNAT'd on the node it arrives at; egress policy is decided on the
//! post-DNAT destination at the source's node, ingress policy on the
//! source address the destination pod receives (after any SNAT); the
//! fabric applies the NSG (outbound for what leaves a node NIC, inbound for
//! what goes to one) and its route tables (DESIGN §1, §3). A Service with
//! several backends is followed once per backend (kube-proxy picks one at
//! random): the flow is allowed when every backend's path is.
//!
//! With a store alone (`--store`), the fabric is not known: no NSG, and no
//! VM or internet host; the routes are those the store holds.

use std::net::Ipv4Addr;

use aksnet_core::cluster::ClaimKind;
use aksnet_core::k8s::endpoints;
use aksnet_core::k8s::policy_eval::{DirectionVerdict, Flow, PolicyView};
use aksnet_core::k8s::service::ServicePort;
use aksnet_core::k8s::{K8sState, Object, Service};
use aksnet_core::spec::NetworkPlugin;
use ipnet::Ipv4Net;
use serde::Serialize;

use crate::fabric::virtual_network;
use crate::nsg::{self, Access, NsgRule};
use crate::probe::{Protocol, PROBE_PORT};
use crate::snapshot::Snapshot;
use crate::state::{LabState, NodeState, PodState};
use crate::targets::Destination;

/// What an explanation is computed over.
pub struct World<'a> {
    pub state: &'a LabState,
    pub snap: &'a Snapshot,
    pub k8s: &'a K8sState,
    /// A real lab: its fabric, NSG, VM and internet host are known; false
    /// for a store alone (the state then holds only nodes and pods).
    pub lab: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepKind {
    Route,
    Dnat,
    Snat,
    Nsg,
    Policy,
    Deliver,
    Drop,
}

/// One thing that happens to the packet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// Where: `pod x/a`, `node-1`, `fabric`, `vm`, `internet`.
    pub at: String,
    pub kind: StepKind,
    pub detail: String,
    /// False for the step that stops the packet.
    pub ok: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackendRef {
    pub ip: String,
    pub port: u16,
    pub pod: Option<String>,
    pub node: Option<String>,
}

/// The NSG rule that decided one direction at the fabric.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NsgDecision {
    pub direction: nsg::Direction,
    pub priority: u32,
    pub rule: String,
    pub access: Access,
    pub default: bool,
}

/// The way of one packet (per Service backend).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Path {
    pub backend: Option<BackendRef>,
    pub steps: Vec<Step>,
    pub allowed: bool,
    /// Who answers (`NAMESPACE/NAME`, a node, `vm`, `internet`), when allowed.
    pub delivered_to: Option<String>,
    /// The source address the destination sees.
    pub source_ip_seen: Option<String>,
    pub policy: Vec<DirectionVerdict>,
    pub nsg: Vec<NsgDecision>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    pub probes: u32,
    pub reached: u32,
    pub answered_by: Vec<String>,
    pub source_ip_seen: Option<String>,
    pub reachable: bool,
    /// The data plane did what the explanation says.
    pub agrees: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// `aksnet explain --output json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    pub from: String,
    pub to: String,
    pub network_plugin: String,
    pub source_ip: String,
    pub address: String,
    pub port: u16,
    pub protocol: String,
    /// `NAMESPACE/NAME` of the Service TO reaches, if any.
    pub service: Option<String>,
    pub paths: Vec<Path>,
    pub allowed: bool,
    /// `allowed`, `denied`, or `allowed to N of M backends`.
    pub verdict: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
}

/// Where the packet is.
#[derive(Debug, Clone)]
enum Loc {
    /// At a node: from one of its pods, from itself, or from the fabric.
    Node { name: String, from_fabric: bool },
    /// In the fabric; `node_subnet` when it came from a node NIC.
    Fabric { node_subnet: bool },
}

#[derive(Debug, Clone)]
struct Packet {
    saddr: Ipv4Addr,
    daddr: Ipv4Addr,
    dport: u16,
    proto: Protocol,
    /// kube-proxy marked it for masquerade.
    masq: bool,
}

/// A Service address the packet is sent to.
struct ServiceHit<'a> {
    svc: &'a Service,
    port: Option<&'a ServicePort>,
    how: &'static str,
}

fn svc_id(s: &Service) -> String {
    format!(
        "{}/{}",
        s.metadata.namespace.as_deref().unwrap_or("default"),
        s.metadata.name
    )
}

fn proto_k8s(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
    }
}

fn lb_ips(s: &Service) -> impl Iterator<Item = Ipv4Addr> + '_ {
    s.status
        .as_ref()
        .and_then(|st| st.load_balancer.as_ref())
        .into_iter()
        .flat_map(|lb| lb.ingress.iter())
        .filter_map(|i| i.ip.as_deref()?.parse().ok())
}

impl<'a> World<'a> {
    fn plugin(&self) -> NetworkPlugin {
        self.state.network.network_plugin
    }

    fn node(&self, name: &str) -> Option<&'a NodeState> {
        self.state.nodes.iter().find(|n| n.name == name)
    }

    fn node_by_ip(&self, ip: Ipv4Addr) -> Option<&'a NodeState> {
        self.state.nodes.iter().find(|n| n.ip == ip)
    }

    fn pod_by_ip(&self, ip: Ipv4Addr) -> Option<&'a PodState> {
        self.state.pods.iter().find(|p| p.ip == Some(ip))
    }

    fn services(&self) -> impl Iterator<Item = &'a Service> + 'a {
        self.k8s.objects.values().filter_map(|s| match &s.value {
            Object::Service(svc) => Some(svc),
            _ => None,
        })
    }

    /// The name of whatever holds `ip`.
    pub fn name_of(&self, ip: Ipv4Addr) -> String {
        if let Some(p) = self.pod_by_ip(ip) {
            return format!("pod {}", p.id());
        }
        if let Some(n) = self.node_by_ip(ip) {
            return n.name.clone();
        }
        if self.lab && ip == self.state.addressing.vm_ip {
            return "vm".into();
        }
        if self.lab && ip == self.state.addressing.internet_ip {
            return "internet".into();
        }
        if let Some(s) = self.services().find(|s| s.cluster_ipv4() == Some(ip)) {
            return format!("Service {} (ClusterIP)", svc_id(s));
        }
        ip.to_string()
    }

    /// The Service address `p` is sent to, as the agent of `at` sees it.
    fn service_at(&self, p: &Packet, at: &NodeState) -> Option<ServiceHit<'a>> {
        let proto = proto_k8s(p.proto);
        let port_of = |svc: &'a Service, f: &dyn Fn(&ServicePort) -> bool| {
            svc.spec
                .ports
                .iter()
                .find(|sp| sp.protocol().eq_ignore_ascii_case(proto) && f(sp))
        };
        for svc in self.services() {
            if svc.cluster_ipv4() == Some(p.daddr) {
                return Some(ServiceHit {
                    svc,
                    port: port_of(svc, &|sp| sp.port == i64::from(p.dport)),
                    how: "ClusterIP",
                });
            }
            if lb_ips(svc).any(|ip| ip == p.daddr) {
                return Some(ServiceHit {
                    svc,
                    port: port_of(svc, &|sp| sp.port == i64::from(p.dport)),
                    how: "load-balancer IP",
                });
            }
            if p.daddr == at.ip {
                if let Some(sp) = port_of(svc, &|sp| sp.node_port == Some(i64::from(p.dport))) {
                    return Some(ServiceHit {
                        svc,
                        port: Some(sp),
                        how: "NodePort",
                    });
                }
            }
        }
        None
    }

    /// Addresses whose traffic to a ClusterIP keeps its source (kube-proxy's
    /// `--cluster-cidr`, the agent's `cluster-cidrs` set).
    fn cluster_cidrs(&self) -> Vec<Ipv4Net> {
        let net = &self.state.network;
        match net.network_plugin {
            NetworkPlugin::Kubenet | NetworkPlugin::Overlay => {
                net.effective_pod_cidr().into_iter().collect()
            }
            NetworkPlugin::Azure => vec![net.pod_subnet_cidr.unwrap_or(net.subnet_cidr).trunc()],
        }
    }

    /// Kubenet: the address of the node's bridge `cbr0` (its block's .1).
    fn bridge_address(&self, node: &str) -> Option<Ipv4Addr> {
        (self.plugin() == NetworkPlugin::Kubenet)
            .then(|| self.snap.block_of(node))
            .flatten()
            .map(|b| Ipv4Addr::from(u32::from(b.network()) + 1))
    }

    fn node_pod_sources(&self, node: &str) -> Vec<Ipv4Net> {
        match self.plugin() {
            NetworkPlugin::Azure => self.cluster_cidrs(),
            _ => self.snap.blocks_of(node).collect(),
        }
    }

    /// Explains one flow. `source_ip` is FROM's address; `dest` TO's
    /// address, port and protocol (as `lab probe` resolves them).
    pub fn explain(
        &self,
        from: &str,
        to: &str,
        source_ip: Ipv4Addr,
        dest: &Destination,
    ) -> Explanation {
        let start = Packet {
            saddr: source_ip,
            daddr: dest.address,
            dport: dest.port,
            proto: dest.protocol,
            masq: false,
        };
        // The Service, if TO is one: its backends each get a path.
        // The node whose agent DNATs: the one a NodePort is addressed to,
        // else the first the packet meets.
        let first_node = self
            .node_by_ip(dest.address)
            .or_else(|| self.entry_node(source_ip, dest.address));
        let hit = first_node.and_then(|n| self.service_at(&start, n));
        let mut paths = vec![];
        let service = hit.as_ref().map(|h| svc_id(h.svc));
        match hit
            .as_ref()
            .map(|h| (h, self.backends_for(h, first_node, source_ip)))
        {
            Some((_, Some(backends))) if !backends.is_empty() => {
                let n = backends.len();
                for b in &backends {
                    paths.push(self.follow(start.clone(), Some((b, n))));
                }
            }
            _ => paths.push(self.follow(start.clone(), None)),
        }
        let ok = paths.iter().filter(|p| p.allowed).count();
        let allowed = ok == paths.len();
        let verdict = if allowed {
            "allowed".to_string()
        } else if ok == 0 {
            "denied".to_string()
        } else {
            format!("allowed to {ok} of {} backends", paths.len())
        };
        Explanation {
            from: from.to_string(),
            to: to.to_string(),
            network_plugin: self.state.network.network_plugin.as_str().to_string(),
            source_ip: source_ip.to_string(),
            address: dest.address.to_string(),
            port: dest.port,
            protocol: dest.protocol.as_str().to_string(),
            service,
            paths,
            allowed,
            verdict,
            verification: None,
        }
    }

    /// The node whose agent first sees a packet from `src` to `dst`: the
    /// source's node (a pod's, or the node itself), else the node `dst` is
    /// (a NodePort from outside).
    fn entry_node(&self, src: Ipv4Addr, dst: Ipv4Addr) -> Option<&'a NodeState> {
        if let Some(p) = self.pod_by_ip(src) {
            return self.node(&p.node);
        }
        self.node_by_ip(src).or_else(|| self.node_by_ip(dst))
    }

    /// The backends kube-proxy picks from for this Service port (after the
    /// traffic policies); `None` when the port is not one the Service declares.
    fn backends_for(
        &self,
        hit: &ServiceHit<'a>,
        at: Option<&NodeState>,
        src: Ipv4Addr,
    ) -> Option<Vec<endpoints::Backend>> {
        let sp = hit.port?;
        let slices = endpoints::service_slices(self.k8s, hit.svc);
        let mut b = endpoints::backends(hit.svc, &slices)
            .into_iter()
            .find(|(p, _)| p == sp)
            .map(|(_, b)| b)
            .unwrap_or_default();
        let here = at.map(|n| n.name.as_str());
        let from_cluster = self.cluster_cidrs().iter().any(|c| c.contains(&src));
        let local = match hit.how {
            "ClusterIP" => hit.svc.internal_local(),
            _ => hit.svc.external_local() && !from_cluster,
        };
        if local {
            b.retain(|x| x.node.as_deref() == here);
        }
        Some(b)
    }

    /// Follows one packet (towards one backend when a Service has them).
    fn follow(&self, mut p: Packet, backend: Option<(&endpoints::Backend, usize)>) -> Path {
        let mut path = Path {
            backend: backend.map(|(b, _)| BackendRef {
                ip: b.ip.to_string(),
                port: b.port,
                pod: self.pod_by_ip(b.ip).map(PodState::id),
                node: b.node.clone(),
            }),
            steps: vec![],
            allowed: false,
            delivered_to: None,
            source_ip_seen: None,
            policy: vec![],
            nsg: vec![],
        };
        // A node's own addresses: its IP, and on kubenet its bridge's.
        let policy = PolicyView::new(self.k8s).with_node_addresses(
            self.state
                .nodes
                .iter()
                .map(|n| {
                    let mut a = vec![n.ip];
                    a.extend(self.bridge_address(&n.name));
                    (n.name.clone(), a)
                })
                .collect(),
        );
        let src_pod = self.pod_by_ip(p.saddr);
        let original_src = p.saddr;
        let step = |path: &mut Path, at: &str, kind, ok, detail: String| {
            path.steps.push(Step {
                at: at.to_string(),
                kind,
                detail,
                ok,
            });
        };
        let plugin = self.plugin();
        if let Some(pod) = src_pod.filter(|pd| pd.ip == Some(p.daddr)) {
            // Its own address: never leaves the pod (lo), no policy applies.
            step(
                &mut path,
                &format!("pod {}", pod.id()),
                StepKind::Route,
                true,
                format!("{}: the pod's own address, delivered on lo", p.daddr),
            );
            return self.deliver_pod(path, pod, &p, &policy);
        }
        let mut loc = if let Some(pod) = src_pod {
            let via = match plugin {
                NetworkPlugin::Kubenet => match self.snap.block_of(&pod.node) {
                    Some(b) => format!(
                        "default via {} (cbr0 on {}: eth0 → veth → bridge)",
                        Ipv4Addr::from(u32::from(b.network()) + 1),
                        pod.node
                    ),
                    None => format!("default via cbr0 on {}", pod.node),
                },
                _ => format!(
                    "default via 169.254.1.1 dev eth0 (proxy ARP: the veth on {})",
                    pod.node
                ),
            };
            step(
                &mut path,
                &format!("pod {}", pod.id()),
                StepKind::Route,
                true,
                format!("{} → {}: {via}", p.saddr, p.daddr),
            );
            Loc::Node {
                name: pod.node.clone(),
                from_fabric: false,
            }
        } else if let Some(n) = self.node_by_ip(p.saddr) {
            // The node picks its source by route: on kubenet its own pods
            // are on cbr0, whose route has the bridge's address as `src`.
            let local_pod = self.pod_by_ip(p.daddr).is_some_and(|pd| pd.node == n.name);
            if let (true, Some(br)) = (local_pod, self.bridge_address(&n.name)) {
                step(
                    &mut path,
                    &n.name,
                    StepKind::Route,
                    true,
                    format!(
                        "{} dev cbr0 src {br}: the node's source address towards its pods is the bridge's",
                        p.daddr
                    ),
                );
                p.saddr = br;
            }
            Loc::Node {
                name: n.name.clone(),
                from_fabric: false,
            }
        } else if self.lab && p.saddr == self.state.addressing.internet_ip {
            let net = self.state.addressing.internet_net;
            step(
                &mut path,
                "internet",
                StepKind::Drop,
                false,
                format!(
                    "{}: network unreachable: the internet host routes only {net}; nothing of the VNet is published to it here",
                    p.daddr
                ),
            );
            return path;
        } else {
            let at = self.name_of(p.saddr);
            if !self.lab {
                step(&mut path, &at, StepKind::Drop, false, format!("{} is no pod or node of the cluster; without --lab the way into the cluster is not known", p.saddr));
                return path;
            }
            step(
                &mut path,
                &at,
                StepKind::Route,
                true,
                format!("{} → {}: default via the fabric", p.saddr, p.daddr),
            );
            Loc::Fabric { node_subnet: false }
        };
        let mut dnat_done = false;
        let mut egress_done = src_pod.is_none();
        // At most a few hops: pod → node → fabric → node → (fabric → node).
        for _ in 0..8 {
            match loc.clone() {
                Loc::Node { name, from_fabric } => {
                    let Some(node) = self.node(&name) else {
                        step(
                            &mut path,
                            &name,
                            StepKind::Drop,
                            false,
                            format!("no node {name}"),
                        );
                        return path;
                    };
                    // kube-proxy: DNAT of a Service address.
                    let mut dnat_here = false;
                    if !dnat_done {
                        if let Some(hit) = self.service_at(&p, node) {
                            dnat_done = true;
                            let what = format!(
                                "{} {} {}:{}/{}",
                                hit.how,
                                svc_id(hit.svc),
                                p.daddr,
                                p.dport,
                                p.proto
                            );
                            let Some(sp) = hit.port else {
                                step(&mut path, &name, StepKind::Drop, false, format!("{what}: no port {}/{} of the Service: refused (a ClusterIP port no Service declares)", p.dport, p.proto));
                                return path;
                            };
                            let Some((b, n)) = backend else {
                                step(
                                    &mut path,
                                    &name,
                                    StepKind::Drop,
                                    false,
                                    format!(
                                        "{what}: Service port {} has no endpoint{}: refused",
                                        sp.port,
                                        if hit.svc.internal_local() || hit.svc.external_local() {
                                            " here (traffic policy Local)"
                                        } else {
                                            ""
                                        }
                                    ),
                                );
                                return path;
                            };
                            let from_cluster =
                                self.cluster_cidrs().iter().any(|c| c.contains(&p.saddr));
                            let hairpin = b.ip == p.saddr;
                            // kube-proxy: a ClusterIP masquerades sources outside
                            // the cluster's pod ranges; the external path
                            // (NodePort, load-balancer IP) always, unless
                            // externalTrafficPolicy is Local (the client is
                            // kept); a pod reaching itself always (hairpin).
                            p.masq = hairpin
                                || match hit.how {
                                    "ClusterIP" => !from_cluster,
                                    _ => !hit.svc.external_local(),
                                };
                            let who = self
                                .pod_by_ip(b.ip)
                                .map(|pd| format!(" (pod {} on {})", pd.id(), pd.node))
                                .unwrap_or_default();
                            step(&mut path, &name, StepKind::Dnat, true, format!(
                                "{what} → {}:{}{who}, one of {n} backend{} (kube-proxy picks at random){}",
                                b.ip, b.port, if n == 1 { "" } else { "s" },
                                if p.masq { "; marked for masquerade" } else { "" }
                            ));
                            p.daddr = b.ip;
                            p.dport = b.port;
                            dnat_here = true;
                        } else if self.services().any(|s| s.cluster_ipv4() == Some(p.daddr)) {
                            dnat_done = true;
                        }
                    }
                    // Egress policy of the source pod, at its node, on the
                    // post-DNAT destination.
                    if !egress_done {
                        egress_done = true;
                        if let Some(v) = policy.egress(&Flow::new(
                            original_src,
                            p.daddr,
                            p.dport,
                            proto_k8s(p.proto),
                        )) {
                            let ok = v.allowed;
                            step(
                                &mut path,
                                &name,
                                StepKind::Policy,
                                ok,
                                format!("egress: {}", v.message),
                            );
                            path.policy.push(v);
                            if !ok {
                                return path;
                            }
                        }
                    }
                    // Masquerade (and ip-masq-agent's SNAT) takes the address
                    // of the interface the packet leaves by: eth0's (the node
                    // IP), or on kubenet, towards a pod of this node, the
                    // bridge's (the block's .1).
                    let masq_to = |p: &mut Packet, path: &mut Path, to: Ipv4Addr, why: &str| {
                        // Masquerade happens once, on the node that DNAT'd.
                        p.masq = false;
                        if p.saddr == to {
                            return;
                        }
                        let old = p.saddr;
                        p.saddr = to;
                        path.steps.push(Step {
                            at: name.clone(),
                            kind: StepKind::Snat,
                            ok: true,
                            detail: format!("{old} → {to} ({why})"),
                        });
                    };
                    // Delivered here?
                    if p.daddr == node.ip {
                        // Delivered locally: no postrouting, no masquerade.
                        return self.deliver_node(path, node, &p);
                    }
                    if let Some(pod) = self.pod_by_ip(p.daddr).filter(|pd| pd.node == node.name) {
                        if p.masq {
                            let to = self.bridge_address(&name).unwrap_or(node.ip);
                            let why = if to == node.ip {
                                "kube-proxy masquerade"
                            } else {
                                "kube-proxy masquerade, to the bridge cbr0's address"
                            };
                            masq_to(&mut p, &mut path, to, why);
                        }
                        let how = match plugin {
                            NetworkPlugin::Kubenet
                                if !from_fabric
                                    && src_pod.is_some_and(|s| s.node == node.name)
                                    && !p.masq =>
                            {
                                "same node: the bridge cbr0 delivers it, it never leaves the bridge"
                                    .to_string()
                            }
                            NetworkPlugin::Kubenet => {
                                format!("{} dev cbr0 (the node's /24 on the bridge)", p.daddr)
                            }
                            _ => format!("host route {}/32 dev the pod's veth", p.daddr),
                        };
                        step(&mut path, &name, StepKind::Route, true, how);
                        return self.deliver_pod(path, pod, &p, &policy);
                    }
                    if from_fabric && !dnat_here {
                        step(
                            &mut path,
                            &name,
                            StepKind::Drop,
                            false,
                            format!(
                                "{} is not on {name}: the node does not forward it back",
                                p.daddr
                            ),
                        );
                        return path;
                    }
                    // Leaves by eth0: SNAT at postrouting.
                    step(
                        &mut path,
                        &name,
                        StepKind::Route,
                        true,
                        format!(
                            "{} → default via {} dev eth0 (the subnet gateway, into the fabric)",
                            p.daddr, self.state.addressing.node_gateway
                        ),
                    );
                    if p.masq {
                        masq_to(&mut p, &mut path, node.ip, "kube-proxy masquerade");
                    } else if self
                        .node_pod_sources(&name)
                        .iter()
                        .any(|c| c.contains(&p.saddr))
                    {
                        let no_snat = self.state.network.non_masquerade_cidrs();
                        if no_snat.iter().any(|c| c.contains(&p.daddr)) || nsg_link_local(p.daddr) {
                            step(
                                &mut path,
                                &name,
                                StepKind::Snat,
                                true,
                                format!(
                                    "none: {} is in nonMasqueradeCIDRs ({}), the pod IP is kept",
                                    p.daddr,
                                    no_snat
                                        .iter()
                                        .map(|c| c.to_string())
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                ),
                            );
                        } else {
                            masq_to(
                                &mut p,
                                &mut path,
                                node.ip,
                                "ip-masq-agent: destination outside nonMasqueradeCIDRs",
                            );
                        }
                    }
                    loc = Loc::Fabric { node_subnet: true };
                }
                Loc::Fabric { node_subnet } => {
                    if !self.lab {
                        // A store alone: only the other nodes' routes are known.
                        match self.fabric_next(&p, node_subnet) {
                            Ok((Some(n), why)) => {
                                step(
                                    &mut path,
                                    "fabric",
                                    StepKind::Route,
                                    true,
                                    format!("{why} (the NSG is not known without --lab)"),
                                );
                                loc = Loc::Node {
                                    name: n.name.clone(),
                                    from_fabric: true,
                                };
                                continue;
                            }
                            Ok((None, why)) => {
                                step(
                                    &mut path,
                                    "fabric",
                                    StepKind::Route,
                                    true,
                                    format!("{why}; beyond the cluster is not known without --lab"),
                                );
                                path.allowed = true;
                                path.delivered_to = Some(p.daddr.to_string());
                                path.source_ip_seen = Some(p.saddr.to_string());
                                return path;
                            }
                            Err(why) => {
                                step(&mut path, "fabric", StepKind::Drop, false, why);
                                return path;
                            }
                        }
                    }
                    let next = self.fabric_next(&p, node_subnet);
                    let (node, why) = match next {
                        Ok(x) => x,
                        Err(why) => {
                            step(&mut path, "fabric", StepKind::Drop, false, why);
                            return path;
                        }
                    };
                    step(&mut path, "fabric", StepKind::Route, true, why);
                    // NSG: outbound for what came from a node NIC, inbound
                    // for what goes to one.
                    let vnet = virtual_network(self.state);
                    let mut dirs = vec![];
                    if node_subnet {
                        dirs.push(nsg::Direction::Outbound);
                    }
                    if node.is_some() {
                        dirs.push(nsg::Direction::Inbound);
                    }
                    for d in dirs {
                        let dec = nsg_decide(&self.state.nsg, &vnet, d, &p);
                        let ok = dec.access == Access::Allow;
                        step(
                            &mut path,
                            "fabric",
                            StepKind::Nsg,
                            ok,
                            format!(
                                "NSG {}: {} {} (priority {}) for {} → {}:{}/{}",
                                d.as_str(),
                                dec.rule,
                                dec.access.as_str(),
                                dec.priority,
                                p.saddr,
                                p.daddr,
                                p.dport,
                                p.proto
                            ),
                        );
                        path.nsg.push(dec);
                        if !ok {
                            return path;
                        }
                    }
                    match node {
                        Some(n) => {
                            loc = Loc::Node {
                                name: n.name.clone(),
                                from_fabric: true,
                            };
                        }
                        None => return self.deliver_outside(path, &p),
                    }
                }
            }
        }
        step(
            &mut path,
            "fabric",
            StepKind::Drop,
            false,
            "the packet loops".into(),
        );
        path
    }

    /// The fabric's route for `p`: the node it goes to (with why), none for
    /// the VM or the internet, or why there is no route.
    fn fabric_next(
        &self,
        p: &Packet,
        node_subnet: bool,
    ) -> Result<(Option<&'a NodeState>, String), String> {
        let d = p.daddr;
        if let Some(n) = self.node_by_ip(d) {
            return Ok((Some(n), format!("{d}/32 → {} (its NIC)", n.name)));
        }
        if let Some(pod) = self.pod_by_ip(d) {
            let n = self.node(&pod.node);
            match self.plugin() {
                NetworkPlugin::Kubenet => {
                    if !node_subnet {
                        return Err(format!("{d}: not routable: the route table (UDR) is associated with the node subnet only (kubenet pods are not reachable from the VNet)"));
                    }
                    let entry = self
                        .snap
                        .routes
                        .values()
                        .filter_map(|r| r.value.as_ref())
                        .find(|r| r.destination.contains(&d));
                    return match entry {
                        Some(r) => Ok((self.node_by_ip(r.next_hop).or(n), format!("route table (UDR): {} → next hop {} ({})", r.destination, r.next_hop, r.node))),
                        None => Err(format!("{d}: no entry in the route table (UDR) for {}'s /24 ({} is NetworkUnavailable?)", pod.node, pod.node)),
                    };
                }
                NetworkPlugin::Overlay => {
                    if !node_subnet {
                        return Err(format!("{d}: not routable: the overlay's pod CIDR is routed only inside the cluster"));
                    }
                    let block = self.snap.blocks.iter().find(|(b, c)| {
                        b.contains(&d)
                            && c.value
                                .as_ref()
                                .is_some_and(|c| c.kind == ClaimKind::PodBlock)
                    });
                    return match block.and_then(|(b, c)| Some((b, c.value.as_ref()?))) {
                        Some((b, c)) => Ok((
                            self.node(&c.node).or(n),
                            format!("overlay routing domain: {b} → {}", c.node),
                        )),
                        None => Err(format!("{d}: no block of the overlay holds it")),
                    };
                }
                NetworkPlugin::Azure => {
                    let claim = self.snap.ips.get(&d).and_then(|c| c.value.as_ref());
                    return match claim {
                        Some(c) => Ok((
                            self.node(&c.node).or(n),
                            format!(
                                "NIC IP configuration: {d} is a secondary IP of {}'s NIC",
                                c.node
                            ),
                        )),
                        None => Err(format!("{d}: no NIC holds it")),
                    };
                }
            }
        }
        if self.lab && d == self.state.addressing.vm_ip {
            return Ok((
                None,
                format!(
                    "{d}/32 → the VM's NIC (subnet {})",
                    self.state.addressing.vm_subnet
                ),
            ));
        }
        let private = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
            .iter()
            .filter_map(|c| c.parse::<Ipv4Net>().ok())
            .chain(self.state.network.vnet_cidrs.iter().copied())
            .chain(self.state.network.effective_pod_cidr());
        for c in private {
            if c.contains(&d) {
                return Err(format!(
                    "{d}: no NIC or route for it in the VNet ({c} is unreachable in the fabric)"
                ));
            }
        }
        Ok((None, format!("{d}: default route to the internet")))
    }

    fn deliver_node(&self, mut path: Path, node: &NodeState, p: &Packet) -> Path {
        let at = node.name.clone();
        if self.lab && p.dport != PROBE_PORT {
            path.steps.push(Step { at, kind: StepKind::Drop, ok: false, detail: format!("nothing listens on {}:{}/{} (the node's probe server is on {PROBE_PORT}): refused", node.ip, p.dport, p.proto) });
            return path;
        }
        path.steps.push(Step {
            at,
            kind: StepKind::Deliver,
            ok: true,
            detail: format!("delivered to {} (source seen: {})", node.name, p.saddr),
        });
        path.allowed = true;
        path.delivered_to = Some(node.name.clone());
        path.source_ip_seen = Some(p.saddr.to_string());
        path
    }

    fn deliver_pod(
        &self,
        mut path: Path,
        pod: &PodState,
        p: &Packet,
        policy: &PolicyView<'_>,
    ) -> Path {
        let at = format!("pod {}", pod.id());
        if let Some(v) = policy.ingress(&Flow::new(p.saddr, p.daddr, p.dport, proto_k8s(p.proto))) {
            let ok = v.allowed;
            path.steps.push(Step {
                at: pod.node.clone(),
                kind: StepKind::Policy,
                ok,
                detail: format!("ingress: {}", v.message),
            });
            path.policy.push(v);
            if !ok {
                return path;
            }
        }
        let serves = p.dport == PROBE_PORT
            || pod
                .ports
                .iter()
                .any(|l| l.port == p.dport && l.protocol == p.proto);
        if self.lab && !serves {
            path.steps.push(Step {
                at,
                kind: StepKind::Drop,
                ok: false,
                detail: format!(
                    "nothing listens on {}:{}/{}: refused",
                    p.daddr, p.dport, p.proto
                ),
            });
            return path;
        }
        path.steps.push(Step {
            at,
            kind: StepKind::Deliver,
            ok: true,
            detail: format!(
                "delivered to {}:{}/{} (source seen: {})",
                p.daddr, p.dport, p.proto, p.saddr
            ),
        });
        path.allowed = true;
        path.delivered_to = Some(pod.id());
        path.source_ip_seen = Some(p.saddr.to_string());
        path
    }

    fn deliver_outside(&self, mut path: Path, p: &Packet) -> Path {
        let mut p = p.clone();
        let a = &self.state.addressing;
        if p.daddr == a.vm_ip {
            let ok = p.dport == PROBE_PORT;
            path.steps.push(Step {
                at: "vm".into(),
                kind: if ok {
                    StepKind::Deliver
                } else {
                    StepKind::Drop
                },
                ok,
                detail: if ok {
                    format!("delivered to the VM (source seen: {})", p.saddr)
                } else {
                    format!(
                        "nothing listens on the VM's {}/{}: refused",
                        p.dport, p.proto
                    )
                },
            });
            if ok {
                path.allowed = true;
                path.delivered_to = Some("vm".into());
                path.source_ip_seen = Some(p.saddr.to_string());
            }
            return path;
        }
        let old = p.saddr;
        p.saddr = a.public_ip;
        path.steps.push(Step {
            at: "fabric".into(),
            kind: StepKind::Snat,
            ok: true,
            detail: format!("{old} → {} (outbound SNAT to the public IP)", a.public_ip),
        });
        let ok = p.daddr == a.internet_ip && p.dport == PROBE_PORT;
        path.steps.push(Step {
            at: "internet".into(),
            kind: if ok {
                StepKind::Deliver
            } else {
                StepKind::Drop
            },
            ok,
            detail: if ok {
                format!("delivered to the internet host (source seen: {})", p.saddr)
            } else if p.daddr == a.internet_ip {
                format!(
                    "nothing listens on the internet host's {}/{}: refused",
                    p.dport, p.proto
                )
            } else {
                format!("{}: no host of the lab's internet answers there", p.daddr)
            },
        });
        if ok {
            path.allowed = true;
            path.delivered_to = Some("internet".into());
            path.source_ip_seen = Some(p.saddr.to_string());
        }
        path
    }
}

/// A state for a store alone (`explain --store`): its nodes (the cluster
/// view's records) and its Pods with an address, so that FROM and TO are
/// read with the lab's own target syntax.
pub fn store_state(
    network: aksnet_core::spec::ClusterNetwork,
    snap: &Snapshot,
    k8s: &K8sState,
) -> crate::error::Result<LabState> {
    let addressing = crate::topology::Addressing::plan(&network, None)?;
    let mut st = LabState::new("store", network, addressing, "aksnet".into(), "".into());
    for (i, n) in snap.node_records().enumerate() {
        st.nodes.push(NodeState {
            name: n.name.clone(),
            index: i as u32 + 1,
            ip: n.ip,
            agent_pid: None,
            probe_pid: None,
        });
    }
    for (j, pod) in k8s
        .objects
        .values()
        .filter_map(|s| s.value.as_pod())
        .filter(|p| p.spec.host_network != Some(true) && !p.is_finished())
        .enumerate()
    {
        let Some(ip) = pod.pod_ipv4() else { continue };
        let node = pod.spec.node_name.clone().unwrap_or_default();
        let node_index = st
            .nodes
            .iter()
            .find(|n| n.name == node)
            .map_or(0, |n| n.index);
        st.pods.push(PodState {
            name: pod.metadata.name.clone(),
            namespace: pod
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into()),
            node,
            node_index,
            index: j as u32 + 1,
            container_id: String::new(),
            ip: Some(ip),
            probe_pid: None,
            ports: crate::kubelet::schedule::ports_of(pod),
            uid: None,
        });
    }
    Ok(st)
}

fn nsg_link_local(ip: Ipv4Addr) -> bool {
    ip.is_link_local()
}

/// The NSG rule that decides a packet in one direction: the user rules in
/// priority order, first match wins, then Azure's defaults.
pub fn nsg_decide(
    rules: &[NsgRule],
    vnet: &[Ipv4Net],
    dir: nsg::Direction,
    p_: &impl NsgPacket,
) -> NsgDecision {
    let (saddr, daddr, dport, proto) = p_.fields();
    let mut user: Vec<&NsgRule> = rules.iter().filter(|r| r.direction == dir).collect();
    user.sort_by_key(|r| r.priority);
    for r in user {
        let m = r.source.is_none_or(|s| s.trunc().contains(&saddr))
            && r.destination.is_none_or(|d| d.trunc().contains(&daddr))
            && r.protocol.is_none_or(|x| x.as_str() == proto.as_str())
            && r.port.is_none_or(|x| x == dport);
        if m {
            return NsgDecision {
                direction: dir,
                priority: u32::from(r.priority),
                rule: r.name(),
                access: r.access,
                default: false,
            };
        }
    }
    let in_vnet = |ip: Ipv4Addr| vnet.iter().any(|n| n.contains(&ip));
    let d = |priority, rule: &str, access| NsgDecision {
        direction: dir,
        priority,
        rule: rule.into(),
        access,
        default: true,
    };
    match dir {
        nsg::Direction::Inbound if in_vnet(saddr) => d(65000, "AllowVnetInBound", Access::Allow),
        nsg::Direction::Inbound => d(65500, "DenyAllInBound", Access::Deny),
        nsg::Direction::Outbound if in_vnet(daddr) => d(65000, "AllowVnetOutBound", Access::Allow),
        nsg::Direction::Outbound => d(65001, "AllowInternetOutBound", Access::Allow),
    }
}

/// What the NSG looks at: source, destination, destination port, protocol.
pub trait NsgPacket {
    fn fields(&self) -> (Ipv4Addr, Ipv4Addr, u16, Protocol);
}

impl NsgPacket for Packet {
    fn fields(&self) -> (Ipv4Addr, Ipv4Addr, u16, Protocol) {
        (self.saddr, self.daddr, self.dport, self.proto)
    }
}

impl NsgPacket for (Ipv4Addr, Ipv4Addr, u16, Protocol) {
    fn fields(&self) -> (Ipv4Addr, Ipv4Addr, u16, Protocol) {
        *self
    }
}

/// Compares probes with the explanation: reachable must be what it says,
/// and a reached backend must be one whose path is allowed.
pub fn verify(e: &Explanation, outcomes: &[crate::probe::Outcome]) -> Verification {
    let reached: Vec<&crate::probe::Outcome> = outcomes.iter().filter(|o| o.reachable).collect();
    let answered_by: Vec<String> = {
        let mut v: Vec<String> = reached.iter().filter_map(|o| o.label.clone()).collect();
        v.sort();
        v.dedup();
        v
    };
    let allowed_to: Vec<&str> = e
        .paths
        .iter()
        .filter(|p| p.allowed)
        .filter_map(|p| p.delivered_to.as_deref())
        .collect();
    let any_allowed = e.paths.iter().any(|p| p.allowed);
    // Each answer's source is the one its path says (the NATs on the way).
    let wrong_source = reached.iter().find_map(|o| {
        let path = e
            .paths
            .iter()
            .find(|p| p.allowed && p.delivered_to.as_deref() == o.label.as_deref())?;
        let want = path.source_ip_seen.as_deref()?;
        let got = o.source.map(|s| s.to_string()).unwrap_or_default();
        (want != got).then(|| format!("source seen {got}, explained {want}"))
    });
    let agrees = wrong_source.is_none()
        && if e.allowed {
            reached.len() == outcomes.len()
                && answered_by.iter().all(|a| allowed_to.contains(&a.as_str()))
        } else if any_allowed {
            // Some backends allowed, some denied: whatever answered must be one
            // of the allowed.
            answered_by.iter().all(|a| allowed_to.contains(&a.as_str()))
        } else {
            reached.is_empty()
        };
    let note = if agrees {
        None
    } else if let Some(w) = wrong_source {
        Some(w)
    } else if reached.is_empty() {
        Some(
            outcomes
                .iter()
                .find_map(|o| o.error.clone())
                .unwrap_or_else(|| "the data plane dropped or refused it".into()),
        )
    } else if e.allowed && reached.len() < outcomes.len() {
        Some(format!(
            "{} of {} probes reached it",
            reached.len(),
            outcomes.len()
        ))
    } else {
        Some(format!("answered by {}", answered_by.join(", ")))
    };
    Verification {
        probes: outcomes.len() as u32,
        reached: reached.len() as u32,
        source_ip_seen: reached
            .first()
            .and_then(|o| o.source)
            .map(|s| s.to_string()),
        answered_by,
        reachable: !reached.is_empty(),
        agrees,
        note,
    }
}

#[cfg(test)]
#[path = "explain_tests.rs"]
mod tests;
