//! The SNAT controller: outbound SNAT with ip-masq-agent's semantics.
//! Desired: the rule set for the node's pod ranges and the network's
//! no-SNAT destinations ([`crate::snat::MasqPolicy`]), rendered as the
//! agent's own table ([`crate::snat::desired`]) and applied as the diff
//! from what it applied last (an [`aksnet_nft::Owner`]).

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
        // Two rules; link-local, the pod CIDR (no SNAT); the node's block.
        assert_eq!(
            p,
            Programmed {
                objects: 5,
                changed: 5
            }
        );
        assert!(pass.report.snat_applied);
        let dump = f.kernel.state().nft.dump();
        assert!(dump.contains("table ip aksnet-agent {"), "{dump}");
        assert!(dump.contains("elements = { 10.244.0.0/24 }"), "{dump}");
        let writes = f.kernel.state().writes.len();
        let mut pass = Pass::new(&view, rec, 1500);
        let p = Snat.reconcile(&mut f.agent, &mut pass).unwrap();
        assert_eq!(
            p,
            Programmed {
                objects: 5,
                changed: 0
            }
        );
        assert_eq!(f.kernel.state().writes.len(), writes);
    }

    #[test]
    fn a_new_block_is_one_element_swapped_and_a_restart_writes_nothing() {
        let mut f = fixture(
            &network("kubenet", None),
            "a",
            "10.224.0.4",
            RouteMode::HostGw,
        );
        let rec = |block: &str| NodeRecord {
            block: Some(block.parse().unwrap()),
            ..NodeRecord::new("a", "10.224.0.4".parse().unwrap(), RouteMode::HostGw)
        };
        let view = ClusterView::default();
        Snat.reconcile(
            &mut f.agent,
            &mut Pass::new(&view, rec("10.244.0.0/24"), 1500),
        )
        .unwrap();
        let before = f.kernel.state().nft.applied.len();
        Snat.reconcile(
            &mut f.agent,
            &mut Pass::new(&view, rec("10.244.7.0/24"), 1500),
        )
        .unwrap();
        let s = f.kernel.state();
        assert_eq!(s.nft.applied.len(), before + 1);
        assert_eq!(
            s.nft.applied.last().unwrap().to_string(),
            "delete element ip aksnet-agent pod_sources { 10.244.0.0/24 }\ncreate element ip aksnet-agent pod_sources { 10.244.7.0/24 }\n"
        );
        // A pod of the new block leaves with the node IP (the tracer).
        let out = aksnet_nft::trace(
            &s.nft.ruleset(),
            &aksnet_nft::Host::default(),
            &aksnet_nft::Packet::tcp("10.244.7.9", 33000, "203.0.113.7", 443),
            &[aksnet_nft::Hook::Postrouting],
        );
        assert_eq!(out.nat, vec!["snat to 10.224.0.4"]);
        drop(s);
        // A restarted agent on the same kernel finds the table right.
        let writes = f.kernel.state().writes.len();
        let mut again = fixture(
            &network("kubenet", None),
            "a",
            "10.224.0.4",
            RouteMode::HostGw,
        );
        again.kernel.state().nft = f.kernel.state().nft.clone();
        let mut pass = Pass::new(&view, rec("10.244.7.0/24"), 1500);
        Snat.reconcile(&mut again.agent, &mut pass).unwrap();
        assert!(!pass.report.snat_applied);
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
