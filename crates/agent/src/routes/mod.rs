//! Desired kernel routing state for `--routes host-gw|vxlan`, computed from
//! the node records alone, and the difference from what the kernel holds,
//! so a (re)started agent changes only what is wrong.

pub mod vxlan;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use aksnet_core::cluster::NodeRecord;
use ipnet::Ipv4Net;

/// Route protocol number marking the routes aksnet owns (`ip route show
/// proto 77`); nothing else on a node uses it, so the agent can list and
/// remove its own routes without touching anybody else's.
pub const RTPROT_AKSNET: u8 = 77;

/// A route in the managed namespace's main table.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    pub dst: Ipv4Net,
    pub via: Ipv4Addr,
    /// Output device; `None` lets the kernel pick it (host-gw).
    pub dev: Option<String>,
    pub onlink: bool,
}

/// Peers that have a block: every other node record with one.
pub fn peers<'a>(
    me: &str,
    nodes: impl Iterator<Item = &'a NodeRecord>,
) -> Vec<(&'a NodeRecord, Ipv4Net)> {
    nodes
        .filter(|n| n.name != me)
        .filter_map(|n| n.block.map(|b| (n, b.trunc())))
        .collect()
}

/// host-gw: each peer's block via the peer's node IP (they are L2
/// neighbours, so the kernel resolves the next hop directly).
pub fn desired_host_gw<'a>(me: &str, nodes: impl Iterator<Item = &'a NodeRecord>) -> Vec<Route> {
    let mut out: Vec<Route> = peers(me, nodes)
        .into_iter()
        .map(|(n, b)| Route {
            dst: b,
            via: n.ip,
            dev: None,
            onlink: false,
        })
        .collect();
    out.sort();
    out.dedup_by(|a, b| a.dst == b.dst);
    out
}

/// What to change so the kernel's routes equal `desired`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteDiff {
    pub replace: Vec<Route>,
    pub delete: Vec<Route>,
}

impl RouteDiff {
    pub fn is_empty(&self) -> bool {
        self.replace.is_empty() && self.delete.is_empty()
    }
}

/// Compares by destination: a route whose next hop, device or flags differ
/// is replaced; a destination no longer wanted is deleted.
pub fn diff(current: &[Route], desired: &[Route]) -> RouteDiff {
    let cur: BTreeMap<Ipv4Net, &Route> = current.iter().map(|r| (r.dst, r)).collect();
    let want: BTreeMap<Ipv4Net, &Route> = desired.iter().map(|r| (r.dst, r)).collect();
    let replace = want
        .iter()
        .filter(|(dst, r)| cur.get(dst).is_none_or(|c| !same(c, r)))
        .map(|(_, r)| (*r).clone())
        .collect();
    let delete = cur
        .iter()
        .filter(|(dst, _)| !want.contains_key(dst))
        .map(|(_, r)| (*r).clone())
        .collect();
    RouteDiff { replace, delete }
}

fn same(current: &Route, wanted: &Route) -> bool {
    current.via == wanted.via
        && current.onlink == wanted.onlink
        && (wanted.dev.is_none() || current.dev == wanted.dev)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aksnet_core::cluster::RouteMode;

    pub fn rec(name: &str, ip: &str, block: Option<&str>) -> NodeRecord {
        NodeRecord {
            name: name.into(),
            ip: ip.parse().unwrap(),
            routes: RouteMode::HostGw,
            block: block.map(|b| b.parse().unwrap()),
            pool: vec![],
            pool_used: None,
            vtep_mac: None,
            conditions: vec![],
        }
    }

    #[test]
    fn host_gw_routes_peers_only() {
        let nodes = [
            rec("a", "10.224.0.4", Some("10.244.0.0/24")),
            rec("b", "10.224.0.5", Some("10.244.1.0/24")),
            rec("c", "10.224.0.6", None),
        ];
        let r = desired_host_gw("a", nodes.iter());
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].dst, "10.244.1.0/24".parse::<Ipv4Net>().unwrap());
        assert_eq!(r[0].via, "10.224.0.5".parse::<Ipv4Addr>().unwrap());
    }

    #[test]
    fn diff_changes_only_what_differs() {
        let r = |dst: &str, via: &str| Route {
            dst: dst.parse().unwrap(),
            via: via.parse().unwrap(),
            dev: None,
            onlink: false,
        };
        let mut cur_b = r("10.244.2.0/24", "10.224.0.6");
        cur_b.dev = Some("eth0".into());
        let current = vec![
            r("10.244.1.0/24", "10.224.0.5"),
            cur_b,
            r("10.244.9.0/24", "10.224.0.9"),
        ];
        let desired = vec![
            r("10.244.1.0/24", "10.224.0.5"),
            r("10.244.2.0/24", "10.224.0.6"),
            r("10.244.3.0/24", "10.224.0.7"),
        ];
        let d = diff(&current, &desired);
        assert_eq!(d.replace, vec![r("10.244.3.0/24", "10.224.0.7")]);
        assert_eq!(d.delete, vec![r("10.244.9.0/24", "10.224.0.9")]);
        assert!(diff(&desired, &desired).is_empty());
        let moved = vec![r("10.244.1.0/24", "10.224.0.50")];
        assert_eq!(diff(&current[..1], &moved).replace, moved);
    }
}
