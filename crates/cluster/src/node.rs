//! Removing a node from the cluster: its record goes, and its block,
//! addresses and route slot are given back.

use aksnet_core::cluster;
use aksnet_store::claim;
use aksnet_store::Store;

use crate::error::{ClusterError, Result};

/// What [`remove_node`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Removed {
    /// Whether the node had a record (it may hold claims without one).
    pub had_record: bool,
    /// Claim keys given back.
    pub released: usize,
}

/// Deletes the node's record (only if unchanged since it was read) and
/// gives back every claim it holds (each only while the node has no
/// record). [`ClusterError::NoNode`] when the store knows no such node;
/// [`ClusterError::ReRegistered`] when its agent wrote the record again
/// meanwhile (the agent must be stopped first).
pub fn remove_node(store: &dyn Store, name: &str) -> Result<Removed> {
    let view = crate::read(store)?;
    let present = view.node_present(name);
    if !present && !view.holds_anything(name) {
        return Err(ClusterError::NoNode {
            name: name.to_string(),
        });
    }
    let key = cluster::node_key(name);
    if present {
        // A garbled record is deleted too: its revision is what we read.
        if let Some(e) = store.get(&key)? {
            claim::release(store, &key, e.mod_revision)?;
        }
    }
    let view = crate::read(store)?;
    if view.node_present(name) {
        return Err(ClusterError::ReRegistered {
            name: name.to_string(),
        });
    }
    let released = crate::claims::release_node(store, &view, name)?;
    Ok(Removed {
        had_record: present,
        released,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aksnet_core::cluster::{NodeRecord, RouteMode};
    use aksnet_store::testing::TempSqlite;

    #[test]
    fn removes_record_and_claims_and_names_a_missing_node() {
        let kv = TempSqlite::new().unwrap();
        let kv = &*kv;
        let pc = "10.244.0.0/16".parse().unwrap();
        crate::claims::ensure_node_ip(kv, "a", "10.224.0.4".parse().unwrap()).unwrap();
        crate::claims::block::ensure_block(kv, "a", &pc, None).unwrap();
        let rec = NodeRecord::new("a", "10.224.0.4".parse().unwrap(), RouteMode::Fabric);
        kv.put(
            &cluster::node_key("a"),
            &serde_json::to_vec(&rec).unwrap(),
            None,
        )
        .unwrap();
        assert_eq!(
            remove_node(kv, "a").unwrap(),
            Removed {
                had_record: true,
                released: 2
            }
        );
        let v = crate::read(kv).unwrap();
        assert!(v.nodes.is_empty() && v.blocks.is_empty() && v.ips.is_empty());
        assert!(matches!(
            remove_node(kv, "a"),
            Err(ClusterError::NoNode { name }) if name == "a"
        ));
        // A node whose record does not decode can still be removed.
        kv.put(&cluster::node_key("b"), b"not json", None).unwrap();
        assert_eq!(remove_node(kv, "b").unwrap().released, 0);
        assert!(crate::read(kv).unwrap().is_clean());
    }
}
