//! Everything a node holds in the store, claimed key by key with
//! create-if-absent transactions, and given back when the node goes.

pub mod block;
pub mod pool;
pub mod route_slot;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use aksnet_core::cluster::{self, Claim, ClaimKind};

use crate::error::AgentError;
use crate::kv::{create_all, Compare, Kv, Op};
use crate::view::{holder, ClusterView};

/// Claims the node's own address (`/aksnet/ips/<node ip>`), so two nodes
/// cannot share one and no pod pool takes it.
pub fn ensure_node_ip(kv: &dyn Kv, node: &str, ip: Ipv4Addr) -> Result<(), AgentError> {
    let key = cluster::ip_key(ip);
    let value = serde_json::to_vec(&Claim {
        node: node.to_string(),
        kind: ClaimKind::NodeIp,
    })
    .unwrap_or_default();
    for _ in 0..4 {
        if create_all(kv, &[(key.clone(), value.clone())], None)? {
            return Ok(());
        }
        match kv.get(&key)? {
            Some(e) => {
                let c: Option<Claim> = serde_json::from_slice(&e.value).ok();
                match c {
                    Some(c) if c.node == node && c.kind == ClaimKind::NodeIp => return Ok(()),
                    Some(c) => return Err(AgentError::NodeIpTaken { ip, holder: c.node }),
                    None => {
                        return Err(AgentError::BadValue {
                            key,
                            reason: "unreadable claim".into(),
                        })
                    }
                }
            }
            None => continue,
        }
    }
    Ok(())
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
pub fn release_node(kv: &dyn Kv, view: &ClusterView, node: &str) -> Result<usize, AgentError> {
    let Some(keys) = claims_of(view).remove(node) else {
        return Ok(0);
    };
    let node_key = cluster::node_key(node);
    let mut released = 0;
    for chunk in keys.chunks(pool::CHUNK) {
        let mut cmps = vec![Compare::Absent(node_key.clone())];
        cmps.extend(
            chunk
                .iter()
                .map(|(k, r)| Compare::ModRevision(k.clone(), *r)),
        );
        let ops: Vec<Op> = chunk.iter().map(|(k, _)| Op::Delete(k.clone())).collect();
        if kv.txn(&cmps, &ops)? {
            released += chunk.len();
        }
    }
    if released > 0 {
        tracing::info!(node, released, "released the claims of a node that is gone");
    }
    Ok(released)
}

/// Gives back the claims of every node without a record (removed, or its
/// lease expired). Any agent may run it; the transactions make it safe.
pub fn release_orphans(kv: &dyn Kv, view: &ClusterView) -> Result<usize, AgentError> {
    let mut n = 0;
    for node in claims_of(view).keys() {
        if !view.nodes.contains_key(node) {
            n += release_node(kv, view, node)?;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::MemKv;
    use aksnet_core::cluster::NodeRecord;

    #[test]
    fn orphans_go_but_a_registered_node_keeps_its_claims() {
        let kv = MemKv::new();
        ensure_node_ip(&kv, "a", "10.224.0.4".parse().unwrap()).unwrap();
        ensure_node_ip(&kv, "a", "10.224.0.4".parse().unwrap()).unwrap();
        assert!(matches!(
            ensure_node_ip(&kv, "b", "10.224.0.4".parse().unwrap()),
            Err(AgentError::NodeIpTaken { .. })
        ));
        let pc = "10.244.0.0/16".parse().unwrap();
        block::ensure_block(&kv, "a", &pc, None).unwrap();
        block::ensure_block(&kv, "b", &pc, None).unwrap();
        let rec = NodeRecord {
            name: "b".into(),
            ip: "10.224.0.5".parse().unwrap(),
            routes: Default::default(),
            block: None,
            pool: vec![],
            pool_used: None,
            vtep_mac: None,
            conditions: vec![],
        };
        kv.txn(
            &[],
            &[Op::Put {
                key: cluster::node_key("b"),
                value: serde_json::to_vec(&rec).unwrap(),
                lease: None,
            }],
        )
        .unwrap();
        let view = ClusterView::read(&kv).unwrap();
        assert_eq!(release_orphans(&kv, &view).unwrap(), 2, "a's block and IP");
        let view = ClusterView::read(&kv).unwrap();
        assert_eq!(view.blocks.len(), 1);
        assert_eq!(view.blocks_of("b").count(), 1);
        assert!(view.ips.is_empty());
    }
}
