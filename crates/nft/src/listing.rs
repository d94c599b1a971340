//! What a driver reads back: a table's chains, rules (with handles and
//! comments, their statements as nft lists them) and sets with their
//! elements, parsed from `nft -j list table` or taken from the fake.

use std::net::IpAddr;

use serde_json::Value as J;

use crate::expr::{Rule, Verdict};
use crate::json;
use crate::model::{
    BaseChain, ChainType, ElemData, Element, Family, Hook, KeyType, MapData, Policy, Set, SetFlags,
    Table,
};
use crate::value::{L4Proto, Value};

/// A chain as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedChain {
    pub name: String,
    pub base: Option<BaseChain>,
}

/// A rule as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedRule {
    pub chain: String,
    pub handle: u64,
    pub comment: Option<String>,
    /// Its statements, libnftables JSON as the kernel reports them.
    pub expr: Vec<J>,
}

/// A set or map as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedSet {
    pub name: String,
    pub map: bool,
    /// Declaration and elements; `None` when a type or an element is not
    /// one the model knows (such a set never matches a desired one).
    pub set: Option<Set>,
}

/// A table as listed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Listing {
    pub chains: Vec<ListedChain>,
    pub rules: Vec<ListedRule>,
    pub sets: Vec<ListedSet>,
}

impl Listing {
    /// Rules whose comment is `c`.
    pub fn rules_with_comment<'a>(&'a self, c: &'a str) -> impl Iterator<Item = &'a ListedRule> {
        self.rules
            .iter()
            .filter(move |r| r.comment.as_deref() == Some(c))
    }

    /// A set or map by name (with its elements when they could be read).
    pub fn set(&self, name: &str) -> Option<&Set> {
        self.sets
            .iter()
            .find(|s| s.name == name)
            .and_then(|s| s.set.as_ref())
    }

    /// Does the kernel hold exactly `desired`: the same chains with the
    /// same hooks, the same rules in the same order (compared as nft lists
    /// them, counters' figures aside) and the same sets with the same
    /// elements? A `false` costs a rewrite, never a wrong state.
    pub fn matches(&self, desired: &Table) -> bool {
        let id = desired.id();
        if self.chains.len() != desired.chains.len() || self.sets.len() != desired.sets.len() {
            return false;
        }
        for lc in &self.chains {
            let Some(c) = desired.chains.get(&lc.name) else {
                return false;
            };
            // nft 1.0.6 lists a netdev chain without its device: a device
            // missing from the listing is not a difference.
            let same_base = match (&lc.base, &c.base) {
                (Some(l), Some(d)) if l.device.is_none() => {
                    BaseChain {
                        device: d.device.clone(),
                        ..l.clone()
                    } == *d
                }
                (l, d) => l == d,
            };
            if !same_base {
                return false;
            }
            let listed: Vec<&ListedRule> =
                self.rules.iter().filter(|r| r.chain == lc.name).collect();
            if listed.len() != c.rules.len() {
                return false;
            }
            for (l, r) in listed.iter().zip(&c.rules) {
                if !same_rule(id.family, l, r) {
                    return false;
                }
            }
        }
        self.sets
            .iter()
            .all(|ls| match (&ls.set, desired.sets.get(&ls.name)) {
                (Some(have), Some(want)) => same_set(have, want),
                _ => false,
            })
    }

    /// Parses `nft -j list table` output.
    pub fn parse(doc: &J) -> Listing {
        let mut l = Listing::default();
        let items = doc
            .get("nftables")
            .and_then(J::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        for item in items {
            if let Some(c) = item.get("chain") {
                if let Some(name) = c.get("name").and_then(J::as_str) {
                    l.chains.push(ListedChain {
                        name: name.to_string(),
                        base: base_of(c),
                    });
                }
            } else if let Some(r) = item.get("rule") {
                let (Some(chain), Some(handle)) = (
                    r.get("chain").and_then(J::as_str),
                    r.get("handle").and_then(J::as_u64),
                ) else {
                    continue;
                };
                l.rules.push(ListedRule {
                    chain: chain.to_string(),
                    handle,
                    comment: r.get("comment").and_then(J::as_str).map(str::to_string),
                    expr: r
                        .get("expr")
                        .and_then(J::as_array)
                        .cloned()
                        .unwrap_or_default(),
                });
            } else if let Some((s, map)) = item
                .get("set")
                .map(|s| (s, false))
                .or_else(|| item.get("map").map(|s| (s, true)))
            {
                if let Some(name) = s.get("name").and_then(J::as_str) {
                    l.sets.push(ListedSet {
                        name: name.to_string(),
                        map,
                        set: set_of(s),
                    });
                }
            }
        }
        l
    }
}

fn same_set(have: &Set, want: &Set) -> bool {
    if want.filled_by_packets() {
        return have.declaration() == want.declaration();
    }
    if have.declaration() != want.declaration() || have.elements.len() != want.elements.len() {
        return false;
    }
    have.elements.iter().all(|(k, e)| {
        want.elements.get(k).is_some_and(|w| {
            // Timeouts tick away in the kernel: compare data and comment.
            w.data == e.data && w.comment == e.comment
        })
    })
}

/// Is the listed rule the rendering of `r`?
pub fn same_rule(family: Family, listed: &ListedRule, r: &Rule) -> bool {
    let want = json::rule_stmts(r);
    listed.comment == r.comment
        && normalize_stmts(family, &listed.expr) == normalize_stmts(family, &want)
}

/// Statements as nft lists them back: counters without figures, NAT
/// without the family a single-family table implies, `meta l4proto P`
/// followed by `th` ports folded into `P` ports (nft's dependency
/// elimination), one-element flag lists as strings, one-element anonymous
/// sets as their element.
pub fn normalize_stmts(family: Family, stmts: &[J]) -> Vec<J> {
    let mut out: Vec<J> = Vec::new();
    let mut i = 0;
    while i < stmts.len() {
        let s = normalize(family, &stmts[i]);
        if let (Some(proto), Some(next)) = (l4proto_of(&s), stmts.get(i + 1)) {
            let n = normalize(family, next);
            if let Some(folded) = fold_th(&n, &proto) {
                out.push(folded);
                i += 2;
                continue;
            }
            // `meta l4proto tcp reject with tcp reset`: nft lists the
            // reject alone (the match is its implied dependency).
            if proto == "tcp" && n == serde_json::json!({"reject": {"type": "tcp reset"}}) {
                out.push(n);
                i += 2;
                continue;
            }
        }
        out.push(default_reject(family, s));
        i += 1;
    }
    out
}

/// A plain `reject` lists back as the family's default: ICMP (or ICMPv6,
/// or icmpx in a mixed family) port unreachable.
fn default_reject(family: Family, s: J) -> J {
    let kind = match family {
        Family::Ip => "icmp",
        Family::Ip6 => "icmpv6",
        _ => "icmpx",
    };
    if s == serde_json::json!({"reject": {"type": kind, "expr": "port-unreachable"}}) {
        serde_json::json!({"reject": null})
    } else {
        s
    }
}

fn l4proto_of(s: &J) -> Option<String> {
    let m = s.get("match")?;
    if m.get("op")?.as_str()? != "=="
        || m.get("left")? != &serde_json::json!({"meta": {"key": "l4proto"}})
    {
        return None;
    }
    let p = m.get("right")?.as_str()?;
    matches!(p, "tcp" | "udp" | "sctp").then(|| p.to_string())
}

fn fold_th(s: &J, proto: &str) -> Option<J> {
    let mut s = s.clone();
    let payload = s.get_mut("match")?.get_mut("left")?.get_mut("payload")?;
    if payload.get("protocol")?.as_str()? != "th" {
        return None;
    }
    payload["protocol"] = J::String(proto.to_string());
    Some(s)
}

fn normalize(family: Family, v: &J) -> J {
    match v {
        J::Object(o) => {
            let mut n = serde_json::Map::new();
            for (k, x) in o {
                let x = match k.as_str() {
                    "counter" => J::Null,
                    "snat" | "dnat" if family != Family::Inet => {
                        let mut inner = normalize(family, x);
                        if let Some(io) = inner.as_object_mut() {
                            io.remove("family");
                        }
                        inner
                    }
                    // nft lists a one-element anonymous set as its element.
                    "right" => match x.get("set").and_then(J::as_array) {
                        Some(one) if one.len() == 1 && !one[0].is_array() => {
                            normalize(family, &one[0])
                        }
                        _ => normalize(family, x),
                    },
                    _ => normalize(family, x),
                };
                n.insert(k.clone(), x);
            }
            J::Object(n)
        }
        J::Array(a) if a.len() == 1 && a[0].is_string() => a[0].clone(),
        J::Array(a) => J::Array(a.iter().map(|x| normalize(family, x)).collect()),
        _ => v.clone(),
    }
}

fn base_of(c: &J) -> Option<BaseChain> {
    let kind = match c.get("type")?.as_str()? {
        "filter" => ChainType::Filter,
        "nat" => ChainType::Nat,
        "route" => ChainType::Route,
        _ => return None,
    };
    let hook = Hook::parse(c.get("hook")?.as_str()?)?;
    let priority = i32::try_from(c.get("prio")?.as_i64()?).ok()?;
    let policy = match c.get("policy").and_then(J::as_str) {
        Some("drop") => Policy::Drop,
        _ => Policy::Accept,
    };
    Some(BaseChain {
        kind,
        hook,
        priority,
        policy,
        device: c.get("dev").and_then(J::as_str).map(str::to_string),
    })
}

fn types_of(v: &J) -> Option<Vec<KeyType>> {
    match v {
        J::String(s) => Some(vec![KeyType::parse(s)?]),
        J::Array(a) => a
            .iter()
            .map(|x| x.as_str().and_then(KeyType::parse))
            .collect(),
        _ => None,
    }
}

fn set_of(s: &J) -> Option<Set> {
    let key = types_of(s.get("type")?)?;
    let data = match s.get("map") {
        None => None,
        Some(J::String(v)) if v == "verdict" => Some(MapData::Verdict),
        Some(t) => Some(MapData::Values(types_of(t)?)),
    };
    let fl: Vec<&str> = s
        .get("flags")
        .and_then(J::as_array)
        .map(|a| a.iter().filter_map(J::as_str).collect())
        .unwrap_or_default();
    let mut set = Set {
        key,
        data,
        flags: SetFlags {
            interval: fl.contains(&"interval"),
            timeout: fl.contains(&"timeout"),
            constant: fl.contains(&"constant"),
        },
        timeout: s
            .get("timeout")
            .and_then(J::as_u64)
            .and_then(|t| u32::try_from(t).ok()),
        elements: Default::default(),
    };
    for item in s.get("elem").and_then(J::as_array).into_iter().flatten() {
        let (k, e) = element_of(&set, item)?;
        set.elements.insert(k, e);
    }
    Some(set)
}

fn element_of(set: &Set, item: &J) -> Option<(Value, Element)> {
    let (key_item, data_item) = match (&set.data, item) {
        (Some(_), J::Array(pair)) if pair.len() == 2 => (&pair[0], Some(&pair[1])),
        (None, _) => (item, None),
        _ => return None,
    };
    let mut e = Element::default();
    let key_json = match key_item.get("elem") {
        Some(inner) => {
            e.timeout = inner
                .get("timeout")
                .and_then(J::as_u64)
                .and_then(|t| u32::try_from(t).ok());
            e.comment = inner.get("comment").and_then(J::as_str).map(str::to_string);
            inner.get("val")?
        }
        None => key_item,
    };
    let key = typed_value(&set.key, key_json)?;
    e.data = match (&set.data, data_item) {
        (Some(MapData::Verdict), Some(d)) => Some(ElemData::Verdict(verdict_of(d)?)),
        (Some(MapData::Values(t)), Some(d)) => Some(ElemData::Value(typed_value(t, d)?)),
        _ => None,
    };
    Some((key, e))
}

/// A verdict from its JSON.
pub fn verdict_of(v: &J) -> Option<Verdict> {
    let o = v.as_object()?;
    let (k, x) = o.iter().next()?;
    let target = || x.get("target").and_then(J::as_str).map(str::to_string);
    Some(match k.as_str() {
        "accept" => Verdict::Accept,
        "drop" => Verdict::Drop,
        "continue" => Verdict::Continue,
        "return" => Verdict::Return,
        "jump" => Verdict::Jump(target()?),
        "goto" => Verdict::Goto(target()?),
        _ => return None,
    })
}

fn typed_value(types: &[KeyType], v: &J) -> Option<Value> {
    if types.len() == 1 {
        return one_value(types[0], v);
    }
    let parts = v.get("concat")?.as_array()?;
    if parts.len() != types.len() {
        return None;
    }
    Some(Value::Concat(
        types
            .iter()
            .zip(parts)
            .map(|(t, p)| one_value(*t, p))
            .collect::<Option<Vec<_>>>()?,
    ))
}

fn one_value(t: KeyType, v: &J) -> Option<Value> {
    let int = |v: &J| v.as_u64().and_then(|n| u32::try_from(n).ok());
    match t {
        KeyType::Ipv4Addr | KeyType::Ipv6Addr => {
            if let Some(s) = v.as_str() {
                return s.parse::<IpAddr>().ok().map(Value::Addr);
            }
            if let Some(p) = v.get("prefix") {
                let addr: IpAddr = p.get("addr")?.as_str()?.parse().ok()?;
                let len = u8::try_from(p.get("len")?.as_u64()?).ok()?;
                return ipnet::IpNet::new(addr, len).ok().map(Value::net);
            }
            let r = v.get("range")?.as_array()?;
            let a: IpAddr = r.first()?.as_str()?.parse().ok()?;
            let b: IpAddr = r.get(1)?.as_str()?.parse().ok()?;
            Some(Value::AddrRange(a, b))
        }
        KeyType::InetProto => match v {
            J::String(s) => L4Proto::parse(s).map(Value::Proto),
            J::Number(n) => match n.as_u64()? {
                6 => Some(Value::Proto(L4Proto::Tcp)),
                17 => Some(Value::Proto(L4Proto::Udp)),
                132 => Some(Value::Proto(L4Proto::Sctp)),
                1 => Some(Value::Proto(L4Proto::Icmp)),
                58 => Some(Value::Proto(L4Proto::Icmpv6)),
                _ => None,
            },
            _ => None,
        },
        KeyType::InetService => {
            if let Some(r) = v.get("range").and_then(J::as_array) {
                let a = u16::try_from(r.first()?.as_u64()?).ok()?;
                let b = u16::try_from(r.get(1)?.as_u64()?).ok()?;
                return Some(Value::PortRange(a, b));
            }
            match v {
                J::Number(n) => u16::try_from(n.as_u64()?).ok().map(Value::Port),
                J::String(s) => s.parse().ok().map(Value::Port),
                _ => None,
            }
        }
        KeyType::IfName => v.as_str().map(|s| Value::IfName(s.to_string())),
        KeyType::Mark => int(v).map(Value::Mark),
        KeyType::Integer => int(v).map(Value::Int),
    }
}

/// The listing a table would have if `t` were applied to an empty kernel
/// (handles counted from 1): what the fake reports.
pub fn of_table(t: &Table, handles: &dyn Fn(&str, usize) -> u64) -> Listing {
    let mut l = Listing::default();
    for (name, c) in &t.chains {
        l.chains.push(ListedChain {
            name: name.clone(),
            base: c.base.clone(),
        });
        for (i, r) in c.rules.iter().enumerate() {
            l.rules.push(ListedRule {
                chain: name.clone(),
                handle: handles(name, i),
                comment: r.comment.clone(),
                expr: json::rule_stmts(r),
            });
        }
    }
    for (name, s) in &t.sets {
        l.sets.push(ListedSet {
            name: name.clone(),
            map: s.is_map(),
            set: Some(s.clone()),
        });
    }
    l
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::build::*;
    use crate::model::Chain;
    use serde_json::json;

    /// What nft 1.0.6 printed for `nft -j list table ip t` after the
    /// statements below were applied (taken from a run in a namespace).
    fn listed() -> J {
        json!({"nftables": [
            {"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
            {"table": {"family": "ip", "name": "t", "handle": 1}},
            {"set": {"family": "ip", "name": "s", "table": "t", "type": "ipv4_addr", "handle": 2,
                "elem": [{"elem": {"val": "10.0.0.1", "comment": "x"}}, "10.0.0.2"]}},
            {"set": {"family": "ip", "name": "ci", "table": "t", "type": ["ipv4_addr", "ipv4_addr"], "handle": 3,
                "flags": ["interval"], "elem": [{"elem": {"val": {"concat": ["10.0.0.1",
                {"prefix": {"addr": "10.0.0.0", "len": 24}}]}, "comment": "y"}}]}},
            {"map": {"family": "ip", "name": "m", "table": "t", "type": "ipv4_addr", "handle": 4,
                "map": "verdict", "elem": [["10.0.0.1", {"jump": {"target": "c"}}]]}},
            {"chain": {"family": "ip", "table": "t", "name": "c", "handle": 1}},
            {"chain": {"family": "ip", "table": "t", "name": "post", "handle": 5, "type": "nat",
                "hook": "postrouting", "prio": 100, "policy": "accept"}},
            {"rule": {"family": "ip", "table": "t", "chain": "post", "handle": 7, "comment": "k",
                "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 80}},
                         {"counter": {"packets": 3, "bytes": 180}},
                         {"snat": {"addr": "10.224.0.4"}}]}}
        ]})
    }

    #[test]
    fn parses_sets_maps_elements_and_rules() {
        let l = Listing::parse(&listed());
        assert_eq!(l.chains.len(), 2);
        assert_eq!(l.chains[1].base, Some(BaseChain::nat(Hook::Postrouting)));
        let s = l.set("s").unwrap();
        assert_eq!(s.elements.len(), 2);
        let x = &s.elements[&Value::Addr("10.0.0.1".parse().unwrap())];
        assert_eq!(x.comment.as_deref(), Some("x"));
        let ci = l.set("ci").unwrap();
        assert!(ci.flags.interval);
        assert!(ci.elements.contains_key(&Value::Concat(vec![
            Value::Addr("10.0.0.1".parse().unwrap()),
            Value::Net("10.0.0.0/24".parse().unwrap())
        ])));
        let m = l.set("m").unwrap();
        assert_eq!(
            m.elements.values().next().unwrap().data,
            Some(ElemData::Verdict(Verdict::Jump("c".into())))
        );
        assert_eq!(l.rules_with_comment("k").count(), 1);
    }

    #[test]
    fn a_listing_matches_the_table_it_came_from() {
        let l = Listing::parse(&listed());
        let mut t = Table::new(Family::Ip, "t");
        t.set(
            "s",
            Set::new(vec![KeyType::Ipv4Addr]).elem(Value::Addr("10.0.0.2".parse().unwrap())),
        );
        t.sets.get_mut("s").unwrap().insert(
            Value::Addr("10.0.0.1".parse().unwrap()),
            Element {
                comment: Some("x".into()),
                ..Element::default()
            },
        );
        let mut ci = Set::new(vec![KeyType::Ipv4Addr, KeyType::Ipv4Addr]).interval();
        ci.insert(
            Value::Concat(vec![
                Value::Addr("10.0.0.1".parse().unwrap()),
                Value::Net("10.0.0.0/24".parse().unwrap()),
            ]),
            Element {
                comment: Some("y".into()),
                ..Element::default()
            },
        );
        t.set("ci", ci);
        let mut m = Set::vmap(vec![KeyType::Ipv4Addr]);
        m.insert(
            Value::Addr("10.0.0.1".parse().unwrap()),
            Element {
                data: Some(ElemData::Verdict(Verdict::Jump("c".into()))),
                ..Element::default()
            },
        );
        t.set("m", m);
        t.chain("c", Chain::regular(vec![]));
        let rule = Rule::new(
            [
                proto_dport(L4Proto::Tcp, 80).to_vec(),
                vec![crate::Stmt::Counter, snat("10.224.0.4".parse().unwrap())],
            ]
            .concat(),
        )
        .comment("k");
        t.chain(
            "post",
            Chain::base(BaseChain::nat(Hook::Postrouting), vec![rule.clone()]),
        );
        assert!(l.matches(&t));
        // Another comment, another element, another chain: no match.
        let mut other = t.clone();
        other.chains.get_mut("post").unwrap().rules[0] = rule.clone().comment("j");
        assert!(!l.matches(&other));
        let mut other = t.clone();
        other.sets.get_mut("s").unwrap().elements.clear();
        assert!(!l.matches(&other));
        let mut other = t.clone();
        other.chain("d", Chain::regular(vec![]));
        assert!(!l.matches(&other));
    }

    #[test]
    fn nft_listing_forms_compare_equal_to_the_rendering() {
        let rule = Rule::new([
            any_of(
                crate::Expr::Payload(crate::Payload::IpSaddr),
                [Value::net("10.224.0.0/12".parse().unwrap())],
            ),
            l4proto(L4Proto::Tcp),
            th_dport(80),
            crate::Stmt::Counter,
            dnat("10.0.0.2".parse().unwrap(), Some(8080)),
        ]);
        let listed = ListedRule {
            chain: "c".into(),
            handle: 1,
            comment: None,
            expr: vec![
                json!({"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                    "right": {"prefix": {"addr": "10.224.0.0", "len": 12}}}}),
                json!({"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 80}}),
                json!({"counter": {"packets": 1, "bytes": 60}}),
                json!({"dnat": {"addr": "10.0.0.2", "port": 8080}}),
            ],
        };
        assert!(same_rule(Family::Ip, &listed, &rule));
        // In an inet table the NAT family stays: it is part of the rule.
        assert!(!same_rule(Family::Inet, &listed, &rule));
        assert!(!same_rule(Family::Ip, &listed, &rule.clone().comment("x")));
    }
}
