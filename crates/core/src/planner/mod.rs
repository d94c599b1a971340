//! `aksnet plan`: checks a cluster network design before it is built.
//!
//! Every part of aksnet that builds a network (cluster init, the lab) calls
//! [`plan`] first and refuses a design it marks invalid, so a design the
//! planner rejects can never be built.

pub mod aks;
pub mod capacity;
pub mod rules;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

pub use capacity::{Capacity, Limit};

use crate::finding::Finding;
use crate::spec::{ClusterNetwork, InputError, NetworkPlugin, SpecInput};

/// The verdict on one design. Its JSON form is a stable contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub valid: bool,
    pub network_plugin: NetworkPlugin,
    pub errors: Vec<Finding>,
    pub warnings: Vec<Finding>,
    pub capacity: Capacity,
    /// The design as resolved (defaults applied).
    pub network: ClusterNetwork,
}

/// Checks a resolved design.
pub fn plan(net: &ClusterNetwork) -> Plan {
    plan_with_notes(net, Vec::new())
}

fn plan_with_notes(net: &ClusterNetwork, notes: Vec<Finding>) -> Plan {
    let capacity = capacity::compute(net);
    let found = rules::check(net, &capacity);
    let mut warnings = notes;
    warnings.extend(found.warnings);
    Plan {
        valid: found.errors.is_empty(),
        network_plugin: net.network_plugin,
        errors: found.errors,
        warnings,
        capacity,
        network: net.clone(),
    }
}

/// Resolves the inputs for the model they name and checks the design.
pub fn plan_input(input: &SpecInput) -> Result<Plan, InputError> {
    let plugin = input.network_plugin()?;
    let resolved = input.resolve(plugin, false)?;
    Ok(plan_with_notes(&resolved.network, resolved.notes))
}

/// The three models for the same inputs, each with its own default max pods
/// unless one was given. `--network-plugin` is ignored here.
pub fn compare(input: &SpecInput) -> Result<Vec<Plan>, InputError> {
    NetworkPlugin::ALL
        .iter()
        .map(|p| {
            let resolved = input.resolve(*p, true)?;
            Ok(plan_with_notes(&resolved.network, resolved.notes))
        })
        .collect()
}
