//! An in-memory nftables that applies batches atomically and refuses what
//! the kernel refuses (the errno classes of [`ErrorKind`]), so rule sets
//! and their updates are tested without root. Like knftables' `Fake`, it
//! dumps its state as nft text.

use std::collections::BTreeMap;

use crate::batch::{Batch, Command};
use crate::driver::{Driver, DriverError, ErrorKind};
use crate::expr::{Expr, Match, Rhs, Rule, Stmt, VmapRef};
use crate::listing::{self, Listing};
use crate::model::{
    BaseChain, ChainType, ElemData, Element, Family, Hook, MapData, Set, Table, TableId,
};
use crate::value::Value;

#[derive(Debug, Clone, Default)]
struct FakeChain {
    base: Option<BaseChain>,
    rules: Vec<(u64, Rule)>,
}

#[derive(Debug, Clone, Default)]
struct FakeTable {
    chains: BTreeMap<String, FakeChain>,
    sets: BTreeMap<String, Set>,
}

/// The fake kernel's nftables state.
#[derive(Debug, Clone, Default)]
pub struct Fake {
    tables: BTreeMap<TableId, FakeTable>,
    next_handle: u64,
    /// Every batch applied successfully, in order.
    pub applied: Vec<Batch>,
    /// Batches refused, in order.
    pub refused: usize,
}

fn err(kind: ErrorKind, msg: String) -> DriverError {
    DriverError::new(kind, msg)
}

fn not_found(what: String) -> DriverError {
    err(ErrorKind::NotFound, format!("{what} does not exist"))
}

impl Fake {
    pub fn new() -> Fake {
        Fake::default()
    }

    /// Applies `batch` atomically: every command or none.
    pub fn apply_batch(&mut self, batch: &Batch) -> Result<(), DriverError> {
        let mut work = self.tables.clone();
        let mut handle = self.next_handle;
        for (i, c) in batch.commands.iter().enumerate() {
            if let Err(e) = step(&mut work, &mut handle, c) {
                self.refused += 1;
                return Err(err(
                    e.kind,
                    format!("command {} `{c}`: {}", i + 1, e.message),
                ));
            }
        }
        self.tables = work;
        self.next_handle = handle;
        self.applied.push(batch.clone());
        Ok(())
    }

    /// Table `id` as the model sees it (rules without handles).
    pub fn table(&self, id: &TableId) -> Option<Table> {
        self.tables.get(id).map(|t| Table {
            family: id.family,
            name: id.name.clone(),
            chains: t
                .chains
                .iter()
                .map(|(n, c)| {
                    (
                        n.clone(),
                        crate::Chain {
                            base: c.base.clone(),
                            rules: c.rules.iter().map(|(_, r)| r.clone()).collect(),
                        },
                    )
                })
                .collect(),
            sets: t.sets.clone(),
        })
    }

    /// Every table.
    pub fn ruleset(&self) -> Vec<Table> {
        self.tables.keys().filter_map(|id| self.table(id)).collect()
    }

    /// The state as `nft list ruleset` would print it.
    pub fn dump(&self) -> String {
        self.ruleset().iter().map(|t| t.to_string()).collect()
    }

    /// Removes every table (what a reboot or `nft flush ruleset` does).
    pub fn flush_ruleset(&mut self) {
        self.tables.clear();
    }
}

impl Driver for Fake {
    fn apply(&mut self, batch: &Batch) -> Result<(), DriverError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.apply_batch(batch)
    }

    fn list(&mut self, id: &TableId) -> Result<Option<Listing>, DriverError> {
        let Some(ft) = self.tables.get(id) else {
            return Ok(None);
        };
        let t = self
            .table(id)
            .ok_or_else(|| not_found(format!("table {id}")))?;
        let handles = |chain: &str, i: usize| {
            ft.chains
                .get(chain)
                .and_then(|c| c.rules.get(i))
                .map(|(h, _)| *h)
                .unwrap_or_default()
        };
        Ok(Some(listing::of_table(&t, &handles)))
    }
}

fn table_mut<'a>(
    w: &'a mut BTreeMap<TableId, FakeTable>,
    id: &TableId,
) -> Result<&'a mut FakeTable, DriverError> {
    w.get_mut(id)
        .ok_or_else(|| not_found(format!("table {id}")))
}

/// Does any rule or verdict-map element of `t` use chain `name`?
fn chain_used(t: &FakeTable, name: &str) -> bool {
    t.chains
        .values()
        .flat_map(|c| c.rules.iter())
        .any(|(_, r)| r.targets().contains(&name))
        || t.sets
            .values()
            .flat_map(|s| s.elements.values())
            .any(|e| matches!(&e.data, Some(ElemData::Verdict(v)) if v.target() == Some(name)))
}

fn set_used(t: &FakeTable, name: &str) -> bool {
    t.chains
        .values()
        .flat_map(|c| c.rules.iter())
        .any(|(_, r)| r.sets().contains(&name))
}

fn arity(e: &Expr) -> usize {
    match e {
        Expr::Concat(v) => v.len(),
        _ => 1,
    }
}

/// Does a match before `upto` in `r` fix the transport protocol (what a
/// NAT to a port needs)?
fn proto_known(r: &Rule, upto: &Stmt) -> bool {
    use crate::expr::{MetaKey, Op, Payload};
    r.stmts.iter().take_while(|s| *s != upto).any(|s| match s {
        Stmt::Match(Match {
            left: Expr::Meta(MetaKey::L4Proto),
            op: Op::Eq,
            ..
        }) => true,
        Stmt::Match(Match {
            left: Expr::Payload(p),
            ..
        }) => matches!(
            p,
            Payload::TcpDport | Payload::TcpSport | Payload::UdpDport | Payload::UdpSport
        ),
        _ => false,
    })
}

fn check_base(family: Family, b: &BaseChain) -> Result<(), DriverError> {
    let bad = |m: &str| Err(err(ErrorKind::Invalid, m.to_string()));
    match family {
        Family::Netdev if b.hook != Hook::Ingress => return bad("netdev chains hook ingress only"),
        Family::Netdev | Family::Bridge if b.kind == ChainType::Nat => {
            return bad("no nat chains in this family")
        }
        _ => {}
    }
    if b.hook == Hook::Ingress && b.device.is_none() {
        return bad("an ingress chain needs a device");
    }
    if b.kind == ChainType::Nat && b.hook == Hook::Forward {
        return bad("nat chains cannot hook forward");
    }
    Ok(())
}

fn check_rule(t: &FakeTable, chain: &FakeChain, r: &Rule) -> Result<(), DriverError> {
    if r.comment.as_ref().is_some_and(|c| c.len() > 128) {
        return Err(err(
            ErrorKind::Invalid,
            "comment longer than 128 bytes".into(),
        ));
    }
    for target in r.targets() {
        match t.chains.get(target) {
            None => return Err(not_found(format!("chain {target} (jump/goto target)"))),
            Some(c) if c.base.is_some() => {
                return Err(err(
                    ErrorKind::Invalid,
                    format!("cannot jump to base chain {target}"),
                ))
            }
            _ => {}
        }
    }
    for s in &r.stmts {
        match s {
            Stmt::Match(Match {
                left,
                right: Rhs::Named(n),
                ..
            }) => {
                let set = t.sets.get(n).ok_or_else(|| not_found(format!("set {n}")))?;
                if set.is_map() {
                    return Err(err(ErrorKind::Invalid, format!("@{n} is a map, not a set")));
                }
                if arity(left) != set.key.len() {
                    return Err(err(
                        ErrorKind::Invalid,
                        format!(
                            "key of {} parts looked up in set {n} of {}",
                            arity(left),
                            set.key.len()
                        ),
                    ));
                }
            }
            Stmt::Vmap {
                key,
                map: VmapRef::Named(n),
            } => {
                let set = t.sets.get(n).ok_or_else(|| not_found(format!("map {n}")))?;
                if set.data != Some(MapData::Verdict) {
                    return Err(err(
                        ErrorKind::Invalid,
                        format!("@{n} is not a verdict map"),
                    ));
                }
                if arity(key) != set.key.len() {
                    return Err(err(
                        ErrorKind::Invalid,
                        format!(
                            "key of {} parts looked up in map {n} of {}",
                            arity(key),
                            set.key.len()
                        ),
                    ));
                }
            }
            Stmt::Nat(n) if n.port.is_some() && !proto_known(r, s) => {
                return Err(err(
                    ErrorKind::Invalid,
                    format!("`{s}`: transport protocol mapping is only valid after transport protocol match"),
                ));
            }
            Stmt::Nat(_) | Stmt::Masquerade => {
                if let Some(b) = &chain.base {
                    let hook_ok = match s {
                        Stmt::Nat(n) if n.kind == crate::NatKind::Dnat => {
                            matches!(b.hook, Hook::Prerouting | Hook::Output)
                        }
                        _ => matches!(b.hook, Hook::Postrouting | Hook::Input),
                    };
                    if b.kind != ChainType::Nat || !hook_ok {
                        return Err(err(
                            ErrorKind::Invalid,
                            format!(
                                "`{s}` is not allowed in a {} chain at {}",
                                b.kind.as_str(),
                                b.hook.as_str()
                            ),
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn check_element(
    t: &FakeTable,
    name: &str,
    set: &Set,
    k: &Value,
    e: &Element,
) -> Result<(), DriverError> {
    let inval = |m: String| Err(err(ErrorKind::Invalid, format!("set {name}: {m}")));
    let parts: Vec<&Value> = match k {
        Value::Concat(v) => v.iter().collect(),
        v => vec![v],
    };
    if parts.len() != set.key.len() || !parts.iter().zip(&set.key).all(|(v, t)| t.admits(v)) {
        return inval(format!("element {k} is not of its key type"));
    }
    if k.is_interval() && !set.flags.interval {
        return inval(format!(
            "{k} is an interval and the set has no interval flag"
        ));
    }
    if e.timeout.is_some() && !set.flags.timeout {
        return inval(format!(
            "element {k} has a timeout and the set no timeout flag"
        ));
    }
    match (&set.data, &e.data) {
        (None, None) => Ok(()),
        (Some(MapData::Verdict), Some(ElemData::Verdict(v))) => match v.target() {
            Some(c) if !t.chains.contains_key(c) => {
                Err(not_found(format!("chain {c} (verdict of {k})")))
            }
            _ => Ok(()),
        },
        (Some(MapData::Values(types)), Some(ElemData::Value(v))) => {
            let parts: Vec<&Value> = match v {
                Value::Concat(v) => v.iter().collect(),
                v => vec![v],
            };
            if parts.len() == types.len() && parts.iter().zip(types).all(|(v, t)| t.admits(v)) {
                Ok(())
            } else {
                inval(format!("data {v} is not of the map's data type"))
            }
        }
        _ => inval(format!("element {k} has no data of the map's type")),
    }
}

fn step(
    w: &mut BTreeMap<TableId, FakeTable>,
    handle: &mut u64,
    c: &Command,
) -> Result<(), DriverError> {
    match c {
        Command::AddTable(id) => {
            w.entry(id.clone()).or_default();
        }
        Command::DeleteTable(id) => {
            w.remove(id)
                .ok_or_else(|| not_found(format!("table {id}")))?;
        }
        Command::AddChain { table, chain, base } => {
            if let Some(b) = base {
                check_base(table.family, b)?;
            }
            let t = table_mut(w, table)?;
            match t.chains.get_mut(chain) {
                None => {
                    t.chains.insert(
                        chain.clone(),
                        FakeChain {
                            base: base.clone(),
                            rules: vec![],
                        },
                    );
                }
                Some(have) => match (&mut have.base, base) {
                    (None, None) => {}
                    (Some(h), Some(b))
                        if h.kind == b.kind
                            && h.hook == b.hook
                            && h.priority == b.priority
                            && h.device == b.device =>
                    {
                        h.policy = b.policy;
                    }
                    _ => {
                        return Err(err(
                            ErrorKind::Exists,
                            format!("chain {chain} exists with another type or hook"),
                        ))
                    }
                },
            }
        }
        Command::FlushChain { table, chain } => {
            let t = table_mut(w, table)?;
            t.chains
                .get_mut(chain)
                .ok_or_else(|| not_found(format!("chain {table} {chain}")))?
                .rules
                .clear();
        }
        Command::DeleteChain { table, chain } => {
            let t = table_mut(w, table)?;
            let c = t
                .chains
                .get(chain)
                .ok_or_else(|| not_found(format!("chain {table} {chain}")))?;
            if !c.rules.is_empty() {
                return Err(err(
                    ErrorKind::Busy,
                    format!("chain {chain} still has rules"),
                ));
            }
            if chain_used(t, chain) {
                return Err(err(
                    ErrorKind::Busy,
                    format!("chain {chain} is a jump target"),
                ));
            }
            t.chains.remove(chain);
        }
        Command::AddRule { table, chain, rule } => {
            let t = table_mut(w, table)?;
            let c = t
                .chains
                .get(chain)
                .ok_or_else(|| not_found(format!("chain {table} {chain}")))?;
            check_rule(t, c, rule)?;
            *handle += 1;
            let h = *handle;
            if let Some(c) = t.chains.get_mut(chain) {
                c.rules.push((h, rule.clone()));
            }
        }
        Command::DeleteRule {
            table,
            chain,
            handle: h,
        } => {
            let t = table_mut(w, table)?;
            let c = t
                .chains
                .get_mut(chain)
                .ok_or_else(|| not_found(format!("chain {table} {chain}")))?;
            let i = c
                .rules
                .iter()
                .position(|(x, _)| x == h)
                .ok_or_else(|| not_found(format!("rule handle {h} in chain {chain}")))?;
            c.rules.remove(i);
        }
        Command::AddSet { table, set, decl } => {
            let t = table_mut(w, table)?;
            match t.sets.get(set) {
                None => {
                    t.sets.insert(set.clone(), decl.declaration());
                }
                Some(have) if have.declaration() == decl.declaration() => {}
                Some(_) => {
                    return Err(err(
                        ErrorKind::Exists,
                        format!("set {set} exists with another type or flags"),
                    ))
                }
            }
        }
        Command::FlushSet { table, set, map } => {
            let t = table_mut(w, table)?;
            match t.sets.get_mut(set) {
                Some(s) if s.is_map() == *map => s.elements.clear(),
                _ => return Err(not_found(format!("set {table} {set}"))),
            }
        }
        Command::DeleteSet { table, set, map } => {
            let t = table_mut(w, table)?;
            if t.sets.get(set).is_none_or(|s| s.is_map() != *map) {
                return Err(not_found(format!("set {table} {set}")));
            }
            if set_used(t, set) {
                return Err(err(ErrorKind::Busy, format!("set {set} is used by a rule")));
            }
            t.sets.remove(set);
        }
        Command::AddElements {
            table,
            set,
            elements,
        }
        | Command::CreateElements {
            table,
            set,
            elements,
        } => {
            let create = matches!(c, Command::CreateElements { .. });
            let t = table_mut(w, table)?;
            let mut s = t
                .sets
                .get(set)
                .cloned()
                .ok_or_else(|| not_found(format!("set {table} {set}")))?;
            for (k, e) in elements {
                check_element(t, set, &s, k, e)?;
                match s.elements.get(k) {
                    Some(_) if create => {
                        return Err(err(
                            ErrorKind::Exists,
                            format!("element {k} exists in {set}"),
                        ))
                    }
                    Some(have) if have.data != e.data => {
                        return Err(err(
                            ErrorKind::Exists,
                            format!("element {k} exists in {set} with other data"),
                        ))
                    }
                    Some(_) => continue,
                    None => {}
                }
                if s.flags.interval {
                    if let Some(o) = s.elements.keys().find(|o| o.overlaps(k)) {
                        return Err(err(
                            ErrorKind::Exists,
                            format!("element {k} overlaps {o} in {set}"),
                        ));
                    }
                }
                s.elements.insert(k.clone(), e.clone());
            }
            t.sets.insert(set.clone(), s);
        }
        Command::DeleteElements { table, set, keys } => {
            let t = table_mut(w, table)?;
            let s = t
                .sets
                .get_mut(set)
                .ok_or_else(|| not_found(format!("set {table} {set}")))?;
            for k in keys {
                s.elements
                    .remove(k)
                    .ok_or_else(|| not_found(format!("element {k} in {set}")))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff;
    use crate::expr::build::*;
    use crate::expr::{Payload, Verdict};
    use crate::model::{Chain, KeyType};

    fn id() -> TableId {
        TableId::new(Family::Ip, "t")
    }

    fn base_table() -> Table {
        let mut t = Table::new(Family::Ip, "t");
        t.chain(
            "post",
            Chain::base(
                BaseChain::nat(Hook::Postrouting),
                vec![Rule::new([jump("masq")])],
            ),
        );
        t.chain("masq", Chain::regular(vec![Rule::new([Stmt::Masquerade])]));
        t.set(
            "pods",
            Set::new(vec![KeyType::Ipv4Addr]).elem(Value::Addr("10.0.0.1".parse().unwrap())),
        );
        t
    }

    fn kind(r: Result<(), DriverError>) -> ErrorKind {
        r.unwrap_err().kind
    }

    #[test]
    fn create_then_dump() {
        let mut f = Fake::new();
        f.apply(&diff::create(&base_table())).unwrap();
        assert_eq!(
            f.dump(),
            "table ip t {\n\tset pods {\n\t\ttype ipv4_addr\n\t\telements = { 10.0.0.1 }\n\t}\n\tchain masq {\n\t\tmasquerade\n\t}\n\tchain post {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\t\tjump masq\n\t}\n}\n"
        );
        assert_eq!(f.table(&id()).unwrap(), base_table());
    }

    #[test]
    fn refuses_missing_objects_and_leaves_state_untouched() {
        let mut f = Fake::new();
        let rule = |chain: &str, r: Rule| Command::AddRule {
            table: id(),
            chain: chain.into(),
            rule: r,
        };
        let mut b = Batch::new();
        b.push(rule("post", Rule::new([accept()])));
        assert_eq!(kind(f.apply(&b)), ErrorKind::NotFound, "no table");
        f.apply(&diff::create(&base_table())).unwrap();
        let before = f.dump();
        for bad in [
            rule("nope", Rule::new([accept()])),
            rule("masq", Rule::new([jump("nope")])),
            rule(
                "masq",
                Rule::new([in_set(Expr::Payload(Payload::IpSaddr), "nope")]),
            ),
            Command::DeleteElements {
                table: id(),
                set: "pods".into(),
                keys: vec![Value::Addr("10.9.9.9".parse().unwrap())],
            },
            Command::FlushSet {
                table: id(),
                set: "nope".into(),
                map: false,
            },
            Command::DeleteTable(TableId::new(Family::Ip6, "t")),
        ] {
            // A valid command first: it must not survive the refusal.
            let mut b = Batch::new();
            b.push(Command::FlushChain {
                table: id(),
                chain: "masq".into(),
            });
            b.push(bad.clone());
            assert_eq!(kind(f.apply(&b)), ErrorKind::NotFound, "{bad}");
            assert_eq!(f.dump(), before);
        }
        assert_eq!(f.refused, 7);
    }

    #[test]
    fn refuses_duplicates_overlaps_and_busy_objects() {
        let mut f = Fake::new();
        let mut t = base_table();
        t.set(
            "nets",
            Set::new(vec![KeyType::Ipv4Addr])
                .interval()
                .elem(Value::net("10.0.0.0/8".parse().unwrap())),
        );
        t.set("vm", Set::vmap(vec![KeyType::Ipv4Addr]));
        f.apply(&diff::create(&t)).unwrap();
        let one = |c: Command| {
            let mut b = Batch::new();
            b.push(c);
            b
        };
        let el = |k: &str| (Value::net(k.parse().unwrap()), Element::default());
        let create = Command::CreateElements {
            table: id(),
            set: "pods".into(),
            elements: vec![el("10.0.0.1/32")],
        };
        assert_eq!(kind(f.apply(&one(create))), ErrorKind::Exists);
        // `add` of the identical element is no error, as in the kernel.
        f.apply(&one(Command::AddElements {
            table: id(),
            set: "pods".into(),
            elements: vec![el("10.0.0.1/32")],
        }))
        .unwrap();
        let overlap = Command::AddElements {
            table: id(),
            set: "nets".into(),
            elements: vec![el("10.1.0.0/16")],
        };
        assert_eq!(kind(f.apply(&one(overlap))), ErrorKind::Exists);
        let v = |c: &str| Element {
            data: Some(ElemData::Verdict(Verdict::Jump(c.into()))),
            ..Element::default()
        };
        let to_masq = Command::AddElements {
            table: id(),
            set: "vm".into(),
            elements: vec![(Value::Addr("10.0.0.1".parse().unwrap()), v("masq"))],
        };
        f.apply(&one(to_masq)).unwrap();
        let clash = Command::AddElements {
            table: id(),
            set: "vm".into(),
            elements: vec![(
                Value::Addr("10.0.0.1".parse().unwrap()),
                Element {
                    data: Some(ElemData::Verdict(Verdict::Drop)),
                    ..Element::default()
                },
            )],
        };
        assert_eq!(kind(f.apply(&one(clash))), ErrorKind::Exists);
        let missing_target = Command::AddElements {
            table: id(),
            set: "vm".into(),
            elements: vec![(Value::Addr("10.0.0.2".parse().unwrap()), v("nope"))],
        };
        assert_eq!(kind(f.apply(&one(missing_target))), ErrorKind::NotFound);
        // masq is jumped to (a rule and a vmap element) and not empty.
        let mut b = Batch::new();
        b.push(Command::FlushChain {
            table: id(),
            chain: "masq".into(),
        });
        b.push(Command::DeleteChain {
            table: id(),
            chain: "masq".into(),
        });
        assert_eq!(kind(f.apply(&b)), ErrorKind::Busy);
        assert_eq!(
            kind(f.apply(&one(Command::DeleteChain {
                table: id(),
                chain: "masq".into()
            }))),
            ErrorKind::Busy
        );
        // A set a rule uses cannot go.
        let mut t2 = t.clone();
        t2.chains.get_mut("masq").unwrap().rules.insert(
            0,
            Rule::new([in_set(Expr::Payload(Payload::IpSaddr), "pods"), ret()]),
        );
        f.apply(&diff::diff(&t, &t2)).unwrap();
        assert_eq!(
            kind(f.apply(&one(Command::DeleteSet {
                table: id(),
                set: "pods".into(),
                map: false
            }))),
            ErrorKind::Busy
        );
    }

    #[test]
    fn refuses_what_the_kernel_finds_invalid() {
        let mut f = Fake::new();
        f.apply(&diff::create(&base_table())).unwrap();
        let one = |c: Command| {
            let mut b = Batch::new();
            b.push(c);
            b
        };
        let wrong_type = Command::AddElements {
            table: id(),
            set: "pods".into(),
            elements: vec![(Value::Port(80), Element::default())],
        };
        assert_eq!(kind(f.apply(&one(wrong_type))), ErrorKind::Invalid);
        let interval = Command::AddElements {
            table: id(),
            set: "pods".into(),
            elements: vec![(
                Value::net("10.0.0.0/8".parse().unwrap()),
                Element::default(),
            )],
        };
        assert_eq!(kind(f.apply(&one(interval))), ErrorKind::Invalid);
        let timeout = Command::AddElements {
            table: id(),
            set: "pods".into(),
            elements: vec![(
                Value::Addr("10.0.0.3".parse().unwrap()),
                Element {
                    timeout: Some(5),
                    ..Element::default()
                },
            )],
        };
        assert_eq!(kind(f.apply(&one(timeout))), ErrorKind::Invalid);
        let dnat_at_post = Command::AddRule {
            table: id(),
            chain: "post".into(),
            rule: Rule::new([dnat("10.0.0.1".parse().unwrap(), None)]),
        };
        assert_eq!(kind(f.apply(&one(dnat_at_post))), ErrorKind::Invalid);
        let port_without_proto = Command::AddRule {
            table: id(),
            chain: "masq".into(),
            rule: Rule::new([dnat("10.0.0.1".parse().unwrap(), Some(80))]),
        };
        assert_eq!(kind(f.apply(&one(port_without_proto))), ErrorKind::Invalid);
        let jump_base = Command::AddRule {
            table: id(),
            chain: "masq".into(),
            rule: Rule::new([jump("post")]),
        };
        assert_eq!(kind(f.apply(&one(jump_base))), ErrorKind::Invalid);
        let netdev_nat = Command::AddChain {
            table: TableId::new(Family::Netdev, "n"),
            chain: "c".into(),
            base: Some(BaseChain::nat(Hook::Prerouting)),
        };
        assert_eq!(kind(f.apply(&one(netdev_nat))), ErrorKind::Invalid);
        let hook_change = Command::AddChain {
            table: id(),
            chain: "post".into(),
            base: Some(BaseChain::nat(Hook::Output)),
        };
        assert_eq!(kind(f.apply(&one(hook_change))), ErrorKind::Exists);
    }

    #[test]
    fn timeout_sets_and_every_family() {
        let mut f = Fake::new();
        for fam in [
            Family::Ip,
            Family::Ip6,
            Family::Inet,
            Family::Bridge,
            Family::Netdev,
        ] {
            let mut t = Table::new(fam, "all");
            let base = match fam {
                Family::Netdev => BaseChain {
                    device: Some("eth0".into()),
                    ..BaseChain::filter(Hook::Ingress)
                },
                _ => BaseChain::filter(Hook::Forward),
            };
            t.chain("c", Chain::base(base, vec![Rule::new([Stmt::Counter])]));
            t.set(
                "seen",
                Set::new(vec![KeyType::Ipv4Addr, KeyType::InetService]).with_timeout(60),
            );
            t.sets.get_mut("seen").unwrap().insert(
                Value::Concat(vec![
                    Value::Addr("10.0.0.1".parse().unwrap()),
                    Value::Port(53),
                ]),
                Element {
                    timeout: Some(10),
                    ..Element::default()
                },
            );
            f.apply(&diff::create(&t)).unwrap();
        }
        let dump = f.dump();
        for fam in ["ip", "ip6", "inet", "bridge", "netdev"] {
            assert!(dump.contains(&format!("table {fam} all {{")), "{dump}");
        }
        assert!(
            dump.contains(
                "type filter hook ingress device \"eth0\" priority filter; policy accept;"
            ),
            "{dump}"
        );
        assert!(
            dump.contains(
                "flags timeout\n\t\ttimeout 60s\n\t\telements = { 10.0.0.1 . 53 timeout 10s }"
            ),
            "{dump}"
        );
    }
}
