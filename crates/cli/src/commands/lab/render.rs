//! Tables for `aksnet lab`. JSON output is the serde form of the same data.

use std::fmt::Write as _;

use aksnet_lab::bench::BenchReport;
use aksnet_lab::check::{CheckReport, CheckResult};
use aksnet_lab::expect::{Kind, Seen};
use aksnet_lab::kubelet::Report as KubeletReport;
use aksnet_lab::lab::Status;
use aksnet_lab::nodes::AgentState;
use aksnet_lab::nsg::ListedRule;
use aksnet_lab::targets::Row as ProbeRow;
use aksnet_lab::teardown::DownReport;

use crate::render::table;

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

pub fn seen(s: Option<Seen>) -> &'static str {
    match s {
        Some(Seen::Pod) => "pod IP",
        Some(Seen::Node) => "node IP",
        Some(Seen::Vm) => "VM IP",
        Some(Seen::Public) => "public IP",
        Some(Seen::Internet) => "internet IP",
        None => "-",
    }
}

pub fn status(s: &Status) -> String {
    let mut out = String::new();
    let _ =
        writeln!(
        out,
        "lab {} — {} ({:?}); VNet {}; node subnet {}; VM {} in {}; internet {} (outbound via {})",
        s.name,
        s.network_plugin,
        s.phase,
        s.vnet.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(", "),
        s.node_subnet,
        s.vm_ip,
        s.vm_subnet,
        s.internet_ip,
        s.public_ip
    );
    let _ =
        writeln!(
        out,
        "route table: {} of {} entries; VNet IPs used: {}; NSG rules: {}; fabric controller: {}",
        s.route_table_entries,
        s.route_table_limit,
        s.vnet_ips_used,
        s.nsg_rules,
        if s.controller_running { "running" } else { "NOT running" }
    );
    let api = &s.api_server;
    let _ = writeln!(
        out,
        "API server: {}:{} ({}){}; {}",
        api.ip,
        api.port,
        api.fqdn,
        if api.listening { "" } else { " NOT listening" },
        match &api.allowed_sources {
            None => "authorized IP ranges: none (open to every address)".to_string(),
            Some(v) => format!(
                "authorized IP ranges: {} (lets in {})",
                api.authorized_ip_ranges.join(", "),
                v.join(", ")
            ),
        }
    );
    let dns = &s.cluster_dns;
    let _ = writeln!(
        out,
        "cluster DNS: kube-system/kube-dns {} ({}), {}; upstream {} ({})",
        dns.service_ip,
        dns.cluster_domain,
        if dns.pods.is_empty() {
            "no DNS pod".to_string()
        } else {
            dns.pods
                .iter()
                .map(|p| {
                    format!(
                        "{} on {}{}",
                        p.pod,
                        p.node,
                        if p.dns_running {
                            ""
                        } else {
                            " (aksnet dns NOT running)"
                        }
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        },
        dns.upstream,
        if dns.upstream_running {
            "the internet host's public zone"
        } else {
            "NOT running"
        }
    );
    let mut t = table();
    t.set_header(vec![
        "node",
        "IP",
        "pod range",
        "conditions",
        "agent",
        "pods",
    ]);
    for n in &s.nodes {
        t.add_row(vec![
            n.name.clone(),
            n.ip.to_string(),
            n.pod_range.clone().unwrap_or_else(|| "-".into()),
            if n.conditions.is_empty() {
                "-".into()
            } else {
                n.conditions.join("; ")
            },
            n.agent.as_str().into(),
            n.pods.to_string(),
        ]);
    }
    let _ = writeln!(out, "\n{t}");
    for n in s.nodes.iter().filter(|n| n.agent != AgentState::Running) {
        let _ = writeln!(
            out,
            "the agent of {} is {}: `aksnet lab restart-agent --name {} {}` restarts it",
            n.name,
            n.agent.as_str(),
            s.name,
            n.name
        );
    }
    let mut t = table();
    t.set_header(vec!["pod", "node", "IP", "probe"]);
    for p in &s.pods {
        t.add_row(vec![
            if p.namespace == "default" {
                p.name.clone()
            } else {
                format!("{}/{}", p.namespace, p.name)
            },
            p.node.clone(),
            p.ip.map(|i| i.to_string()).unwrap_or_else(|| "-".into()),
            if p.probe_running {
                "running".into()
            } else {
                "NOT running".into()
            },
        ]);
    }
    let _ = writeln!(out, "\n{t}");
    out.push_str(&load_balancer(&s.load_balancer));
    out
}

/// The load balancer's frontends, rules and pool members with their
/// probe state (nothing when no Service is of type LoadBalancer).
pub fn load_balancer(lb: &aksnet_lab::lb::LbStatus) -> String {
    let mut out = String::new();
    if lb.frontends.is_empty() && lb.pending.is_empty() {
        return out;
    }
    let mut t = table();
    t.set_header(vec![
        "frontend",
        "service",
        "rule",
        "probe",
        "member",
        "state",
        "last probe",
    ]);
    for f in &lb.frontends {
        let front = format!(
            "{} ({}{})",
            f.ip,
            if f.internal { "internal" } else { "public" },
            if f.source_ranges.is_empty() {
                String::new()
            } else {
                format!(
                    "; from {}",
                    f.source_ranges
                        .iter()
                        .map(|n| n.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        );
        for r in &f.rules {
            for m in &r.pool {
                let (state, last) = match &r.probe {
                    None => ("up (no probe)".to_string(), "-".to_string()),
                    Some(_) => (
                        m.probe.as_str().to_string(),
                        match (&m.probe.last_result, m.probe.consecutive_failures) {
                            (Some(r), 0) => r.clone(),
                            (Some(r), n) => format!("{r} ({n} failed)"),
                            (None, _) => "-".into(),
                        },
                    ),
                };
                t.add_row(vec![
                    front.clone(),
                    format!("{} ({})", f.service, f.external_traffic_policy),
                    format!("{} {}", r.protocol.as_str(), r.port),
                    r.probe
                        .as_ref()
                        .map(|p| p.label())
                        .unwrap_or_else(|| "-".into()),
                    format!("{} {}", m.node, m.ip),
                    state,
                    last,
                ]);
            }
        }
    }
    let _ = writeln!(
        out,
        "\nload balancer (probes every {} s, down after {} failures):\n{t}",
        aksnet_lab::lb::PROBE_INTERVAL.as_secs(),
        aksnet_lab::lb::PROBE_THRESHOLD
    );
    for p in &lb.pending {
        let _ = writeln!(out, "{}: no frontend ({})", p.service, p.reason);
    }
    out
}

pub fn check(r: &CheckReport) -> String {
    let mut t = table();
    t.set_header(vec![
        "kind",
        "from → to",
        "reachable",
        "source seen",
        "expected",
        "match",
    ]);
    for x in &r.results {
        t.add_row(vec![
            x.kind.as_str().to_string(),
            format!("{} → {}", x.from, x.to),
            yes(x.reachable).to_string(),
            match &x.source_ip_seen {
                Some(ip) => format!("{ip} ({})", seen(x.source_seen)),
                None => "-".into(),
            },
            if x.expected_reachable {
                format!("reachable, {}", seen(x.expected_source))
            } else {
                "not reachable".into()
            },
            if x.matches {
                "ok".to_string()
            } else {
                format!(
                    "DIFFERS{}",
                    x.note
                        .as_deref()
                        .map(|n| format!(": {n}"))
                        .unwrap_or_default()
                )
            },
        ]);
    }
    let mut out = format!("{t}\n");
    let notes: Vec<&CheckResult> = r
        .results
        .iter()
        .filter(|x| x.matches && x.note.is_some())
        .collect();
    for n in notes.iter().take(3) {
        let _ = writeln!(
            out,
            "note: {} {} → {}: {}",
            n.kind.as_str(),
            n.from,
            n.to,
            n.note.as_deref().unwrap_or("")
        );
    }
    let _ = writeln!(
        out,
        "{}: {} of {} results match DESIGN §1; route table entries {}; VNet IPs used {}{}",
        r.network_plugin,
        r.results.len() - r.mismatches(),
        r.results.len(),
        r.route_table_entries,
        r.vnet_ips_used,
        if r.nodes_network_unavailable.is_empty() {
            String::new()
        } else {
            format!(
                "; NetworkUnavailable: {}",
                r.nodes_network_unavailable.join(", ")
            )
        }
    );
    for p in &r.store_problems {
        let _ = writeln!(
            out,
            "store: {p} (unreadable; what it names is treated as taken)"
        );
    }
    out
}

/// One cell per kind: what every result of that kind showed.
pub fn kind_cell(r: &CheckReport, k: Kind) -> String {
    let of: Vec<&CheckResult> = r.results.iter().filter(|x| x.kind == k).collect();
    if of.is_empty() {
        return "-".into();
    }
    let first = of[0];
    let same = of
        .iter()
        .all(|x| x.reachable == first.reachable && x.source_seen == first.source_seen);
    let ok = if of.iter().all(|x| x.matches) {
        "✓"
    } else {
        "✗ DIFFERS"
    };
    if !same {
        return format!("mixed {ok}");
    }
    if first.reachable {
        format!("yes, sees {} {ok}", seen(first.source_seen))
    } else {
        format!("no {ok}")
    }
}

pub fn down(r: &DownReport) -> String {
    let mut out = format!(
        "lab {}: stopped {}, removed {}{}\n",
        r.name,
        crate::render::count(r.processes_stopped.len(), "process"),
        crate::render::count(r.namespaces_removed.len(), "namespace"),
        if r.directory_removed {
            " and its directory"
        } else {
            ""
        }
    );
    for l in &r.left {
        let _ = writeln!(out, "LEFT: {l}");
    }
    out
}

pub fn nsg(rules: &[ListedRule]) -> String {
    let mut t = table();
    t.set_header(vec![
        "direction",
        "priority",
        "name",
        "access",
        "source",
        "destination",
        "port",
        "protocol",
    ]);
    for r in rules {
        t.add_row(vec![
            r.direction.as_str().to_string(),
            r.priority.to_string(),
            r.name.clone(),
            r.access.as_str().to_string(),
            r.source.clone(),
            r.destination.clone(),
            r.port.clone(),
            r.protocol.clone(),
        ]);
    }
    format!("{t}\n")
}

pub fn bench(r: &BenchReport) -> String {
    let mut t = table();
    t.set_header(vec!["case", "from → to", "Gbit/s (median)", "runs"]);
    for row in &r.rows {
        t.add_row(vec![
            row.case.clone(),
            format!("{} → {}", row.from, row.to),
            format!("{:.2}", row.gbits_per_sec),
            row.runs
                .iter()
                .map(|x| format!("{x:.2}"))
                .collect::<Vec<_>>()
                .join(" "),
        ]);
    }
    let mut out = format!(
        "{} lab, iperf3 one TCP stream, {} s × {} runs, MTU {}, load average before: {}\n{t}\n",
        r.network_plugin, r.seconds_per_run, r.repeats, r.mtu, r.load_average
    );
    if let Some(ratio) = r.same_node_ratio {
        let _ = writeln!(
            out,
            "same-node pod → pod = {:.0}% of the bare veth pair (target ≥ 90%)",
            ratio * 100.0
        );
    }
    out
}

/// What the lab did as the kubelet (nothing printed when nothing happened).
pub fn kubelet(r: &KubeletReport) -> String {
    let mut out = String::new();
    for p in &r.pods_created {
        let _ = writeln!(out, "pod/{p} created");
    }
    for p in &r.pods_deleted {
        let _ = writeln!(out, "pod/{p} deleted");
    }
    for p in &r.stopped {
        let _ = writeln!(out, "lab pod {p} stopped");
    }
    for p in &r.started {
        let _ = writeln!(out, "lab pod {p} running");
    }
    for p in &r.pending {
        let _ = writeln!(out, "lab pod {p} (Pending)");
    }
    out
}

/// `lab probe` as a table.
pub fn probes(rows: &[ProbeRow]) -> String {
    let mut t = table();
    t.set_header(vec![
        "from",
        "to",
        "address",
        "result",
        "answered by",
        "source seen",
        "ms",
    ]);
    for r in rows {
        let result = if r.reachable {
            "reached"
        } else if r.refused {
            "refused"
        } else {
            "no answer"
        };
        t.add_row(vec![
            r.from.clone(),
            r.to.clone(),
            format!("{}:{}/{}", r.address, r.port, r.protocol),
            result.into(),
            r.answered_by.clone().unwrap_or_else(|| "-".into()),
            match (&r.source_ip_seen, &r.source_seen) {
                (Some(ip), Some(k)) => format!("{ip} ({k})"),
                _ => "-".into(),
            },
            format!("{:.1}", r.elapsed_ms),
        ]);
    }
    format!("{t}\n")
}
