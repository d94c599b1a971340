//! The lab's embedded cluster store (`sqlite:<lab dir>/cluster.db`), opened
//! the way every aksnet command opens a store (`aksnet_store::open`), and
//! read and changed through the cluster library every aksnet component
//! uses (`aksnet_cluster`): the cluster network written at `lab up` (as
//! `aksnet cluster init` does, create-if-absent), the cluster view for the
//! fabric, and node removal.

use std::sync::Arc;
use std::time::Duration;

use aksnet_cluster::ClusterError;
use aksnet_core::cluster::PREFIX;
use aksnet_core::spec::ClusterNetwork;
use aksnet_store::Store;

use crate::error::{LabError, Result};
use crate::snapshot::Snapshot;
use crate::state::LabDir;

fn open(dir: &LabDir) -> Result<Arc<dyn Store>> {
    Ok(aksnet_store::open(&dir.store_url())?)
}

/// Stores the cluster network (refusing a store that holds another one).
pub fn init(dir: &LabDir, net: &ClusterNetwork) -> Result<()> {
    let store = open(dir)?;
    match aksnet_cluster::init_network(store.as_ref(), net) {
        Ok(_) => Ok(()),
        Err(ClusterError::OtherNetwork { .. }) => Err(LabError::OtherNetwork {
            store: dir.store_url(),
        }),
        Err(e) => Err(e.into()),
    }
}

/// Everything under `/aksnet/`, as of one revision.
pub fn snapshot(dir: &LabDir) -> Result<Snapshot> {
    Ok(aksnet_cluster::read(open(dir)?.as_ref())?)
}

/// Returns when the store changed after `after`, or after `timeout`.
pub fn wait_change(dir: &LabDir, after: i64, timeout: Duration) {
    let waited = open(dir).ok().filter(|_| after >= 0).and_then(|store| {
        let mut w = store.watch(PREFIX, after + 1).ok()?;
        // A watch that ended (compacted) means: read everything again now.
        Some(w.wait_past(after, timeout).unwrap_or(true))
    });
    if waited.is_none() {
        std::thread::sleep(timeout);
    }
}

/// Removes the node from the cluster (`aksnet node remove`'s library
/// call): deletes its record and gives back its block, addresses and route
/// slot. A node the store never knew (its agent died at once) is fine.
pub fn remove_node(dir: &LabDir, node: &str) -> Result<()> {
    match aksnet_cluster::remove_node(open(dir)?.as_ref(), node) {
        Ok(r) => {
            tracing::info!(node, released = r.released, "node removed from the cluster");
            Ok(())
        }
        Err(ClusterError::NoNode { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
