//! The SNAT controller: outbound SNAT with ip-masq-agent's semantics.
//! Desired: the rule set for the node's pod ranges and the network's
//! no-SNAT destinations ([`crate::snat::MasqPolicy`]); applied as one
//! nftables batch on the agent's own table when the kernel's differs.
//! The rule set and its batch live in [`crate::snat`].

use super::{Controller, Pass, Programmed};
use crate::agent::Agent;
use crate::error::AgentError;

#[derive(Debug, Default)]
pub struct Snat;

impl Controller for Snat {
    fn name(&self) -> &'static str {
        "snat"
    }

    fn reconcile(
        &mut self,
        agent: &mut Agent,
        pass: &mut Pass<'_>,
    ) -> Result<Programmed, AgentError> {
        let objects = agent.snat_controller_step(&pass.record, &mut pass.report)?;
        Ok(Programmed {
            objects,
            changed: if pass.report.snat_applied { objects } else { 0 },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::controllers::testing::{fixture, network};
    use aksnet_cluster::ClusterView;
    use aksnet_core::cluster::{NodeRecord, RouteMode};

    #[test]
    fn applies_the_table_once_and_leaves_a_matching_one_alone() {
        let mut f = fixture(
            &network("kubenet", None),
            "a",
            "10.224.0.4",
            RouteMode::HostGw,
        );
        let rec = NodeRecord {
            block: Some("10.244.0.0/24".parse().unwrap()),
            ..NodeRecord::new("a", "10.224.0.4".parse().unwrap(), RouteMode::HostGw)
        };
        let view = ClusterView::default().with_node(rec.clone());
        let mut pass = Pass::new(&view, rec.clone(), 1500);
        let p = Snat.reconcile(&mut f.agent, &mut pass).unwrap();
        // Link-local, the pod CIDR (no SNAT), the node's block (SNAT).
        assert_eq!(
            p,
            Programmed {
                objects: 3,
                changed: 3
            }
        );
        assert!(pass.report.snat_applied);
        assert!(f
            .kernel
            .state()
            .nft
            .contains_key(&("ip".to_string(), "aksnet-agent".to_string())));
        let writes = f.kernel.state().writes.len();
        let mut pass = Pass::new(&view, rec, 1500);
        let p = Snat.reconcile(&mut f.agent, &mut pass).unwrap();
        assert_eq!(
            p,
            Programmed {
                objects: 3,
                changed: 0
            }
        );
        assert_eq!(f.kernel.state().writes.len(), writes);
    }

    #[test]
    fn a_node_without_pod_ranges_wants_no_rules() {
        let mut f = fixture(
            &network("kubenet", None),
            "a",
            "10.224.0.4",
            RouteMode::HostGw,
        );
        let rec = NodeRecord::new("a", "10.224.0.4".parse().unwrap(), RouteMode::HostGw);
        let view = ClusterView::default();
        let mut pass = Pass::new(&view, rec, 1500);
        let p = Snat.reconcile(&mut f.agent, &mut pass).unwrap();
        assert_eq!(p, Programmed::default());
        assert!(f.kernel.state().writes.is_empty());
    }
}
