//! libnftables JSON (`nft -j`), the form a batch is sent to `nft -j -f -` in.

use serde_json::{json, Map, Value as J};

use crate::expr::{Expr, Match, Op, Reject, Rhs, Rule, Stmt, Verdict, VmapRef};
use crate::model::{BaseChain, ElemData, Element, KeyType, MapData, Set, TableId};
use crate::value::Value;

/// A value as a JSON operand.
pub fn value(v: &Value) -> J {
    match v {
        Value::Addr(a) => json!(a.to_string()),
        Value::Net(n) => {
            json!({"prefix": {"addr": n.network().to_string(), "len": n.prefix_len()}})
        }
        Value::AddrRange(a, b) => json!({"range": [a.to_string(), b.to_string()]}),
        Value::Port(p) => json!(p),
        Value::PortRange(a, b) => json!({"range": [a, b]}),
        Value::Proto(p) => json!(p.as_str()),
        Value::IfName(n) => json!(n),
        Value::Mark(m) => json!(m),
        Value::Int(i) => json!(i),
        Value::CtStates(s) => {
            let names: Vec<&str> = s.iter().map(|s| s.as_str()).collect();
            flags(names)
        }
        Value::CtStatus(s) => {
            let names: Vec<&str> = s.iter().map(|s| s.as_str()).collect();
            flags(names)
        }
        Value::Fib(t) => json!(t.as_str()),
        Value::Concat(vs) => json!({"concat": vs.iter().map(value).collect::<Vec<_>>()}),
    }
}

/// One flag as a string, several as a list (how nft lists them).
fn flags(names: Vec<&str>) -> J {
    if names.len() == 1 {
        json!(names[0])
    } else {
        json!(names)
    }
}

pub fn expr(e: &Expr) -> J {
    match e {
        Expr::Payload(p) => {
            let (protocol, field) = p.parts();
            json!({"payload": {"protocol": protocol, "field": field}})
        }
        Expr::Meta(k) => json!({"meta": {"key": k.as_str()}}),
        Expr::Ct(k) => json!({"ct": {"key": k.as_str()}}),
        Expr::FibDaddrType => json!({"fib": {"result": "type", "flags": ["daddr"]}}),
        Expr::NumgenRandom { modulus, offset } => {
            json!({"numgen": {"mode": "random", "mod": modulus, "offset": offset}})
        }
        Expr::Concat(es) => json!({"concat": es.iter().map(expr).collect::<Vec<_>>()}),
    }
}

pub fn verdict(v: &Verdict) -> J {
    match v {
        Verdict::Accept => json!({"accept": null}),
        Verdict::Drop => json!({"drop": null}),
        Verdict::Continue => json!({"continue": null}),
        Verdict::Return => json!({"return": null}),
        Verdict::Jump(c) => json!({"jump": {"target": c}}),
        Verdict::Goto(c) => json!({"goto": {"target": c}}),
    }
}

fn is_flag(v: &Value) -> bool {
    matches!(v, Value::CtStates(_) | Value::CtStatus(_))
}

fn matching(m: &Match) -> J {
    let op = match (&m.op, &m.right) {
        // Flags match when any is set: nft's `in` (what a bare `ct state
        // a,b` means).
        (Op::Eq, Rhs::Value(v)) if is_flag(v) => "in",
        (Op::Eq, _) => "==",
        (Op::Ne, _) => "!=",
    };
    let right = match &m.right {
        Rhs::Value(v) => value(v),
        Rhs::Set(vs) => json!({"set": vs.iter().map(value).collect::<Vec<_>>()}),
        Rhs::Named(n) => json!(format!("@{n}")),
    };
    json!({"match": {"op": op, "left": expr(&m.left), "right": right}})
}

pub fn stmt(s: &Stmt) -> J {
    match s {
        Stmt::Match(m) => matching(m),
        Stmt::Counter => json!({"counter": null}),
        Stmt::SetMark(m) => json!({"mangle": {"key": {"meta": {"key": "mark"}}, "value": m}}),
        Stmt::Nat(n) => {
            let kind = match n.kind {
                crate::expr::NatKind::Snat => "snat",
                crate::expr::NatKind::Dnat => "dnat",
            };
            let fam = if n.addr.is_ipv4() { "ip" } else { "ip6" };
            let mut o = Map::new();
            o.insert("family".into(), json!(fam));
            o.insert("addr".into(), json!(n.addr.to_string()));
            if let Some(p) = n.port {
                o.insert("port".into(), json!(p));
            }
            json!({ kind: o })
        }
        Stmt::Masquerade => json!({"masquerade": null}),
        Stmt::SetUpdate { set, key } => {
            json!({"set": {"op": "update", "elem": expr(key), "set": format!("@{set}")}})
        }
        Stmt::Vmap { key, map } => {
            let data = match map {
                VmapRef::Named(n) => json!(format!("@{n}")),
                VmapRef::Anon(items) => json!({"set": items
                    .iter()
                    .map(|(k, v)| json!([value(k), verdict(v)]))
                    .collect::<Vec<_>>()}),
            };
            json!({"vmap": {"key": expr(key), "data": data}})
        }
        Stmt::Reject(Reject::Default) => json!({"reject": null}),
        Stmt::Reject(Reject::TcpReset) => json!({"reject": {"type": "tcp reset"}}),
        Stmt::Reject(Reject::AdminProhibited) => {
            json!({"reject": {"type": "icmpx", "expr": "admin-prohibited"}})
        }
        Stmt::Verdict(v) => verdict(v),
    }
}

fn ids(t: &TableId) -> Map<String, J> {
    let mut o = Map::new();
    o.insert("family".into(), json!(t.family.as_str()));
    o.insert("table".into(), json!(t.name));
    o
}

pub fn table(t: &TableId) -> J {
    json!({"family": t.family.as_str(), "name": t.name})
}

pub fn chain(t: &TableId, name: &str, base: Option<&BaseChain>) -> J {
    let mut o = ids(t);
    o.insert("name".into(), json!(name));
    if let Some(b) = base {
        o.insert("type".into(), json!(b.kind.as_str()));
        o.insert("hook".into(), json!(b.hook.as_str()));
        o.insert("prio".into(), json!(b.priority));
        o.insert("policy".into(), json!(b.policy.as_str()));
        if let Some(d) = &b.device {
            o.insert("dev".into(), json!(d));
        }
    }
    J::Object(o)
}

/// A rule's statements. `reject with tcp reset` gets the `meta l4proto
/// tcp` match nft would insert in front of the rule (and lists back), unless
/// the rule has it.
pub fn rule_stmts(r: &Rule) -> Vec<J> {
    let mut out: Vec<J> = r.stmts.iter().map(stmt).collect();
    let tcp = json!({"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "tcp"}});
    if r.stmts.contains(&Stmt::Reject(Reject::TcpReset)) && !out.contains(&tcp) {
        out.insert(0, tcp);
    }
    out
}

pub fn rule(t: &TableId, chain: &str, r: &Rule) -> J {
    let mut o = ids(t);
    o.insert("chain".into(), json!(chain));
    o.insert("expr".into(), J::Array(rule_stmts(r)));
    if let Some(c) = &r.comment {
        o.insert("comment".into(), json!(c));
    }
    J::Object(o)
}

fn types(t: &[KeyType]) -> J {
    if t.len() == 1 {
        json!(t[0].as_str())
    } else {
        json!(t.iter().map(|k| k.as_str()).collect::<Vec<_>>())
    }
}

/// `{"set": {...}}` or `{"map": {...}}`: the declaration (no elements).
pub fn set(t: &TableId, name: &str, s: &Set) -> (&'static str, J) {
    let mut o = ids(t);
    o.insert("name".into(), json!(name));
    o.insert("type".into(), types(&s.key));
    let mut fl = Vec::new();
    if s.flags.constant {
        fl.push("constant");
    }
    if s.flags.interval {
        fl.push("interval");
    }
    if s.flags.timeout {
        fl.push("timeout");
    }
    if !fl.is_empty() {
        o.insert("flags".into(), json!(fl));
    }
    if let Some(secs) = s.timeout {
        o.insert("timeout".into(), json!(secs));
    }
    match &s.data {
        None => ("set", J::Object(o)),
        Some(MapData::Verdict) => {
            o.insert("map".into(), json!("verdict"));
            ("map", J::Object(o))
        }
        Some(MapData::Values(d)) => {
            o.insert("map".into(), types(d));
            ("map", J::Object(o))
        }
    }
}

/// One element of `add element` (key, timeout, comment; data for maps).
pub fn element(key: &Value, e: &Element) -> J {
    let k = value(key);
    let k = if e.timeout.is_some() || e.comment.is_some() {
        let mut o = Map::new();
        o.insert("val".into(), k);
        if let Some(t) = e.timeout {
            o.insert("timeout".into(), json!(t));
        }
        if let Some(c) = &e.comment {
            o.insert("comment".into(), json!(c));
        }
        json!({ "elem": o })
    } else {
        k
    };
    match &e.data {
        None => k,
        Some(ElemData::Verdict(v)) => json!([k, verdict(v)]),
        Some(ElemData::Value(v)) => json!([k, value(v)]),
    }
}

/// `{"element": {family, table, name, elem}}`.
pub fn elements(t: &TableId, set: &str, elem: Vec<J>) -> J {
    let mut o = ids(t);
    o.insert("name".into(), json!(set));
    o.insert("elem".into(), J::Array(elem));
    J::Object(o)
}
