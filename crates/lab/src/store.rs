//! The lab's embedded cluster store (`sqlite:<lab dir>/cluster.db`): the
//! cluster network written at `lab up`, snapshots for the fabric, and node
//! removal.

use std::time::Duration;

use aksnet_core::spec::ClusterNetwork;

use crate::error::{LabError, Result};
use crate::snapshot::Snapshot;
use crate::state::{LabDir, LabState};

pub fn init(_dir: &LabDir, _net: &ClusterNetwork) -> Result<()> {
    Err(LabError::Store(
        "the store backend is not merged yet".into(),
    ))
}

pub fn snapshot(_dir: &LabDir) -> Result<Snapshot> {
    Err(LabError::Store(
        "the store backend is not merged yet".into(),
    ))
}

pub fn wait_change(_dir: &LabDir, _after: i64, timeout: Duration) {
    std::thread::sleep(timeout);
}

pub fn remove_node(_dir: &LabDir, _state: &LabState, _node: &str) -> Result<()> {
    Err(LabError::Store(
        "the store backend is not merged yet".into(),
    ))
}
