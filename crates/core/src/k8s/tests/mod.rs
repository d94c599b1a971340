//! The kinds' semantics end to end: manifests in, validation errors or a
//! plan out, endpoints derived from Pods. Shared helpers here.

mod apply;
mod endpoints;
mod validation;

use super::apply::{plan_apply, ApplyContext, Input, Plan};
use super::documents::{parse, read, Parsed};
use super::errors::ObjectError;
use super::object::{Object, ObjectId};
use super::store::K8sState;
use super::Kind;
use crate::spec::{ClusterNetwork, NetworkPlugin, NodePool};

pub(super) fn net() -> ClusterNetwork {
    ClusterNetwork {
        network_plugin: NetworkPlugin::Kubenet,
        vnet_cidrs: vec!["10.224.0.0/12".parse().unwrap()],
        subnet_cidr: "10.224.0.0/16".parse().unwrap(),
        pod_subnet_cidr: None,
        pod_cidr: Some("10.244.0.0/16".parse().unwrap()),
        service_cidr: "10.0.0.0/16".parse().unwrap(),
        dns_service_ip: "10.0.0.10".parse().unwrap(),
        node_pools: vec![NodePool {
            name: "nodepool1".into(),
            count: 3,
            max_pods: 110,
            max_surge: Default::default(),
        }],
        route_table_limit: 400,
    }
}

pub(super) fn objects(yaml: &str) -> Vec<Input> {
    parse("t.yaml", yaml)
        .unwrap()
        .into_iter()
        .map(|d| match read(d).unwrap() {
            Parsed::Object { object, source } => Input {
                object: *object,
                source,
            },
            Parsed::Ignored(i) => panic!("ignored {i:?}"),
        })
        .collect()
}

pub(super) fn ctx(seed: u64) -> ApplyContext {
    ApplyContext {
        now: "2026-12-02T13:00:00Z".into(),
        seed,
    }
}

/// Applies to a state the way a store would: every write lands at a new
/// revision.
pub(super) fn commit(state: &mut K8sState, plan: &Plan) {
    let rev = state
        .objects
        .values()
        .map(|s| s.mod_revision)
        .chain(state.cluster_ips.values().map(|s| s.mod_revision))
        .max()
        .unwrap_or(1)
        + 1;
    for w in &plan.writes {
        match &w.value {
            Some(v) => state.insert(&w.key, v, rev),
            None => {
                let k = crate::k8s::store::parse_key(&w.key).unwrap();
                match k {
                    crate::k8s::store::KeyKind::Object(id) => {
                        state.objects.remove(&id);
                    }
                    crate::k8s::store::KeyKind::ClusterIp(ip) => {
                        state.cluster_ips.remove(&ip);
                    }
                    crate::k8s::store::KeyKind::NodePort(p) => {
                        state.node_ports.remove(&p);
                    }
                }
            }
        }
    }
}

pub(super) fn apply(state: &mut K8sState, yaml: &str) -> Result<Plan, Vec<ObjectError>> {
    let plan = plan_apply(
        state,
        &net(),
        &ctx(state.objects.len() as u64 + 1),
        objects(yaml),
    )?;
    commit(state, &plan);
    Ok(plan)
}

pub(super) fn errors(state: &K8sState, yaml: &str) -> Vec<String> {
    match plan_apply(state, &net(), &ctx(1), objects(yaml)) {
        Ok(p) => panic!("accepted: {:?}", p.outcomes),
        Err(e) => e.iter().map(|e| e.to_string()).collect(),
    }
}

pub(super) fn svc<'a>(state: &'a K8sState, ns: &str, name: &str) -> &'a super::Service {
    state
        .get(&ObjectId::new(Kind::Service, ns, name))
        .and_then(Object::as_service)
        .unwrap()
}
