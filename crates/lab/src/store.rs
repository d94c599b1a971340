//! The lab's cluster store (`sqlite:<lab dir>/cluster.db`, or the store
//! `lab up --store URL` named, e.g. `etcds://` with client certificates), opened
//! the way every aksnet command opens a store (`aksnet_store::open`):
//! the cluster network written at `lab up` (as `aksnet cluster init` does,
//! create-if-absent), snapshots for the fabric, and node removal through
//! `aksnet node remove`.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use aksnet_core::cluster::{NETWORK_KEY, PREFIX};
use aksnet_core::spec::ClusterNetwork;
use aksnet_store::claim::create_if_absent;
use aksnet_store::Store;

use crate::error::{LabError, Result};
use crate::snapshot::Snapshot;
use crate::state::{LabDir, LabState};

fn store_err(e: impl std::fmt::Display) -> LabError {
    LabError::Store(e.to_string())
}

fn open(dir: &LabDir) -> Result<Arc<dyn Store>> {
    let cfg = dir.store_config();
    aksnet_store::open_with(&cfg.url, &cfg.tls()).map_err(store_err)
}

/// Stores the cluster network (refusing a store that holds another one).
pub fn init(dir: &LabDir, net: &ClusterNetwork) -> Result<()> {
    let store = open(dir)?;
    let value = serde_json::to_vec(net).map_err(store_err)?;
    if let Err(existing) =
        create_if_absent(store.as_ref(), NETWORK_KEY, &value, None).map_err(store_err)?
    {
        if existing.value != value {
            return Err(LabError::Store(format!(
                "{} already holds another cluster network",
                dir.store_url()
            )));
        }
    }
    Ok(())
}

/// Everything under `/aksnet/`, as of one revision.
pub fn snapshot(dir: &LabDir) -> Result<Snapshot> {
    let l = open(dir)?.range(PREFIX).map_err(store_err)?;
    Ok(Snapshot::from_kvs(
        l.revision,
        l.kvs.iter().map(|e| (e.key.as_str(), e.value.as_slice())),
    ))
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

/// `aksnet node remove NAME`: deletes the node's record and gives back its
/// block, addresses and route slot.
pub fn remove_node(dir: &LabDir, state: &LabState, node: &str) -> Result<()> {
    let out = Command::new(&state.exe)
        .args(["node", "remove", node])
        .args(dir.store_args())
        .stdin(Stdio::null())
        .output()
        .map_err(|source| LabError::Spawn {
            cmd: format!("{} node remove {node}", state.exe.display()),
            source,
        })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        // A node the store never knew (its agent died at once) is fine.
        if !err.contains("no node") {
            return Err(LabError::Command {
                cmd: format!("aksnet node remove {node}"),
                stderr: err.trim().to_string(),
            });
        }
    }
    Ok(())
}
