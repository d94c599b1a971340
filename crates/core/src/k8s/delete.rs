//! Planning one `aksnet delete`: the keys one transaction deletes, each
//! compared with the revision it was read at.

use std::collections::BTreeSet;

use super::apply::{Expect, KeyWrite};
use super::errors::{ErrorType, FieldError, ObjectError};
use super::kind::Kind;
use super::namespace::is_system;
use super::object::ObjectId;
use super::store::{cluster_ip_key, node_port_key, object_key, Allocation, K8sState};

/// What a `delete` removes.
#[derive(Debug, Clone, Default)]
pub struct DeletePlan {
    pub writes: Vec<KeyWrite>,
    /// Deleted, in request order (a Namespace's contents follow it).
    pub deleted: Vec<ObjectId>,
    pub not_found: Vec<ObjectId>,
}

/// Plans deleting objects: a Service gives back its ClusterIP and
/// NodePorts, a Namespace takes everything in it along. The system
/// namespaces cannot be deleted; a missing object is reported in
/// `not_found` (the caller decides whether that is an error).
pub fn plan_delete(state: &K8sState, ids: &[ObjectId]) -> Result<DeletePlan, Vec<ObjectError>> {
    let mut plan = DeletePlan::default();
    let mut gone: BTreeSet<ObjectId> = BTreeSet::new();
    let mut errors = vec![];
    let mut targets: Vec<ObjectId> = vec![];
    for id in ids {
        if id.kind == Kind::Namespace && is_system(&id.name) {
            errors.push(ObjectError {
                object: id.to_string(),
                source: None,
                errors: vec![FieldError {
                    field: "metadata.name".into(),
                    kind: ErrorType::Forbidden,
                    value: None,
                    detail: "this namespace may not be deleted".into(),
                }],
            });
            continue;
        }
        let exists = state.objects.contains_key(id) || state.undecodable.contains_key(id);
        if !exists {
            if !plan.not_found.contains(id) {
                plan.not_found.push(id.clone());
            }
            continue;
        }
        targets.push(id.clone());
        if id.kind == Kind::Namespace {
            targets.extend(
                state
                    .objects
                    .keys()
                    .chain(state.undecodable.keys())
                    .filter(|o| o.kind.namespaced() && o.namespace == id.name)
                    .cloned(),
            );
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    for id in targets {
        if !gone.insert(id.clone()) {
            continue;
        }
        let rev = state
            .objects
            .get(&id)
            .map(|s| s.mod_revision)
            .or_else(|| state.undecodable.get(&id).copied())
            .unwrap_or_default();
        plan.writes.push(KeyWrite {
            key: object_key(&id),
            value: None,
            expect: Expect::ModRevision(rev),
        });
        if id.kind == Kind::Service {
            let owner = Allocation {
                namespace: id.namespace.clone(),
                service: id.name.clone(),
            };
            for (ip, s) in &state.cluster_ips {
                if s.value.as_ref() == Some(&owner) {
                    plan.writes.push(KeyWrite {
                        key: cluster_ip_key(*ip),
                        value: None,
                        expect: Expect::ModRevision(s.mod_revision),
                    });
                }
            }
            for (p, s) in &state.node_ports {
                if s.value.as_ref() == Some(&owner) {
                    plan.writes.push(KeyWrite {
                        key: node_port_key(*p),
                        value: None,
                        expect: Expect::ModRevision(s.mod_revision),
                    });
                }
            }
        }
        plan.deleted.push(id);
    }
    Ok(plan)
}
