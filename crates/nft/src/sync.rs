//! Keeping a table equal to its owner's desired state: the diff from what
//! the owner applied last, or — on the first run after a (re)start, and
//! after a refused batch — a listing: adopted when it already matches,
//! replaced in one batch when it does not.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::batch::{Batch, Command};
use crate::diff;
use crate::driver::{Driver, DriverError};
use crate::listing::Listing;
use crate::model::{Table, TableId};

/// The batch that makes a table whose content is `listing` (`None`: no
/// such table) equal to `desired`, whatever it holds now. Every listed
/// chain is flushed first, then every set (kept sets flushed, others
/// deleted), so nothing refers to what is deleted; chains that are not
/// desired, or whose hook or type changed, are deleted last; kept sets are
/// filled again.
pub fn replace(desired: &Table, listing: Option<&Listing>) -> Batch {
    let Some(l) = listing else {
        return diff::create(desired);
    };
    let id = desired.id();
    let mut b = Batch::new();
    b.push(Command::AddTable(id.clone()));
    for c in &l.chains {
        b.push(Command::FlushChain {
            table: id.clone(),
            chain: c.name.clone(),
        });
    }
    // Sets before chains: a verdict map's elements may name a chain that
    // goes (the kernel refuses to delete a chain an element still names).
    let mut kept_sets = BTreeSet::new();
    for s in &l.sets {
        let keep = match (&s.set, desired.sets.get(&s.name)) {
            (Some(have), Some(want)) => have.declaration() == want.declaration(),
            _ => false,
        };
        let packets = desired
            .sets
            .get(&s.name)
            .is_some_and(|w| w.filled_by_packets());
        if keep && packets {
            kept_sets.insert(s.name.clone());
        } else if keep {
            kept_sets.insert(s.name.clone());
            b.push(Command::FlushSet {
                table: id.clone(),
                set: s.name.clone(),
                map: s.map,
            });
        } else {
            b.push(Command::DeleteSet {
                table: id.clone(),
                set: s.name.clone(),
                map: s.map,
            });
        }
    }
    for c in &l.chains {
        let keep = desired
            .chains
            .get(&c.name)
            .is_some_and(|d| match (&c.base, &d.base) {
                (None, None) => true,
                (Some(a), Some(b)) => {
                    a.kind == b.kind
                        && a.hook == b.hook
                        && a.priority == b.priority
                        && a.device == b.device
                }
                _ => false,
            });
        if !keep {
            b.push(Command::DeleteChain {
                table: id.clone(),
                chain: c.name.clone(),
            });
        }
    }
    // Everything desired, declared (add is a no-op on what is kept) and
    // filled: the create batch without its `add table`. A kept set the
    // packet path fills is not declared again: the kernel gave it the
    // `dynamic` flag when a rule first updated it, and an `add set` with
    // other flags is refused (EEXIST).
    b.commands.extend(
        diff::create(desired)
            .commands
            .into_iter()
            .skip(1)
            .filter(|c| match c {
                Command::AddSet { set, .. } => {
                    !(kept_sets.contains(set)
                        && desired.sets.get(set).is_some_and(|w| w.filled_by_packets()))
                }
                _ => true,
            }),
    );
    b
}

/// For a table shared by many writers (one CNI call each) whose chains
/// are fixed and whose sets' elements belong to the writers: the batch that
/// creates the table, its chains (flushed and rewritten, so concurrent
/// writers can never leave a rule twice) and its sets where missing,
/// leaving every element where it is. Chains named in `shared` hold the
/// writers' own rules: they are declared, never flushed.
pub fn ensure(t: &Table, shared: &[&str]) -> Batch {
    let id = t.id();
    let mut b = Batch::new();
    b.push(Command::AddTable(id.clone()));
    for (n, c) in &t.chains {
        b.push(Command::AddChain {
            table: id.clone(),
            chain: n.clone(),
            base: c.base.clone(),
        });
        if !shared.contains(&n.as_str()) {
            b.push(Command::FlushChain {
                table: id.clone(),
                chain: n.clone(),
            });
        }
    }
    for (n, s) in &t.sets {
        b.push(Command::AddSet {
            table: id.clone(),
            set: n.clone(),
            decl: s.declaration(),
        });
    }
    for (n, c) in t
        .chains
        .iter()
        .filter(|(n, _)| !shared.contains(&n.as_str()))
    {
        for r in &c.rules {
            b.push(Command::AddRule {
                table: id.clone(),
                chain: n.clone(),
                rule: r.clone(),
            });
        }
    }
    b
}

/// What a sync did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Synced {
    /// Nothing to do: the owner applied this state last.
    Unchanged,
    /// The kernel already held the desired state (after a restart).
    Adopted,
    /// A batch of this many commands was applied.
    Applied(usize),
}

/// One owner of one table.
#[derive(Debug, Clone)]
pub struct Owner {
    id: TableId,
    applied: Option<Table>,
}

impl Owner {
    pub fn new(id: TableId) -> Owner {
        Owner { id, applied: None }
    }

    pub fn id(&self) -> &TableId {
        &self.id
    }

    /// What this owner applied last (and believes the kernel holds).
    pub fn applied(&self) -> Option<&Table> {
        self.applied.as_ref()
    }

    /// Forget what was applied: the next sync reads the kernel (someone
    /// may have flushed the ruleset).
    pub fn forget(&mut self) {
        self.applied = None;
    }

    /// The batch the next [`Owner::sync`] would apply, when the owner knows
    /// what it applied last (`None`: it would list first).
    pub fn plan(&self, desired: &Table) -> Option<Batch> {
        self.applied.as_ref().map(|a| diff::diff(a, desired))
    }

    /// Makes the table equal to `desired`. A refused diff (the kernel is
    /// not what this owner left) falls back to a listing and a replace.
    pub fn sync(&mut self, d: &mut dyn Driver, desired: &Table) -> Result<Synced, DriverError> {
        debug_assert_eq!(desired.id(), self.id);
        if let Some(b) = self.plan(desired) {
            if b.is_empty() {
                return Ok(Synced::Unchanged);
            }
            match d.apply(&b) {
                Ok(()) => {
                    self.applied = Some(desired.clone());
                    return Ok(Synced::Applied(b.len()));
                }
                Err(e) if e.kind.is_conflict() => self.applied = None,
                Err(e) => return Err(e),
            }
        }
        let listing = d.list(&self.id)?;
        if listing.as_ref().is_some_and(|l| l.matches(desired)) {
            self.applied = Some(desired.clone());
            return Ok(Synced::Adopted);
        }
        let b = replace(desired, listing.as_ref());
        d.apply(&b)?;
        self.applied = Some(desired.clone());
        Ok(Synced::Applied(b.len()))
    }

    /// Removes the table when it exists.
    pub fn remove(&mut self, d: &mut dyn Driver) -> Result<bool, DriverError> {
        self.applied = None;
        if d.list(&self.id)?.is_none() {
            return Ok(false);
        }
        d.apply(&diff::delete(&self.id))?;
        Ok(true)
    }
}

/// For writers that share a table (CNI plugins, one process per call):
/// list it, build a batch from the listing, apply; when the batch is
/// refused for a conflict another writer can cause (a handle or element
/// gone, an element added meanwhile), list again and rebuild, up to
/// `attempts` times with a short growing pause. Returns the commands
/// applied (0: nothing to do).
pub fn list_and_apply(
    d: &mut dyn Driver,
    id: &TableId,
    attempts: u32,
    build: &dyn Fn(Option<&Listing>) -> Batch,
) -> Result<usize, DriverError> {
    let mut last = None;
    for attempt in 0..attempts.max(1) {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(10 * u64::from(attempt)));
        }
        let listing = d.list(id)?;
        let b = build(listing.as_ref());
        if b.is_empty() {
            return Ok(0);
        }
        match d.apply(&b) {
            Ok(()) => return Ok(b.len()),
            Err(e) if e.kind.is_conflict() => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| DriverError::new(crate::ErrorKind::Invalid, "no attempt made")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::build::*;
    use crate::expr::Rule;
    use crate::fake::Fake;
    use crate::model::{BaseChain, Chain, Family, Hook, KeyType, Set};
    use crate::value::Value;

    fn desired(nets: &[&str], node: &str) -> Table {
        let mut t = Table::new(Family::Ip, "own");
        let mut s = Set::new(vec![KeyType::Ipv4Addr]).interval();
        for n in nets {
            s = s.elem(Value::net(n.parse().unwrap()));
        }
        t.set("no_snat", s);
        t.chain(
            "post",
            Chain::base(
                BaseChain::nat(Hook::Postrouting),
                vec![
                    Rule::new([
                        in_set(crate::Expr::Payload(crate::Payload::IpDaddr), "no_snat"),
                        ret(),
                    ]),
                    Rule::new([snat(node.parse().unwrap())]),
                ],
            ),
        );
        t
    }

    #[test]
    fn first_sync_creates_then_diffs_then_nothing() {
        let mut f = Fake::new();
        let mut o = Owner::new(TableId::new(Family::Ip, "own"));
        let a = desired(&["10.0.0.0/8"], "10.224.0.4");
        assert!(matches!(o.sync(&mut f, &a).unwrap(), Synced::Applied(_)));
        assert_eq!(o.sync(&mut f, &a).unwrap(), Synced::Unchanged);
        let b = desired(&["10.0.0.0/8", "172.16.0.0/12"], "10.224.0.4");
        assert_eq!(o.sync(&mut f, &b).unwrap(), Synced::Applied(1));
        assert_eq!(f.table(o.id()).unwrap(), b);
    }

    #[test]
    fn a_restarted_owner_adopts_a_matching_table_and_replaces_a_stale_one() {
        let mut f = Fake::new();
        let a = desired(&["10.0.0.0/8"], "10.224.0.4");
        Owner::new(TableId::new(Family::Ip, "own"))
            .sync(&mut f, &a)
            .unwrap();
        let writes = f.applied.len();
        let mut again = Owner::new(TableId::new(Family::Ip, "own"));
        assert_eq!(again.sync(&mut f, &a).unwrap(), Synced::Adopted);
        assert_eq!(f.applied.len(), writes);
        let mut third = Owner::new(TableId::new(Family::Ip, "own"));
        let mut stale = a.clone();
        stale.chain("old", Chain::regular(vec![Rule::new([accept()])]));
        stale.set("gone", Set::new(vec![KeyType::Ipv4Addr]));
        Owner::new(TableId::new(Family::Ip, "own"))
            .sync(&mut f, &stale)
            .unwrap();
        let b = desired(&["10.1.0.0/16"], "10.224.0.5");
        assert!(matches!(
            third.sync(&mut f, &b).unwrap(),
            Synced::Applied(_)
        ));
        assert_eq!(f.table(third.id()).unwrap(), b);
    }

    #[test]
    fn a_replace_empties_maps_before_it_deletes_the_chains_they_name() {
        use crate::model::{ElemData, Element};
        let mut f = Fake::new();
        let with = |chains: &[&str]| {
            let mut t = desired(&[], "10.224.0.4");
            let mut m = Set::vmap(vec![KeyType::InetService]);
            for (i, c) in chains.iter().enumerate() {
                m.insert(
                    Value::Port(80 + u16::try_from(i).unwrap()),
                    Element {
                        data: Some(ElemData::Verdict(crate::expr::Verdict::Goto(c.to_string()))),
                        ..Element::default()
                    },
                );
                t.chain(c, Chain::regular(vec![Rule::new([accept()])]));
            }
            t.set("ports", m);
            t
        };
        let a = with(&["a", "b"]);
        Owner::new(a.id()).sync(&mut f, &a).unwrap();
        let listing = crate::Driver::list(&mut f, &a.id()).unwrap();
        let text = replace(&with(&["a"]), listing.as_ref()).to_string();
        let flush = text.find("flush map ip own ports").unwrap();
        let chain = text.find("delete chain ip own b").unwrap();
        assert!(flush < chain, "{text}");
    }

    #[test]
    fn a_refused_diff_falls_back_to_a_replace() {
        let mut f = Fake::new();
        let mut o = Owner::new(TableId::new(Family::Ip, "own"));
        o.sync(&mut f, &desired(&["10.0.0.0/8"], "10.224.0.4"))
            .unwrap();
        f.flush_ruleset();
        let b = desired(&["10.1.0.0/16"], "10.224.0.4");
        assert!(matches!(o.sync(&mut f, &b).unwrap(), Synced::Applied(_)));
        assert_eq!(f.table(o.id()).unwrap(), b);
        assert_eq!(f.refused, 1, "the diff was refused once");
        assert!(o.remove(&mut f).unwrap());
        assert!(!o.remove(&mut f).unwrap());
    }
}
