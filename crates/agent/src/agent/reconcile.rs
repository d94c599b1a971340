//! One reconcile: read the cluster once, fix the store side (orphans, our
//! claims, our route slot), then the node side (conflist, routes, SNAT),
//! then publish the node record with its conditions.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Instant;

use aksnet_core::cluster::{Condition, IpRange, RouteEntry, RouteMode, NETWORK_UNAVAILABLE};
use aksnet_core::spec::NetworkPlugin;
use ipnet::Ipv4Net;

use super::Agent;
use crate::claims::{self, block, pool, route_slot};
use crate::conflist::{self, ConflistParams, PodRanges};
use crate::error::AgentError;
use crate::ipam_disk;
use crate::view::ClusterView;

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
}

impl Report {
    pub fn changed(&self) -> bool {
        *self != Report::default()
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

impl Agent {
    pub fn reconcile(&mut self) -> Result<Report, AgentError> {
        let mut report = Report::default();
        self.renew_lease_if_lost()?;
        let view = ClusterView::read(self.kv.as_ref())?;
        self.seen_revision = view.revision;
        if !view.nodes.contains_key(&self.cfg.node) {
            // Gone while our lease lives: removed by `aksnet node remove`.
            return Err(AgentError::Removed(self.cfg.node.clone()));
        }
        report.orphans_released = claims::release_orphans(self.kv.as_ref(), &view)?;
        let ip_is_ours = view.ips.get(&self.cfg.node_ip).is_some_and(|c| {
            c.value.as_ref().is_some_and(|c| {
                c.node == self.cfg.node && c.kind == aksnet_core::cluster::ClaimKind::NodeIp
            })
        });
        if !ip_is_ours {
            claims::ensure_node_ip(self.kv.as_ref(), &self.cfg.node, self.cfg.node_ip)?;
        }

        let mut rec = self.record.clone();
        rec.ip = self.cfg.node_ip;
        rec.routes = self.cfg.routes;
        let mut condition: Option<Condition> = None;

        let ranges = match self.net.network_plugin {
            NetworkPlugin::Kubenet | NetworkPlugin::Overlay => {
                match self.block_step(&view, &mut rec) {
                    Ok(b) => Some(PodRanges::Block(b)),
                    Err(AgentError::Exhausted(m)) => {
                        condition = Some(cond(true, "PodCidrExhausted", m));
                        None
                    }
                    Err(e) => return Err(e),
                }
            }
            NetworkPlugin::Azure => {
                let (ranges, c) = self.pool_step(&mut rec, &mut report)?;
                condition = c;
                ranges
            }
        };

        // Route table (kubenet on the fabric): one slot per node.
        if let (Some(PodRanges::Block(b)), NetworkPlugin::Kubenet, RouteMode::Fabric) =
            (&ranges, self.net.network_plugin, self.cfg.routes)
        {
            let entry = RouteEntry {
                node: self.cfg.node.clone(),
                destination: *b,
                next_hop: self.cfg.node_ip,
            };
            let limit = self.net.route_table_limit;
            condition = Some(
                match route_slot::ensure_slot(self.kv.as_ref(), &entry, limit)? {
                    route_slot::SlotOutcome::Held(slot) => cond(
                        false,
                        "RouteCreated",
                        format!("route {b} via {} in slot {slot}", self.cfg.node_ip),
                    ),
                    route_slot::SlotOutcome::TableFull { in_use, limit } => cond(
                        true,
                        "RouteTableFull",
                        format!("{in_use} of {limit} routes in use"),
                    ),
                },
            );
        } else if view.route_slots_of(&self.cfg.node).next().is_some() {
            route_slot::release_slots(self.kv.as_ref(), &self.cfg.node)?;
        }

        let underlay = self
            .kernel
            .link_with_address(self.cfg.node_ip)
            .ok()
            .flatten();
        let base_mtu = self
            .cfg
            .mtu
            .or(underlay.as_ref().map(|l| l.mtu))
            .unwrap_or(1500);
        let pod_mtu = match (self.cfg.routes, self.cfg.mtu) {
            (RouteMode::Vxlan, None) => base_mtu.saturating_sub(crate::routes::vxlan::OVERHEAD),
            _ => base_mtu,
        };
        if let Some(r) = &ranges {
            let params = ConflistParams {
                plugin: self.net.network_plugin,
                ranges: r.clone(),
                mtu: pod_mtu,
                ipam_data_dir: self.cfg.ipam_data_dir.clone(),
            };
            report.conflist_written =
                conflist::write_if_changed(&self.cfg.cni_conf_dir, &conflist::render(&params))?;
        }

        let dp = self.dataplane_step(&view, &mut rec, base_mtu, &mut report);
        match dp {
            Ok(Some(c)) if condition.is_none() => condition = Some(c),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(node = %self.cfg.node, error = %e, "programming the node failed");
                condition = Some(cond(true, "RouteProgrammingFailed", e.to_string()));
            }
        }
        if let Some(c) = condition {
            rec.set_condition(c);
        }
        self.publish(rec)?;
        Ok(report)
    }

    fn block_step(
        &mut self,
        view: &ClusterView,
        rec: &mut aksnet_core::cluster::NodeRecord,
    ) -> Result<Ipv4Net, AgentError> {
        let Some(pod_cidr) = self.net.effective_pod_cidr() else {
            return Err(AgentError::Exhausted("the cluster has no pod CIDR".into()));
        };
        if let Some(b) = view.blocks_of(&self.cfg.node).next() {
            rec.block = Some(b);
            return Ok(b);
        }
        let previous = conflist::previous_block(&self.cfg.cni_conf_dir).or(rec.block);
        let b = block::ensure_block(self.kv.as_ref(), &self.cfg.node, &pod_cidr, previous)?;
        rec.block = Some(b);
        Ok(b)
    }

    /// Azure CNI: the static or dynamic pool, and the conflist ranges.
    fn pool_step(
        &mut self,
        rec: &mut aksnet_core::cluster::NodeRecord,
        report: &mut Report,
    ) -> Result<(Option<PodRanges>, Option<Condition>), AgentError> {
        let kv = self.kv.as_ref();
        let node = self.cfg.node.clone();
        let max_pods = self
            .cfg
            .max_pods
            .unwrap_or_else(|| self.net.max_pods_per_node());
        let (subnet, held, shortfall, wanted) = match self.net.pod_subnet_cidr {
            None => {
                let o = pool::grow_to(kv, &node, &self.net.subnet_cidr, max_pods, true)?;
                (self.net.subnet_cidr.trunc(), o.held, o.shortfall, max_pods)
            }
            Some(pod_subnet) => {
                let used = ipam_disk::allocated(&self.cfg.ipam_data_dir)?;
                let view = ClusterView::read(kv)?;
                let mut held = view.pod_ips_of(&node);
                let plan = pool::plan_dynamic(&held, &used);
                let cap = plan.target.min(dyn_cap(max_pods));
                let mut shortfall = 0;
                if (held.len() as u32) < cap {
                    self.pending_release.clear();
                    let o = pool::grow_to(kv, &node, &pod_subnet, cap, false)?;
                    report.pool_claimed = (o.held.len() as u32).saturating_sub(held.len() as u32);
                    held = o.held;
                    shortfall = o.shortfall;
                } else {
                    let now = Instant::now();
                    let wanted: BTreeSet<Ipv4Addr> = plan.release.iter().copied().collect();
                    self.pending_release.retain(|a, _| wanted.contains(a));
                    // Ready: out of the conflist since an earlier reconcile,
                    // and for at least the grace period.
                    let grace = self.cfg.release_grace;
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
                        let data_dir = self.cfg.ipam_data_dir.clone();
                        // Under the plugin's lock: nothing allocates while we check.
                        let released = ipam_disk::with_lock(&data_dir, || {
                            let used = ipam_disk::allocated(&data_dir)?;
                            let free: Vec<Ipv4Addr> = ready
                                .iter()
                                .filter(|a| !used.contains(a))
                                .copied()
                                .collect();
                            pool::release_ips(kv, &view, &node, &free).map(|n| (n, free))
                        })??;
                        report.pool_released = released.0;
                        for a in &ready {
                            self.pending_release.remove(a);
                        }
                        let gone: BTreeSet<Ipv4Addr> = released.1.into_iter().collect();
                        held.retain(|a| !gone.contains(a));
                    }
                }
                let used_n = held.iter().filter(|a| used.contains(a)).count() as u32;
                rec.pool_used = Some(used_n);
                (pod_subnet.trunc(), held, shortfall, cap)
            }
        };
        let offered: Vec<Ipv4Addr> = held
            .iter()
            .filter(|a| !self.pending_release.contains_key(a))
            .copied()
            .collect();
        rec.pool = IpRange::coalesce(&held);
        let condition = (shortfall > 0).then(|| {
            cond(
                true,
                "SubnetFull",
                format!(
                    "{} of {wanted} pod addresses held; subnet {subnet} has no more free",
                    held.len()
                ),
            )
        });
        let ranges = (!offered.is_empty()).then(|| PodRanges::Pool {
            subnet,
            ranges: IpRange::coalesce(&offered),
        });
        Ok((ranges, condition))
    }
}

/// A dynamic pool never exceeds CNS's cap (250) nor what max-pods needs.
fn dyn_cap(max_pods: u32) -> u32 {
    aksnet_core::dynamic_pool::ips_at_full_load(max_pods)
}
