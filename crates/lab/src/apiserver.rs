//! The API server's public endpoint and its authorized IP ranges, as AKS
//! enforces them (`apiServerAccessProfile.authorizedIPRanges`): with no
//! range, every source may connect; with ranges, only those and the
//! cluster's own outbound public IP (AKS always adds it, with the API
//! server's own address), and `0.0.0.0/0` is the same as no range.
//!
//! The rule is part of the fabric's nftables table (one owner per table):
//! a set of the allowed prefixes and a chain on the postrouting hook after
//! the outbound SNAT, so the VNet's traffic is judged by the public IP it
//! leaves with, as the real control plane sees it.

use std::net::Ipv4Addr;

use aksnet_nft::build::{accept, drop, in_set, oifname};
use aksnet_nft::{
    priority, BaseChain, Chain, ChainType, Expr, Hook, KeyType, Payload, Rule, Set, Table,
};
use ipnet::Ipv4Net;

use crate::state::LabState;
use crate::topology::APISERVER_PORT;

/// The set of allowed source prefixes.
pub const SET: &str = "apiserver_authorized";
/// The chain that enforces it.
pub const CHAIN: &str = "apiserver_access";
/// AKS's limit on authorized ranges (the planner's rule, reused).
pub const MAX_RANGES: usize = aksnet_core::planner::aks::MAX_AUTHORIZED_RANGES;

/// Reads one authorized range: a CIDR, or an address (that one host).
/// Host bits beyond the prefix are dropped (`20.1.2.3/24` is `20.1.2.0/24`).
pub fn parse_range(text: &str) -> Result<Ipv4Net, String> {
    let t = text.trim();
    if let Ok(a) = t.parse::<Ipv4Addr>() {
        return Ok(Ipv4Net::from(a));
    }
    t.parse::<Ipv4Net>()
        .map(|n| n.trunc())
        .map_err(|_| format!("'{t}' is not an IPv4 CIDR or address (e.g. 20.30.40.0/24)"))
}

/// Reads a list (`--api-server-authorized-ip-ranges A,B`; empty: none).
pub fn parse_list(text: &str) -> Result<Vec<Ipv4Net>, String> {
    let v: Vec<Ipv4Net> = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(parse_range)
        .collect::<Result<_, _>>()?;
    if v.len() > MAX_RANGES {
        return Err(format!(
            "{} authorized IP ranges are more than the {MAX_RANGES} AKS accepts; merge them into wider CIDRs",
            v.len()
        ));
    }
    Ok(v)
}

/// The ranges the lab's design holds (unreadable ones were refused at
/// `lab up` and `lab update`).
pub fn ranges(state: &LabState) -> Vec<Ipv4Net> {
    state
        .network
        .authorized_ip_ranges
        .iter()
        .filter_map(|r| parse_range(r).ok())
        .collect()
}

/// The source prefixes the API server takes: `None` when it is open (no
/// range, or one covering everything); else the ranges with the cluster's
/// outbound public IP and the API server's own address added, merged so
/// that no two overlap (the kernel refuses overlapping interval elements).
pub fn allowed(state: &LabState) -> Option<Vec<Ipv4Net>> {
    let r = ranges(state);
    if r.is_empty() || r.iter().any(|n| n.prefix_len() == 0) {
        return None;
    }
    let a = &state.addressing;
    let mut all = r;
    all.push(Ipv4Net::from(a.public_ip));
    all.push(Ipv4Net::from(a.apiserver_ip));
    Some(Ipv4Net::aggregate(&all))
}

/// Whether a connection from `source` (as the API server sees it) is let in.
pub fn admits(state: &LabState, source: Ipv4Addr) -> bool {
    allowed(state).is_none_or(|nets| nets.iter().any(|n| n.contains(&source)))
}

/// The set and the chain, added to the fabric's table:
///
/// ```text
/// set apiserver_authorized { type ipv4_addr; flags interval; elements = { RANGES, PUBLIC-IP, API-IP } }
/// chain apiserver_access { type filter hook postrouting priority srcnat + 10; policy accept;
///     oifname "api" ip saddr @apiserver_authorized accept
///     oifname "api" drop }
/// ```
///
/// Open (no ranges): the set is empty and the chain has no rule.
pub fn add_to_table(state: &LabState, t: &mut Table) {
    let mut set = Set::new(vec![KeyType::Ipv4Addr]).interval();
    let mut rules = vec![];
    if let Some(nets) = allowed(state) {
        for n in nets {
            set = set.elem(n);
        }
        rules.push(
            Rule::new([
                oifname(APISERVER_PORT),
                in_set(Expr::Payload(Payload::IpSaddr), SET),
                accept(),
            ])
            .comment("an authorized IP range, or the cluster's outbound IP"),
        );
        rules.push(
            Rule::new([oifname(APISERVER_PORT), drop()])
                .comment("not in the API server's authorized IP ranges"),
        );
    }
    t.set(SET, set);
    t.chain(
        CHAIN,
        Chain::base(
            BaseChain::new(ChainType::Filter, Hook::Postrouting, priority::SRCNAT + 10),
            rules,
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fabric::desired_nft;
    use crate::state::tests::sample_state;
    use aksnet_nft::{Driver, Fake, Final, Packet};

    fn traced(st: &LabState, p: Packet) -> aksnet_nft::Trace {
        use aksnet_nft::Hook::*;
        aksnet_nft::trace(
            &[desired_nft(st)],
            &aksnet_nft::Host::default(),
            &p,
            &[Prerouting, Forward, Postrouting],
        )
    }

    fn to_api(src: &str, iif: &str) -> Packet {
        Packet::tcp(src, 40000, "203.0.113.200", 443)
            .iif(iif)
            .oif(APISERVER_PORT)
    }

    #[test]
    fn parsing() {
        assert_eq!(parse_range("20.1.2.3").unwrap().to_string(), "20.1.2.3/32");
        assert_eq!(
            parse_range(" 20.1.2.3/24").unwrap().to_string(),
            "20.1.2.0/24"
        );
        for bad in ["20.1.2.0/33", "x", "fd00::/64", "20.1.2"] {
            assert!(parse_range(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_list("").unwrap(), vec![]);
        assert_eq!(parse_list("1.2.3.0/24, 5.6.7.8").unwrap().len(), 2);
        let many: Vec<String> = (0..201).map(|i| format!("20.0.{i}.0/24")).collect();
        assert!(parse_list(&many.join(","))
            .unwrap_err()
            .contains("more than the 200"));
    }

    #[test]
    fn open_restricted_and_the_outbound_ip() {
        let mut st = sample_state("kubenet", None, 2, 1);
        // Open: the internet and the nodes get in; no rule, empty set.
        assert!(allowed(&st).is_none());
        let t = desired_nft(&st);
        assert!(t.chains[CHAIN].rules.is_empty() && t.sets[SET].elements.is_empty());
        assert_eq!(
            traced(&st, to_api("203.0.113.10", "inet")).verdict,
            Final::Accept
        );
        // Restricted to a range without the internet host.
        st.network.authorized_ip_ranges = vec!["198.51.100.0/24".into()];
        let from_internet = traced(&st, to_api("203.0.113.10", "inet"));
        assert_eq!(from_internet.verdict, Final::Drop, "{from_internet}");
        assert!(!admits(&st, "203.0.113.10".parse().unwrap()));
        // A node: SNAT'd to the public IP, which AKS always allows.
        let node = traced(&st, to_api("10.224.0.4", "n1"));
        assert_eq!(node.verdict, Final::Accept, "{node}");
        assert_eq!(node.nat, vec!["snat to 203.0.113.100"]);
        assert!(admits(&st, st.addressing.public_ip));
        // Traffic elsewhere is not judged.
        let elsewhere = traced(
            &st,
            Packet::tcp("203.0.113.10", 40000, "10.224.0.4", 7777)
                .iif("inet")
                .oif("n1"),
        );
        assert!(!elsewhere.rules().iter().any(|r| r.contains("authorized")));
        // The internet host's range added: allowed; the change is the set's.
        let before = desired_nft(&st);
        st.network
            .authorized_ip_ranges
            .push("203.0.113.0/28".into());
        assert_eq!(
            traced(&st, to_api("203.0.113.10", "inet")).verdict,
            Final::Accept
        );
        // 203.0.113.0/28 and the API server's own /32 do not overlap; the
        // public IP .100 is its own element.
        let after = desired_nft(&st);
        let elems: Vec<String> = after.sets[SET]
            .elements
            .keys()
            .map(|k| k.to_string())
            .collect();
        assert_eq!(
            elems.len(),
            4,
            "198.51.100.0/24, 203.0.113.0/28, .100, .200: {elems:?}"
        );
        let batch = aksnet_nft::diff::diff(&before, &after);
        assert!(!batch.to_string().contains("flush chain"), "{batch}");
        let mut fake = Fake::new();
        fake.apply(&aksnet_nft::diff::create(&before)).unwrap();
        fake.apply(&batch).unwrap();
        assert_eq!(fake.table(&before.id()).unwrap(), after);
        // A range covering the outbound IP: merged, never overlapping.
        st.network.authorized_ip_ranges = vec!["203.0.113.0/24".into()];
        assert_eq!(allowed(&st).unwrap().len(), 1);
        fake.apply(&aksnet_nft::diff::diff(&after, &desired_nft(&st)))
            .unwrap();
        // 0.0.0.0/0 is open; 0.0.0.0/32 leaves only the outbound IP.
        st.network.authorized_ip_ranges = vec!["0.0.0.0/0".into()];
        assert!(allowed(&st).is_none());
        st.network.authorized_ip_ranges = vec!["0.0.0.0/32".into()];
        assert!(!admits(&st, "203.0.113.10".parse().unwrap()));
        assert!(admits(&st, st.addressing.public_ip));
        // Empty again: open.
        st.network.authorized_ip_ranges.clear();
        assert!(admits(&st, "203.0.113.10".parse().unwrap()));
    }
}
