//! The nftables rules of aksnet-portmap, as data.
//!
//! One table per family, `ip aksnet-portmap` and `ip6 aksnet-portmap`:
//!
//! ```text
//! chain prerouting  { type nat hook prerouting priority -100; fib daddr type local jump hostports }
//! chain output      { type nat hook output priority -100;     fib daddr type local jump hostports }
//! chain postrouting { type nat hook postrouting priority 100; ct status dnat jump masquerading }
//! chain hostports    { [ip daddr HOSTIP] tcp dport HOSTPORT counter dnat to C:PORT  comment TAG ... }
//! chain masquerading { ip saddr C ip daddr C tcp dport PORT masquerade             comment TAG
//!                      ip saddr 127.0.0.0/8 ip daddr C tcp dport PORT masquerade   comment TAG ... }
//! ```
//!
//! The three base chains hold only their jump, which every ADD writes again
//! after flushing them in the same transaction: concurrent ADDs can never
//! leave two jumps behind. Per-attachment rules carry the attachment's tag
//! (network, container ID, ifname) as comment, so that DEL and GC delete
//! exactly them by handle, and the table is never deleted (another
//! attachment's ADD may be committing into it).
//!
//! Masquerading (`snat`, as in the reference plugin): a container that
//! reaches itself through a host port (hairpin) would otherwise get a
//! packet from its own address and answer it locally, and a connection to
//! 127.0.0.1:HOSTPORT has a source that cannot leave the host.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};

use aksnet_linux::nft::{expr, BaseChain, Batch, Family, ListedRule, Table};
use ipnet::{IpNet, Ipv4Net};
use serde_json::Value;

use super::config::PortmapConf;

/// The table name (in the `ip` and `ip6` families).
pub const TABLE: &str = "aksnet-portmap";
/// Base chain at prerouting (traffic from other hosts and from pods).
pub const PREROUTING: &str = "prerouting";
/// Base chain at output (node-local access).
pub const OUTPUT: &str = "output";
/// Base chain at postrouting.
pub const POSTROUTING: &str = "postrouting";
/// The DNAT rules.
pub const HOSTPORTS: &str = "hostports";
/// The masquerade rules.
pub const MASQUERADING: &str = "masquerading";

/// A rule in one of the regular chains.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// `ip` or `ip6`.
    pub family: Family,
    /// [`HOSTPORTS`] or [`MASQUERADING`] (or a base chain for the jumps).
    pub chain: &'static str,
    /// Statements.
    pub expr: Vec<Value>,
}

fn family_of(ip: &IpAddr) -> Family {
    if ip.is_ipv4() {
        Family::Ip
    } else {
        Family::Ip6
    }
}

fn host(ip: IpAddr) -> IpNet {
    IpNet::from(ip)
}

fn loopback() -> IpNet {
    IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(127, 0, 0, 0), 8))
}

/// The rules of one attachment with container addresses `ips`. Mappings
/// whose `hostIP` is of the other family than a container address are
/// skipped for that address.
pub fn attachment_rules(conf: &PortmapConf, ips: &[IpAddr]) -> Vec<Rule> {
    let mut out: Vec<Rule> = Vec::new();
    let mut push = |r: Rule| {
        if !out.contains(&r) {
            out.push(r);
        }
    };
    for ip in ips {
        let family = family_of(ip);
        let c = host(*ip);
        for m in &conf.mappings {
            if m.host_ip.is_some_and(|h| family_of(&h) != family) {
                continue;
            }
            let proto = m.proto.as_str();
            let mut dn = Vec::new();
            if let Some(h) = m.host_ip {
                dn.push(expr::daddr("==", &host(h)));
            }
            dn.push(expr::dport(proto, m.host_port));
            dn.push(expr::counter());
            dn.push(expr::dnat(*ip, Some(m.container_port)));
            push(Rule {
                family,
                chain: HOSTPORTS,
                expr: dn,
            });
            if !conf.snat {
                continue;
            }
            push(Rule {
                family,
                chain: MASQUERADING,
                expr: vec![
                    expr::saddr("==", &c),
                    expr::daddr("==", &c),
                    expr::dport(proto, m.container_port),
                    expr::masquerade(),
                ],
            });
            // IPv6 has no route_localnet: ::1 never leaves the host.
            let local_ok = m.host_ip.is_none_or(|h| h.is_loopback());
            if family == Family::Ip && local_ok {
                push(Rule {
                    family,
                    chain: MASQUERADING,
                    expr: vec![
                        expr::saddr("==", &loopback()),
                        expr::daddr("==", &c),
                        expr::dport(proto, m.container_port),
                        expr::masquerade(),
                    ],
                });
            }
        }
    }
    out
}

/// The families `rules` use.
pub fn families(rules: &[Rule]) -> Vec<Family> {
    let mut fams = Vec::new();
    for f in [Family::Ip, Family::Ip6] {
        if rules.iter().any(|r| r.family == f) {
            fams.push(f);
        }
    }
    fams
}

/// True when some rule masquerades 127.0.0.0/8 (which needs
/// `route_localnet` on the interface towards the container).
pub fn needs_route_localnet(rules: &[Rule]) -> bool {
    rules
        .iter()
        .any(|r| r.chain == MASQUERADING && r.expr.first() == Some(&expr::saddr("==", &loopback())))
}

/// The jump rules of the three base chains.
pub fn jump_rules(family: Family) -> Vec<Rule> {
    let fib_jump = vec![expr::fib_daddr_local(), expr::jump(HOSTPORTS)];
    vec![
        Rule {
            family,
            chain: PREROUTING,
            expr: fib_jump.clone(),
        },
        Rule {
            family,
            chain: OUTPUT,
            expr: fib_jump,
        },
        Rule {
            family,
            chain: POSTROUTING,
            expr: vec![expr::ct_status_dnat(), expr::jump(MASQUERADING)],
        },
    ]
}

/// Create the table and chains if missing and rewrite the base chains'
/// jumps (flush + add, in the caller's transaction).
pub fn skeleton(b: &mut Batch, family: Family) {
    b.add_table(family, TABLE);
    for (chain, hook) in [
        (PREROUTING, "prerouting"),
        (OUTPUT, "output"),
        (POSTROUTING, "postrouting"),
    ] {
        b.add_chain(family, TABLE, chain, Some(&BaseChain::nat(hook)));
    }
    b.add_chain(family, TABLE, HOSTPORTS, None);
    b.add_chain(family, TABLE, MASQUERADING, None);
    for chain in [PREROUTING, OUTPUT, POSTROUTING] {
        b.flush_chain(family, TABLE, chain);
    }
    for r in jump_rules(family) {
        b.add_rule(family, TABLE, r.chain, r.expr, None);
    }
}

/// The ADD transaction for `family`: skeleton, deletion of the rules a
/// previous ADD of the same attachment left (`table` is the current
/// listing, if the table exists), and the new rules tagged `tag`.
pub fn add_batch(family: Family, table: Option<&Table>, tag: &str, rules: &[Rule]) -> Batch {
    let mut b = Batch::new();
    skeleton(&mut b, family);
    if let Some(t) = table {
        for r in t.rules_with_comment(tag) {
            b.delete_rule(family, TABLE, &r.chain, r.handle);
        }
    }
    for r in rules.iter().filter(|r| r.family == family) {
        b.add_rule(family, TABLE, r.chain, r.expr.clone(), Some(tag));
    }
    b
}

/// A batch deleting `rules` (from a listing of `family`'s table).
pub fn delete_batch<'a>(family: Family, rules: impl IntoIterator<Item = &'a ListedRule>) -> Batch {
    let mut b = Batch::new();
    for r in rules {
        b.delete_rule(family, TABLE, &r.chain, r.handle);
    }
    b
}

/// Rules GC removes: tagged for network prefix `prefix` with a tag not in
/// `valid`. Rules without a comment (the base chains' jumps) or of other
/// networks are kept.
pub fn gc_victims<'a>(
    table: &'a Table,
    prefix: &'a str,
    valid: &'a HashSet<String>,
) -> impl Iterator<Item = &'a ListedRule> + 'a {
    table.rules.iter().filter(move |r| {
        r.comment
            .as_deref()
            .is_some_and(|c| c.starts_with(prefix) && !valid.contains(c))
    })
}

/// A statement as nft lists it: `dnat`/`snat` lose their `family` in
/// single-family tables and counters gain their figures.
fn normalize(stmt: &Value) -> Value {
    let mut s = stmt.clone();
    if let Some(o) = s.as_object_mut() {
        for k in ["dnat", "snat"] {
            if let Some(inner) = o.get_mut(k).and_then(Value::as_object_mut) {
                inner.remove("family");
            }
        }
        if o.contains_key("counter") {
            o.insert("counter".into(), Value::Null);
        }
    }
    s
}

fn same(listed: &[Value], expected: &[Value]) -> bool {
    listed.len() == expected.len()
        && listed
            .iter()
            .zip(expected)
            .all(|(l, e)| normalize(l) == normalize(e))
}

/// CHECK: the base chains jump where they should, and `family`'s rules of
/// the attachment tagged `tag` are exactly `rules`. The error names what
/// is missing or unexpected.
pub fn verify(table: &Table, family: Family, tag: &str, rules: &[Rule]) -> Result<(), String> {
    let fam = family.as_str();
    for j in jump_rules(family) {
        let found = table
            .rules
            .iter()
            .any(|l| l.chain == j.chain && same(&l.expr, &j.expr));
        if !found {
            return Err(format!(
                "table {fam} {TABLE}: chain {} has no jump rule {}",
                j.chain,
                Value::Array(j.expr.clone())
            ));
        }
    }
    let mine: Vec<&ListedRule> = table.rules_with_comment(tag).collect();
    let expected: Vec<&Rule> = rules.iter().filter(|r| r.family == family).collect();
    for e in &expected {
        if !mine
            .iter()
            .any(|l| l.chain == e.chain && same(&l.expr, &e.expr))
        {
            return Err(format!(
                "table {fam} {TABLE}: chain {} lacks the rule {} of {tag:?}",
                e.chain,
                Value::Array(e.expr.clone())
            ));
        }
    }
    if mine.len() != expected.len() {
        return Err(format!(
            "table {fam} {TABLE} holds {} rules of {tag:?}, expected {}",
            mine.len(),
            expected.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::config::{PortMapping, Proto};
    use super::*;
    use serde_json::json;

    fn conf(snat: bool, mappings: Vec<PortMapping>) -> PortmapConf {
        PortmapConf { snat, mappings }
    }

    fn m(h: u16, c: u16, proto: Proto, host_ip: Option<&str>) -> PortMapping {
        PortMapping {
            host_port: h,
            container_port: c,
            proto,
            host_ip: host_ip.map(|s| s.parse().unwrap()),
        }
    }

    #[test]
    fn rules_per_family_with_snat() {
        let ips: Vec<IpAddr> = vec!["10.244.0.5".parse().unwrap(), "fd00::5".parse().unwrap()];
        let c = conf(
            true,
            vec![
                m(8080, 80, Proto::Tcp, None),
                m(5353, 53, Proto::Udp, Some("192.0.2.1")),
            ],
        );
        let rules = attachment_rules(&c, &ips);
        let v4: Vec<_> = rules.iter().filter(|r| r.family == Family::Ip).collect();
        let v6: Vec<_> = rules.iter().filter(|r| r.family == Family::Ip6).collect();
        // v4: 2 DNAT, 2 hairpin, 1 localhost (the hostIP one is not loopback).
        assert_eq!(v4.len(), 5);
        // v6: only the any-address mapping: DNAT + hairpin.
        assert_eq!(v6.len(), 2);
        assert_eq!(
            v4[0].expr,
            vec![
                json!({"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 8080}}),
                json!({"counter": null}),
                json!({"dnat": {"family": "ip", "addr": "10.244.0.5", "port": 80}}),
            ]
        );
        assert!(needs_route_localnet(&rules));
        assert_eq!(families(&rules), vec![Family::Ip, Family::Ip6]);
        let no_snat = attachment_rules(&conf(false, c.mappings.clone()), &ips);
        assert!(no_snat.iter().all(|r| r.chain == HOSTPORTS));
        assert!(!needs_route_localnet(&no_snat));
    }

    #[test]
    fn add_batch_replaces_the_attachments_old_rules() {
        let ips: Vec<IpAddr> = vec!["10.244.0.5".parse().unwrap()];
        let rules = attachment_rules(&conf(true, vec![m(1, 2, Proto::Tcp, None)]), &ips);
        let listing = Table::parse(&json!({"nftables": [
            {"rule": {"family": "ip", "table": TABLE, "chain": HOSTPORTS, "handle": 9, "comment": "t1", "expr": []}},
            {"rule": {"family": "ip", "table": TABLE, "chain": HOSTPORTS, "handle": 10, "comment": "t2", "expr": []}}
        ]}));
        let b = add_batch(Family::Ip, Some(&listing), "t1", &rules);
        let cmds = b.commands();
        let deletes: Vec<_> = cmds.iter().filter(|c| c.get("delete").is_some()).collect();
        assert_eq!(deletes.len(), 1);
        assert_eq!(deletes[0]["delete"]["rule"]["handle"], 9);
        let tagged = cmds
            .iter()
            .filter(|c| c["add"]["rule"]["comment"] == "t1")
            .count();
        assert_eq!(tagged, rules.len());
        // Base chains are flushed before their jump is added again.
        let flushes = cmds.iter().filter(|c| c.get("flush").is_some()).count();
        assert_eq!(flushes, 3);
    }

    #[test]
    fn verify_detects_missing_and_extra_rules() {
        let ips: Vec<IpAddr> = vec!["10.244.0.5".parse().unwrap()];
        let rules = attachment_rules(&conf(true, vec![m(8080, 80, Proto::Tcp, None)]), &ips);
        // Build the listing nft would print for what add_batch installs.
        let mut items = vec![];
        let mut handle = 1;
        let mut listed = |chain: &str, expr: &Vec<Value>, comment: Option<&str>| {
            handle += 1;
            let mut e: Vec<Value> = expr.iter().map(normalize).collect();
            for s in &mut e {
                if s.get("counter").is_some() {
                    *s = json!({"counter": {"packets": 3, "bytes": 180}});
                }
            }
            let mut r = json!({"family": "ip", "table": TABLE, "chain": chain, "handle": handle, "expr": e});
            if let Some(c) = comment {
                r["comment"] = json!(c);
            }
            items.push(json!({ "rule": r }));
        };
        for j in jump_rules(Family::Ip) {
            listed(j.chain, &j.expr, None);
        }
        for r in &rules {
            listed(r.chain, &r.expr, Some("tag"));
        }
        let full = Table::parse(&json!({ "nftables": items.clone() }));
        verify(&full, Family::Ip, "tag", &rules).unwrap();
        assert!(verify(&full, Family::Ip, "other", &rules).is_err());
        // One rule gone.
        let mut fewer = full.clone();
        fewer.rules.pop();
        assert!(verify(&fewer, Family::Ip, "tag", &rules).is_err());
        // A jump gone.
        let mut nojump = full.clone();
        nojump.rules.remove(0);
        let e = verify(&nojump, Family::Ip, "tag", &rules).unwrap_err();
        assert!(e.contains(PREROUTING), "{e}");
        // An extra rule with the tag.
        let mut extra = full.clone();
        let mut dup = extra.rules.last().unwrap().clone();
        dup.handle = 99;
        extra.rules.push(dup);
        assert!(verify(&extra, Family::Ip, "tag", &rules).is_err());
        assert!(verify(&Table::default(), Family::Ip, "tag", &rules).is_err());
    }

    #[test]
    fn gc_keeps_valid_and_foreign_rules() {
        let listing = Table::parse(&json!({"nftables": [
            {"rule": {"family": "ip", "table": TABLE, "chain": PREROUTING, "handle": 1, "expr": []}},
            {"rule": {"family": "ip", "table": TABLE, "chain": HOSTPORTS, "handle": 2, "comment": "aksnet n1 a eth0", "expr": []}},
            {"rule": {"family": "ip", "table": TABLE, "chain": HOSTPORTS, "handle": 3, "comment": "aksnet n1 b eth0", "expr": []}},
            {"rule": {"family": "ip", "table": TABLE, "chain": HOSTPORTS, "handle": 4, "comment": "aksnet n2 b eth0", "expr": []}},
            {"rule": {"family": "ip", "table": TABLE, "chain": MASQUERADING, "handle": 5, "comment": "aksnet n1 b eth0", "expr": []}}
        ]}));
        let valid: HashSet<String> = ["aksnet n1 a eth0".to_string()].into();
        let v: Vec<u64> = gc_victims(&listing, "aksnet n1 ", &valid)
            .map(|r| r.handle)
            .collect();
        assert_eq!(v, vec![3, 5]);
        let b = delete_batch(Family::Ip, gc_victims(&listing, "aksnet n1 ", &valid));
        assert_eq!(b.len(), 2);
    }
}
