//! Outbound SNAT with ip-masq-agent's semantics, as the desired state of a
//! table the agent owns (`ip aksnet-agent`): traffic from the node's pods
//! to a destination outside the model's non-masquerade CIDRs leaves with
//! the node IP; link-local destinations (169.254.0.0/16) never change
//! source.
//!
//! ```text
//! table ip aksnet-agent {
//!     set no_snat     { type ipv4_addr; flags interval; elements = { 169.254.0.0/16, NON-MASQUERADE CIDRs } }
//!     set pod_sources { type ipv4_addr; flags interval; elements = { the node's pod ranges } }
//!     chain postrouting {
//!         type nat hook postrouting priority srcnat; policy accept;
//!         ip daddr @no_snat return
//!         ip saddr @pod_sources snat to NODE-IP
//!     }
//! }
//! ```
//!
//! The CIDRs are set elements, so a change of one is one element removed
//! and one added ([`aksnet_nft::diff`]); only a new node IP rewrites the
//! chain. The SNAT controller applies it through an [`aksnet_nft::Owner`].

use std::net::{IpAddr, Ipv4Addr};

use aksnet_nft::build::{in_set, snat};
use aksnet_nft::{
    BaseChain, Chain, Expr, Family, Hook, KeyType, Payload, Rule, Set, Table, TableId, Value,
};
use ipnet::Ipv4Net;

pub const FAMILY: Family = Family::Ip;
pub const TABLE: &str = "aksnet-agent";
pub const CHAIN: &str = "postrouting";
/// Destinations that keep the pod's source address.
pub const NO_SNAT: &str = "no_snat";
/// The node's pod ranges.
pub const POD_SOURCES: &str = "pod_sources";
pub const LINK_LOCAL: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(169, 254, 0, 0), 16);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasqPolicy {
    /// Sources that are pods (their traffic is the one SNAT applies to).
    pub pod_sources: Vec<Ipv4Net>,
    /// ip-masq-agent's `nonMasqueradeCIDRs`.
    pub non_masquerade: Vec<Ipv4Net>,
    pub node_ip: Ipv4Addr,
}

/// The policy a node's agent applies: its pod ranges (kubenet/overlay:
/// its block; Azure CNI: the pod subnet, or the node subnet pods share)
/// and the network's no-SNAT destinations. Shared with `aksnet status`,
/// which re-renders it to compare with the kernel.
pub fn policy(
    net: &aksnet_core::cluster::ClusterNetwork,
    rec: &aksnet_core::cluster::NodeRecord,
) -> MasqPolicy {
    use aksnet_core::spec::NetworkPlugin;
    let pod_sources: Vec<Ipv4Net> = match net.network_plugin {
        NetworkPlugin::Kubenet | NetworkPlugin::Overlay => rec.block.into_iter().collect(),
        NetworkPlugin::Azure => vec![net.pod_subnet_cidr.unwrap_or(net.subnet_cidr).trunc()],
    };
    MasqPolicy {
        pod_sources,
        non_masquerade: net.non_masquerade_cidrs(),
        node_ip: rec.ip,
    }
}

/// The table's identity.
pub fn table_id() -> TableId {
    TableId::new(FAMILY, TABLE)
}

/// `nets` without duplicates and without prefixes inside another one: an
/// interval set refuses overlapping elements, and a contained prefix adds
/// nothing to the match.
pub fn outermost(nets: impl IntoIterator<Item = Ipv4Net>) -> Vec<Ipv4Net> {
    let mut all: Vec<Ipv4Net> = nets.into_iter().map(|n| n.trunc()).collect();
    all.sort_by_key(|n| (n.prefix_len(), n.network()));
    all.dedup();
    let mut out: Vec<Ipv4Net> = Vec::new();
    for n in all {
        if !out.iter().any(|o| o.contains(&n)) {
            out.push(n);
        }
    }
    out.sort();
    out
}

fn interval_set(nets: Vec<Ipv4Net>) -> Set {
    nets.into_iter()
        .fold(Set::new(vec![KeyType::Ipv4Addr]).interval(), |s, n| {
            s.elem(Value::from(n))
        })
}

/// The desired table for `p`.
pub fn desired(p: &MasqPolicy) -> Table {
    let mut t = Table::new(FAMILY, TABLE);
    t.set(
        NO_SNAT,
        interval_set(outermost(
            std::iter::once(LINK_LOCAL).chain(p.non_masquerade.iter().copied()),
        )),
    );
    t.set(
        POD_SOURCES,
        interval_set(outermost(p.pod_sources.iter().copied())),
    );
    t.chain(
        CHAIN,
        Chain::base(
            BaseChain::nat(Hook::Postrouting),
            vec![
                Rule::new([
                    in_set(Expr::Payload(Payload::IpDaddr), NO_SNAT),
                    aksnet_nft::build::ret(),
                ]),
                Rule::new([
                    in_set(Expr::Payload(Payload::IpSaddr), POD_SOURCES),
                    snat(IpAddr::V4(p.node_ip)),
                ]),
            ],
        ),
    );
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use aksnet_nft::{diff, trace, Driver, Fake, Final, Hook, Host, Packet};

    fn policy() -> MasqPolicy {
        MasqPolicy {
            pod_sources: vec!["10.244.0.0/24".parse().unwrap()],
            non_masquerade: vec!["10.244.0.0/16".parse().unwrap()],
            node_ip: "10.224.0.4".parse().unwrap(),
        }
    }

    fn applied(p: &MasqPolicy) -> Fake {
        let mut f = Fake::new();
        f.apply(&diff::create(&desired(p))).unwrap();
        f
    }

    fn post(f: &Fake, pkt: &Packet) -> aksnet_nft::Trace {
        trace(&f.ruleset(), &Host::default(), pkt, &[Hook::Postrouting])
    }

    #[test]
    fn the_table_dumps_as_designed() {
        assert_eq!(
            applied(&policy()).dump(),
            "table ip aksnet-agent {
\tset no_snat {
\t\ttype ipv4_addr
\t\tflags interval
\t\telements = { 10.244.0.0/16,
\t\t\t     169.254.0.0/16 }
\t}
\tset pod_sources {
\t\ttype ipv4_addr
\t\tflags interval
\t\telements = { 10.244.0.0/24 }
\t}
\tchain postrouting {
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\tip daddr @no_snat return
\t\tip saddr @pod_sources snat to 10.224.0.4
\t}
}
"
        );
    }

    #[test]
    fn trace_pod_to_internet_is_snatted_and_pod_to_pod_is_not() {
        let f = applied(&policy());
        let out = post(
            &f,
            &Packet::tcp("10.244.0.5", 40000, "203.0.113.7", 443).oif("eth0"),
        );
        assert_eq!(out.verdict, Final::Accept);
        assert_eq!(out.nat, vec!["snat to 10.224.0.4"]);
        assert_eq!(
            out.rules(),
            vec!["ip aksnet-agent postrouting: ip saddr @pod_sources snat to 10.224.0.4"]
        );
        let pod = post(&f, &Packet::tcp("10.244.0.5", 40000, "10.244.3.9", 80));
        assert!(pod.nat.is_empty());
        assert_eq!(
            pod.rules(),
            vec!["ip aksnet-agent postrouting: ip daddr @no_snat return"]
        );
        let imds = post(&f, &Packet::tcp("10.244.0.5", 40000, "169.254.169.254", 80));
        assert!(imds.nat.is_empty(), "link-local keeps the pod's source");
        let node = post(&f, &Packet::tcp("10.224.0.4", 40000, "203.0.113.7", 443));
        assert!(node.nat.is_empty() && node.hits.is_empty(), "not a pod");
    }

    #[test]
    fn one_cidr_changed_is_one_element_out_and_one_in() {
        let a = policy();
        let mut b = a.clone();
        b.non_masquerade = vec!["10.245.0.0/16".parse().unwrap()];
        let batch = diff::diff(&desired(&a), &desired(&b));
        println!(
            "{batch}{}",
            serde_json::to_string_pretty(&batch.to_json()).unwrap()
        );
        assert_eq!(
            batch.to_string(),
            "delete element ip aksnet-agent no_snat { 10.244.0.0/16 }\ncreate element ip aksnet-agent no_snat { 10.245.0.0/16 }\n"
        );
        let mut f = applied(&a);
        f.apply(&batch).unwrap();
        assert_eq!(f.table(&table_id()).unwrap(), desired(&b));
        // Applying it twice is refused (the element is gone), as the kernel would.
        assert!(f.apply(&batch).is_err());
        let out = post(&f, &Packet::tcp("10.244.0.5", 40000, "10.244.3.9", 80));
        assert_eq!(
            out.nat,
            vec!["snat to 10.224.0.4"],
            "10.244/16 is no longer exempt"
        );
    }

    #[test]
    fn nested_and_duplicate_cidrs_are_folded_into_the_outermost() {
        let nets: Vec<Ipv4Net> = ["10.244.0.0/16", "10.0.0.0/8", "10.0.0.0/8", "172.16.5.0/24"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(
            outermost(nets),
            vec![
                "10.0.0.0/8".parse::<Ipv4Net>().unwrap(),
                "172.16.5.0/24".parse().unwrap()
            ]
        );
        let mut p = policy();
        p.non_masquerade = vec!["0.0.0.0/0".parse().unwrap()];
        let f = applied(&p);
        assert!(post(&f, &Packet::tcp("10.244.0.5", 1, "8.8.8.8", 53))
            .nat
            .is_empty());
    }
}
