//! Services as the desired state of a table the agent owns
//! (`ip aksnet-services`), laid out as kube-proxy's nftables mode lays out
//! its `kube-proxy` table: one verdict-map lookup dispatches every packet to
//! a Service (never one rule per Service on the packet path), then a chain
//! per Service port spreads over its endpoints with `numgen`, and a chain
//! per endpoint DNATs.
//!
//! ```text
//! table ip aksnet-services {
//!   map service-ips          { ipv4_addr . inet_proto . inet_service : verdict }  # ClusterIPs, LB IPs
//!   map service-nodeports    { inet_proto . inet_service : verdict }              # on @node-ips only
//!   map no-endpoint-services { ipv4_addr . inet_proto . inet_service : verdict }  # → reject
//!   map no-endpoint-nodeports{ inet_proto . inet_service : verdict }              # → reject
//!   set cluster-ips  { ipv4_addr }            # a ClusterIP port nobody serves is rejected
//!   set node-ips     { ipv4_addr }            # NodePorts answer here (never 127.0.0.1)
//!   set cluster-cidrs{ ipv4_addr; interval }  # pod sources: keep their IP to a ClusterIP
//!   chain nat-prerouting  { nat prerouting dstnat; jump services }
//!   chain nat-output      { nat output dstnat;     jump services }
//!   chain nat-postrouting { nat postrouting srcnat; jump masquerading }
//!   chain filter-forward / filter-output / filter-input  { filter, priority -10;
//!         ct state new jump service-endpoints-check; ct state new jump cluster-ips-check }
//!   chain services { ip daddr . meta l4proto . th dport vmap @service-ips
//!                    ip daddr @node-ips meta l4proto . th dport vmap @service-nodeports }
//!   chain svc-…   { ip saddr != @cluster-cidrs jump mark-for-masquerade
//!                   numgen random mod 2 == 0 goto ep-…; goto ep-… }
//!   chain ext-…   { (Cluster) jump mark-for-masquerade; goto svc-…
//!                   (Local)   ip saddr @cluster-cidrs goto svc-…; goto local-… | drop }
//!   chain ep-…    { ip saddr EP jump mark-for-masquerade   # hairpin
//!                   meta l4proto tcp dnat to EP:PORT }
//! }
//! ```
//!
//! A change of one Service changes its own chains and its map elements
//! only ([`aksnet_nft::diff`]): O(change), whatever the number of Services.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use aksnet_core::k8s::endpoints::Backend;
use aksnet_core::k8s::service::{Service, ServicePort};
use aksnet_nft::build::{goto, in_set, jump, l4proto, not_in_set, saddr};
use aksnet_nft::{
    priority, BaseChain, Chain, ChainType, ElemData, Element, Expr, Family, Hook, KeyType, L4Proto,
    MetaKey, Payload, Reject, Rule, Set, Stmt, Table, TableId, Value, Verdict, VmapRef,
};
use ipnet::Ipv4Net;

pub const FAMILY: Family = Family::Ip;
pub const TABLE: &str = "aksnet-services";
pub const SERVICE_IPS: &str = "service-ips";
pub const SERVICE_NODEPORTS: &str = "service-nodeports";
pub const NO_ENDPOINT_SERVICES: &str = "no-endpoint-services";
pub const NO_ENDPOINT_NODEPORTS: &str = "no-endpoint-nodeports";
pub const CLUSTER_IPS: &str = "cluster-ips";
pub const NODE_IPS: &str = "node-ips";
pub const CLUSTER_CIDRS: &str = "cluster-cidrs";
/// The mark that asks `masquerading` to masquerade a connection.
pub const MASQ_MARK: u32 = 0x4000;
/// Before the default filter priority, as kube-proxy's filter chains.
const FILTER_PRIORITY: i32 = priority::FILTER - 10;

/// The table's identity.
pub fn table_id() -> TableId {
    TableId::new(FAMILY, TABLE)
}

/// One Service port with the endpoints kube-proxy would pick for it.
#[derive(Debug, Clone, PartialEq)]
pub struct PortInput {
    pub namespace: String,
    pub name: String,
    pub port: ServicePort,
    pub backends: Vec<Backend>,
}

/// Everything the Services table is computed from.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServicesInput {
    /// This node's name (which endpoints are local).
    pub node: String,
    /// This node's addresses: where NodePorts answer.
    pub node_ips: Vec<Ipv4Addr>,
    /// Pod sources: traffic from them to a ClusterIP keeps its source.
    pub cluster_cidrs: Vec<Ipv4Net>,
    /// Services, each with its ports' backends.
    pub services: Vec<(Service, Vec<PortInput>)>,
}

/// Number of Service ports the table dispatches (the "services programmed"
/// figure).
pub fn service_ports(input: &ServicesInput) -> usize {
    input
        .services
        .iter()
        .filter(|(s, _)| s.cluster_ipv4().is_some())
        .map(|(_, p)| p.len())
        .sum()
}

/// FNV-1a, 32 bits: a short, stable tag that keeps chain names unique
/// when namespace and name are cut to fit.
fn tag(s: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{h:08x}")
}

fn proto_of(p: &ServicePort) -> Option<L4Proto> {
    match p.protocol() {
        "TCP" => Some(L4Proto::Tcp),
        "UDP" => Some(L4Proto::Udp),
        // The kernels aksnet runs on here have no SCTP; a port we cannot
        // program is left out rather than half-programmed.
        _ => None,
    }
}

fn proto_str(p: L4Proto) -> &'static str {
    match p {
        L4Proto::Udp => "udp",
        _ => "tcp",
    }
}

/// Chain names: `svc-TAG-NS-NAME-PROTO-PORT` and so on, readable in
/// `nft list` and unique by their tag.
struct Names {
    svc: String,
    ext: String,
    local: String,
}

fn names(ns: &str, name: &str, proto: L4Proto, port: u16) -> Names {
    let id = format!("{ns}/{name}/{}/{port}", proto_str(proto));
    let t = tag(&id);
    let short = |s: &str| s.chars().take(40).collect::<String>();
    let base = format!(
        "{t}-{}-{}-{}-{port}",
        short(ns),
        short(name),
        proto_str(proto)
    );
    Names {
        svc: format!("svc-{base}"),
        ext: format!("ext-{base}"),
        local: format!("local-{base}"),
    }
}

fn endpoint_chain(svc_chain: &str, b: &Backend) -> String {
    format!("ep-{}-{}-{}", tag(svc_chain), b.ip, b.port)
}

/// The clients an endpoint served (sessionAffinity: ClientIP).
fn affinity_set(endpoint_chain: &str) -> String {
    format!("aff-{}", endpoint_chain.trim_start_matches("ep-"))
}

fn key3(ip: Ipv4Addr, proto: L4Proto, port: u16) -> Value {
    Value::Concat(vec![
        Value::Addr(IpAddr::V4(ip)),
        Value::Proto(proto),
        Value::Port(port),
    ])
}

fn key2(proto: L4Proto, port: u16) -> Value {
    Value::Concat(vec![Value::Proto(proto), Value::Port(port)])
}

fn verdict_elem(v: Verdict) -> Element {
    Element {
        data: Some(ElemData::Verdict(v)),
        ..Element::default()
    }
}

fn daddr_proto_dport() -> Expr {
    Expr::Concat(vec![
        Expr::Payload(Payload::IpDaddr),
        Expr::Meta(MetaKey::L4Proto),
        Expr::Payload(Payload::ThDport),
    ])
}

fn proto_dport() -> Expr {
    Expr::Concat(vec![
        Expr::Meta(MetaKey::L4Proto),
        Expr::Payload(Payload::ThDport),
    ])
}

/// The random spread over `chains`: rule `i` takes `numgen random mod
/// (N - i) == 0 goto C_i` (1 in N of all packets, then 1 in N-1 of the
/// rest, …: every endpoint 1 in N), the last one `goto C_N`; `goto A` for
/// one.
///
/// Not kube-proxy's `numgen random mod N vmap { 0 : goto A, … }`: every
/// such rule makes an anonymous map in the table, and the kernel names a
/// new anonymous set by scanning all of the table's sets, so a table of
/// 10,000 Services took 42 s to load (10,000 anonymous maps alone: 10.5 s;
/// the same spread as rules: 0.7 s; kernel 6.18). Rules keep the packet
/// path at most N-1 compares inside one Service, whatever the number of
/// Services.
fn spread(chains: &[String]) -> Vec<Rule> {
    let n = chains.len();
    chains
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if i + 1 == n {
                Rule::new([goto(c)])
            } else {
                let left = u32::try_from(n - i).unwrap_or(u32::MAX);
                Rule::new([
                    aksnet_nft::build::eq(
                        Expr::NumgenRandom {
                            modulus: left,
                            offset: 0,
                        },
                        Value::Int(0),
                    ),
                    goto(c),
                ])
            }
        })
        .collect()
}

fn base(kind: ChainType, hook: Hook, prio: i32, jumps: &[&str]) -> Chain {
    let rules = jumps
        .iter()
        .map(|j| {
            if kind == ChainType::Filter {
                Rule::new([
                    aksnet_nft::build::ct_state(&[aksnet_nft::CtState::New]),
                    jump(j),
                ])
            } else {
                Rule::new([jump(j)])
            }
        })
        .collect();
    Chain::base(BaseChain::new(kind, hook, prio), rules)
}

/// The desired table for `input`.
pub fn desired(input: &ServicesInput) -> Table {
    let mut t = Table::new(FAMILY, TABLE);
    let mut service_ips = Set::vmap(vec![
        KeyType::Ipv4Addr,
        KeyType::InetProto,
        KeyType::InetService,
    ]);
    let mut nodeports = Set::vmap(vec![KeyType::InetProto, KeyType::InetService]);
    let mut no_ep = Set::vmap(vec![
        KeyType::Ipv4Addr,
        KeyType::InetProto,
        KeyType::InetService,
    ]);
    let mut no_ep_nodeports = Set::vmap(vec![KeyType::InetProto, KeyType::InetService]);
    let mut cluster_ips: BTreeSet<Ipv4Addr> = BTreeSet::new();
    let reject = Verdict::Goto("reject-chain".into());

    for (svc, ports) in &input.services {
        let Some(cip) = svc.cluster_ipv4() else {
            continue;
        };
        cluster_ips.insert(cip);
        let ingress = svc.ingress_ips();
        for p in ports {
            let (Some(proto), Ok(port)) = (proto_of(&p.port), u16::try_from(p.port.port)) else {
                continue;
            };
            let n = names(&p.namespace, &p.name, proto, port);
            let node_port = p
                .port
                .node_port
                .and_then(|np| u16::try_from(np).ok())
                .filter(|np| *np > 0);
            let local: Vec<&Backend> = p
                .backends
                .iter()
                .filter(|b| b.node.as_deref() == Some(input.node.as_str()))
                .collect();
            let cluster_eps: Vec<&Backend> = if svc.internal_local() {
                local.clone()
            } else {
                p.backends.iter().collect()
            };
            // sessionAffinity: ClientIP — a timeout set per endpoint of the
            // clients it served; a client found in one goes back to it.
            // (Flags `timeout` only: Debian 12's nft refuses `dynamic` in
            // JSON, and a timeout set takes updates from the packet path.)
            let affinity = svc
                .affinity_timeout()
                .and_then(|s| u32::try_from(s).ok())
                .filter(|s| *s > 0);
            // Endpoint chains for every backend either path may use.
            let mut ep_chains: Vec<(&Backend, String)> = vec![];
            for b in &p.backends {
                let c = endpoint_chain(&n.svc, b);
                let mut rules = vec![
                    // Hairpin: a pod reaching itself through its Service.
                    Rule::new([
                        saddr(ipnet::IpNet::from(IpAddr::V4(b.ip))),
                        jump("mark-for-masquerade"),
                    ]),
                ];
                if let Some(secs) = affinity {
                    let set = affinity_set(&c);
                    t.set(&set, Set::new(vec![KeyType::Ipv4Addr]).with_timeout(secs));
                    rules.push(Rule::new([Stmt::SetUpdate {
                        set,
                        key: Expr::Payload(Payload::IpSaddr),
                    }]));
                }
                rules.push(Rule::new([
                    l4proto(proto),
                    aksnet_nft::build::dnat(IpAddr::V4(b.ip), Some(b.port)),
                ]));
                t.chain(&c, Chain::regular(rules));
                ep_chains.push((b, c));
            }
            // Before the random choice: a client with affinity to one of
            // the endpoints goes back to it.
            let sticky = |chains: &[String]| -> Vec<Rule> {
                if affinity.is_none() {
                    return vec![];
                }
                chains
                    .iter()
                    .map(|c| {
                        Rule::new([
                            in_set(Expr::Payload(Payload::IpSaddr), &affinity_set(c)),
                            goto(c),
                        ])
                    })
                    .collect()
            };
            let chains_of = |eps: &[&Backend]| -> Vec<String> {
                eps.iter()
                    .filter_map(|b| {
                        ep_chains
                            .iter()
                            .find(|(x, _)| x == b)
                            .map(|(_, c)| c.clone())
                    })
                    .collect()
            };
            // The cluster path: ClusterIP, and what the external path hands on.
            let has_cluster = !cluster_eps.is_empty();
            if p.backends.is_empty() {
                no_ep.insert(key3(cip, proto, port), verdict_elem(reject.clone()));
            } else {
                let mut rules = vec![Rule::new([
                    not_in_set(Expr::Payload(Payload::IpSaddr), CLUSTER_CIDRS),
                    jump("mark-for-masquerade"),
                ])];
                if has_cluster {
                    let chains = chains_of(&cluster_eps);
                    rules.extend(sticky(&chains));
                    rules.extend(spread(&chains));
                } else {
                    // internalTrafficPolicy: Local with no endpoint here.
                    rules.push(Rule::new([aksnet_nft::build::drop()]));
                }
                t.chain(&n.svc, Chain::regular(rules));
                service_ips.insert(
                    key3(cip, proto, port),
                    verdict_elem(Verdict::Goto(n.svc.clone())),
                );
            }
            // The external path: NodePorts and load-balancer IPs.
            let external = node_port.is_some() || !ingress.is_empty();
            if !external {
                continue;
            }
            if p.backends.is_empty() {
                for ip in &ingress {
                    no_ep.insert(key3(*ip, proto, port), verdict_elem(reject.clone()));
                }
                if let Some(np) = node_port {
                    no_ep_nodeports.insert(key2(proto, np), verdict_elem(reject.clone()));
                }
                continue;
            }
            let ext_rules = if svc.external_local() {
                // Local: the client's source is kept and only this node's
                // endpoints answer; pods of the cluster still take the
                // cluster path (kube-proxy's short-circuit).
                let mut r = vec![Rule::new([
                    in_set(Expr::Payload(Payload::IpSaddr), CLUSTER_CIDRS),
                    goto(&n.svc),
                ])];
                if local.is_empty() {
                    r.push(Rule::new([aksnet_nft::build::drop()]));
                } else {
                    let chains = chains_of(&local);
                    let mut rules = sticky(&chains);
                    rules.extend(spread(&chains));
                    t.chain(&n.local, Chain::regular(rules));
                    r.push(Rule::new([goto(&n.local)]));
                }
                r
            } else {
                vec![
                    Rule::new([jump("mark-for-masquerade")]),
                    Rule::new([goto(&n.svc)]),
                ]
            };
            t.chain(&n.ext, Chain::regular(ext_rules));
            for ip in &ingress {
                service_ips.insert(
                    key3(*ip, proto, port),
                    verdict_elem(Verdict::Goto(n.ext.clone())),
                );
            }
            if let Some(np) = node_port {
                nodeports.insert(key2(proto, np), verdict_elem(Verdict::Goto(n.ext.clone())));
            }
        }
    }

    t.set(SERVICE_IPS, service_ips);
    t.set(SERVICE_NODEPORTS, nodeports);
    t.set(NO_ENDPOINT_SERVICES, no_ep);
    t.set(NO_ENDPOINT_NODEPORTS, no_ep_nodeports);
    t.set(
        CLUSTER_IPS,
        cluster_ips
            .into_iter()
            .fold(Set::new(vec![KeyType::Ipv4Addr]), |s, ip| {
                s.elem(Value::Addr(IpAddr::V4(ip)))
            }),
    );
    let mut node_ips: Vec<Ipv4Addr> = input.node_ips.clone();
    node_ips.sort();
    node_ips.dedup();
    t.set(
        NODE_IPS,
        node_ips
            .into_iter()
            .fold(Set::new(vec![KeyType::Ipv4Addr]), |s, ip| {
                s.elem(Value::Addr(IpAddr::V4(ip)))
            }),
    );
    t.set(
        CLUSTER_CIDRS,
        crate::snat::outermost(input.cluster_cidrs.iter().copied())
            .into_iter()
            .fold(Set::new(vec![KeyType::Ipv4Addr]).interval(), |s, n| {
                s.elem(Value::from(n))
            }),
    );

    t.chain(
        "nat-prerouting",
        base(
            ChainType::Nat,
            Hook::Prerouting,
            priority::DSTNAT,
            &["services"],
        ),
    );
    t.chain(
        "nat-output",
        base(
            ChainType::Nat,
            Hook::Output,
            priority::DSTNAT,
            &["services"],
        ),
    );
    t.chain(
        "nat-postrouting",
        base(
            ChainType::Nat,
            Hook::Postrouting,
            priority::SRCNAT,
            &["masquerading"],
        ),
    );
    let checks = ["service-endpoints-check", "cluster-ips-check"];
    t.chain(
        "filter-forward",
        base(ChainType::Filter, Hook::Forward, FILTER_PRIORITY, &checks),
    );
    t.chain(
        "filter-output",
        base(ChainType::Filter, Hook::Output, FILTER_PRIORITY, &checks),
    );
    t.chain(
        "filter-input",
        base(
            ChainType::Filter,
            Hook::Input,
            FILTER_PRIORITY,
            &["service-endpoints-check", "nodeport-endpoints-check"],
        ),
    );
    t.chain(
        "services",
        Chain::regular(vec![
            Rule::new([Stmt::Vmap {
                key: daddr_proto_dport(),
                map: VmapRef::Named(SERVICE_IPS.into()),
            }]),
            Rule::new([
                in_set(Expr::Payload(Payload::IpDaddr), NODE_IPS),
                Stmt::Vmap {
                    key: proto_dport(),
                    map: VmapRef::Named(SERVICE_NODEPORTS.into()),
                },
            ]),
        ]),
    );
    t.chain(
        "service-endpoints-check",
        Chain::regular(vec![Rule::new([Stmt::Vmap {
            key: daddr_proto_dport(),
            map: VmapRef::Named(NO_ENDPOINT_SERVICES.into()),
        }])]),
    );
    t.chain(
        "nodeport-endpoints-check",
        Chain::regular(vec![Rule::new([
            in_set(Expr::Payload(Payload::IpDaddr), NODE_IPS),
            Stmt::Vmap {
                key: proto_dport(),
                map: VmapRef::Named(NO_ENDPOINT_NODEPORTS.into()),
            },
        ])]),
    );
    // A ClusterIP port no Service declares: refused at once, as upstream.
    // TCP is refused with a reset, not ICMP: the kernel sends at most one
    // ICMP error per second to a host, so a second refusal in a row would
    // look like a timeout.
    t.chain(
        "cluster-ips-check",
        Chain::regular(vec![
            Rule::new([
                in_set(Expr::Payload(Payload::IpDaddr), CLUSTER_IPS),
                l4proto(L4Proto::Tcp),
                Stmt::Reject(Reject::TcpReset),
            ])
            .comment("a port of a ClusterIP that no Service declares"),
            Rule::new([
                in_set(Expr::Payload(Payload::IpDaddr), CLUSTER_IPS),
                Stmt::Reject(Reject::Default),
            ])
            .comment("a port of a ClusterIP that no Service declares"),
        ]),
    );
    t.chain(
        "reject-chain",
        Chain::regular(vec![
            Rule::new([l4proto(L4Proto::Tcp), Stmt::Reject(Reject::TcpReset)])
                .comment("a Service without endpoints"),
            Rule::new([Stmt::Reject(Reject::Default)]).comment("a Service without endpoints"),
        ]),
    );
    t.chain(
        "mark-for-masquerade",
        Chain::regular(vec![Rule::new([Stmt::SetMark(MASQ_MARK)])]),
    );
    t.chain(
        "masquerading",
        Chain::regular(vec![
            Rule::new([
                aksnet_nft::build::ne(Expr::Meta(MetaKey::Mark), Value::Mark(MASQ_MARK)),
                aksnet_nft::build::ret(),
            ]),
            Rule::new([Stmt::SetMark(0)]),
            Rule::new([Stmt::Masquerade]),
        ]),
    );
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use aksnet_nft::{diff, trace, Fake, Final, Hook, Host, Packet};
    use serde_json::json;

    const NODE: &str = "node-1";
    const NAT_IN: &[Hook] = &[Hook::Prerouting, Hook::Forward, Hook::Postrouting];
    const LOCAL_OUT: &[Hook] = &[Hook::Output, Hook::Postrouting];

    fn svc(name: &str, spec: serde_json::Value, ingress: &[&str]) -> Service {
        let mut s: Service = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": spec,
            "status": {"loadBalancer": {"ingress": ingress.iter().map(|i| json!({"ip": i})).collect::<Vec<_>>()}},
        }))
        .unwrap();
        s.set_defaults();
        s
    }

    fn be(ip: &str, node: &str) -> Backend {
        Backend {
            ip: ip.parse().unwrap(),
            port: 8080,
            node: Some(node.into()),
            ready: true,
            serving: true,
            terminating: false,
        }
    }

    fn with(services: Vec<(Service, Vec<Backend>)>) -> ServicesInput {
        ServicesInput {
            node: NODE.into(),
            node_ips: vec!["10.224.0.4".parse().unwrap()],
            cluster_cidrs: vec!["10.244.0.0/16".parse().unwrap()],
            services: services
                .into_iter()
                .map(|(s, b)| {
                    let ports = s
                        .spec
                        .ports
                        .iter()
                        .map(|p| PortInput {
                            namespace: "default".into(),
                            name: s.metadata.name.clone(),
                            port: p.clone(),
                            backends: b.clone(),
                        })
                        .collect();
                    (s, ports)
                })
                .collect(),
        }
    }

    fn web() -> Service {
        svc(
            "web",
            json!({"clusterIP": "10.0.0.20", "ports": [{"port": 80, "targetPort": 8080}]}),
            &[],
        )
    }

    fn applied(input: &ServicesInput) -> Fake {
        let mut f = Fake::new();
        f.apply_batch(&diff::create(&desired(input))).unwrap();
        f
    }

    fn run(f: &Fake, p: &Packet, hooks: &[Hook]) -> aksnet_nft::Trace {
        let host = Host {
            local: vec!["10.224.0.4".parse().unwrap()],
            masquerade_to: Some("10.224.0.4".parse().unwrap()),
        };
        trace(&f.ruleset(), &host, p, hooks)
    }

    #[test]
    fn pod_to_cluster_ip_is_spread_over_endpoints_and_keeps_its_source() {
        let f = applied(&with(vec![(
            web(),
            vec![be("10.244.1.5", "node-2"), be("10.244.0.7", NODE)],
        )]));
        let mut seen = BTreeSet::new();
        for r in 0..4 {
            let t = run(
                &f,
                &Packet::tcp("10.244.0.9", 40000, "10.0.0.20", 80).random(r),
                NAT_IN,
            );
            assert_eq!(t.verdict, Final::Accept, "{:?}", t.rules());
            assert_eq!(t.nat.len(), 1, "dnat only, no masquerade: {:?}", t.nat);
            seen.insert(t.nat[0].clone());
        }
        assert_eq!(
            seen.into_iter().collect::<Vec<_>>(),
            vec!["dnat to 10.244.0.7:8080", "dnat to 10.244.1.5:8080"]
        );
    }

    #[test]
    fn node_to_cluster_ip_and_hairpin_are_masqueraded() {
        let f = applied(&with(vec![(web(), vec![be("10.244.0.7", NODE)])]));
        let t = run(
            &f,
            &Packet::tcp("10.224.0.4", 40000, "10.0.0.20", 80),
            LOCAL_OUT,
        );
        assert_eq!(t.nat, vec!["dnat to 10.244.0.7:8080", "masquerade"]);
        // The endpoint itself, through its Service.
        let t = run(
            &f,
            &Packet::tcp("10.244.0.7", 40000, "10.0.0.20", 80),
            NAT_IN,
        );
        assert_eq!(
            t.nat,
            vec!["dnat to 10.244.0.7:8080", "masquerade"],
            "{:?}",
            t.rules()
        );
    }

    #[test]
    fn no_endpoints_and_an_undeclared_port_are_rejected_at_once() {
        let f = applied(&with(vec![(web(), vec![])]));
        let t = run(
            &f,
            &Packet::tcp("10.244.0.9", 40000, "10.0.0.20", 80),
            NAT_IN,
        );
        assert_eq!(t.verdict, Final::Reject, "{:?}", t.rules());
        assert!(t.nat.is_empty());
        let f = applied(&with(vec![(web(), vec![be("10.244.0.7", NODE)])]));
        let t = run(
            &f,
            &Packet::tcp("10.244.0.9", 40000, "10.0.0.20", 81),
            NAT_IN,
        );
        assert_eq!(t.verdict, Final::Reject, "{:?}", t.rules());
        assert!(t.rules().iter().any(|r| r.contains("cluster-ips-check")));
        // Another address on the same port is none of the table's business.
        let t = run(
            &f,
            &Packet::tcp("10.244.0.9", 40000, "10.0.0.21", 80),
            NAT_IN,
        );
        assert_eq!(t.verdict, Final::Accept);
        assert!(t.nat.is_empty());
    }

    #[test]
    fn node_ports_answer_on_node_addresses_only_and_cluster_policy_masquerades() {
        let np = svc(
            "np",
            json!({"type": "NodePort", "clusterIP": "10.0.0.30",
                   "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30080}]}),
            &[],
        );
        let f = applied(&with(vec![(np, vec![be("10.244.1.5", "node-2")])]));
        let t = run(
            &f,
            &Packet::tcp("10.224.0.9", 40000, "10.224.0.4", 30080),
            NAT_IN,
        );
        assert_eq!(
            t.nat,
            vec!["dnat to 10.244.1.5:8080", "masquerade"],
            "{:?}",
            t.rules()
        );
        let t = run(
            &f,
            &Packet::tcp("127.0.0.1", 40000, "127.0.0.1", 30080),
            LOCAL_OUT,
        );
        assert!(t.nat.is_empty(), "not on loopback: {:?}", t.rules());
    }

    #[test]
    fn external_local_keeps_the_client_and_drops_without_a_local_endpoint() {
        let lb = |name: &str| {
            svc(
                name,
                json!({"type": "LoadBalancer", "clusterIP": "10.0.0.40", "externalTrafficPolicy": "Local",
                       "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30081}]}),
                &["20.1.2.3"],
            )
        };
        let f = applied(&with(vec![(
            lb("lb"),
            vec![be("10.244.0.7", NODE), be("10.244.1.5", "node-2")],
        )]));
        for r in 0..4 {
            let t = run(
                &f,
                &Packet::tcp("203.0.113.9", 40000, "20.1.2.3", 80).random(r),
                NAT_IN,
            );
            assert_eq!(
                t.nat,
                vec!["dnat to 10.244.0.7:8080"],
                "local only, client kept"
            );
        }
        let f = applied(&with(vec![(lb("lb"), vec![be("10.244.1.5", "node-2")])]));
        let t = run(
            &f,
            &Packet::tcp("203.0.113.9", 40000, "10.224.0.4", 30081),
            NAT_IN,
        );
        assert_eq!(t.verdict, Final::Drop, "{:?}", t.rules());
        // A pod of the cluster still reaches it (the cluster path).
        let t = run(
            &f,
            &Packet::tcp("10.244.0.9", 40000, "20.1.2.3", 80),
            NAT_IN,
        );
        assert_eq!(t.nat, vec!["dnat to 10.244.1.5:8080"]);
    }

    #[test]
    fn internal_local_uses_this_nodes_endpoints() {
        let s = svc(
            "itl",
            json!({"clusterIP": "10.0.0.50", "internalTrafficPolicy": "Local",
                   "ports": [{"port": 80, "targetPort": 8080}]}),
            &[],
        );
        let f = applied(&with(vec![(s.clone(), vec![be("10.244.1.5", "node-2")])]));
        let t = run(
            &f,
            &Packet::tcp("10.244.0.9", 40000, "10.0.0.50", 80),
            NAT_IN,
        );
        assert_eq!(t.verdict, Final::Drop);
        let f = applied(&with(vec![(
            s,
            vec![be("10.244.1.5", "node-2"), be("10.244.0.7", NODE)],
        )]));
        for r in 0..3 {
            let t = run(
                &f,
                &Packet::tcp("10.244.0.9", 40000, "10.0.0.50", 80).random(r),
                NAT_IN,
            );
            assert_eq!(t.nat, vec!["dnat to 10.244.0.7:8080"]);
        }
    }

    #[test]
    fn client_ip_affinity_is_a_timeout_set_per_endpoint_checked_before_the_spread() {
        let s = svc(
            "sticky",
            json!({"clusterIP": "10.0.0.60", "sessionAffinity": "ClientIP",
                   "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 600}},
                   "ports": [{"port": 80, "targetPort": 8080}]}),
            &[],
        );
        let input = with(vec![(
            s,
            vec![be("10.244.1.5", "node-2"), be("10.244.0.7", NODE)],
        )]);
        let f = applied(&input);
        let dump = f.dump();
        assert_eq!(dump.matches("flags timeout").count(), 2, "{dump}");
        assert_eq!(dump.matches("update @aff-").count(), 2, "{dump}");
        let t = desired(&input);
        let svc_chain = t
            .chains
            .iter()
            .find(|(n, _)| n.starts_with("svc-"))
            .map(|(_, c)| c.rules.iter().map(|r| r.to_string()).collect::<Vec<_>>())
            .unwrap();
        assert_eq!(
            svc_chain.len(),
            5,
            "masquerade check, two sticky rules, the spread's two: {svc_chain:?}"
        );
        assert!(svc_chain[1].starts_with("ip saddr @aff-") && svc_chain[3].starts_with("numgen"));
        assert!(svc_chain[4].starts_with("goto ep-"));
        // A first packet (no affinity yet) is spread as any other.
        let tr = run(
            &f,
            &Packet::tcp("10.244.0.9", 40000, "10.0.0.60", 80),
            NAT_IN,
        );
        assert_eq!(tr.nat.len(), 1);
    }

    /// 1,000 Services; one gets a new endpoint: the batch touches that
    /// Service's chains and nothing else.
    #[test]
    fn one_changed_service_among_a_thousand_is_a_small_batch() {
        let many = |extra: bool| {
            with(
                (0..1000u32)
                    .map(|i| {
                        let ip = format!("10.0.{}.{}", i / 250, i % 250 + 1);
                        let mut eps = vec![be(&format!("10.244.{}.{}", i / 250, i % 250 + 2), "node-2")];
                        if extra && i == 500 {
                            eps.push(be("10.244.9.9", NODE));
                        }
                        (
                            svc(
                                &format!("s{i}"),
                                json!({"clusterIP": ip, "ports": [{"port": 80, "targetPort": 8080}]}),
                                &[],
                            ),
                            eps,
                        )
                    })
                    .collect(),
            )
        };
        let (a, b) = (desired(&many(false)), desired(&many(true)));
        let batch = diff::diff(&a, &b);
        println!("{batch}");
        // The new endpoint's chain (3 commands) and the Service's own chain
        // flushed and rewritten (4: the masquerade check, the spread's two
        // rules): nothing of the other 999.
        assert_eq!(batch.len(), 7, "{batch}");
        for line in batch.to_string().lines() {
            assert!(
                line.contains("svc-1d2f4f98-default-s500-tcp-80") || line.contains("10.244.9.9"),
                "touches another Service: {line}"
            );
        }
        let mut f = Fake::new();
        f.apply_batch(&diff::create(&a)).unwrap();
        f.apply_batch(&batch).unwrap();
        assert_eq!(f.table(&table_id()).unwrap(), b);
    }
}
