//! Everything a node holds in the store, claimed key by key with
//! create-if-absent transactions, and given back when the node goes.

pub mod block;
pub mod pool;
pub mod route_slot;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use aksnet_core::cluster::{self, Claim, ClaimKind};

use aksnet_store::claim::create_if_absent;
use aksnet_store::{Compare, CompareOp, Store, Txn, TxnOp};

use crate::error::{encode, ClusterError, Result};
use crate::{holder, ClusterView};

/// Claims the node's own address (`/aksnet/ips/<node ip>`), so two nodes
/// cannot share one and no pod pool takes it.
pub fn ensure_node_ip(store: &dyn Store, node: &str, ip: Ipv4Addr) -> Result<()> {
    let key = cluster::ip_key(ip);
    let value = encode(
        &key,
        &Claim {
            node: node.to_string(),
            kind: ClaimKind::NodeIp,
        },
    )?;
    // One transaction: created, or the holder read in the same revision.
    let Err(held) = create_if_absent(store, &key, &value, None)? else {
        return Ok(());
    };
    match serde_json::from_slice::<Claim>(&held.value) {
        Ok(c) if c.node == node && c.kind == ClaimKind::NodeIp => Ok(()),
        Ok(c) => Err(ClusterError::NodeIpTaken { ip, holder: c.node }),
        Err(_) => Err(ClusterError::NodeIpUnreadable { ip, key }),
    }
}

/// Deletes each key only if unchanged since the given mod revision, plus
/// `guards`, in transactions of [`pool::CHUNK`] keys; returns how many keys
/// went (a chunk whose compares fail is left alone).
pub(crate) fn delete_unchanged(
    store: &dyn Store,
    guards: &[Compare],
    keys: &[(String, i64)],
) -> Result<usize> {
    let mut deleted = 0;
    for chunk in keys.chunks(pool::CHUNK) {
        let txn = Txn::new()
            .when(guards.iter().cloned())
            .when(
                chunk
                    .iter()
                    .map(|(k, r)| Compare::mod_revision(k.clone(), CompareOp::Equal, *r)),
            )
            .and_then(chunk.iter().map(|(k, _)| TxnOp::delete(k.clone())));
        if store.txn(txn)?.succeeded {
            deleted += chunk.len();
        }
    }
    Ok(deleted)
}

/// Every claim key held by a node.
fn claims_of(view: &ClusterView) -> BTreeMap<String, Vec<(String, i64)>> {
    let mut by_node: BTreeMap<String, Vec<(String, i64)>> = BTreeMap::new();
    for (b, c) in &view.blocks {
        if let Some(n) = holder(c) {
            by_node
                .entry(n.to_string())
                .or_default()
                .push((cluster::block_key(b), c.mod_revision));
        }
    }
    for (ip, c) in &view.ips {
        if let Some(n) = holder(c) {
            by_node
                .entry(n.to_string())
                .or_default()
                .push((cluster::ip_key(*ip), c.mod_revision));
        }
    }
    for (slot, r) in &view.routes {
        if let Some(e) = &r.value {
            by_node
                .entry(e.node.clone())
                .or_default()
                .push((cluster::route_key(*slot), r.mod_revision));
        }
    }
    by_node
}

/// Deletes the claims of `node`, each only if unchanged since `view` and
/// only while the node has no record (so a node that re-registers in the
/// meantime keeps them). Returns how many keys went.
pub fn release_node(store: &dyn Store, view: &ClusterView, node: &str) -> Result<usize> {
    let Some(keys) = claims_of(view).remove(node) else {
        return Ok(0);
    };
    let released = delete_unchanged(store, &[Compare::absent(cluster::node_key(node))], &keys)?;
    if released > 0 {
        tracing::info!(node, released, "released the claims of a node that is gone");
    }
    Ok(released)
}

/// Gives back the claims of every node without a record (removed, or its
/// lease expired). A node whose record exists but does not decode keeps
/// its claims. Any agent may run it; the transactions make it safe.
pub fn release_orphans(store: &dyn Store, view: &ClusterView) -> Result<usize> {
    let mut n = 0;
    for node in claims_of(view).keys() {
        if !view.node_present(node) {
            n += release_node(store, view, node)?;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aksnet_core::cluster::NodeRecord;
    use aksnet_store::testing::TempSqlite;

    #[test]
    fn orphans_go_but_a_registered_node_keeps_its_claims() {
        let kv = TempSqlite::new().unwrap();
        let kv = &*kv;
        ensure_node_ip(kv, "a", "10.224.0.4".parse().unwrap()).unwrap();
        ensure_node_ip(kv, "a", "10.224.0.4".parse().unwrap()).unwrap();
        assert!(matches!(
            ensure_node_ip(kv, "b", "10.224.0.4".parse().unwrap()),
            Err(ClusterError::NodeIpTaken { .. })
        ));
        let pc = "10.244.0.0/16".parse().unwrap();
        block::ensure_block(kv, "a", &pc, None).unwrap();
        block::ensure_block(kv, "b", &pc, None).unwrap();
        let rec = NodeRecord::new("b", "10.224.0.5".parse().unwrap(), Default::default());
        kv.put(
            &cluster::node_key("b"),
            &serde_json::to_vec(&rec).unwrap(),
            None,
        )
        .unwrap();
        let view = crate::read(kv).unwrap();
        assert_eq!(release_orphans(kv, &view).unwrap(), 2, "a's block and IP");
        let view = crate::read(kv).unwrap();
        assert_eq!(view.blocks.len(), 1);
        assert_eq!(view.blocks_of("b").count(), 1);
        assert!(view.ips.is_empty());
    }

    #[test]
    fn unreadable_records_keep_what_they_name() {
        let kv = TempSqlite::new().unwrap();
        let kv = &*kv;
        let pc: ipnet::Ipv4Net = "10.244.0.0/22".parse().unwrap();
        // Node "a" holds a block, but its record does not decode: not an orphan.
        block::ensure_block(kv, "a", &pc, None).unwrap();
        kv.put(&cluster::node_key("a"), b"{garbled", None).unwrap();
        // A block claim that does not decode: taken, by nobody.
        kv.put("/aksnet/blocks/10.244.1.0-24", b"?", None).unwrap();
        let view = crate::read(kv).unwrap();
        assert_eq!(view.problems.len(), 2, "{:?}", view.problems);
        assert_eq!(release_orphans(kv, &view).unwrap(), 0);
        // A new node skips both blocks.
        let b = block::ensure_block(kv, "b", &pc, None).unwrap();
        assert_eq!(b.to_string(), "10.244.2.0/24");
        let view = crate::read(kv).unwrap();
        assert_eq!(view.blocks_of("a").count(), 1);
    }
}
