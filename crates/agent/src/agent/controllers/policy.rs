//! The NetworkPolicy controller: every policy selecting a pod of this node
//! in the node's `ip aksnet-policy` table ([`crate::policy`]). Desired: the
//! store's NetworkPolicies, Pods and Namespaces, read in one listing;
//! applied as the diff from what it applied last (an
//! [`aksnet_nft::Owner`]), so a label change moves set elements and a
//! policy change rewrites that policy's chain.
//!
//! Fail closed: when the kernel refuses the desired table, the controller
//! programs the lockdown table instead (every pod a policy isolates
//! allows nothing but replies and its node), reports the failure in the
//! node record (`NetworkPolicyUnavailable`, `policy.failed`) and the log,
//! and tries the desired table again on the next pass. What it programmed
//! is published in the record (`policy.revision`), which the lab's kubelet
//! waits for before it starts a pod's servers.

use std::time::{Duration, Instant};

use aksnet_core::cluster::{Condition, PolicyStatus};
use aksnet_core::k8s::{K8sState, Kind, Object};
use aksnet_nft::{Owner, Synced};

use super::{Controller, Pass, Programmed};
use crate::agent::Agent;
use crate::error::AgentError;
use crate::policy::{self, PodInfo, PolicyInput};

/// The node condition a policy failure is reported as.
pub const POLICY_UNAVAILABLE: &str = "NetworkPolicyUnavailable";

/// As the Services controller: read back from the kernel this often.
const RECHECK: Duration = Duration::from_secs(30);

pub struct Policy {
    owner: Owner,
    checked: Option<Instant>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            owner: Owner::new(policy::table_id()),
            checked: None,
        }
    }
}

/// The input of the policy table for this node, and the highest
/// `mod_revision` of the objects it was computed from.
pub fn input(agent: &Agent, k8s: &K8sState) -> (PolicyInput, i64) {
    let mut out = PolicyInput {
        node: agent.cfg.node.clone(),
        node_ips: vec![agent.cfg.node_ip],
        ..PolicyInput::default()
    };
    let mut revision = 0;
    for (id, stored) in &k8s.objects {
        match (&id.kind, &stored.value) {
            (Kind::Pod, Object::Pod(p)) => {
                revision = revision.max(stored.mod_revision);
                out.pods.extend(PodInfo::from_pod(p));
            }
            (Kind::Namespace, Object::Namespace(n)) => {
                revision = revision.max(stored.mod_revision);
                out.namespaces
                    .insert(n.metadata.name.clone(), n.metadata.labels.clone());
            }
            (Kind::NetworkPolicy, Object::NetworkPolicy(n)) => {
                revision = revision.max(stored.mod_revision);
                let mut n = n.clone();
                n.set_defaults();
                out.policies.push(n);
            }
            _ => {}
        }
    }
    (out, revision)
}

fn unavailable(status: bool, reason: &str, message: String) -> Condition {
    Condition {
        kind: POLICY_UNAVAILABLE.into(),
        status,
        reason: reason.into(),
        message,
    }
}

impl Controller for Policy {
    fn name(&self) -> &'static str {
        "policy"
    }

    fn reconcile(
        &mut self,
        agent: &mut Agent,
        pass: &mut Pass<'_>,
    ) -> Result<Programmed, AgentError> {
        let k8s = pass.k8s(agent)?;
        let (input, revision) = input(agent, &k8s);
        let compiled = policy::desired(&input);
        let recheck = self.checked.is_none_or(|at| at.elapsed() >= RECHECK);
        if recheck {
            self.owner.forget();
        }
        let driver: &mut dyn aksnet_nft::Driver = &mut *agent.kernel;
        let mut status = PolicyStatus {
            revision,
            policies: compiled.policies,
            isolated_ingress: compiled.isolated_ingress,
            isolated_egress: compiled.isolated_egress,
            failed: None,
        };
        let outcome = match self.owner.sync(driver, &compiled.table) {
            Ok(o) => o,
            Err(e) => {
                let why = e.to_string();
                tracing::error!(node = %agent.cfg.node, error = %why,
                    "network policy could not be programmed; isolated pods are locked down");
                // The batch is atomic: the kernel holds what the owner
                // applied last, and the lockdown is a diff from it.
                let driver: &mut dyn aksnet_nft::Driver = &mut *agent.kernel;
                let locked = self.owner.sync(driver, &policy::lockdown(&input));
                let prev = pass.record.policy.clone().unwrap_or_default();
                status.failed = Some(why.clone());
                if locked.is_err() {
                    // Nothing new is enforced: keep the revision last
                    // reached, so no kubelet starts a pod it would not cover.
                    status.revision = prev.revision;
                }
                pass.record.policy = Some(status);
                pass.record
                    .set_condition(unavailable(true, "PolicyProgrammingFailed", why));
                self.checked = None;
                // Routes and Services are fine: the node is not
                // NetworkUnavailable for this, it reports its own condition.
                return Ok(Programmed {
                    objects: compiled.policies,
                    changed: 0,
                });
            }
        };
        if recheck {
            self.checked = Some(Instant::now());
        }
        pass.record.policy = Some(status);
        if pass.record.condition(POLICY_UNAVAILABLE).is_some() {
            pass.record
                .set_condition(unavailable(false, "PolicyProgrammed", String::new()));
        }
        let changed = match outcome {
            Synced::Applied(commands) => {
                tracing::info!(
                    policies = compiled.policies,
                    isolated_ingress = compiled.isolated_ingress,
                    isolated_egress = compiled.isolated_egress,
                    commands,
                    "policy table programmed"
                );
                commands
            }
            _ => 0,
        };
        Ok(Programmed {
            objects: compiled.policies,
            changed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{fixture, network};
    use super::POLICY_UNAVAILABLE;
    use aksnet_core::cluster::RouteMode;
    use aksnet_core::k8s::store::object_key;
    use aksnet_core::k8s::{Kind, ObjectId};
    use aksnet_nft::{trace, Final, Hook, Host, Packet};
    use serde_json::json;

    fn put(
        f: &super::super::testing::Fixture,
        kind: Kind,
        ns: &str,
        name: &str,
        v: serde_json::Value,
    ) {
        f.kv.put(
            &object_key(&ObjectId::new(kind, ns, name)),
            &serde_json::to_vec(&v).unwrap(),
            None,
        )
        .unwrap();
    }

    fn pod(f: &super::super::testing::Fixture, name: &str, ip: &str, node: &str) {
        put(
            f,
            Kind::Pod,
            "x",
            name,
            json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "x", "labels": {"pod": name}},
            "spec": {"nodeName": node, "containers": [{"name": "c"}]},
            "status": {"podIP": ip, "phase": "Running"}}),
        );
    }

    fn verdict(f: &super::super::testing::Fixture, from: &str, to: &str) -> Final {
        let rs = f.kernel.state().nft.ruleset();
        trace(
            &rs,
            &Host::default(),
            &Packet::tcp(from, 4000, to, 80),
            &[Hook::Forward],
        )
        .verdict
    }

    #[test]
    fn policies_are_programmed_published_and_fail_closed() {
        let mut f = fixture(
            &network("kubenet", None),
            "a",
            "10.224.0.4",
            RouteMode::HostGw,
        );
        pod(&f, "a", "10.244.0.10", "a");
        pod(&f, "b", "10.244.1.10", "b");
        put(
            &f,
            Kind::NetworkPolicy,
            "x",
            "from-b",
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "from-b", "namespace": "x"},
            "spec": {"podSelector": {}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}]}}),
        );
        f.agent.reconcile().unwrap();
        let st = f.agent.record().policy.clone().unwrap();
        assert_eq!(
            (st.policies, st.isolated_ingress, st.isolated_egress),
            (1, 1, 0)
        );
        let rev =
            f.kv.store
                .range("/aksnet/k8s/")
                .unwrap()
                .kvs
                .iter()
                .map(|kv| kv.mod_revision)
                .max()
                .unwrap();
        assert_eq!(st.revision, rev, "the revision of what it enforces");
        assert_eq!(verdict(&f, "10.244.1.10", "10.244.0.10"), Final::Accept);
        assert_eq!(verdict(&f, "10.244.1.99", "10.244.0.10"), Final::Drop);
        // A new pod of x while the kernel refuses large batches: the
        // lockdown table isolates it (and a) with nothing allowed.
        f.kernel.state().fail_nft_containing = Some("in-10.244.0.11".into());
        pod(&f, "c", "10.244.0.11", "a");
        let r = f.agent.reconcile().unwrap();
        assert!(r.controllers.iter().all(|c| c.error.is_none()), "{r:?}");
        let rec = f.agent.record().clone();
        let c = rec.condition(POLICY_UNAVAILABLE).unwrap();
        assert!(
            c.status && c.message.contains("Cannot allocate memory"),
            "{c:?}"
        );
        assert!(!rec.network_unavailable(), "routes are fine");
        let st = rec.policy.unwrap();
        assert!(st.failed.is_some());
        assert!(st.revision > rev, "the lockdown covers the new pod");
        assert_eq!(verdict(&f, "10.244.1.10", "10.244.0.11"), Final::Drop);
        assert_eq!(verdict(&f, "10.244.1.10", "10.244.0.10"), Final::Drop);
        // The kernel takes it again: the desired table, condition cleared.
        f.kernel.state().fail_nft_containing = None;
        f.agent.reconcile().unwrap();
        let rec = f.agent.record().clone();
        assert!(!rec.condition(POLICY_UNAVAILABLE).unwrap().status);
        assert!(rec.policy.unwrap().failed.is_none());
        assert_eq!(verdict(&f, "10.244.1.10", "10.244.0.11"), Final::Accept);
    }
}
