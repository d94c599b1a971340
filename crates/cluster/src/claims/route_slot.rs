//! Kubenet with `--routes fabric`: the node's entry in the cluster route
//! table (the Azure UDR), one key per slot `0..route_table_limit`. Taking the
//! first free slot with a create-if-absent transaction enforces the limit
//! atomically: two nodes can never both take the 400th route.

use aksnet_core::cluster::{self, RouteEntry};
use aksnet_store::claim::{self, ClaimOutcome, Claimer};
use aksnet_store::{Compare, CompareOp, Store, Txn, TxnOp};

use crate::error::{encode, Result};

const RACE_ROUNDS: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotOutcome {
    Held(u32),
    /// Every slot is in use by another node.
    TableFull {
        in_use: u32,
        limit: u32,
    },
}

/// Keeps exactly one slot holding `entry` for its node.
pub fn ensure_slot(store: &dyn Store, entry: &RouteEntry, limit: u32) -> Result<SlotOutcome> {
    for _ in 0..RACE_ROUNDS {
        let view = crate::read(store)?;
        let mine: Vec<u32> = view.route_slots_of(&entry.node).collect();
        if let Some((&keep, extra)) = mine.split_first() {
            let at = &view.routes[&keep];
            let key = cluster::route_key(keep);
            let mut ops = Vec::new();
            let mut cmps = Vec::new();
            if at.value.as_ref() != Some(entry) || keep >= limit {
                // Out of range after the limit shrank, or stale content.
                if keep >= limit {
                    ops.push(TxnOp::delete(key.clone()));
                } else {
                    ops.push(TxnOp::put(key.clone(), encode(&key, entry)?));
                }
                cmps.push(Compare::mod_revision(
                    key,
                    CompareOp::Equal,
                    at.mod_revision,
                ));
            }
            for s in extra {
                let k = cluster::route_key(*s);
                cmps.push(Compare::mod_revision(
                    k.clone(),
                    CompareOp::Equal,
                    view.routes[s].mod_revision,
                ));
                ops.push(TxnOp::delete(k));
            }
            if ops.is_empty() {
                return Ok(SlotOutcome::Held(keep));
            }
            store.txn(Txn::new().when(cmps).and_then(ops))?;
            continue;
        }
        let free: Vec<u32> = (0..limit)
            .filter(|s| !view.routes.contains_key(s))
            .collect();
        if free.is_empty() {
            let in_use = view.routes.keys().filter(|s| **s < limit).count() as u32;
            return Ok(SlotOutcome::TableFull { in_use, limit });
        }
        // The first free slot, one create-if-absent per slot.
        let outcome = Claimer::new(store, encode(cluster::ROUTES_PREFIX, entry)?)
            .claim_first_free(free.iter().map(|s| cluster::route_key(*s)))?;
        if let ClaimOutcome::Claimed { key, .. } = outcome {
            if let Some(slot) = cluster::parse_route_key(&key) {
                tracing::info!(node = %entry.node, slot, "route published");
                return Ok(SlotOutcome::Held(slot));
            }
        }
    }
    let view = crate::read(store)?;
    let in_use = view.routes.keys().filter(|s| **s < limit).count() as u32;
    Ok(SlotOutcome::TableFull { in_use, limit })
}

/// Drops the node's slots (it no longer publishes a route).
pub fn release_slots(store: &dyn Store, node: &str) -> Result<()> {
    let view = crate::read(store)?;
    for s in view.route_slots_of(node).collect::<Vec<_>>() {
        claim::release(store, &cluster::route_key(s), view.routes[&s].mod_revision)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aksnet_store::testing::TempSqlite;

    fn entry(node: &str, i: u8) -> RouteEntry {
        RouteEntry {
            node: node.into(),
            destination: format!("10.244.{i}.0/24").parse().unwrap(),
            next_hop: format!("10.224.0.{}", i + 4).parse().unwrap(),
        }
    }

    #[test]
    fn limit_is_enforced_and_a_freed_slot_is_reused() {
        let kv = TempSqlite::new().unwrap();
        let kv = &*kv;
        assert_eq!(
            ensure_slot(kv, &entry("a", 0), 2).unwrap(),
            SlotOutcome::Held(0)
        );
        assert_eq!(
            ensure_slot(kv, &entry("b", 1), 2).unwrap(),
            SlotOutcome::Held(1)
        );
        assert_eq!(
            ensure_slot(kv, &entry("a", 0), 2).unwrap(),
            SlotOutcome::Held(0)
        );
        assert_eq!(
            ensure_slot(kv, &entry("c", 2), 2).unwrap(),
            SlotOutcome::TableFull {
                in_use: 2,
                limit: 2
            }
        );
        release_slots(kv, "a").unwrap();
        assert_eq!(
            ensure_slot(kv, &entry("c", 2), 2).unwrap(),
            SlotOutcome::Held(0)
        );
        // A changed entry is rewritten in place.
        let mut moved = entry("b", 1);
        moved.next_hop = "10.224.0.99".parse().unwrap();
        assert_eq!(ensure_slot(kv, &moved, 2).unwrap(), SlotOutcome::Held(1));
        let v = crate::read(kv).unwrap();
        assert_eq!(v.routes[&1].value.as_ref(), Some(&moved));
    }
}
