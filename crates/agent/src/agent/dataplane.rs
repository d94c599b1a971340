//! Outbound SNAT on the node, read from the kernel first and changed only
//! where it differs, so a restarted agent leaves a working node exactly as
//! it is. Run by the SNAT controller ([`super::controllers::snat`]).

use std::time::{Duration, Instant};

use aksnet_core::cluster::NodeRecord;
use aksnet_core::spec::NetworkPlugin;
use ipnet::Ipv4Net;

use super::reconcile::Report;
use super::Agent;
use crate::error::AgentError;
use crate::kernel::KernelError;
use crate::snat::{self, MasqPolicy};

/// How long a SNAT table found right is trusted before it is read again.
const SNAT_RECHECK: Duration = Duration::from_secs(30);

fn kerr(e: KernelError) -> AgentError {
    AgentError::Kernel(e)
}

impl Agent {
    /// The SNAT controller's step ([`super::controllers::snat`]): the
    /// desired rule set from the node's ranges, applied when the kernel's
    /// differs. Returns the number of rules wanted.
    pub(crate) fn snat_controller_step(
        &mut self,
        rec: &NodeRecord,
        report: &mut Report,
    ) -> Result<usize, AgentError> {
        let policy = self.masq_policy(rec);
        let rules = if policy.pod_sources.is_empty() {
            0
        } else {
            1 + policy.non_masquerade.len() + policy.pod_sources.len()
        };
        self.snat_step(rec, report)?;
        Ok(rules)
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
