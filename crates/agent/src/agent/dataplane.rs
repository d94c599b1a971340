//! The node side: routes to peers (`host-gw`, `vxlan`), the VTEP, SNAT and
//! forwarding, each read from the kernel first and changed only where it
//! differs, so a restarted agent leaves a working node exactly as it is.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use aksnet_core::cluster::{Condition, NodeRecord, RouteMode, NETWORK_UNAVAILABLE};
use aksnet_core::spec::NetworkPlugin;
use ipnet::Ipv4Net;

use super::reconcile::Report;
use super::Agent;
use crate::error::AgentError;
use crate::kernel::KernelError;
use crate::routes::{self, vxlan};
use crate::snat::{self, MasqPolicy};
use crate::view::ClusterView;

/// How long a SNAT table (or forwarding) found right is trusted before it
/// is read again.
const SNAT_RECHECK: Duration = Duration::from_secs(30);

fn kerr(e: KernelError) -> AgentError {
    AgentError::Kernel(e.to_string())
}

impl Agent {
    /// Programs the node; returns the condition the route mode reports.
    pub(super) fn dataplane_step(
        &mut self,
        view: &ClusterView,
        rec: &mut NodeRecord,
        underlay_mtu: u32,
        report: &mut Report,
    ) -> Result<Option<Condition>, AgentError> {
        // Entering the namespace to read a sysctl costs milliseconds: check
        // forwarding on the first reconcile and then every SNAT_RECHECK.
        if self
            .forward_verified
            .is_none_or(|at| at.elapsed() >= SNAT_RECHECK)
        {
            if self.kernel.sysctl("net.ipv4.ip_forward").map_err(kerr)? != "1" {
                self.kernel
                    .set_sysctl("net.ipv4.ip_forward", "1")
                    .map_err(kerr)?;
            }
            self.forward_verified = Some(Instant::now());
        }
        self.snat_step(rec, report)?;
        let others = view
            .nodes
            .values()
            .map(|n| &n.value)
            .filter(|n| n.name != self.cfg.node);
        let mut condition = None;
        let desired = match (self.cfg.routes, rec.block) {
            (RouteMode::HostGw, _) => {
                self.kernel.remove_link(vxlan::DEVICE).map_err(kerr)?;
                rec.vtep_mac = None;
                routes::desired_host_gw(&self.cfg.node, others)
            }
            (RouteMode::Vxlan, Some(block)) => {
                let dev = vxlan::device(&self.cfg.node, self.cfg.node_ip, &block, underlay_mtu);
                report.vxlan_changed = self.kernel.ensure_vxlan(&dev).map_err(kerr)?;
                rec.vtep_mac = Some(dev.mac.clone());
                let want = vxlan::desired(&self.cfg.node, others);
                let (neighs, fdb) = self.kernel.l2_entries(vxlan::DEVICE).map_err(kerr)?;
                let cur_n: BTreeSet<_> = neighs.into_iter().collect();
                let cur_f: BTreeSet<_> = fdb.into_iter().collect();
                let add_n: Vec<_> = want.neighs.difference(&cur_n).cloned().collect();
                let del_n: Vec<_> = cur_n.difference(&want.neighs).cloned().collect();
                let add_f: Vec<_> = want.fdb.difference(&cur_f).cloned().collect();
                let del_f: Vec<_> = cur_f.difference(&want.fdb).cloned().collect();
                report.l2_changed = add_n.len() + del_n.len() + add_f.len() + del_f.len();
                if report.l2_changed > 0 {
                    self.kernel
                        .program_l2(vxlan::DEVICE, &add_n, &del_n, &add_f, &del_f)
                        .map_err(kerr)?;
                }
                want.routes
            }
            _ => {
                rec.vtep_mac = None;
                Vec::new()
            }
        };
        let current = self.kernel.routes().map_err(kerr)?;
        let d = routes::diff(&current, &desired);
        report.routes_changed = d.replace.len() + d.delete.len();
        if !d.is_empty() {
            self.kernel
                .program_routes(&d.replace, &d.delete)
                .map_err(kerr)?;
        }
        if matches!(self.cfg.routes, RouteMode::HostGw | RouteMode::Vxlan) {
            condition = Some(Condition {
                kind: NETWORK_UNAVAILABLE.into(),
                status: false,
                reason: "RoutesProgrammed".into(),
                message: format!(
                    "{} peer route(s) over {}",
                    desired.len(),
                    super::route_mode_name(self.cfg.routes)
                ),
            });
        } else if self.net.network_plugin != NetworkPlugin::Kubenet {
            condition = Some(Condition {
                kind: NETWORK_UNAVAILABLE.into(),
                status: false,
                reason: "FabricRouted".into(),
                message: "the fabric routes this node's pods".into(),
            });
        }
        Ok(condition)
    }

    fn masq_policy(&self, rec: &NodeRecord) -> MasqPolicy {
        let pod_sources: Vec<Ipv4Net> = match self.net.network_plugin {
            NetworkPlugin::Kubenet | NetworkPlugin::Overlay => rec.block.into_iter().collect(),
            NetworkPlugin::Azure => vec![self
                .net
                .pod_subnet_cidr
                .unwrap_or(self.net.subnet_cidr)
                .trunc()],
        };
        MasqPolicy {
            pod_sources,
            non_masquerade: self.net.non_masquerade_cidrs(),
            node_ip: self.cfg.node_ip,
        }
    }

    fn snat_step(&mut self, rec: &NodeRecord, report: &mut Report) -> Result<(), AgentError> {
        let policy = self.masq_policy(rec);
        if policy.pod_sources.is_empty() {
            return Ok(());
        }
        let want = snat::digest(&policy);
        // Listing the table costs a process; re-read it when the rule set
        // changed, and otherwise every SNAT_RECHECK (someone may have
        // flushed the ruleset).
        if let Some((d, at)) = &self.snat_verified {
            if *d == want && at.elapsed() < SNAT_RECHECK {
                return Ok(());
            }
        }
        let have = self
            .kernel
            .nft_list_table(snat::FAMILY, snat::TABLE)
            .map_err(kerr)?
            .and_then(|l| snat::digest_in_listing(&l));
        if have.as_deref() != Some(want.as_str()) {
            self.kernel.nft_apply(&snat::batch(&policy)).map_err(kerr)?;
            report.snat_applied = true;
        }
        self.snat_verified = Some((want, Instant::now()));
        Ok(())
    }
}
