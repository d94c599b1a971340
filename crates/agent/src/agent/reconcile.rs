//! One reconcile: read the cluster once, fix the store side every agent
//! shares (orphans, our node IP), run the controllers in order, then
//! publish the node record with the condition they reported.

use std::time::{Duration, Instant};

use aksnet_cluster::{claims, ClusterView};
use aksnet_core::cluster::ClaimKind;

use super::controllers::{Controller, ControllerRun, Pass, Programmed};
use super::Agent;
use crate::error::AgentError;

/// What one reconcile did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub orphans_released: usize,
    pub conflist_written: bool,
    pub routes_changed: usize,
    pub l2_changed: usize,
    pub vxlan_changed: bool,
    pub snat_applied: bool,
    pub pool_claimed: u32,
    pub pool_released: usize,
    /// Each controller's run, in order (durations are not changes).
    pub controllers: Vec<ControllerRun>,
}

impl Report {
    /// Whether the reconcile changed anything.
    pub fn changed(&self) -> bool {
        let Report {
            orphans_released,
            conflist_written,
            routes_changed,
            l2_changed,
            vxlan_changed,
            snat_applied,
            pool_claimed,
            pool_released,
            controllers: _,
        } = self;
        *orphans_released > 0
            || *conflist_written
            || *routes_changed > 0
            || *l2_changed > 0
            || *vxlan_changed
            || *snat_applied
            || *pool_claimed > 0
            || *pool_released > 0
    }

    /// How long each controller took.
    pub fn durations(&self) -> impl Iterator<Item = (&'static str, Duration)> + '_ {
        self.controllers.iter().map(|c| (c.name, c.duration))
    }
}

impl Agent {
    pub fn reconcile(&mut self) -> Result<Report, AgentError> {
        self.renew_lease_if_lost()?;
        let view = aksnet_cluster::read(self.store.as_ref())?;
        self.seen_revision = view.revision;
        self.note_problems(&view);
        if !view.node_present(&self.cfg.node) {
            // Gone while our lease lives: removed by `aksnet node remove`.
            return Err(AgentError::Removed(self.cfg.node.clone()));
        }
        let orphans_released = claims::release_orphans(self.store.as_ref(), &view)?;
        let ip_is_ours = view.ips.get(&self.cfg.node_ip).is_some_and(|c| {
            c.value
                .as_ref()
                .is_some_and(|c| c.node == self.cfg.node && c.kind == ClaimKind::NodeIp)
        });
        if !ip_is_ours {
            claims::ensure_node_ip(self.store.as_ref(), &self.cfg.node, self.cfg.node_ip)?;
        }

        let mut rec = self.record.clone();
        rec.ip = self.cfg.node_ip;
        rec.routes = self.cfg.routes;
        let underlay = self
            .kernel
            .link_with_address(self.cfg.node_ip)
            .ok()
            .flatten();
        let underlay_mtu = self
            .cfg
            .mtu
            .or(underlay.as_ref().map(|l| l.mtu))
            .unwrap_or(1500);
        let mut pass = Pass::new(&view, rec, underlay_mtu);
        pass.report.orphans_released = orphans_released;

        // The controllers borrow the agent while they run.
        let mut controllers = std::mem::take(&mut self.controllers);
        let ran = self.run_controllers(&mut controllers, &mut pass);
        self.controllers = controllers;
        ran?;
        let (rec, report) = pass.finish();
        self.publish(rec)?;
        Ok(report)
    }

    /// Runs each controller in order and records its run. A kernel error
    /// becomes the node's condition and the next controller still runs;
    /// any other error ends the pass.
    fn run_controllers(
        &mut self,
        controllers: &mut [Box<dyn Controller>],
        pass: &mut Pass<'_>,
    ) -> Result<(), AgentError> {
        for c in controllers.iter_mut() {
            let start = Instant::now();
            let result = c.reconcile(self, pass);
            let mut run = ControllerRun {
                name: c.name(),
                duration: start.elapsed(),
                programmed: Programmed::default(),
                error: None,
            };
            let fatal = match result {
                Ok(p) => {
                    run.programmed = p;
                    None
                }
                Err(e @ AgentError::Kernel(_)) => {
                    tracing::warn!(node = %self.cfg.node, controller = run.name, error = %e, "programming the node failed");
                    run.error = Some(e.to_string());
                    pass.fail(e.to_string());
                    None
                }
                Err(e) => {
                    run.error = Some(e.to_string());
                    Some(e)
                }
            };
            self.stats.insert(run.name, run.clone());
            pass.report.controllers.push(run);
            if let Some(e) = fatal {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Logs the store's unreadable records when they change (a bad value
    /// never stops an agent; what it names stays taken).
    fn note_problems(&mut self, view: &ClusterView) {
        if view.problems != self.problems {
            for p in &view.problems {
                tracing::warn!(key = %p.key, reason = %p.reason, "unreadable record in the store; what it names is treated as taken");
            }
            self.problems = view.problems.clone();
        }
    }
}
