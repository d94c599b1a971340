//! The pool controller: the pod addresses the node holds and the conflist
//! that hands them to the CNI plugins.
//!
//! - kubenet/overlay: the node's /24 of the pod CIDR (kept across
//!   restarts: the block the view shows, else the one its old conflist
//!   names, else the first free one);
//! - Azure CNI static: max-pods addresses of the node subnet;
//! - Azure CNI dynamic: batches of 16 kept at CNS's target for the
//!   addresses in use; an address out of the conflist for the grace period
//!   and still unused is given back.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Instant;

use aksnet_cluster::claims::{block, pool};
use aksnet_cluster::ClusterError;
use aksnet_core::cluster::{IpRange, RouteMode};
use aksnet_core::spec::NetworkPlugin;
use ipnet::Ipv4Net;

use super::{Controller, Pass, Programmed};
use crate::agent::Agent;
use crate::conflist::{self, ConflistParams, PodRanges};
use crate::error::AgentError;
use crate::ipam_disk;

#[derive(Debug, Default)]
pub struct Pool {
    /// Dynamic pool: addresses out of the conflist, waiting to be released.
    pending_release: BTreeMap<Ipv4Addr, Instant>,
}

impl Controller for Pool {
    fn name(&self) -> &'static str {
        "pool"
    }

    fn reconcile(
        &mut self,
        agent: &mut Agent,
        pass: &mut Pass<'_>,
    ) -> Result<Programmed, AgentError> {
        let mut out = Programmed::default();
        let ranges = match agent.net.network_plugin {
            NetworkPlugin::Kubenet | NetworkPlugin::Overlay => match block_of(agent, pass) {
                Ok((b, claimed)) => {
                    out.objects = 1;
                    out.changed = usize::from(claimed);
                    Some(PodRanges::Block(b))
                }
                Err(AgentError::Cluster(e)) if e.is_exhausted() => {
                    pass.condition(true, "PodCidrExhausted", e.to_string());
                    None
                }
                Err(e) => return Err(e),
            },
            NetworkPlugin::Azure => {
                let before = pass.view.pod_ips_of(&agent.cfg.node).len();
                let r = self.azure(agent, pass)?;
                let held: u64 = pass.record.pool.iter().map(IpRange::len).sum();
                out.objects = usize::try_from(held).unwrap_or(usize::MAX);
                out.changed = pass.report.pool_claimed as usize + pass.report.pool_released;
                if out.changed == 0 && out.objects != before {
                    out.changed = out.objects.abs_diff(before);
                }
                r
            }
        };
        if let Some(r) = &ranges {
            let params = ConflistParams {
                plugin: agent.net.network_plugin,
                ranges: r.clone(),
                mtu: pod_mtu(agent, pass.underlay_mtu),
                ipam_data_dir: agent.cfg.ipam_data_dir.clone(),
            };
            pass.report.conflist_written =
                conflist::write_if_changed(&agent.cfg.cni_conf_dir, &conflist::render(&params))?;
            out.changed += usize::from(pass.report.conflist_written);
        }
        pass.ranges = ranges;
        Ok(out)
    }
}

/// The pods' MTU: `--mtu`, else the underlay's, less VXLAN's overhead.
fn pod_mtu(agent: &Agent, underlay: u32) -> u32 {
    match (agent.cfg.routes, agent.cfg.mtu) {
        (RouteMode::Vxlan, None) => underlay.saturating_sub(crate::routes::vxlan::OVERHEAD),
        _ => underlay,
    }
}

/// Kubenet/overlay: the block the node holds, or a new claim (and whether
/// it was claimed now).
fn block_of(agent: &Agent, pass: &mut Pass<'_>) -> Result<(Ipv4Net, bool), AgentError> {
    let Some(pod_cidr) = agent.net.effective_pod_cidr() else {
        return Err(ClusterError::NoPodCidr.into());
    };
    if let Some(b) = pass.view.blocks_of(&agent.cfg.node).next() {
        pass.record.block = Some(b);
        return Ok((b, false));
    }
    let previous = conflist::previous_block(&agent.cfg.cni_conf_dir).or(pass.record.block);
    let b = block::ensure_block(agent.store.as_ref(), &agent.cfg.node, &pod_cidr, previous)?;
    pass.record.block = Some(b);
    Ok((b, true))
}

impl Pool {
    /// Azure CNI: the static or dynamic pool, and the conflist ranges.
    fn azure(
        &mut self,
        agent: &Agent,
        pass: &mut Pass<'_>,
    ) -> Result<Option<PodRanges>, AgentError> {
        let store = agent.store.as_ref();
        let node = agent.cfg.node.as_str();
        let max_pods = agent
            .cfg
            .max_pods
            .unwrap_or_else(|| agent.net.max_pods_per_node());
        let (subnet, held, shortfall, wanted) = match agent.net.pod_subnet_cidr {
            None => {
                let subnet = agent.net.subnet_cidr;
                let seen = pass.view.pod_ips_of(node);
                // Held in full at the pass's revision: nothing to claim.
                let (held, shortfall) = if seen.len() >= max_pods as usize {
                    (seen, 0)
                } else {
                    let o = pool::grow_to(store, node, &subnet, max_pods, true)?;
                    (o.held, o.shortfall)
                };
                (subnet.trunc(), held, shortfall, max_pods)
            }
            Some(pod_subnet) => {
                let used = ipam_disk::allocated(&agent.cfg.ipam_data_dir)?;
                let view = pass.view;
                let mut held = view.pod_ips_of(node);
                let plan = pool::plan_dynamic(&held, &used);
                let cap = plan.target.min(dyn_cap(max_pods));
                let mut shortfall = 0;
                if (held.len() as u32) < cap {
                    self.pending_release.clear();
                    let o = pool::grow_to(store, node, &pod_subnet, cap, false)?;
                    pass.report.pool_claimed =
                        (o.held.len() as u32).saturating_sub(held.len() as u32);
                    held = o.held;
                    shortfall = o.shortfall;
                } else {
                    let now = Instant::now();
                    let wanted: BTreeSet<Ipv4Addr> = plan.release.iter().copied().collect();
                    self.pending_release.retain(|a, _| wanted.contains(a));
                    // Ready: out of the conflist since an earlier reconcile,
                    // and for at least the grace period.
                    let grace = agent.cfg.release_grace;
                    let ready: Vec<Ipv4Addr> = self
                        .pending_release
                        .iter()
                        .filter(|(_, t)| now.duration_since(**t) >= grace)
                        .map(|(a, _)| *a)
                        .collect();
                    for a in &plan.release {
                        self.pending_release.entry(*a).or_insert(now);
                    }
                    if !ready.is_empty() {
                        let data_dir = agent.cfg.ipam_data_dir.clone();
                        // Under the plugin's lock: nothing allocates while we check.
                        let released = ipam_disk::with_lock(&data_dir, || {
                            let used = ipam_disk::allocated(&data_dir)?;
                            let free: Vec<Ipv4Addr> = ready
                                .iter()
                                .filter(|a| !used.contains(a))
                                .copied()
                                .collect();
                            pool::release_ips(store, view, node, &free)
                                .map(|n| (n, free))
                                .map_err(AgentError::from)
                        })??;
                        pass.report.pool_released = released.0;
                        for a in &ready {
                            self.pending_release.remove(a);
                        }
                        let gone: BTreeSet<Ipv4Addr> = released.1.into_iter().collect();
                        held.retain(|a| !gone.contains(a));
                    }
                }
                let used_n = held.iter().filter(|a| used.contains(a)).count() as u32;
                pass.record.pool_used = Some(used_n);
                (pod_subnet.trunc(), held, shortfall, cap)
            }
        };
        let offered: Vec<Ipv4Addr> = held
            .iter()
            .filter(|a| !self.pending_release.contains_key(a))
            .copied()
            .collect();
        pass.record.pool = IpRange::coalesce(&held);
        if shortfall > 0 {
            pass.condition(
                true,
                "SubnetFull",
                format!(
                    "{} of {wanted} pod addresses held; subnet {subnet} has no more free",
                    held.len()
                ),
            );
        }
        Ok((!offered.is_empty()).then(|| PodRanges::Pool {
            subnet,
            ranges: IpRange::coalesce(&offered),
        }))
    }
}

/// A dynamic pool never exceeds CNS's cap (250) nor what max-pods needs.
fn dyn_cap(max_pods: u32) -> u32 {
    aksnet_core::dynamic_pool::ips_at_full_load(max_pods)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::controllers::testing::{fixture, network};
    use crate::agent::controllers::Pass;

    fn run(
        f: &mut crate::agent::controllers::testing::Fixture,
        pool: &mut Pool,
    ) -> (Programmed, Pass<'static>) {
        let view = Box::leak(Box::new(aksnet_cluster::read(&*f.kv).unwrap()));
        let rec = f.agent.record().clone();
        let mut pass = Pass::new(view, rec, 1500);
        let p = pool.reconcile(&mut f.agent, &mut pass).unwrap();
        (p, pass)
    }

    #[test]
    fn kubenet_claims_a_block_once_and_writes_the_conflist() {
        let mut f = fixture(
            &network("kubenet", None),
            "n1",
            "10.224.0.4",
            RouteMode::HostGw,
        );
        let mut pool = Pool::default();
        let (p, pass) = run(&mut f, &mut pool);
        assert_eq!(
            p,
            Programmed {
                objects: 1,
                changed: 2
            },
            "claimed and written"
        );
        assert_eq!(pass.record.block.unwrap().to_string(), "10.244.0.0/24");
        assert!(matches!(pass.ranges, Some(PodRanges::Block(_))));
        assert!(f.dir.path().join("net.d/10-aksnet.conflist").exists());
        let (p, pass) = run(&mut f, &mut pool);
        assert_eq!(
            p,
            Programmed {
                objects: 1,
                changed: 0
            }
        );
        assert!(!pass.report.conflist_written);
        assert!(
            f.kernel.state().writes.is_empty(),
            "the pool never touches the kernel"
        );
    }

    #[test]
    fn azure_static_holds_max_pods_and_reports_a_full_subnet() {
        let mut net = network("azure", None);
        net.subnet_cidr = "10.224.0.0/27".parse().unwrap();
        let mut f = fixture(&net, "n1", "10.224.0.4", RouteMode::Fabric);
        let mut pool = Pool::default();
        let (p, pass) = run(&mut f, &mut pool);
        // A /27 has 27 usable addresses, fewer than the 30 max pods.
        assert_eq!(p.objects, 27);
        let (rec, _) = pass.finish();
        let c = rec.condition("NetworkUnavailable").unwrap();
        assert_eq!((c.status, c.reason.as_str()), (true, "SubnetFull"));
        let (p, _) = run(&mut f, &mut pool);
        assert_eq!((p.objects, p.changed), (27, 0));
    }

    #[test]
    fn exhausted_pod_cidr_is_a_condition_not_an_error() {
        let mut net = network("kubenet", None);
        net.pod_cidr = Some("10.244.0.0/25".parse().unwrap());
        let mut f = fixture(&net, "n1", "10.224.0.4", RouteMode::Fabric);
        let (p, pass) = run(&mut f, &mut Pool::default());
        assert_eq!(p.objects, 0);
        assert!(pass.ranges.is_none());
        let (rec, _) = pass.finish();
        assert_eq!(
            rec.condition("NetworkUnavailable").unwrap().reason,
            "PodCidrExhausted"
        );
    }
}
