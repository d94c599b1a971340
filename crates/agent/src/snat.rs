//! Outbound SNAT with ip-masq-agent's semantics, as one nftables batch on a
//! table aksnet owns (`ip aksnet-agent`): traffic from the node's pods to a
//! destination outside the model's non-masquerade CIDRs leaves with the node
//! IP; link-local destinations (169.254.0.0/16) never change source.
//!
//! The batch ensures the table exists, deletes it and builds it again, so
//! the kernel swaps the whole rule set in one transaction. Its first rule
//! carries a digest of the rule set, so an agent (re)starting on a node whose
//! table already matches leaves it alone.

use std::net::{IpAddr, Ipv4Addr};

use aksnet_linux::nft::{expr, BaseChain, Batch, Family, Table};
use ipnet::Ipv4Net;
use serde_json::{json, Value};

pub const FAMILY: Family = Family::Ip;
pub const TABLE: &str = "aksnet-agent";
pub const CHAIN: &str = "postrouting";
pub const LINK_LOCAL: &str = "169.254.0.0/16";
/// Prefix of the digest comment on the first rule.
pub const DIGEST_PREFIX: &str = "aksnet-masq ";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasqPolicy {
    /// Sources that are pods (their traffic is the one SNAT applies to).
    pub pod_sources: Vec<Ipv4Net>,
    /// ip-masq-agent's `nonMasqueradeCIDRs`.
    pub non_masquerade: Vec<Ipv4Net>,
    pub node_ip: Ipv4Addr,
}

/// `ip FIELD == NET`, always as a prefix (also a /32), which keeps the
/// digest of a rule set what it has always been.
fn matches(field: &str, net: &Ipv4Net) -> Value {
    let prefix =
        json!({ "prefix": { "addr": net.network().to_string(), "len": net.prefix_len() } });
    expr::matches(expr::payload("ip", field), "==", prefix)
}

/// The rules' statements, without table and chain (what the digest covers).
fn rules(p: &MasqPolicy) -> Vec<Vec<Value>> {
    let ll: Ipv4Net = LINK_LOCAL.parse().unwrap_or_default();
    let mut out = vec![vec![matches("daddr", &ll), expr::ret()]];
    for n in &p.non_masquerade {
        out.push(vec![matches("daddr", &n.trunc()), expr::ret()]);
    }
    for s in &p.pod_sources {
        out.push(vec![
            matches("saddr", &s.trunc()),
            expr::snat(IpAddr::V4(p.node_ip)),
        ]);
    }
    out
}

/// A short, stable digest of the rule set (FNV-1a of its JSON).
pub fn digest(p: &MasqPolicy) -> String {
    let text = serde_json::to_string(&rules(p)).unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{DIGEST_PREFIX}{h:016x}")
}

/// The atomic batch: the table is added (so that deleting it cannot fail),
/// deleted and built again, in one transaction.
pub fn batch(p: &MasqPolicy) -> Batch {
    let mut b = Batch::new();
    b.add_table(FAMILY, TABLE)
        .delete_table(FAMILY, TABLE)
        .add_table(FAMILY, TABLE)
        .add_chain(FAMILY, TABLE, CHAIN, Some(&BaseChain::nat("postrouting")));
    let d = digest(p);
    for (i, expr) in rules(p).into_iter().enumerate() {
        b.add_rule(FAMILY, TABLE, CHAIN, expr, (i == 0).then_some(d.as_str()));
    }
    b
}

/// The digest found in a listing of `ip aksnet-agent`, if any.
pub fn digest_in_listing(listing: &Table) -> Option<String> {
    listing
        .rules
        .iter()
        .filter_map(|r| r.comment.as_deref())
        .find(|c| c.starts_with(DIGEST_PREFIX))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST_BEFORE: &str = "aksnet-masq 4782f269ce8a2324";

    fn policy() -> MasqPolicy {
        MasqPolicy {
            pod_sources: vec!["10.244.0.0/16".parse().unwrap()],
            non_masquerade: vec!["10.244.0.0/16".parse().unwrap()],
            node_ip: "10.224.0.4".parse().unwrap(),
        }
    }

    #[test]
    fn batch_replaces_the_table_and_orders_rules() {
        let b = batch(&policy());
        let cmds = b.commands();
        assert!(
            cmds[1].get("delete").is_some(),
            "old content goes in the same batch"
        );
        assert_eq!(
            cmds[3]["add"]["chain"],
            json!({ "family": "ip", "table": TABLE, "name": CHAIN,
                "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept" })
        );
        let rules: Vec<&Value> = cmds.iter().filter_map(|c| c["add"].get("rule")).collect();
        assert_eq!(rules.len(), 3);
        assert_eq!(
            rules[0]["expr"][0]["match"]["right"]["prefix"]["addr"],
            "169.254.0.0"
        );
        assert_eq!(rules[1]["expr"][0]["match"]["right"]["prefix"]["len"], 16);
        assert_eq!(rules[2]["expr"][1]["snat"]["addr"], "10.224.0.4");
        assert_eq!(rules[0]["comment"].as_str().unwrap(), digest(&policy()));
        let mut listed = rules[0].clone();
        listed["handle"] = json!(4);
        let listing = Table::parse(&json!({"nftables": [{"table": {}}, {"rule": listed}]}));
        assert_eq!(digest_in_listing(&listing), Some(digest(&policy())));
    }

    #[test]
    fn digest_is_unchanged_by_the_move_to_aksnet_linux() {
        // Computed before the rules were built with aksnet_linux::nft: an
        // agent upgraded on a node keeps the table it finds.
        assert_eq!(digest(&policy()), DIGEST_BEFORE);
    }

    #[test]
    fn digest_follows_content() {
        let mut p = policy();
        let d = digest(&p);
        p.node_ip = "10.224.0.5".parse().unwrap();
        assert_ne!(digest(&p), d);
    }
}
