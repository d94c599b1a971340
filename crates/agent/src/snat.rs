//! Outbound SNAT with ip-masq-agent's semantics, as one nftables batch on a
//! table aksnet owns (`ip aksnet-agent`): traffic from the node's pods to a
//! destination outside the model's non-masquerade CIDRs leaves with the node
//! IP; link-local destinations (169.254.0.0/16) never change source.
//!
//! The batch ensures the table exists, deletes it and builds it again, so
//! the kernel swaps the whole rule set in one transaction. Its first rule
//! carries a digest of the rule set, so an agent (re)starting on a node whose
//! table already matches leaves it alone.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde_json::{json, Value};

pub const FAMILY: &str = "ip";
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

fn prefix(net: &Ipv4Net) -> Value {
    json!({ "prefix": { "addr": net.network().to_string(), "len": net.prefix_len() } })
}

fn matches(field: &str, op: &str, net: &Ipv4Net) -> Value {
    json!({ "match": {
        "op": op,
        "left": { "payload": { "protocol": "ip", "field": field } },
        "right": prefix(net),
    }})
}

fn rule(expr: Vec<Value>, comment: Option<&str>) -> Value {
    let mut r = json!({ "family": FAMILY, "table": TABLE, "chain": CHAIN, "expr": expr });
    if let Some(c) = comment {
        r["comment"] = json!(c);
    }
    json!({ "add": { "rule": r } })
}

/// The rules, without table and chain (what the digest covers).
fn rules(p: &MasqPolicy) -> Vec<(Vec<Value>, bool)> {
    let ll: Ipv4Net = LINK_LOCAL.parse().unwrap_or_default();
    let mut out = vec![(
        vec![matches("daddr", "==", &ll), json!({ "return": null })],
        false,
    )];
    for n in &p.non_masquerade {
        out.push((
            vec![
                matches("daddr", "==", &n.trunc()),
                json!({ "return": null }),
            ],
            false,
        ));
    }
    for s in &p.pod_sources {
        out.push((
            vec![
                matches("saddr", "==", &s.trunc()),
                json!({ "snat": { "family": "ip", "addr": p.node_ip.to_string() } }),
            ],
            true,
        ));
    }
    out
}

/// A short, stable digest of the rule set (FNV-1a of its JSON).
pub fn digest(p: &MasqPolicy) -> String {
    let text = serde_json::to_string(&rules(p).into_iter().map(|(e, _)| e).collect::<Vec<_>>())
        .unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{DIGEST_PREFIX}{h:016x}")
}

/// The atomic batch for `nft -j -f -`.
pub fn batch(p: &MasqPolicy) -> Value {
    let table = json!({ "family": FAMILY, "name": TABLE });
    let mut cmds = vec![
        json!({ "add": { "table": table } }),
        json!({ "delete": { "table": table } }),
        json!({ "add": { "table": table } }),
        json!({ "add": { "chain": {
            "family": FAMILY, "table": TABLE, "name": CHAIN,
            "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept",
        }}}),
    ];
    let d = digest(p);
    for (i, (expr, _)) in rules(p).into_iter().enumerate() {
        cmds.push(rule(expr, (i == 0).then_some(d.as_str())));
    }
    json!({ "nftables": cmds })
}

/// The digest found in `nft -j list table ip aksnet-agent` output, if any.
pub fn digest_in_listing(listing: &Value) -> Option<String> {
    listing["nftables"].as_array()?.iter().find_map(|o| {
        let c = o["rule"]["comment"].as_str()?;
        c.starts_with(DIGEST_PREFIX).then(|| c.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let cmds = b["nftables"].as_array().unwrap();
        assert!(
            cmds[1].get("delete").is_some(),
            "old content goes in the same batch"
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
        let listing = json!({"nftables": [{"table": {}}, {"rule": rules[0].clone()}]});
        assert_eq!(digest_in_listing(&listing), Some(digest(&policy())));
    }

    #[test]
    fn digest_follows_content() {
        let mut p = policy();
        let d = digest(&p);
        p.node_ip = "10.224.0.5".parse().unwrap();
        assert_ne!(digest(&p), d);
    }
}
