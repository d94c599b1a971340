//! Tables for `aksnet plan`.

use std::fmt::Write;

use aksnet_core::cidr::{self, thousands};
use aksnet_core::finding::Finding;
use aksnet_core::planner::Plan;
use aksnet_core::spec::{ClusterNetwork, NetworkPlugin};

use super::table;

/// The model's name as AKS documentation uses it.
pub fn model_title(n: &ClusterNetwork) -> &'static str {
    match n.network_plugin {
        NetworkPlugin::Kubenet => "kubenet",
        NetworkPlugin::Azure if n.is_dynamic() => "Azure CNI (pod subnet, dynamic allocation)",
        NetworkPlugin::Azure => "Azure CNI (node subnet)",
        NetworkPlugin::Overlay => "Azure CNI Overlay",
    }
}

fn verdict(p: &Plan) -> String {
    match p.errors.len() {
        0 => "valid".to_string(),
        1 => "INVALID (1 error)".to_string(),
        n => format!("INVALID ({n} errors)"),
    }
}

fn pod_addresses(n: &ClusterNetwork) -> String {
    match (n.network_plugin, n.effective_pod_cidr(), n.pod_subnet_cidr) {
        (NetworkPlugin::Azure, _, Some(ps)) if n.is_dynamic() => {
            format!("pod subnet {ps}, batches of 16 per node")
        }
        (NetworkPlugin::Azure, _, _) => {
            format!("node subnet, {} reserved per node", n.max_pods_per_node())
        }
        (_, Some(p), _) => format!("{p}, one /24 per node"),
        _ => "-".to_string(),
    }
}

fn findings(out: &mut String, title: &str, list: &[Finding]) {
    if list.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n{title}");
    for f in list {
        let _ = writeln!(out, "  {}: {}", f.code, f.message);
    }
}

/// One design: what it is, what is wrong, what it consumes.
pub fn single(p: &Plan) -> String {
    let n = &p.network;
    let c = &p.capacity;
    let mut out = String::new();
    let _ = writeln!(out, "{} — {}", model_title(n), verdict(p));

    let mut d = table();
    d.set_header(vec!["Design", ""]);
    let vnets = n
        .vnet_cidrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    d.add_row(vec!["VNet".to_string(), vnets]);
    let subnets: Vec<String> = c
        .subnets
        .iter()
        .filter(|u| u.role == "node")
        .map(|u| {
            u.cidr
                .clone()
                .unwrap_or_else(|| format!("unknown ({})", u.id.as_deref().unwrap_or("?")))
        })
        .collect();
    d.add_row(vec!["node subnet".to_string(), subnets.join(", ")]);
    d.add_row(vec!["pod addresses".to_string(), pod_addresses(n)]);
    d.add_row(vec![
        "services".to_string(),
        format!("{}, DNS {}", n.service_cidr, n.dns_service_ip),
    ]);
    for pool in &n.node_pools {
        let mode = pool
            .mode
            .as_deref()
            .map_or(String::new(), |m| format!(" ({m})"));
        d.add_row(vec![
            format!("pool {}{mode}", pool.name),
            format!(
                "{} nodes, max pods {}, max surge {}",
                pool.count, pool.max_pods, pool.max_surge
            ),
        ]);
    }
    if let Some(p) = &n.network_policy {
        let dp = n
            .network_dataplane
            .as_deref()
            .map_or(String::new(), |d| format!(", dataplane {d}"));
        d.add_row(vec!["network policy".to_string(), format!("{p}{dp}")]);
    }
    if let Some(o) = &n.outbound.outbound_type {
        d.add_row(vec!["outbound".to_string(), o.clone()]);
    }
    let _ = writeln!(out, "{}", d.trim_fmt());

    findings(&mut out, "Errors", &p.errors);
    findings(&mut out, "Warnings", &p.warnings);

    let mut t = table();
    t.set_header(vec!["Capacity", ""]);
    t.add_row(vec![
        "nodes".to_string(),
        format!(
            "{} + {} surge",
            thousands(c.node_count),
            thousands(c.surge_nodes)
        ),
    ]);
    let needed = if c.pod_ips_from_subnet > 0 {
        format!(
            "{} ({} node + {} pod addresses)",
            thousands(c.required_subnet_ips),
            thousands(c.node_ips),
            thousands(c.pod_ips_from_subnet)
        )
    } else {
        format!("{} (one per node)", thousands(c.required_subnet_ips))
    };
    t.add_row(vec!["node subnet addresses needed".to_string(), needed]);
    let usable = match (
        c.subnet_usable_ips,
        c.subnets.iter().find(|u| u.role == "node"),
    ) {
        (Some(u), Some(s)) => format!(
            "{} of {}",
            thousands(u),
            s.cidr
                .as_deref()
                .and_then(|c| cidr::parse_cidr(c).ok())
                .map_or_else(String::new, |c| thousands(cidr::size(&c)))
        ),
        _ => "unknown (the subnet is not in the inputs)".to_string(),
    };
    t.add_row(vec!["node subnet usable addresses".to_string(), usable]);
    t.add_row(vec![
        "smallest node subnet that fits".to_string(),
        format!("/{}", c.min_subnet_prefix),
    ]);
    if let (Some(req), Some(usable), Some(prefix)) = (
        c.pod_subnet_required_ips,
        c.pod_subnet_usable_ips,
        c.min_pod_subnet_prefix,
    ) {
        t.add_row(vec![
            "pod subnet addresses at full load".to_string(),
            format!(
                "{} of {} usable (smallest that fits: /{prefix})",
                thousands(req),
                thousands(usable)
            ),
        ]);
    }
    if let Some(blocks) = c.pod_cidr_blocks {
        t.add_row(vec!["pod CIDR /24 blocks".to_string(), thousands(blocks)]);
    }
    t.add_row(vec![
        "max nodes".to_string(),
        format!(
            "{} (limited by {})",
            thousands(c.max_nodes),
            c.max_nodes_limited_by.describe()
        ),
    ]);
    t.add_row(vec![
        "max pods per node".to_string(),
        c.max_pods_per_node.to_string(),
    ]);
    t.add_row(vec![
        "max pods".to_string(),
        format!(
            "{} at max nodes, {} at {} nodes",
            thousands(c.max_pods),
            thousands(c.pods_at_node_count),
            thousands(c.node_count)
        ),
    ]);
    let routes = match c.route_table_limit {
        Some(limit) => format!(
            "{} of {}",
            thousands(c.route_table_entries),
            thousands(u64::from(limit))
        ),
        None => "0 (no route table)".to_string(),
    };
    t.add_row(vec!["route table entries".to_string(), routes]);
    t.add_row(vec!["service IPs".to_string(), thousands(c.service_ips)]);
    let _ = writeln!(out, "\n{}", t.trim_fmt());
    if c.subnets.len() > 1 || !c.unknown.is_empty() {
        let mut s = table();
        s.set_header(vec![
            "Subnet", "role", "pools", "needed", "usable", "fits in",
        ]);
        for u in &c.subnets {
            s.add_row(vec![
                u.cidr
                    .clone()
                    .unwrap_or_else(|| u.id.clone().unwrap_or_default()),
                u.role.clone(),
                u.pools.join(", "),
                thousands(u.required_ips),
                u.usable_ips
                    .map_or_else(|| "unknown".to_string(), thousands),
                format!("/{}", u.min_prefix),
            ]);
        }
        let _ = writeln!(out, "\n{}", s.trim_fmt());
    }
    out
}

/// The three models side by side.
pub fn comparison(plans: &[Plan]) -> String {
    let mut out = String::new();
    let mut t = table();
    let mut header = vec![String::new()];
    header.extend(plans.iter().map(|p| model_title(&p.network).to_string()));
    t.set_header(header);
    let mut row = |label: &str, f: &dyn Fn(&Plan) -> String| {
        let mut r = vec![label.to_string()];
        r.extend(plans.iter().map(f));
        t.add_row(r);
    };
    row("verdict", &|p| verdict(p));
    row("pod addresses", &|p| pod_addresses(&p.network));
    row("max pods per node", &|p| {
        p.capacity.max_pods_per_node.to_string()
    });
    row("node subnet addresses needed", &|p| {
        thousands(p.capacity.required_subnet_ips)
    });
    row("node subnet usable", &|p| {
        p.capacity
            .subnet_usable_ips
            .map_or_else(|| "unknown".to_string(), thousands)
    });
    row("smallest node subnet", &|p| {
        format!("/{}", p.capacity.min_subnet_prefix)
    });
    row("max nodes", &|p| {
        format!(
            "{} ({})",
            thousands(p.capacity.max_nodes),
            p.capacity.max_nodes_limited_by.describe()
        )
    });
    row("max pods", &|p| thousands(p.capacity.max_pods));
    row(
        "route table entries",
        &|p| match p.capacity.route_table_limit {
            Some(l) => format!("{} of {l}", p.capacity.route_table_entries),
            None => "0".to_string(),
        },
    );
    // DESIGN §1: what the data plane does, so the trade-off is visible here too.
    row("pod → VNet VM, source seen", &|p| match p.network_plugin {
        NetworkPlugin::Azure => "pod IP".to_string(),
        _ => "node IP (SNAT)".to_string(),
    });
    row("VNet VM → pod IP", &|p| match p.network_plugin {
        NetworkPlugin::Azure => "reachable".to_string(),
        _ => "not routable".to_string(),
    });
    let _ = writeln!(out, "{}", t.trim_fmt());
    for p in plans {
        let title = model_title(&p.network);
        findings(&mut out, &format!("{title}: errors"), &p.errors);
        findings(&mut out, &format!("{title}: warnings"), &p.warnings);
    }
    out
}
