//! The load balancer's routing in the fabric namespace: how a marked
//! packet reaches its member's NIC with the frontend IP unchanged
//! (floating IP), kept equal to the lab's nodes and frontends:
//!
//! - per node `i`: `ip rule pref 20000+i fwmark 0x10000+i lookup 20000+i`
//!   and, in that table, `default via NODE-IP dev n<i> onlink`;
//! - per frontend IP: `FRONTEND/32 dev lb0` in the main table, a veth
//!   whose peer stays down (a discard device; kernels without the `dummy`
//!   link type have veth), so the fabric answers ARP for the frontend
//!   (proxy ARP needs a route through another device) and never sends an
//!   unmarked packet anywhere (those are dropped before routing anyway);
//! - the probe source, [`super::PROBE_SOURCE`], on the fabric's loopback.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use super::nft::mark_of;
use super::{Frontend, PROBE_SOURCE};
use crate::error::Result;
use crate::ip;
use crate::state::LabState;
use crate::topology::node_port;

/// The discard device frontend IPs route to, and its peer (kept down).
pub const LB_DEV: &str = "lb0";
pub const LB_SINK: &str = "lb0-sink";
/// Rule preference and table of node `i`: `TABLE_BASE + i`.
pub const TABLE_BASE: u32 = 20000;
const TABLE_END: u32 = 30000;

pub fn table_of(index: u32) -> u32 {
    TABLE_BASE + index
}

/// The `ip -batch` lines that make the fabric's LB routing what
/// `state` and `frontends` need, given what it holds now: rule
/// preferences present, frontend routes through `lb0`, whether `lb0` and
/// the probe source exist.
pub fn lines(
    state: &LabState,
    frontends: &[Frontend],
    rules_now: &BTreeSet<u32>,
    routes_now: &BTreeSet<Ipv4Addr>,
    base_present: (bool, bool),
) -> Vec<String> {
    let mut out = vec![];
    if !base_present.0 {
        out.push(format!(
            "link add name {LB_DEV} type veth peer name {LB_SINK}"
        ));
        out.push(format!("link set dev {LB_DEV} up"));
    }
    if !base_present.1 {
        out.push(format!("addr add {PROBE_SOURCE}/32 dev lo"));
    }
    let want_rules: BTreeSet<u32> = state.nodes.iter().map(|n| table_of(n.index)).collect();
    for p in rules_now.difference(&want_rules) {
        out.push(format!("rule del pref {p}"));
    }
    for n in &state.nodes {
        let t = table_of(n.index);
        if !rules_now.contains(&t) {
            out.push(format!(
                "rule add pref {t} fwmark {:#x} lookup {t}",
                mark_of(n.index)
            ));
        }
        out.push(format!(
            "route replace default via {} dev {} onlink table {t}",
            n.ip,
            node_port(n.index)
        ));
    }
    let want_routes: BTreeSet<Ipv4Addr> = frontends.iter().map(|f| f.ip).collect();
    for ip in routes_now.difference(&want_routes) {
        out.push(format!("route del {ip}/32 dev {LB_DEV}"));
    }
    for ip in want_routes.difference(routes_now) {
        out.push(format!("route add {ip}/32 dev {LB_DEV}"));
    }
    out
}

/// Reads what the fabric holds and applies [`lines`].
pub fn sync(state: &LabState, frontends: &[Frontend]) -> Result<()> {
    let ns = state.names().fabric();
    let links = ip::json(&ns, &["link", "show"])?;
    let has_dev = links
        .as_array()
        .into_iter()
        .flatten()
        .any(|l| l.get("ifname").and_then(|n| n.as_str()) == Some(LB_DEV));
    let addrs = ip::json(&ns, &["addr", "show", "dev", "lo"])?;
    let has_src = addrs
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|a| {
            a.get("addr_info")
                .and_then(|i| i.as_array())
                .into_iter()
                .flatten()
        })
        .any(|i| i.get("local").and_then(|l| l.as_str()) == Some(&PROBE_SOURCE.to_string()));
    let rules = ip::json(&ns, &["rule", "show"])?;
    let rules_now: BTreeSet<u32> = rules
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("priority").and_then(|p| p.as_u64()))
        .filter_map(|p| u32::try_from(p).ok())
        .filter(|p| (TABLE_BASE..TABLE_END).contains(p))
        .collect();
    let routes_now: BTreeSet<Ipv4Addr> = if has_dev {
        ip::json(&ns, &["route", "show", "dev", LB_DEV])?
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r.get("dst").and_then(|d| d.as_str()))
            .filter_map(|d| d.trim_end_matches("/32").parse().ok())
            .collect()
    } else {
        BTreeSet::new()
    };
    let l = lines(
        state,
        frontends,
        &rules_now,
        &routes_now,
        (has_dev, has_src),
    );
    ip::batch(&ns, &l)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::tests::sample_state;

    #[test]
    fn rules_per_node_and_routes_per_frontend_as_a_diff() {
        let st = sample_state("kubenet", None, 2, 0);
        let fe = |ip: &str| Frontend {
            service: "shop/web".into(),
            ip: ip.parse().unwrap(),
            internal: false,
            external_traffic_policy: "Cluster".into(),
            source_ranges: vec![],
            rules: vec![],
        };
        let l = lines(
            &st,
            &[fe("203.0.113.150")],
            &BTreeSet::new(),
            &BTreeSet::new(),
            (false, false),
        );
        assert!(
            l.contains(&"link add name lb0 type veth peer name lb0-sink".to_string()),
            "{l:?}"
        );
        assert!(l.contains(&"addr add 168.63.129.16/32 dev lo".to_string()));
        assert!(l.contains(&"rule add pref 20001 fwmark 0x10001 lookup 20001".to_string()));
        assert!(l.contains(
            &"route replace default via 10.224.0.5 dev n2 onlink table 20002".to_string()
        ));
        assert!(l.contains(&"route add 203.0.113.150/32 dev lb0".to_string()));
        // A node gone and a frontend freed.
        let l = lines(
            &st,
            &[],
            &BTreeSet::from([20001, 20002, 20007]),
            &BTreeSet::from(["203.0.113.150".parse().unwrap()]),
            (true, true),
        );
        assert!(l.contains(&"rule del pref 20007".to_string()), "{l:?}");
        assert!(l.contains(&"route del 203.0.113.150/32 dev lb0".to_string()));
        assert!(!l
            .iter()
            .any(|x| x.starts_with("rule add") || x.starts_with("link add")));
    }
}
