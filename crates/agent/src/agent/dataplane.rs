//! Outbound SNAT on the node: the desired table applied as a diff from
//! what the agent applied last; after a (re)start it is read from the
//! kernel first and left alone when it matches, so a restarted agent
//! leaves a working node exactly as it is. Run by the SNAT controller ([`super::controllers::snat`]).

use std::time::{Duration, Instant};

use aksnet_core::cluster::NodeRecord;

use aksnet_nft::Synced;

use super::reconcile::Report;
use super::Agent;
use crate::error::AgentError;
use crate::snat::{self, MasqPolicy};

/// How long a SNAT table found right is trusted before it is read again.
const SNAT_RECHECK: Duration = Duration::from_secs(30);

impl Agent {
    /// The SNAT controller's step ([`super::controllers::snat`]): the
    /// desired rule set from the node's ranges, applied when the kernel's
    /// differs. Returns the number of rules and set elements wanted.
    pub(crate) fn snat_controller_step(
        &mut self,
        rec: &NodeRecord,
        report: &mut Report,
    ) -> Result<usize, AgentError> {
        let policy = self.masq_policy(rec);
        let objects = if policy.pod_sources.is_empty() {
            0
        } else {
            snat::desired(&policy).objects()
        };
        self.snat_step(rec, report)?;
        Ok(objects)
    }

    fn masq_policy(&self, rec: &NodeRecord) -> MasqPolicy {
        snat::policy(&self.net, rec)
    }

    fn snat_step(&mut self, rec: &NodeRecord, report: &mut Report) -> Result<(), AgentError> {
        let policy = self.masq_policy(rec);
        if policy.pod_sources.is_empty() {
            return Ok(());
        }
        let want = snat::desired(&policy);
        // Between reads, the owner trusts what it applied: an unchanged
        // rule set costs nothing, a changed one its diff. Every
        // SNAT_RECHECK it reads the table again (someone may have flushed
        // the ruleset): a listing, and a rewrite only if it differs.
        let recheck = self
            .snat_checked
            .is_none_or(|at| at.elapsed() >= SNAT_RECHECK);
        if recheck {
            self.snat.forget();
        }
        let driver: &mut dyn aksnet_nft::Driver = &mut *self.kernel;
        let outcome = self.snat.sync(driver, &want)?;
        if recheck {
            self.snat_checked = Some(Instant::now());
        }
        if let Synced::Applied(commands) = outcome {
            tracing::debug!(commands, "SNAT table programmed");
            report.snat_applied = true;
        }
        Ok(())
    }
}
