//! From one desired state of a table to the next in the fewest commands:
//! changed chains are flushed and rewritten, set and map elements added and
//! removed one by one, new objects added, vanished ones deleted; nothing
//! else is touched.

use std::collections::BTreeSet;

use crate::batch::{Batch, Command};
use crate::model::{Chain, Set, Table, TableId};

fn add_chain(b: &mut Batch, t: &TableId, name: &str, c: &Chain) {
    b.push(Command::AddChain {
        table: t.clone(),
        chain: name.to_string(),
        base: c.base.clone(),
    });
}

fn add_rules(b: &mut Batch, t: &TableId, name: &str, c: &Chain) {
    for r in &c.rules {
        b.push(Command::AddRule {
            table: t.clone(),
            chain: name.to_string(),
            rule: r.clone(),
        });
    }
}

fn add_set(b: &mut Batch, t: &TableId, name: &str, s: &Set) {
    b.push(Command::AddSet {
        table: t.clone(),
        set: name.to_string(),
        decl: s.declaration(),
    });
}

fn add_elements(b: &mut Batch, t: &TableId, name: &str, s: &Set) {
    if !s.elements.is_empty() {
        b.push(Command::AddElements {
            table: t.clone(),
            set: name.to_string(),
            elements: s
                .elements
                .iter()
                .map(|(k, e)| (k.clone(), e.clone()))
                .collect(),
        });
    }
}

/// The batch that creates `t` whole where it does not exist. Declarations
/// come first (chains, then sets), so that rules may jump to any chain and
/// look up any set.
pub fn create(t: &Table) -> Batch {
    let id = t.id();
    let mut b = Batch::new();
    b.push(Command::AddTable(id.clone()));
    for (n, c) in &t.chains {
        add_chain(&mut b, &id, n, c);
    }
    for (n, s) in &t.sets {
        add_set(&mut b, &id, n, s);
        add_elements(&mut b, &id, n, s);
    }
    for (n, c) in &t.chains {
        add_rules(&mut b, &id, n, c);
    }
    b
}

/// The batch that removes table `t`.
pub fn delete(t: &TableId) -> Batch {
    let mut b = Batch::new();
    b.push(Command::DeleteTable(t.clone()));
    b
}

/// Would `add chain` with `new`'s spec update `old` in place (same chain
/// type, hook, priority and device: only the policy may change)?
fn updatable(old: &Chain, new: &Chain) -> bool {
    match (&old.base, &new.base) {
        (None, None) => true,
        (Some(o), Some(n)) => {
            o.kind == n.kind && o.hook == n.hook && o.priority == n.priority && o.device == n.device
        }
        _ => false,
    }
}

/// The minimal batch taking the kernel from `old` to `new` (both desired
/// states the caller applied or means to apply). Empty when they are equal.
pub fn diff(old: &Table, new: &Table) -> Batch {
    if old.id() != new.id() {
        let mut b = delete(&old.id());
        b.extend(create(new));
        return b;
    }
    let id = new.id();
    let mut b = Batch::new();

    // Sets whose declaration changed are deleted and added again; chains
    // whose hook changed likewise.
    let recreated_sets: BTreeSet<&String> = new
        .sets
        .iter()
        .filter(|(n, s)| {
            old.sets
                .get(*n)
                .is_some_and(|o| o.declaration() != s.declaration())
        })
        .map(|(n, _)| n)
        .collect();
    let recreated_chains: BTreeSet<&String> = new
        .chains
        .iter()
        .filter(|(n, c)| old.chains.get(*n).is_some_and(|o| !updatable(o, c)))
        .map(|(n, _)| n)
        .collect();
    let vanished_sets: Vec<&String> = old
        .sets
        .keys()
        .filter(|n| !new.sets.contains_key(*n))
        .collect();
    let vanished_chains: Vec<&String> = old
        .chains
        .keys()
        .filter(|n| !new.chains.contains_key(*n))
        .collect();
    // A chain is rewritten when its rules changed, or when it referred to a
    // set or chain that goes away for a while (the kernel refuses to delete
    // what a rule still uses).
    let going: BTreeSet<&str> = recreated_sets
        .iter()
        .chain(vanished_sets.iter())
        .chain(recreated_chains.iter())
        .chain(vanished_chains.iter())
        .map(|s| s.as_str())
        .collect();
    let rewritten: BTreeSet<&String> = new
        .chains
        .iter()
        .filter(|(n, c)| {
            let Some(o) = old.chains.get(*n) else {
                return false;
            };
            recreated_chains.contains(n)
                || o.rules != c.rules
                || o.rules.iter().any(|r| {
                    r.sets()
                        .iter()
                        .chain(r.targets().iter())
                        .any(|x| going.contains(x))
                })
        })
        .map(|(n, _)| n)
        .collect();

    // 1. Declarations of what is new, and policy updates.
    for (n, c) in &new.chains {
        match old.chains.get(n) {
            None => add_chain(&mut b, &id, n, c),
            Some(o) if o.base != c.base && updatable(o, c) => add_chain(&mut b, &id, n, c),
            _ => {}
        }
    }
    for (n, s) in &new.sets {
        if !old.sets.contains_key(n) {
            add_set(&mut b, &id, n, s);
            add_elements(&mut b, &id, n, s);
        }
    }
    // 2. Flush what is rewritten or goes away, so nothing refers to what
    //    is deleted next.
    for n in rewritten
        .iter()
        .copied()
        .chain(vanished_chains.iter().copied())
    {
        b.push(Command::FlushChain {
            table: id.clone(),
            chain: n.clone(),
        });
    }
    // 2b. Removed (or changed) elements of kept sets out before any
    //     deletion: a verdict-map element that names a chain keeps it busy.
    for (n, s) in &new.sets {
        let Some(o) = old.sets.get(n) else { continue };
        if recreated_sets.contains(n) {
            continue;
        }
        let gone: Vec<_> = o
            .elements
            .iter()
            .filter(|(k, e)| s.elements.get(*k) != Some(*e))
            .map(|(k, _)| k.clone())
            .collect();
        if !gone.is_empty() {
            b.push(Command::DeleteElements {
                table: id.clone(),
                set: n.clone(),
                keys: gone,
            });
        }
    }
    // 3. Deletions, and what is recreated.
    for n in recreated_chains.iter().chain(vanished_chains.iter()) {
        b.push(Command::DeleteChain {
            table: id.clone(),
            chain: (*n).clone(),
        });
    }
    for n in &recreated_chains {
        add_chain(&mut b, &id, n, &new.chains[*n]);
    }
    for n in recreated_sets.iter().chain(vanished_sets.iter()) {
        b.push(Command::DeleteSet {
            table: id.clone(),
            set: (*n).clone(),
            map: old.sets[*n].is_map(),
        });
    }
    for n in &recreated_sets {
        add_set(&mut b, &id, n, &new.sets[*n]);
        add_elements(&mut b, &id, n, &new.sets[*n]);
    }
    // 4. New and changed elements of kept sets (after step 3: they may
    //    name a recreated chain).
    for (n, s) in &new.sets {
        let Some(o) = old.sets.get(n) else { continue };
        if recreated_sets.contains(n) {
            continue;
        }
        let added: Vec<_> = s
            .elements
            .iter()
            .filter(|(k, e)| o.elements.get(*k) != Some(*e))
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect();
        if !added.is_empty() {
            b.push(Command::CreateElements {
                table: id.clone(),
                set: n.clone(),
                elements: added,
            });
        }
    }
    // 5. Rules of new, rewritten and recreated chains.
    for (n, c) in &new.chains {
        if !old.chains.contains_key(n) || rewritten.contains(n) {
            add_rules(&mut b, &id, n, c);
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::build::*;
    use crate::expr::{Expr, Payload, Rule};
    use crate::model::{BaseChain, Family, Hook, KeyType, Policy};
    use crate::value::Value;

    fn net(s: &str) -> ipnet::IpNet {
        s.parse().unwrap()
    }

    fn table(no_snat: &[&str]) -> Table {
        let mut t = Table::new(Family::Ip, "t");
        let mut s = Set::new(vec![KeyType::Ipv4Addr]).interval();
        for n in no_snat {
            s = s.elem(Value::net(net(n)));
        }
        t.set("no_snat", s);
        t.chain(
            "post",
            Chain::base(
                BaseChain::nat(Hook::Postrouting),
                vec![
                    Rule::new([in_set(Expr::Payload(Payload::IpDaddr), "no_snat"), ret()]),
                    Rule::new([jump("masq")]),
                ],
            ),
        );
        t.chain(
            "masq",
            Chain::regular(vec![Rule::new([
                saddr(net("10.244.0.0/24")),
                snat("10.224.0.4".parse().unwrap()),
            ])]),
        );
        t
    }

    #[test]
    fn equal_states_need_no_batch() {
        assert!(diff(&table(&["10.0.0.0/8"]), &table(&["10.0.0.0/8"])).is_empty());
    }

    #[test]
    fn an_element_change_touches_only_the_set() {
        let b = diff(&table(&["10.0.0.0/8"]), &table(&["10.1.0.0/16"]));
        let text = b.to_string();
        assert_eq!(
            text,
            "delete element ip t no_snat { 10.0.0.0/8 }\ncreate element ip t no_snat { 10.1.0.0/16 }\n"
        );
    }

    #[test]
    fn a_changed_chain_is_flushed_and_rewritten_alone() {
        let old = table(&[]);
        let mut new = old.clone();
        new.chains.get_mut("masq").unwrap().rules[0] = Rule::new([
            saddr(net("10.244.1.0/24")),
            snat("10.224.0.4".parse().unwrap()),
        ]);
        let text = diff(&old, &new).to_string();
        assert_eq!(
            text,
            "flush chain ip t masq\nadd rule ip t masq ip saddr 10.244.1.0/24 snat to 10.224.0.4\n"
        );
    }

    #[test]
    fn vanished_objects_go_after_what_used_them() {
        let old = table(&["10.0.0.0/8"]);
        let mut new = Table::new(Family::Ip, "t");
        new.chain(
            "post",
            Chain::base(BaseChain::nat(Hook::Postrouting), vec![Rule::new([ret()])]),
        );
        let text = diff(&old, &new).to_string();
        assert_eq!(
            text,
            "flush chain ip t post\nflush chain ip t masq\ndelete chain ip t masq\ndelete set ip t no_snat\nadd rule ip t post return\n"
        );
    }

    #[test]
    fn policy_updates_in_place_and_hook_changes_recreate() {
        let old = table(&[]);
        let mut new = old.clone();
        new.chains.get_mut("post").unwrap().base =
            Some(BaseChain::nat(Hook::Postrouting).policy(Policy::Drop));
        let b = diff(&old, &new);
        assert_eq!(b.len(), 1);
        assert!(matches!(b.commands[0], Command::AddChain { .. }));
        let mut moved = old.clone();
        moved.chains.get_mut("post").unwrap().base = Some(BaseChain::nat(Hook::Output));
        let text = diff(&old, &moved).to_string();
        assert!(text.starts_with("flush chain ip t post\ndelete chain ip t post\nadd chain ip t post { type nat hook output priority -100; policy accept; }\n"), "{text}");
    }

    #[test]
    fn create_declares_before_rules() {
        let b = create(&table(&["10.0.0.0/8"]));
        let first_rule = b
            .commands
            .iter()
            .position(|c| matches!(c, Command::AddRule { .. }))
            .unwrap();
        let last_decl = b
            .commands
            .iter()
            .rposition(|c| matches!(c, Command::AddChain { .. } | Command::AddSet { .. }))
            .unwrap();
        assert!(last_decl < first_rule);
    }
}
