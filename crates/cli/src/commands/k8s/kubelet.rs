//! The lab as its pods' kubelet: the one place `apply --lab` and
//! `delete --lab` hand over what they committed. When Pods, Deployments or
//! Namespaces changed, the lab makes its pods the store's Pods
//! (`aksnet_lab::kubelet::sync`: Deployment replicas become Pods, Pods
//! become lab pods on their node, their `status.podIP` and node are written
//! back), and says what it did on standard error.

use aksnet_core::k8s::{Kind, ObjectId};
use aksnet_lab::state::LabDir;

use crate::commands::lab::render_kubelet;

/// What one committed apply or delete changed.
#[derive(Debug, Default)]
pub struct Committed {
    pub revision: i64,
    /// Created or configured objects.
    pub changed: Vec<ObjectId>,
    pub deleted: Vec<ObjectId>,
}

/// Kinds whose change the lab acts on.
pub fn acts_on(kind: Kind) -> bool {
    matches!(kind, Kind::Pod | Kind::Deployment | Kind::Namespace)
}

/// Before a commit: the lab can only run pods as root, so refuse early
/// (nothing stored) rather than store Pods no lab pod will run for.
pub fn preflight(kinds: impl IntoIterator<Item = Kind>) -> Result<(), String> {
    let pods = kinds
        .into_iter()
        .any(|k| matches!(k, Kind::Pod | Kind::Deployment));
    if pods && aksnet_lab::lab::require_root().is_err() {
        return Err(
            "the lab runs Pods and Deployments as network namespaces, which needs root; run as root, or use --store to only store them"
                .into(),
        );
    }
    Ok(())
}

/// Called after every committed `apply --lab` / `delete --lab`.
pub fn after_commit(lab: &LabDir, done: &Committed) -> anyhow::Result<()> {
    let workloads = done
        .changed
        .iter()
        .chain(&done.deleted)
        .any(|id| acts_on(id.kind));
    if !workloads {
        return Ok(());
    }
    tracing::debug!(lab = %lab.name, revision = done.revision, "syncing the lab's pods");
    let report = aksnet_lab::kubelet::sync(lab)?;
    err!("{}", render_kubelet(&report));
    Ok(())
}
