//! Rows and tables for `aksnet cluster show` and `aksnet node list`: the
//! row types (whose JSON form is a stable contract) are built here from the
//! cluster view, so commands depend on rendering and never the reverse.

use std::fmt::Write;

use aksnet_cluster::{ClusterView, Problem};
use aksnet_core::cluster::{ClaimKind, Condition, IpRange, RouteMode};
use aksnet_core::spec::ClusterNetwork;
use serde::Serialize;

use super::plan::model_title;
use super::table;

/// One row of `node list` (its JSON form is a stable contract).
#[derive(Debug, Serialize)]
pub struct NodeRow {
    pub name: String,
    pub ip: std::net::Ipv4Addr,
    pub routes: RouteMode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block: Option<ipnet::Ipv4Net>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pool: Vec<IpRange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool_size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool_used: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route_slot: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vtep_mac: Option<String>,
    pub conditions: Vec<Condition>,
}

pub fn node_rows(view: &ClusterView) -> Vec<NodeRow> {
    view.node_records()
        .map(|n| {
            let size: u64 = n.pool.iter().map(|r| r.len()).sum();
            NodeRow {
                name: n.name.clone(),
                ip: n.ip,
                routes: n.routes,
                block: n.block,
                pool: n.pool.clone(),
                pool_size: (!n.pool.is_empty()).then_some(size),
                pool_used: n.pool_used,
                route_slot: view.route_slots_of(&n.name).next(),
                vtep_mac: n.vtep_mac.clone(),
                conditions: n.conditions.clone(),
            }
        })
        .collect()
}

/// How much of the design is in use. A claim whose value cannot be read
/// still counts: what it names is taken.
#[derive(Debug, Serialize)]
pub struct Usage {
    pub nodes: usize,
    pub blocks_claimed: usize,
    pub blocks_total: u64,
    pub routes_used: usize,
    pub route_table_limit: u32,
    pub pod_ips_claimed: usize,
    pub node_ips_claimed: usize,
}

pub fn usage_of(net: &ClusterNetwork, view: &ClusterView) -> Usage {
    let count_ips = |k: ClaimKind| {
        view.ips
            .values()
            .filter(|c| c.value.as_ref().is_some_and(|c| c.kind == k))
            .count()
    };
    Usage {
        nodes: view.nodes.len() + view.unreadable_nodes.len(),
        blocks_claimed: view.blocks.len(),
        blocks_total: net
            .effective_pod_cidr()
            .map(|c| aksnet_core::cidr::subnet_count(&c, 24))
            .unwrap_or(0),
        routes_used: view.routes.len(),
        route_table_limit: net.route_table_limit,
        pod_ips_claimed: count_ips(ClaimKind::PodIp),
        node_ips_claimed: count_ips(ClaimKind::NodeIp),
    }
}

/// The store's unreadable records, for stderr.
pub fn problems(command: &str, problems: &[Problem]) -> String {
    let mut out = String::new();
    let n = problems.len();
    let _ = writeln!(
        out,
        "aksnet {command}: {n} record{} in the store cannot be read; what {} treated as taken (fix or delete the key{}):",
        if n == 1 { "" } else { "s" },
        if n == 1 { "it names is" } else { "they name are" },
        if n == 1 { "" } else { "s" },
    );
    for p in problems {
        let _ = writeln!(out, "  {p}");
    }
    out
}

pub fn network(n: &ClusterNetwork) -> String {
    let mut t = table();
    t.set_header(vec!["setting", "value"]);
    let join = |v: &[ipnet::Ipv4Net]| {
        v.iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    t.add_row(vec!["model".to_string(), model_title(n).to_string()]);
    t.add_row(vec!["vnet".to_string(), join(&n.vnet_cidrs)]);
    t.add_row(vec!["node subnet".to_string(), n.subnet_cidr.to_string()]);
    if let Some(p) = n.pod_subnet_cidr {
        t.add_row(vec!["pod subnet".to_string(), p.to_string()]);
    }
    if let Some(p) = n.effective_pod_cidr() {
        t.add_row(vec![
            "pod cidr".to_string(),
            format!("{p} (one /24 per node)"),
        ]);
    }
    t.add_row(vec!["service cidr".to_string(), n.service_cidr.to_string()]);
    t.add_row(vec![
        "dns service ip".to_string(),
        n.dns_service_ip.to_string(),
    ]);
    t.add_row(vec![
        "max pods per node".to_string(),
        n.max_pods_per_node().to_string(),
    ]);
    t.add_row(vec![
        "no-SNAT destinations".to_string(),
        join(&n.non_masquerade_cidrs()),
    ]);
    if n.network_plugin == aksnet_core::spec::NetworkPlugin::Kubenet {
        t.add_row(vec![
            "route table limit".to_string(),
            n.route_table_limit.to_string(),
        ]);
    }
    format!("{t}\n")
}

pub fn usage(n: &ClusterNetwork, u: &Usage) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\nnodes: {}", u.nodes);
    if n.effective_pod_cidr().is_some() {
        let _ = writeln!(
            out,
            "blocks: {} of {} claimed",
            u.blocks_claimed, u.blocks_total
        );
    }
    if n.network_plugin == aksnet_core::spec::NetworkPlugin::Kubenet {
        let _ = writeln!(
            out,
            "routes: {} of {} in use",
            u.routes_used, u.route_table_limit
        );
    }
    let _ = writeln!(
        out,
        "addresses claimed: {} node, {} pod",
        u.node_ips_claimed, u.pod_ips_claimed
    );
    out
}

fn conditions(cs: &[Condition]) -> String {
    if cs.is_empty() {
        return "-".into();
    }
    cs.iter()
        .map(|c| {
            let status = if c.status { "True" } else { "False" };
            if c.status && !c.message.is_empty() {
                format!("{}={status} ({}: {})", c.kind, c.reason, c.message)
            } else {
                format!("{}={status} ({})", c.kind, c.reason)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn routes(r: RouteMode, slot: Option<u32>) -> String {
    let name = match r {
        RouteMode::Fabric => "fabric",
        RouteMode::HostGw => "host-gw",
        RouteMode::Vxlan => "vxlan",
    };
    match slot {
        Some(s) => format!("{name} (slot {s})"),
        None => name.to_string(),
    }
}

pub fn nodes(rows: &[NodeRow]) -> String {
    if rows.is_empty() {
        return "no nodes\n".into();
    }
    let mut t = table();
    t.set_header(vec!["NAME", "IP", "ROUTES", "BLOCK/POOL", "CONDITIONS"]);
    for r in rows {
        let where_ = match (&r.block, r.pool.is_empty()) {
            (Some(b), _) => b.to_string(),
            (None, false) => {
                let ranges = r
                    .pool
                    .iter()
                    .map(|x| {
                        if x.start == x.end {
                            x.start.to_string()
                        } else {
                            format!("{}-{}", x.start, x.end)
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(",");
                match r.pool_used {
                    Some(u) => format!("{ranges} ({} held, {u} used)", r.pool_size.unwrap_or(0)),
                    None => format!("{ranges} ({} held)", r.pool_size.unwrap_or(0)),
                }
            }
            (None, true) => "-".into(),
        };
        t.add_row(vec![
            r.name.clone(),
            r.ip.to_string(),
            routes(r.routes, r.route_slot),
            where_,
            conditions(&r.conditions),
        ]);
    }
    format!("{t}\n")
}
