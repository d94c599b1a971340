//! The agent's controllers. Each owns one part of what a node must hold and
//! follows one pattern: compute the desired state from the cluster view
//! (and from what the controllers before it decided in the same pass), then
//! apply only its difference from what the kernel, the store or the disk
//! holds. The reconcile loop ([`crate::agent`]) only runs them in
//! [`all`]'s order and records what each did and how long it took
//! ([`ControllerRun`]; [`crate::Agent::controller_stats`] keeps the last one
//! of each, for metrics).
//!
//! | controller | desired state from | applied to |
//! |---|---|---|
//! | [`pool::Pool`] | the network, the view's claims | the store (block or Azure pool claims), the conflist |
//! | [`routes::Routes`] | the view's node records | the store's route table slot, the kernel's routes, VTEP and L2 entries, forwarding |
//! | [`snat::Snat`] | the node's ranges, the network's no-SNAT CIDRs | the kernel's `ip aksnet-agent` table |
//! | [`services::Services`] | the store's Services and their endpoints | the kernel's `ip aksnet-services` table |
//! | [`policy::Policy`] | the store's NetworkPolicies, Pods, Namespaces | the kernel's `ip aksnet-policy` table, the record's `policy` |
//!
//! Policy runs after `services`, so it is computed on the translated
//! addresses, as kube-proxy and a policy engine do on one node.

pub mod policy;
pub mod pool;
pub mod routes;
pub mod services;
pub mod snat;

use std::time::Duration;

use aksnet_cluster::ClusterView;
use aksnet_core::cluster::{Condition, NodeRecord, NETWORK_UNAVAILABLE};
use aksnet_core::k8s::store::K8S_PREFIX;
use aksnet_core::k8s::K8sState;

use super::{Agent, Report};
use crate::conflist::PodRanges;
use crate::error::AgentError;

/// One part of the node, kept equal to the cluster.
pub trait Controller: Send {
    /// A stable name (metrics label, logs).
    fn name(&self) -> &'static str;

    /// Computes the desired state from `pass.view` and applies its
    /// difference. A kernel error is reported on the node
    /// (`NetworkUnavailable`) and the next controllers still run; any other
    /// error ends the pass.
    fn reconcile(
        &mut self,
        agent: &mut Agent,
        pass: &mut Pass<'_>,
    ) -> Result<Programmed, AgentError>;
}

/// The controllers, in the order a pass runs them: the pool claims the
/// ranges that routes and SNAT are computed from.
pub fn all() -> Vec<Box<dyn Controller>> {
    vec![
        Box::new(pool::Pool::default()),
        Box::new(routes::Routes::default()),
        Box::new(snat::Snat),
        Box::new(services::Services::default()),
        Box::new(policy::Policy::default()),
    ]
}

/// What a controller did in one pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Programmed {
    /// Objects it holds in the desired state (routes, rules, addresses).
    pub objects: usize,
    /// Objects it changed in this pass.
    pub changed: usize,
}

/// One controller's run in one pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerRun {
    pub name: &'static str,
    pub duration: Duration,
    pub programmed: Programmed,
    /// The error it ended with, if any.
    pub error: Option<String>,
}

/// What one reconcile pass shares between its controllers.
pub struct Pass<'v> {
    /// The cluster, as read at the start of the pass.
    pub view: &'v ClusterView,
    /// The node record being built; published after the last controller.
    pub record: NodeRecord,
    /// The node's pod ranges, once the pool controller has them.
    pub ranges: Option<PodRanges>,
    /// MTU of the link carrying the node IP (or `--mtu`).
    pub underlay_mtu: u32,
    pub report: Report,
    condition: Option<Condition>,
    failure: Option<Condition>,
    /// The Kubernetes objects, read once per pass for every controller
    /// that needs them (Services, policy).
    k8s: Option<std::sync::Arc<K8sState>>,
}

impl<'v> Pass<'v> {
    pub fn new(view: &'v ClusterView, record: NodeRecord, underlay_mtu: u32) -> Self {
        Pass {
            view,
            record,
            ranges: None,
            underlay_mtu,
            report: Report::default(),
            condition: None,
            failure: None,
            k8s: None,
        }
    }

    /// The store's Kubernetes objects, read at the first call of the pass.
    pub fn k8s(&mut self, agent: &Agent) -> Result<std::sync::Arc<K8sState>, AgentError> {
        if let Some(k) = &self.k8s {
            return Ok(k.clone());
        }
        let r = agent.store.range(K8S_PREFIX)?;
        let mut st = K8sState::default();
        for kv in &r.kvs {
            st.insert(&kv.key, &kv.value, kv.mod_revision);
        }
        for bad in &st.bad {
            tracing::warn!(key = %bad.key, reason = %bad.reason, "a stored object does not decode");
        }
        let st = std::sync::Arc::new(st);
        self.k8s = Some(st.clone());
        Ok(st)
    }

    /// Reports the node's `NetworkUnavailable` condition: the first one
    /// reported in a pass wins (the pool's shortage before the routes'
    /// status).
    pub fn condition(&mut self, status: bool, reason: &str, message: String) {
        self.condition
            .get_or_insert_with(|| cond(status, reason, message));
    }

    /// A controller failed to program the kernel: that is what the node
    /// reports, over any other condition.
    pub(crate) fn fail(&mut self, message: String) {
        self.failure
            .get_or_insert_with(|| cond(true, "RouteProgrammingFailed", message));
    }

    /// The record to publish, with the pass's condition, and the report.
    pub(crate) fn finish(self) -> (NodeRecord, Report) {
        let mut rec = self.record;
        if let Some(c) = self.failure.or(self.condition) {
            rec.set_condition(c);
        }
        (rec, self.report)
    }
}

fn cond(status: bool, reason: &str, message: String) -> Condition {
    Condition {
        kind: NETWORK_UNAVAILABLE.into(),
        status,
        reason: reason.into(),
        message,
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! An agent on a temporary SQLite store and the fake kernel, for the
    //! controllers' unit tests.

    use std::sync::Arc;
    use std::time::Duration;

    use aksnet_core::cluster::{ClusterNetwork, RouteMode, NETWORK_KEY};
    use aksnet_core::planner;
    use aksnet_core::spec::{Sourced, SpecInput};
    use aksnet_store::testing::TempSqlite;

    use crate::kernel::fake::FakeKernel;
    use crate::{Agent, AgentConfig};

    pub struct Fixture {
        pub kv: TempSqlite,
        pub kernel: FakeKernel,
        pub agent: Agent,
        pub dir: tempfile::TempDir,
    }

    pub fn network(plugin: &str, mode: Option<&str>) -> ClusterNetwork {
        let input = SpecInput {
            network_plugin: Some(Sourced::new(plugin.into(), "test")),
            network_plugin_mode: mode.map(|m| Sourced::new(m.into(), "test")),
            ..Default::default()
        };
        planner::plan_input(&input).unwrap().network
    }

    pub fn fixture(net: &ClusterNetwork, node: &str, ip: &str, routes: RouteMode) -> Fixture {
        let kv = TempSqlite::new().unwrap();
        kv.put(NETWORK_KEY, &serde_json::to_vec(net).unwrap(), None)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let kernel = FakeKernel::with_link("eth0", ip.parse().unwrap(), 1500);
        let mut cfg = AgentConfig::new(node, ip.parse().unwrap());
        cfg.cni_conf_dir = dir.path().join("net.d");
        cfg.ipam_data_dir = dir.path().join("ipam");
        cfg.routes = routes;
        cfg.lease_ttl = Duration::from_secs(30);
        let agent = Agent::start(cfg, Arc::clone(&kv.store), Box::new(kernel.clone())).unwrap();
        Fixture {
            kv,
            kernel,
            agent,
            dir,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{fixture, network};
    use aksnet_core::cluster::RouteMode;

    #[test]
    fn the_loop_runs_every_controller_in_order_and_keeps_their_runs() {
        let mut f = fixture(
            &network("kubenet", None),
            "a",
            "10.224.0.4",
            RouteMode::HostGw,
        );
        let r = f.agent.reconcile().unwrap();
        let names: Vec<&str> = r.controllers.iter().map(|c| c.name).collect();
        assert_eq!(names, vec!["pool", "routes", "snat", "services", "policy"]);
        assert_eq!(r.durations().count(), 5);
        let stats = f.agent.controller_stats();
        assert_eq!(stats["pool"].programmed.objects, 1, "one block");
        // Two rules; no-SNAT: link-local and the pod CIDR; the node's block.
        assert_eq!(stats["snat"].programmed.objects, 5);
        assert_eq!(stats["services"].programmed.objects, 0, "no Service stored");
        // Nothing changed: the runs are recorded, the report says no change.
        let r = f.agent.reconcile().unwrap();
        assert!(!r.changed(), "{r:?}");
        assert_eq!(r.controllers.len(), 5);
    }

    #[test]
    fn a_kernel_failure_is_the_nodes_condition_and_later_controllers_still_run() {
        let mut f = fixture(
            &network("kubenet", None),
            "a",
            "10.224.0.4",
            RouteMode::HostGw,
        );
        f.kernel.state().fail_routes = Some("EPERM".into());
        // A peer, so there is a route to program.
        let peer = aksnet_core::cluster::NodeRecord {
            block: Some("10.244.9.0/24".parse().unwrap()),
            ..aksnet_core::cluster::NodeRecord::new(
                "b",
                "10.224.0.5".parse().unwrap(),
                RouteMode::HostGw,
            )
        };
        f.kv.put(
            &aksnet_core::cluster::node_key("b"),
            &serde_json::to_vec(&peer).unwrap(),
            None,
        )
        .unwrap();
        let r = f.agent.reconcile().unwrap();
        let routes = &r.controllers[1];
        assert!(
            routes.error.as_deref().unwrap().contains("EPERM"),
            "{routes:?}"
        );
        assert!(r.snat_applied, "SNAT ran after the routes failed");
        let c = f.agent.record().condition("NetworkUnavailable").unwrap();
        assert_eq!(
            (c.status, c.reason.as_str()),
            (true, "RouteProgrammingFailed")
        );
        assert!(c.message.contains("EPERM"));
    }
}
