//! The lab as its pods' kubelet: the one place `apply --lab` and
//! `delete --lab` hand over what they committed.
//!
//! For now `--lab` stores objects exactly as `--store` does. The next step
//! of the Services work makes the lab act here: Pods and Deployment
//! replicas become lab pods (node from `spec.nodeName`, else the least
//! loaded), their probe servers listen on the container ports, and the lab
//! writes `status.podIP` and the node back to the store; deleted Pods and
//! Deployments (and lowered `replicas`) remove lab pods.

use aksnet_core::k8s::ObjectId;
use aksnet_lab::state::LabDir;

/// What one committed apply or delete changed.
#[derive(Debug, Default)]
pub struct Committed {
    pub revision: i64,
    /// Created or configured objects.
    pub changed: Vec<ObjectId>,
    pub deleted: Vec<ObjectId>,
}

/// Called after every committed `apply --lab` / `delete --lab`.
pub fn after_commit(lab: &LabDir, done: &Committed) -> anyhow::Result<()> {
    let workloads = done
        .changed
        .iter()
        .chain(&done.deleted)
        .filter(|id| {
            matches!(
                id.kind,
                aksnet_core::k8s::Kind::Pod | aksnet_core::k8s::Kind::Deployment
            )
        })
        .count();
    tracing::debug!(
        lab = %lab.name,
        revision = done.revision,
        workloads,
        "stored; lab pods are not created from Pods and Deployments yet"
    );
    Ok(())
}
