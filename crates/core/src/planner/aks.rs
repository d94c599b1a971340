//! AKS rules beyond address arithmetic (`reference/aks-networking.md` §4,
//! `kubernetes-services.md` §5–6): pool modes, one kind of CNI per cluster,
//! the VNet's 65,536-address limit, the route-table limit, network policy
//! engines × dataplane × plugin, outbound (UDR, NAT gateway, load balancer
//! SNAT ports), authorized IP ranges, IPv6 and dual-stack.

use ipnet::Ipv6Net;

use crate::cidr::{self, thousands};
use crate::spec::{defaults, ClusterNetwork, NetworkPlugin};

use super::capacity::{pod_subnet_ips_per_node, Capacity};
use super::rules::Findings;

/// Private IP addresses one virtual network may hold.
pub const VNET_IP_LIMIT: u64 = 65_536;
/// SNAT ports per load balancer frontend IP.
pub const SNAT_PORTS_PER_IP: u64 = 64_000;
/// Managed outbound IPs a load balancer may have.
pub const MAX_LB_OUTBOUND_IPS: u32 = 100;
/// Managed NAT gateway: outbound IPs and idle timeout (minutes).
pub const NAT_IPS: std::ops::RangeInclusive<u32> = 1..=16;
pub const NAT_IDLE_TIMEOUT: std::ops::RangeInclusive<u32> = 4..=120;
/// API server authorized IP ranges.
pub const MAX_AUTHORIZED_RANGES: usize = 200;
/// The widest IPv6 service CIDR.
pub const MAX_SERVICE_V6_WIDTH: u8 = 108;

/// Automatic SNAT ports per node by cluster size (AllocatedOutboundPorts 0).
pub fn auto_ports_per_node(nodes: u64) -> Option<u64> {
    match nodes {
        0..=50 => Some(1024),
        51..=100 => Some(512),
        101..=200 => Some(256),
        201..=400 => Some(128),
        401..=800 => Some(64),
        801..=1000 => Some(32),
        _ => None,
    }
}

pub fn check(n: &ClusterNetwork, cap: &Capacity, f: &mut Findings) {
    pools(n, f);
    vnet_ips(n, cap, f);
    route_table(n, f);
    policy(n, f);
    outbound(n, cap, f);
    authorized_ranges(n, f);
    ip_families(n, f);
}

fn pools(n: &ClusterNetwork, f: &mut Findings) {
    for p in &n.node_pools {
        if p.count == 0
            && p.mode
                .as_deref()
                .is_some_and(|m| m.eq_ignore_ascii_case("system"))
        {
            f.error(
                "system-pool-empty",
                format!("pool {} is a System pool with 0 nodes; a System pool has 1 to 1,000 nodes (only User pools scale to 0)", p.name),
            );
        }
    }
    if n.network_plugin == NetworkPlugin::Azure {
        let with: Vec<&str> = n
            .node_pools
            .iter()
            .filter(|p| n.pool_pod_subnet(p).is_some())
            .map(|p| p.name.as_str())
            .collect();
        let without: Vec<&str> = n
            .node_pools
            .iter()
            .filter(|p| n.pool_pod_subnet(p).is_none())
            .map(|p| p.name.as_str())
            .collect();
        if !with.is_empty() && !without.is_empty() {
            f.error(
                "mixed-pod-subnet",
                format!(
                    "pools {} have a pod subnet and pools {} do not; a cluster uses one kind of Azure CNI, so give every pool a pod subnet or none",
                    with.join(", "),
                    without.join(", ")
                ),
            );
        }
    }
}

/// Addresses the design takes from its VNet: every node, plus pods in the
/// VNet (node subnet: reserved up front; dynamic: held at full load;
/// StaticBlock: one per /28 block, as the limit counts blocks).
fn vnet_ips(n: &ClusterNetwork, cap: &Capacity, f: &mut Findings) {
    if !cap.unknown.is_empty() {
        return;
    }
    let mut total: u64 = 0;
    for p in &n.node_pools {
        let nodes = u64::from(p.count) + u64::from(p.surge_nodes());
        let per_node = match n.network_plugin {
            NetworkPlugin::Azure if !n.is_dynamic() => 1 + u64::from(p.max_pods),
            NetworkPlugin::Azure => {
                let static_block = p
                    .pod_ip_allocation_mode
                    .as_deref()
                    .is_some_and(|m| m.eq_ignore_ascii_case("StaticBlock"));
                1 + if static_block {
                    pod_subnet_ips_per_node(p) / 16
                } else {
                    pod_subnet_ips_per_node(p)
                }
            }
            _ => 1,
        };
        total = total.saturating_add(nodes.saturating_mul(per_node));
    }
    if total > VNET_IP_LIMIT {
        f.error(
            "vnet-ip-limit-exceeded",
            format!(
                "the design takes {} private addresses from its VNet (nodes, surge and pods in the VNet), more than the {} a virtual network may hold; use Azure CNI Overlay, StaticBlock pod allocation, or fewer nodes or max pods",
                thousands(total),
                thousands(VNET_IP_LIMIT)
            ),
        );
    }
}

fn route_table(n: &ClusterNetwork, f: &mut Findings) {
    if n.route_table_limit > defaults::ROUTE_TABLE_LIMIT {
        f.error(
            "route-table-limit-too-high",
            format!(
                "--route-table-limit {} is more than the {} routes an AKS route table holds; a design that needs more routes is not buildable (use Azure CNI Overlay, which needs no route table)",
                thousands(u64::from(n.route_table_limit)),
                defaults::ROUTE_TABLE_LIMIT
            ),
        );
    }
}

fn lower(s: &Option<String>) -> Option<String> {
    s.as_ref()
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty() && s != "none")
}

fn policy(n: &ClusterNetwork, f: &mut Findings) {
    let policy = lower(&n.network_policy);
    let dataplane = lower(&n.network_dataplane);
    let kubenet = n.network_plugin == NetworkPlugin::Kubenet;
    if let Some(p) = &policy {
        if !["azure", "calico", "cilium"].contains(&p.as_str()) {
            f.error(
                "network-policy-unknown",
                format!(
                    "network policy '{p}' is not one AKS offers; use azure, calico, cilium or none"
                ),
            );
        }
    }
    if let Some(d) = &dataplane {
        if !["azure", "cilium"].contains(&d.as_str()) {
            f.error(
                "network-dataplane-unknown",
                format!("network dataplane '{d}' is not one AKS offers; use azure or cilium"),
            );
        }
    }
    let cilium = dataplane.as_deref() == Some("cilium");
    match (policy.as_deref(), kubenet, cilium) {
        (Some("azure"), true, _) => f.error(
            "network-policy-unsupported",
            "kubenet supports Calico network policy only; Azure Network Policy Manager needs Azure CNI (--network-plugin azure); use --network-policy calico, or Azure CNI Overlay",
        ),
        (Some("cilium"), true, _) => f.error(
            "network-policy-unsupported",
            "kubenet supports Calico network policy only; Cilium needs Azure CNI powered by Cilium (--network-plugin azure --network-dataplane cilium)",
        ),
        (Some(p), _, true) if p != "cilium" => f.error(
            "cilium-dataplane-policy",
            format!("Azure CNI powered by Cilium (networkDataplane cilium) enforces policy itself: networkPolicy must be cilium, not {p}"),
        ),
        (Some("cilium"), false, false) => f.error(
            "cilium-dataplane-policy",
            "networkPolicy cilium needs networkDataplane cilium (Azure CNI powered by Cilium)",
        ),
        _ => {}
    }
    if cilium && kubenet {
        f.error(
            "cilium-requires-azure-cni",
            "Azure CNI powered by Cilium is not available with kubenet; use Azure CNI (overlay, pod subnet or node subnet)",
        );
    }
}

fn outbound(n: &ClusterNetwork, cap: &Capacity, f: &mut Findings) {
    let o = &n.outbound;
    let ty = o
        .outbound_type
        .as_deref()
        .unwrap_or("loadBalancer")
        .to_ascii_lowercase();
    match ty.as_str() {
        "loadbalancer" | "none" | "block" => {}
        "userdefinedrouting" => {
            if !n.byo_subnet {
                f.error(
                    "udr-needs-own-subnet",
                    "outboundType userDefinedRouting needs the cluster in a subnet of its own with a route table (a default route to your firewall or appliance); AKS does not create that subnet: bring one (a pool's vnetSubnetID, or --subnet-cidr) with its route table",
                );
            } else {
                for p in &n.node_pools {
                    if let Some(s) = p.subnet.as_ref().filter(|s| s.cidr.is_some() && !s.route_table) {
                        f.warn(
                            "udr-route-table-not-seen",
                            format!("outboundType userDefinedRouting: pool {}'s subnet {} has no route table in the inputs; it needs one with a default route before the cluster is created", p.name, s.id),
                        );
                    }
                }
            }
        }
        "managednatgateway" | "userassignednatgateway" => {
            if ty == "userassignednatgateway" && !n.byo_subnet {
                f.error(
                    "nat-gateway-needs-own-subnet",
                    "outboundType userAssignedNATGateway needs a subnet of your own associated with your NAT gateway; bring the subnet (a pool's vnetSubnetID, or --subnet-cidr)",
                );
            }
            if let Some(ips) = o.nat_managed_ips.filter(|i| !NAT_IPS.contains(i)) {
                f.error(
                    "nat-gateway-out-of-range",
                    format!("a managed NAT gateway has 1 to 16 outbound IPs, not {ips}"),
                );
            }
            if let Some(t) = o.nat_idle_timeout.filter(|t| !NAT_IDLE_TIMEOUT.contains(t)) {
                f.error(
                    "nat-gateway-out-of-range",
                    format!("a NAT gateway's idle timeout is 4 to 120 minutes, not {t}"),
                );
            }
        }
        other => f.error(
            "outbound-type-unknown",
            format!("outbound type '{other}' is not one AKS offers; use loadBalancer, userDefinedRouting, managedNATGateway, userAssignedNATGateway or none"),
        ),
    }
    if ty != "loadbalancer" {
        return;
    }
    if let Some(m) = o
        .lb_managed_ips
        .filter(|m| *m == 0 || *m > MAX_LB_OUTBOUND_IPS)
    {
        f.error(
            "outbound-ip-count-out-of-range",
            format!("a load balancer has 1 to {MAX_LB_OUTBOUND_IPS} managed outbound IPs, not {m}"),
        );
    }
    let ips = u64::from(o.lb_own_ips.or(o.lb_managed_ips).unwrap_or(1).max(1));
    let nodes = cap.node_count + cap.surge_nodes;
    let capacity = SNAT_PORTS_PER_IP * ips;
    match o.lb_allocated_ports.unwrap_or(0) {
        0 => match auto_ports_per_node(nodes) {
            Some(_) => {}
            None => f.warn(
                "snat-ports-automatic",
                format!("{} nodes are more than the automatic SNAT allocation covers (1,000 nodes at 32 ports each); set allocatedOutboundPorts and enough outbound IPs", thousands(nodes)),
            ),
        },
        ports => {
            let ports = u64::from(ports);
            if ports % 8 != 0 || ports > SNAT_PORTS_PER_IP {
                f.error(
                    "snat-ports-invalid",
                    format!("allocatedOutboundPorts {ports} must be a multiple of 8 from 0 to 64,000"),
                );
            } else if ports * nodes > capacity {
                let need_ips = (ports * nodes).div_ceil(SNAT_PORTS_PER_IP);
                let max_nodes = capacity / ports;
                f.error(
                    "snat-ports-exhausted",
                    format!(
                        "{} nodes (surge included) × {} SNAT ports = {} ports, but {ips} outbound IP{} give{} {} (64,000 each); use {need_ips} outbound IPs, fewer ports per node, or at most {} nodes (surge included)",
                        thousands(nodes),
                        thousands(ports),
                        thousands(ports * nodes),
                        if ips == 1 { "" } else { "s" },
                        if ips == 1 { "s" } else { "" },
                        thousands(capacity),
                        thousands(max_nodes)
                    ),
                );
            }
        }
    }
}

/// AKS's documented limits of authorized IP ranges
/// (`api-server-authorized-ip-ranges.md`, `kubernetes-services.md` §6).
fn authorized_ranges(n: &ClusterNetwork, f: &mut Findings) {
    let r = &n.authorized_ip_ranges;
    if r.is_empty() {
        return;
    }
    if n.private_cluster {
        f.error(
            "authorized-ip-ranges-private-cluster",
            "API server authorized IP ranges cannot be used with a private cluster (its API server has no public endpoint to restrict); drop the ranges or enablePrivateCluster",
        );
    }
    if n.load_balancer_sku
        .as_deref()
        .is_some_and(|s| s.eq_ignore_ascii_case("basic"))
    {
        f.error(
            "authorized-ip-ranges-basic-lb",
            "API server authorized IP ranges need the Standard load balancer SKU; loadBalancerSku basic does not support them (and AKS no longer supports Basic)",
        );
    }
    let is = |x: &String, want: &str| {
        cidr::parse_cidr(x)
            .map(|c| c.to_string() == want)
            .unwrap_or(false)
    };
    if r.iter().any(|x| is(x, "0.0.0.0/0")) {
        f.warn(
            "authorized-ip-ranges-open",
            "0.0.0.0/0 authorizes every address: the API server is as open as without authorized ranges",
        );
    } else if r.iter().all(|x| is(x, "0.0.0.0/32")) {
        f.warn(
            "authorized-ip-ranges-outbound-only",
            "0.0.0.0/32 alone lets in only the cluster's outbound IP (AKS always adds it): no administrator or CI address can reach the API server",
        );
    }
    if n.outbound
        .outbound_type
        .as_deref()
        .is_some_and(|o| o.eq_ignore_ascii_case("userDefinedRouting"))
    {
        f.warn(
            "authorized-ip-ranges-egress-ip",
            "with outboundType userDefinedRouting AKS adds no outbound IP of its own to the authorized ranges: include the public IP your firewall or appliance sends the nodes' traffic from, or the nodes lose the API server",
        );
    }
    if r.len() > MAX_AUTHORIZED_RANGES {
        f.error(
            "authorized-ip-ranges-too-many",
            format!("{} authorized IP ranges are more than the {MAX_AUTHORIZED_RANGES} the API server accepts; merge them into wider CIDRs", r.len()),
        );
    }
    for x in r {
        let ok = cidr::parse_cidr(x).is_ok() || cidr::parse_ipv4(x).is_ok();
        if !ok {
            f.error(
                "authorized-ip-range-invalid",
                format!("authorized IP range '{x}' is not an IPv4 CIDR or address"),
            );
        }
    }
}

fn ip_families(n: &ClusterNetwork, f: &mut Findings) {
    let fam: Vec<String> = n
        .ip_families
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    let v4 = fam.is_empty() || fam.iter().any(|x| x == "ipv4");
    let v6 = fam.iter().any(|x| x == "ipv6")
        || n.ipv6
            .as_ref()
            .is_some_and(|d| d.pod_cidr.is_some() || d.service_cidr.is_some());
    if !v4 {
        f.error(
            "ipv6-only-unsupported",
            "ipFamilies gives IPv6 alone; AKS clusters are IPv4 or dual-stack (IPv4 and IPv6), so add IPv4",
        );
    }
    if !v6 {
        return;
    }
    if n.network_plugin == NetworkPlugin::Azure {
        f.error(
            "dual-stack-unsupported-plugin",
            "dual-stack (IPv6) needs kubenet or Azure CNI Overlay; Azure CNI with pods on the VNet is IPv4 only",
        );
    }
    let d = n.ipv6.clone().unwrap_or_default();
    let svc = d.service_cidr.unwrap_or_else(default_v6_service);
    if svc.prefix_len() < MAX_SERVICE_V6_WIDTH {
        f.error(
            "service-cidr-v6-too-large",
            format!("IPv6 service CIDR {svc} is larger than /108, the largest AKS accepts"),
        );
    }
    let pod = d.pod_cidr.unwrap_or_else(default_v6_pod);
    if pod.contains(&svc.network()) || svc.contains(&pod.network()) {
        f.error(
            "service-cidr-overlaps-pod-cidr",
            format!("IPv6 service CIDR {svc} overlaps IPv6 pod CIDR {pod}"),
        );
    }
    for v in &d.vnet_cidrs {
        if v.contains(&pod.network()) || pod.contains(&v.network()) {
            f.error(
                "pod-cidr-overlaps-vnet",
                format!("IPv6 pod CIDR {pod} overlaps VNet address space {v}"),
            );
        }
    }
}

/// AKS's dual-stack defaults (`reference/aks-networking.md` §2).
fn default_v6_pod() -> Ipv6Net {
    Ipv6Net::new(
        std::net::Ipv6Addr::new(0xfd12, 0x3456, 0x789a, 0, 0, 0, 0, 0),
        64,
    )
    .unwrap_or_default()
}

fn default_v6_service() -> Ipv6Net {
    Ipv6Net::new(
        std::net::Ipv6Addr::new(0xfd12, 0x3456, 0x789a, 1, 0, 0, 0, 0),
        108,
    )
    .unwrap_or_default()
}
