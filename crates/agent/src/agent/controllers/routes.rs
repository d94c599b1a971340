//! The routes controller: how the node's pods reach other nodes' pods.
//!
//! - kubenet with `--routes fabric`: the node's entry in the cluster route
//!   table (the Azure UDR), one store slot per node up to the limit;
//! - `--routes host-gw`: a kernel route to each peer's block via its IP;
//! - `--routes vxlan`: the VTEP, a neighbour and FDB entry per peer, and
//!   an on-link route to each peer's block through it;
//!
//! plus IPv4 forwarding, which every model needs. Each is read from the
//! kernel and changed only where it differs, so a restarted agent leaves a
//! working node exactly as it is.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use aksnet_cluster::claims::route_slot::{self, SlotOutcome};
use aksnet_core::cluster::{RouteEntry, RouteMode};
use aksnet_core::spec::NetworkPlugin;

use super::{Controller, Pass, Programmed};
use crate::agent::{route_mode_name, Agent};
use crate::conflist::PodRanges;
use crate::error::AgentError;
use crate::routes::{self, vxlan};

/// How long forwarding found on is trusted before it is read again
/// (entering the namespace to read a sysctl costs milliseconds).
const FORWARD_RECHECK: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
pub struct Routes {
    /// When IPv4 forwarding was last found on.
    forward_verified: Option<Instant>,
}

impl Controller for Routes {
    fn name(&self) -> &'static str {
        "routes"
    }

    fn reconcile(
        &mut self,
        agent: &mut Agent,
        pass: &mut Pass<'_>,
    ) -> Result<Programmed, AgentError> {
        let mut out = route_table(agent, pass)?;
        let kernel = self.kernel_routes(agent, pass)?;
        out.objects += kernel.objects;
        out.changed += kernel.changed;
        Ok(out)
    }
}

/// Kubenet on the fabric: keeps one route-table slot for the node's block;
/// any other mode gives back a slot it may hold.
fn route_table(agent: &Agent, pass: &mut Pass<'_>) -> Result<Programmed, AgentError> {
    let node = agent.cfg.node.as_str();
    let (Some(PodRanges::Block(b)), NetworkPlugin::Kubenet, RouteMode::Fabric) =
        (&pass.ranges, agent.net.network_plugin, agent.cfg.routes)
    else {
        if pass.view.route_slots_of(node).next().is_some() {
            route_slot::release_slots(agent.store.as_ref(), node)?;
            return Ok(Programmed {
                objects: 0,
                changed: 1,
            });
        }
        return Ok(Programmed::default());
    };
    let entry = RouteEntry {
        node: node.to_string(),
        destination: *b,
        next_hop: agent.cfg.node_ip,
    };
    let limit = agent.net.route_table_limit;
    // The view already shows exactly the slot wanted: no store round trip.
    let mine: Vec<u32> = pass.view.route_slots_of(node).collect();
    let (outcome, changed) = match mine.as_slice() {
        [slot] if *slot < limit && pass.view.routes[slot].value.as_ref() == Some(&entry) => {
            (SlotOutcome::Held(*slot), 0)
        }
        _ => (
            route_slot::ensure_slot(agent.store.as_ref(), &entry, limit)?,
            1,
        ),
    };
    match outcome {
        SlotOutcome::Held(slot) => {
            pass.condition(
                false,
                "RouteCreated",
                format!("route {b} via {} in slot {slot}", agent.cfg.node_ip),
            );
            Ok(Programmed {
                objects: 1,
                changed,
            })
        }
        SlotOutcome::TableFull { in_use, limit } => {
            pass.condition(
                true,
                "RouteTableFull",
                format!("{in_use} of {limit} routes in use"),
            );
            Ok(Programmed::default())
        }
    }
}

impl Routes {
    /// Forwarding, then the peers' routes (and the VTEP for vxlan).
    fn kernel_routes(
        &mut self,
        agent: &mut Agent,
        pass: &mut Pass<'_>,
    ) -> Result<Programmed, AgentError> {
        let mut out = Programmed::default();
        if self
            .forward_verified
            .is_none_or(|at| at.elapsed() >= FORWARD_RECHECK)
        {
            if agent.kernel.sysctl("net.ipv4.ip_forward")? != "1" {
                agent.kernel.set_sysctl("net.ipv4.ip_forward", "1")?;
                out.changed += 1;
            }
            self.forward_verified = Some(Instant::now());
        }
        let me = agent.cfg.node.as_str();
        let others = pass.view.node_records().filter(|n| n.name != me);
        let report = &mut pass.report;
        let desired = match (agent.cfg.routes, pass.record.block) {
            (RouteMode::HostGw, _) => {
                agent.kernel.remove_link(vxlan::DEVICE)?;
                pass.record.vtep_mac = None;
                routes::desired_host_gw(me, others)
            }
            (RouteMode::Vxlan, Some(block)) => {
                let dev = vxlan::device(me, agent.cfg.node_ip, &block, pass.underlay_mtu);
                report.vxlan_changed = agent.kernel.ensure_vxlan(&dev)?;
                pass.record.vtep_mac = Some(dev.mac.clone());
                let want = vxlan::desired(me, others);
                let (neighs, fdb) = agent.kernel.l2_entries(vxlan::DEVICE)?;
                let cur_n: BTreeSet<_> = neighs.into_iter().collect();
                let cur_f: BTreeSet<_> = fdb.into_iter().collect();
                let add_n: Vec<_> = want.neighs.difference(&cur_n).cloned().collect();
                let del_n: Vec<_> = cur_n.difference(&want.neighs).cloned().collect();
                let add_f: Vec<_> = want.fdb.difference(&cur_f).cloned().collect();
                let del_f: Vec<_> = cur_f.difference(&want.fdb).cloned().collect();
                report.l2_changed = add_n.len() + del_n.len() + add_f.len() + del_f.len();
                if report.l2_changed > 0 {
                    agent
                        .kernel
                        .program_l2(vxlan::DEVICE, &add_n, &del_n, &add_f, &del_f)?;
                }
                out.objects += 1 + want.neighs.len() + want.fdb.len();
                out.changed += usize::from(report.vxlan_changed) + report.l2_changed;
                want.routes
            }
            _ => {
                pass.record.vtep_mac = None;
                Vec::new()
            }
        };
        let current = agent.kernel.routes()?;
        let d = routes::diff(&current, &desired);
        report.routes_changed = d.replace.len() + d.delete.len();
        if !d.is_empty() {
            agent.kernel.program_routes(&d.replace, &d.delete)?;
        }
        out.objects += desired.len();
        out.changed += report.routes_changed;
        if matches!(agent.cfg.routes, RouteMode::HostGw | RouteMode::Vxlan) {
            pass.condition(
                false,
                "RoutesProgrammed",
                format!(
                    "{} peer route(s) over {}",
                    desired.len(),
                    route_mode_name(agent.cfg.routes)
                ),
            );
        } else if agent.net.network_plugin != NetworkPlugin::Kubenet {
            pass.condition(
                false,
                "FabricRouted",
                "the fabric routes this node's pods".into(),
            );
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::controllers::testing::{fixture, network};
    use aksnet_cluster::ClusterView;
    use aksnet_core::cluster::NodeRecord;

    fn peer(name: &str, ip: &str, block: &str) -> NodeRecord {
        NodeRecord {
            block: Some(block.parse().unwrap()),
            vtep_mac: Some(vxlan::vtep_mac(name)),
            ..NodeRecord::new(name, ip.parse().unwrap(), RouteMode::HostGw)
        }
    }

    fn me() -> NodeRecord {
        peer("a", "10.224.0.4", "10.244.0.0/24")
    }

    #[test]
    fn host_gw_programs_each_peer_once_then_nothing() {
        let mut f = fixture(
            &network("kubenet", None),
            "a",
            "10.224.0.4",
            RouteMode::HostGw,
        );
        let view = ClusterView::default()
            .with_node(me())
            .with_node(peer("b", "10.224.0.5", "10.244.1.0/24"))
            .with_node(peer("c", "10.224.0.6", "10.244.2.0/24"));
        let mut routes = Routes::default();
        let mut pass = Pass::new(&view, me(), 1500);
        let p = routes.reconcile(&mut f.agent, &mut pass).unwrap();
        // Two routes, and forwarding switched on.
        assert_eq!(
            p,
            Programmed {
                objects: 2,
                changed: 3
            }
        );
        assert_eq!(pass.report.routes_changed, 2);
        let s = f.kernel.state();
        assert_eq!(s.routes.len(), 2);
        assert_eq!(s.sysctls["net.ipv4.ip_forward"], "1");
        let writes = s.writes.len();
        drop(s);
        let (rec, _) = pass.finish();
        assert_eq!(
            rec.condition("NetworkUnavailable").unwrap().reason,
            "RoutesProgrammed"
        );

        let mut pass = Pass::new(&view, me(), 1500);
        let p = routes.reconcile(&mut f.agent, &mut pass).unwrap();
        assert_eq!(
            p,
            Programmed {
                objects: 2,
                changed: 0
            }
        );
        assert_eq!(
            f.kernel.state().writes.len(),
            writes,
            "an unchanged pass writes nothing"
        );

        // A peer goes: its route goes, nothing else changes.
        let view = ClusterView::default().with_node(me()).with_node(peer(
            "b",
            "10.224.0.5",
            "10.244.1.0/24",
        ));
        let mut pass = Pass::new(&view, me(), 1500);
        let p = routes.reconcile(&mut f.agent, &mut pass).unwrap();
        assert_eq!(
            p,
            Programmed {
                objects: 1,
                changed: 1
            }
        );
        assert_eq!(
            f.kernel.state().writes.last().unwrap(),
            "route del 10.244.2.0/24"
        );
    }

    #[test]
    fn vxlan_programs_the_vtep_and_l2_entries() {
        let mut f = fixture(
            &network("azure", Some("overlay")),
            "a",
            "10.224.0.4",
            RouteMode::Vxlan,
        );
        let view = ClusterView::default().with_node(me()).with_node(peer(
            "b",
            "10.224.0.5",
            "10.244.1.0/24",
        ));
        let mut routes = Routes::default();
        let mut pass = Pass::new(&view, me(), 1500);
        let p = routes.reconcile(&mut f.agent, &mut pass).unwrap();
        // VTEP, one neighbour, one FDB entry, one route.
        assert_eq!(p.objects, 4);
        assert!(pass.report.vxlan_changed);
        assert_eq!(pass.report.l2_changed, 2);
        assert!(pass.record.vtep_mac.is_some());
        let s = f.kernel.state();
        assert_eq!(s.vxlan.as_ref().unwrap().mtu, 1450);
        assert!(s.routes.values().all(|r| r.onlink));
        drop(s);
        let (rec, _) = pass.finish();
        assert_eq!(
            rec.condition("NetworkUnavailable").unwrap().reason,
            "RoutesProgrammed"
        );
    }

    #[test]
    fn kubenet_fabric_takes_a_route_slot_and_skips_the_store_when_held() {
        let mut f = fixture(
            &network("kubenet", None),
            "a",
            "10.224.0.4",
            RouteMode::Fabric,
        );
        let block = "10.244.0.0/24".parse().unwrap();
        let view = ClusterView::default().with_node(me());
        let mut routes = Routes::default();
        let mut pass = Pass::new(&view, me(), 1500);
        pass.ranges = Some(PodRanges::Block(block));
        let p = routes.reconcile(&mut f.agent, &mut pass).unwrap();
        assert_eq!((p.objects, p.changed), (1, 2), "slot taken, forwarding on");
        assert!(
            f.kernel.state().routes.is_empty(),
            "the fabric routes, not the node"
        );
        let (rec, _) = pass.finish();
        assert_eq!(
            rec.condition("NetworkUnavailable").unwrap().reason,
            "RouteCreated"
        );
        // The next view shows the slot: held without a store write.
        let view = aksnet_cluster::read(&*f.kv).unwrap();
        let rev = view.revision;
        let mut pass = Pass::new(&view, me(), 1500);
        pass.ranges = Some(PodRanges::Block(block));
        let p = routes.reconcile(&mut f.agent, &mut pass).unwrap();
        assert_eq!(
            p,
            Programmed {
                objects: 1,
                changed: 0
            }
        );
        assert_eq!(aksnet_cluster::read(&*f.kv).unwrap().revision, rev);
    }

    #[test]
    fn a_kernel_error_is_returned_for_the_loop_to_report() {
        let mut f = fixture(
            &network("kubenet", None),
            "a",
            "10.224.0.4",
            RouteMode::HostGw,
        );
        f.kernel.state().fail_routes = Some("EPERM".into());
        let view = ClusterView::default().with_node(me()).with_node(peer(
            "b",
            "10.224.0.5",
            "10.244.1.0/24",
        ));
        let mut pass = Pass::new(&view, me(), 1500);
        let e = Routes::default()
            .reconcile(&mut f.agent, &mut pass)
            .unwrap_err();
        assert!(matches!(e, AgentError::Kernel(_)), "{e}");
    }
}
