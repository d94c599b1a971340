//! The lab's embedded cluster store (`sqlite:<lab dir>/cluster.db`), opened
//! the way every aksnet command opens a store (`aksnet_agent::store_url`):
//! the cluster network written at `lab up` (as `aksnet cluster init` does,
//! create-if-absent), snapshots for the fabric, and node removal through
//! `aksnet node remove`.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use aksnet_agent::kv::{create_all, Kv};
use aksnet_core::cluster::{NETWORK_KEY, PREFIX};
use aksnet_core::spec::ClusterNetwork;

use crate::error::{LabError, Result};
use crate::snapshot::Snapshot;
use crate::state::{LabDir, LabState};

fn open(dir: &LabDir) -> Result<Arc<dyn Kv>> {
    aksnet_agent::store_url::open(&dir.store_url()).map_err(|e| LabError::Store(e.to_string()))
}

/// Stores the cluster network (refusing a store that holds another one).
pub fn init(dir: &LabDir, net: &ClusterNetwork) -> Result<()> {
    let kv = open(dir)?;
    let value = serde_json::to_vec(net).map_err(|e| LabError::Store(e.to_string()))?;
    let created = create_all(
        kv.as_ref(),
        &[(NETWORK_KEY.to_string(), value.clone())],
        None,
    )
    .map_err(|e| LabError::Store(e.to_string()))?;
    if !created {
        let existing = kv
            .get(NETWORK_KEY)
            .map_err(|e| LabError::Store(e.to_string()))?
            .map(|e| e.value);
        if existing.as_deref() != Some(value.as_slice()) {
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
    let kv = open(dir)?;
    let l = kv
        .list(PREFIX)
        .map_err(|e| LabError::Store(e.to_string()))?;
    Ok(Snapshot::from_kvs(
        l.revision,
        l.entries
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_slice())),
    ))
}

/// Returns when the store changed after `after`, or after `timeout`.
pub fn wait_change(dir: &LabDir, after: i64, timeout: Duration) {
    match open(dir) {
        Ok(kv) if after >= 0 => {
            if kv.wait(PREFIX, after, timeout).is_err() {
                std::thread::sleep(timeout);
            }
        }
        _ => std::thread::sleep(timeout),
    }
}

/// `aksnet node remove NAME`: deletes the node's record and gives back its
/// block, addresses and route slot.
pub fn remove_node(dir: &LabDir, state: &LabState, node: &str) -> Result<()> {
    let out = Command::new(&state.exe)
        .args(["node", "remove", node, "--store", &dir.store_url()])
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
