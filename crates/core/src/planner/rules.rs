//! The planning rules (`reference/aks-networking.md` §2), one function per
//! concern. Each finding's code is stable: scripts and tests key on it.

use std::net::Ipv4Addr;

use crate::cidr::{self, thousands, Ipv4Net};
use crate::finding::Finding;
use crate::spec::{ClusterNetwork, NetworkPlugin};

use super::capacity::{
    Capacity, AZURE_MIN_SUBNET_PREFIX, AZURE_RESERVED_PER_SUBNET, CLUSTER_NODE_LIMIT,
    CLUSTER_POD_LIMIT, NODE_BLOCK_PREFIX, POOL_NODE_LIMIT,
};

/// Ranges AKS refuses for the VNet, pods and services.
pub const RESERVED_RANGES: [&str; 4] = [
    "169.254.0.0/16",
    "172.30.0.0/16",
    "172.31.0.0/16",
    "192.0.2.0/24",
];
/// Private ranges an overlay pod CIDR should come from (RFC 1918, RFC 6598).
pub const PRIVATE_RANGES: [&str; 4] = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
];

pub const MIN_MAX_PODS: u32 = 10;
pub const MAX_MAX_PODS: u32 = 250;
/// A pool may go as low as 10 max pods only if it still has room for 30.
pub const MIN_POOL_PODS: u64 = 30;
/// The widest service CIDR kube-apiserver accepts.
pub const MAX_SERVICE_PREFIX_WIDTH: u8 = 12;
/// The widest VNet address space.
pub const MAX_VNET_PREFIX_WIDTH: u8 = 8;

pub struct Findings {
    pub errors: Vec<Finding>,
    pub warnings: Vec<Finding>,
}

impl Findings {
    pub(super) fn error(&mut self, code: &str, msg: impl Into<String>) {
        self.errors.push(Finding::new(code, msg));
    }
    pub(super) fn warn(&mut self, code: &str, msg: impl Into<String>) {
        self.warnings.push(Finding::new(code, msg));
    }
}

/// A named range of the design, as messages refer to it.
struct Range {
    what: String,
    net: Ipv4Net,
}

fn ranges(n: &ClusterNetwork) -> Vec<Range> {
    let mut r: Vec<Range> = n
        .vnet_cidrs
        .iter()
        .map(|v| Range {
            what: "VNet".into(),
            net: *v,
        })
        .collect();
    for s in n.node_subnets() {
        r.push(Range {
            what: "node subnet".into(),
            net: s,
        });
    }
    for p in n.pod_subnets() {
        r.push(Range {
            what: "pod subnet".into(),
            net: p,
        });
    }
    if let Some(p) = n.effective_pod_cidr() {
        r.push(Range {
            what: "pod CIDR".into(),
            net: p,
        });
    }
    r.push(Range {
        what: "service CIDR".into(),
        net: n.service_cidr,
    });
    r
}

fn net(s: &str) -> Ipv4Net {
    cidr::parse_cidr(s).expect("constant range parses")
}

pub fn check(n: &ClusterNetwork, cap: &Capacity) -> Findings {
    let mut f = Findings {
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    host_bits(n, &mut f);
    reserved_ranges(n, &mut f);
    vnet_shape(n, &mut f);
    overlaps(n, &mut f);
    service_cidr_and_dns(n, &mut f);
    model_inputs(n, &mut f);
    pools(n, &mut f);
    node_limits(n, cap, &mut f);
    subnet_size(n, cap, &mut f);
    pod_cidr_size(n, cap, &mut f);
    pod_subnet_size(n, cap, &mut f);
    super::aks::check(n, cap, &mut f);
    advice(n, cap, &mut f);
    f
}

fn host_bits(n: &ClusterNetwork, f: &mut Findings) {
    for r in ranges(n) {
        if cidr::has_host_bits(&r.net) {
            f.error(
                "cidr-host-bits-set",
                format!(
                    "{} {} has host bits set beyond its /{} prefix; write it as {}",
                    r.what,
                    r.net,
                    r.net.prefix_len(),
                    r.net.trunc()
                ),
            );
        }
    }
}

fn reserved_ranges(n: &ClusterNetwork, f: &mut Findings) {
    for r in ranges(n) {
        for res in RESERVED_RANGES.iter().map(|s| net(s)) {
            if cidr::overlaps(&r.net, &res) {
                f.error(
                    "reserved-range",
                    format!(
                        "{} {} overlaps {res}, which AKS reserves (169.254.0.0/16, 172.30.0.0/16, 172.31.0.0/16 and 192.0.2.0/24 cannot be used); choose a range outside them",
                        r.what, r.net
                    ),
                );
            }
        }
    }
}

fn vnet_shape(n: &ClusterNetwork, f: &mut Findings) {
    for (i, a) in n.vnet_cidrs.iter().enumerate() {
        if a.prefix_len() < MAX_VNET_PREFIX_WIDTH {
            f.error(
                "vnet-too-large",
                format!("VNet address space {a} is larger than /8, the largest Azure allows; use /8 or smaller"),
            );
        }
        for b in &n.vnet_cidrs[i + 1..] {
            if cidr::overlaps(a, b) {
                f.error(
                    "vnet-cidrs-overlap",
                    format!("VNet address spaces {a} and {b} overlap; a VNet's prefixes must be disjoint"),
                );
            }
        }
    }
    let inside = |x: &Ipv4Net| n.vnet_cidrs.iter().any(|v| cidr::contains_net(v, x));
    let vnets = n
        .vnet_cidrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let node_subnets = n.node_subnets();
    for s in &node_subnets {
        if n.vnet_known && !inside(s) {
            f.error(
                "subnet-outside-vnet",
                format!(
                    "node subnet {s} is not inside the VNet ({vnets}); choose a subnet within the VNet or add its range with --vnet-cidr"
                ),
            );
        }
        if s.prefix_len() > AZURE_MIN_SUBNET_PREFIX {
            f.error(
                "subnet-prefix-too-long",
                format!("node subnet {s} is smaller than /29, the smallest subnet Azure allows"),
            );
        }
    }
    for ps in n.pod_subnets() {
        if n.vnet_known && !inside(&ps) {
            f.error(
                "pod-subnet-outside-vnet",
                format!("pod subnet {ps} is not inside the VNet ({vnets}); choose a subnet within the VNet"),
            );
        }
        for s in node_subnets.iter().filter(|s| cidr::overlaps(&ps, s)) {
            f.error(
                "pod-subnet-overlaps-subnet",
                format!(
                    "pod subnet {ps} overlaps node subnet {s}; pods and nodes need separate subnets of the VNet"
                ),
            );
        }
    }
    // Distinct subnets of one VNet cannot overlap.
    for (i, a) in node_subnets.iter().enumerate() {
        for b in &node_subnets[i + 1..] {
            if cidr::overlaps(a, b) {
                f.error(
                    "subnets-overlap",
                    format!("node subnets {a} and {b} overlap; subnets of a VNet must be disjoint"),
                );
            }
        }
    }
}

fn overlaps(n: &ClusterNetwork, f: &mut Findings) {
    // The VNet side: every VNet prefix, plus subnets that stray outside it
    // (already an error of its own, but their overlaps still matter).
    let mut subnets: Vec<(String, Ipv4Net)> = n
        .node_subnets()
        .into_iter()
        .map(|s| ("node subnet".to_string(), s))
        .collect();
    subnets.extend(
        n.pod_subnets()
            .into_iter()
            .map(|s| ("pod subnet".to_string(), s)),
    );
    subnets.extend(
        n.other_subnets
            .iter()
            .map(|s| (format!("subnet {}", s.name), s.cidr)),
    );
    let mut vnet_side: Vec<(String, Ipv4Net)> = if n.vnet_known {
        n.vnet_cidrs
            .iter()
            .map(|v| ("VNet".to_string(), *v))
            .collect()
    } else {
        Vec::new()
    };
    for (what, s) in &subnets {
        if !n.vnet_cidrs.iter().any(|v| cidr::contains_net(v, s)) || !n.vnet_known {
            vnet_side.push((what.clone(), *s));
        }
    }
    if let Some(pod) = n.effective_pod_cidr() {
        for (what, v) in &vnet_side {
            if cidr::overlaps(&pod, v) {
                f.error(
                    "pod-cidr-overlaps-vnet",
                    format!(
                        "pod CIDR {pod} overlaps {what} {v}; pod addresses must not collide with VNet addresses (choose e.g. 10.244.0.0/16 or 192.168.0.0/16 outside the VNet)"
                    ),
                );
            }
        }
        if cidr::overlaps(&pod, &n.service_cidr) {
            f.error(
                "service-cidr-overlaps-pod-cidr",
                format!(
                    "service CIDR {} overlaps pod CIDR {pod}; give services and pods disjoint ranges",
                    n.service_cidr
                ),
            );
        }
    }
    // The service CIDR must not overlap any subnet (AKS: "must not overlap
    // with any Subnet IP ranges"); inside the VNet's address space but
    // outside every subnet it is allowed, only not recommended.
    let mut hit = false;
    for (what, s) in &subnets {
        if cidr::overlaps(&n.service_cidr, s) {
            hit = true;
            f.error(
                "service-cidr-overlaps-vnet",
                format!(
                    "service CIDR {} overlaps {what} {s}; the service CIDR must not overlap any subnet of the VNet (nor peered VNets or on-premises networks)",
                    n.service_cidr
                ),
            );
        }
    }
    if !hit && n.vnet_known {
        for v in n
            .vnet_cidrs
            .iter()
            .filter(|v| cidr::overlaps(&n.service_cidr, v))
        {
            f.warn(
                "service-cidr-in-vnet",
                format!(
                    "service CIDR {} is inside VNet address space {v} but outside every subnet: AKS allows it but does not recommend it; a subnet added there later would collide with cluster services",
                    n.service_cidr
                ),
            );
        }
    }
}

fn service_cidr_and_dns(n: &ClusterNetwork, f: &mut Findings) {
    let svc = n.service_cidr;
    if svc.prefix_len() < MAX_SERVICE_PREFIX_WIDTH {
        f.error(
            "service-cidr-too-large",
            format!(
                "service CIDR {svc} is larger than /12 ({} addresses); kube-apiserver accepts /12 or smaller",
                thousands(cidr::size(&svc))
            ),
        );
    }
    let dns = n.dns_service_ip;
    if !cidr::contains_addr(&svc, dns) {
        let suggestion =
            cidr::nth_addr(&svc, 10).map_or(String::new(), |a| format!(" such as {a}"));
        f.error(
            "dns-service-ip-outside-service-cidr",
            format!("DNS service IP {dns} is not within the service CIDR {svc}; choose an address inside it{suggestion}"),
        );
        return;
    }
    let reserved: [(Ipv4Addr, &str); 3] = [
        (cidr::first(&svc), "the network address"),
        (
            cidr::nth_addr(&svc, 1).unwrap_or(cidr::first(&svc)),
            "the first address, used by the kubernetes service",
        ),
        (cidr::last(&svc), "the broadcast address"),
    ];
    if let Some((_, why)) = reserved.iter().find(|(a, _)| *a == dns) {
        let suggestion = cidr::nth_addr(&svc, 10).map_or(String::new(), |a| {
            format!("; use another address such as {a}")
        });
        f.error(
            "dns-service-ip-reserved",
            format!("DNS service IP {dns} is {why} of service CIDR {svc}{suggestion}"),
        );
    }
}

fn model_inputs(n: &ClusterNetwork, f: &mut Findings) {
    if let (false, Some(ps)) = (n.network_plugin == NetworkPlugin::Azure, n.pod_subnet_cidr) {
        f.error(
            "pod-subnet-requires-azure",
            format!(
                "pod subnet {ps} was given for {}, but only Azure CNI (--network-plugin azure without overlay mode) takes pod addresses from a pod subnet; drop --pod-subnet-cidr or use azure",
                n.network_plugin
            ),
        );
    }
    if let (NetworkPlugin::Azure, Some(p)) = (n.network_plugin, n.pod_cidr) {
        f.warn(
            "pod-cidr-ignored",
            format!(
                "pod CIDR {p} is ignored: Azure CNI gives pods VNet addresses; drop --pod-cidr"
            ),
        );
    }
}

fn pools(n: &ClusterNetwork, f: &mut Findings) {
    if n.node_count() == 0 {
        f.error(
            "no-nodes",
            "the design has no nodes; give --node-count 1 or more",
        );
    }
    for p in &n.node_pools {
        if !(MIN_MAX_PODS..=MAX_MAX_PODS).contains(&p.max_pods) {
            f.error(
                "max-pods-out-of-range",
                format!(
                    "pool {}: max pods {} is outside {MIN_MAX_PODS}..{MAX_MAX_PODS}; choose a value in that range",
                    p.name, p.max_pods
                ),
            );
        } else if p.count > 0 && u64::from(p.count) * u64::from(p.max_pods) < MIN_POOL_PODS {
            let nodes = MIN_POOL_PODS.div_ceil(u64::from(p.max_pods));
            f.error(
                "pool-pod-capacity-too-small",
                format!(
                    "pool {}: {} nodes × {} max pods = {} pods, but a pool must have room for at least {MIN_POOL_PODS}; use {nodes} nodes or raise max pods",
                    p.name,
                    p.count,
                    p.max_pods,
                    u64::from(p.count) * u64::from(p.max_pods)
                ),
            );
        }
        if p.count > POOL_NODE_LIMIT {
            f.error(
                "pool-node-limit-exceeded",
                format!(
                    "pool {} has {} nodes; a node pool holds at most {}; split it into several pools",
                    p.name,
                    thousands(u64::from(p.count)),
                    thousands(u64::from(POOL_NODE_LIMIT))
                ),
            );
        }
    }
}

fn node_limits(n: &ClusterNetwork, cap: &Capacity, f: &mut Findings) {
    if cap.node_count > CLUSTER_NODE_LIMIT {
        f.error(
            "cluster-node-limit-exceeded",
            format!(
                "{} nodes exceed the {} nodes an AKS cluster may have; use several clusters",
                thousands(cap.node_count),
                thousands(CLUSTER_NODE_LIMIT)
            ),
        );
    }
    if n.network_plugin == NetworkPlugin::Kubenet {
        let needed = cap.node_count + cap.surge_nodes;
        let limit = u64::from(n.route_table_limit);
        if needed > limit {
            f.error(
                "route-table-limit-exceeded",
                format!(
                    "kubenet needs one route per node: {} nodes + {} surge = {} routes, but the route table holds {}; use at most {} nodes, or Azure CNI Overlay, which needs no route table",
                    thousands(cap.node_count),
                    cap.surge_nodes,
                    thousands(needed),
                    thousands(limit),
                    thousands(limit.saturating_sub(cap.surge_nodes))
                ),
            );
        }
    }
}

fn subnet_size(n: &ClusterNetwork, cap: &Capacity, f: &mut Findings) {
    let azure_node_subnet = n.network_plugin == NetworkPlugin::Azure && !n.is_dynamic();
    for u in cap.subnets.iter().filter(|u| u.role == "node") {
        let (Some(usable), Some(c)) = (u.usable_ips, u.cidr.as_deref()) else {
            continue;
        };
        if u.required_ips <= usable {
            continue;
        }
        let pools: Vec<&crate::spec::NodePool> = n
            .node_pools
            .iter()
            .filter(|p| u.pools.contains(&p.name))
            .collect();
        let how = if azure_node_subnet {
            pools
                .iter()
                .map(|p| {
                    format!(
                        "({} nodes + {} surge) × (1 + {} max pods)",
                        p.count,
                        p.surge_nodes(),
                        p.max_pods
                    )
                })
                .collect::<Vec<_>>()
                .join(" + ")
        } else {
            let nodes: u64 = pools.iter().map(|p| u64::from(p.count)).sum();
            let surge: u64 = pools.iter().map(|p| u64::from(p.surge_nodes())).sum();
            format!("{nodes} nodes + {surge} surge, one address each")
        };
        let size = cidr::parse_cidr(c).map(|x| cidr::size(&x)).unwrap_or(0);
        f.error(
            "subnet-too-small",
            format!(
                "node subnet {c} (pools {}) has {} usable addresses ({} minus {AZURE_RESERVED_PER_SUBNET} reserved by Azure) but the design needs {}: {how}; a /{} would fit",
                u.pools.join(", "),
                thousands(usable),
                thousands(size),
                thousands(u.required_ips),
                u.min_prefix
            ),
        );
    }
}

fn pod_cidr_size(n: &ClusterNetwork, cap: &Capacity, f: &mut Findings) {
    let (Some(pod), Some(blocks)) = (n.effective_pod_cidr(), cap.pod_cidr_blocks) else {
        return;
    };
    let needed = cap.node_count + cap.surge_nodes;
    if pod.prefix_len() > NODE_BLOCK_PREFIX {
        f.error(
            "pod-cidr-too-small",
            format!(
                "pod CIDR {pod} is smaller than /24, but every node takes a whole /24; use /24 or larger (a /{} holds {} nodes)",
                cidr::min_prefix_for(needed.max(1) * 256).unwrap_or(0),
                needed
            ),
        );
    } else if needed > blocks {
        let prefix = cidr::min_prefix_for(needed * 256).unwrap_or(0);
        f.error(
            "pod-cidr-too-small",
            format!(
                "pod CIDR {pod} holds {} /24 blocks but {} nodes + {} surge need {}; a /{prefix} would fit",
                thousands(blocks),
                thousands(cap.node_count),
                cap.surge_nodes,
                thousands(needed)
            ),
        );
    }
}

fn pod_subnet_size(n: &ClusterNetwork, cap: &Capacity, f: &mut Findings) {
    for u in cap.subnets.iter().filter(|u| u.role == "pod") {
        let (Some(usable), Some(c)) = (u.usable_ips, u.cidr.as_deref()) else {
            continue;
        };
        if u.required_ips > usable {
            let nodes: u64 = n
                .node_pools
                .iter()
                .filter(|p| u.pools.contains(&p.name))
                .map(|p| u64::from(p.count) + u64::from(p.surge_nodes()))
                .sum();
            f.error(
                "pod-subnet-too-small",
                format!(
                    "pod subnet {c} has {} usable addresses but {} nodes (surge included) holding up to {} addresses each at full load (batches of 16 with 8 kept free, or /28 blocks with StaticBlock) need {}; a /{} would fit",
                    thousands(usable),
                    thousands(nodes),
                    crate::dynamic_pool::ips_at_full_load(cap.max_pods_per_node),
                    thousands(u.required_ips),
                    u.min_prefix
                ),
            );
        }
    }
}

fn advice(n: &ClusterNetwork, cap: &Capacity, f: &mut Findings) {
    match n.network_plugin {
        NetworkPlugin::Kubenet => f.warn(
            "kubenet-retirement",
            "kubenet on AKS reaches end of support on 2028-03-31 and new clusters should not use it; Azure CNI Overlay (--network-plugin azure --network-plugin-mode overlay) keeps pods off the VNet without a route table",
        ),
        NetworkPlugin::Overlay => {
            if let Some(pod) = n.effective_pod_cidr() {
                let private = PRIVATE_RANGES.iter().any(|r| cidr::contains_net(&net(r), &pod));
                if !private {
                    f.warn(
                        "overlay-pod-cidr-not-private",
                        format!(
                            "overlay pod CIDR {pod} is not within RFC 1918 (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16) or RFC 6598 (100.64.0.0/10); AKS supports only those, choose one"
                        ),
                    );
                }
            }
        }
        NetworkPlugin::Azure => {}
    }
    if cap.pods_at_node_count > CLUSTER_POD_LIMIT {
        f.warn(
            "cluster-pod-limit",
            format!(
                "{} nodes × max pods allow {} pods, more than the {} pods an AKS cluster supports",
                thousands(cap.node_count),
                thousands(cap.pods_at_node_count),
                thousands(CLUSTER_POD_LIMIT)
            ),
        );
    }
}
