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
use crate::spec::{ClusterNetwork, Sourced, SpecInput};

pub(super) fn net() -> ClusterNetwork {
    // The design the planner resolves, so the test network has every field
    // the spec has (and keeps up when it gains more).
    let f = |v: &str| Some(Sourced::new(v.to_string(), "test"));
    let input = SpecInput {
        network_plugin: f("kubenet"),
        vnet_cidrs: vec![Sourced::new("10.224.0.0/12".to_string(), "test")],
        subnet_cidr: f("10.224.0.0/16"),
        pod_cidr: f("10.244.0.0/16"),
        service_cidr: f("10.0.0.0/16"),
        dns_service_ip: f("10.0.0.10"),
        node_count: Some(Sourced::new(3, "test")),
        max_pods: Some(Sourced::new(110, "test")),
        ..Default::default()
    };
    let plan = crate::planner::plan_input(&input).unwrap();
    assert!(plan.valid, "{:?}", plan.errors);
    plan.network
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

/// Whatever a document holds, reading, planning and deriving endpoints
/// answer with a value or an error, never a panic.
mod no_panics {
    use proptest::prelude::*;
    use serde_json::{json, Map, Value};

    use super::*;
    use crate::k8s::documents::{read, Document};
    use crate::k8s::endpoints::all_slices;

    const KEYS: &[&str] = &[
        "name",
        "namespace",
        "labels",
        "spec",
        "status",
        "ports",
        "port",
        "targetPort",
        "nodePort",
        "protocol",
        "type",
        "clusterIP",
        "clusterIPs",
        "selector",
        "matchLabels",
        "matchExpressions",
        "key",
        "operator",
        "values",
        "containers",
        "image",
        "containerPort",
        "podIP",
        "conditions",
        "replicas",
        "template",
        "metadata",
        "ingress",
        "egress",
        "from",
        "to",
        "ipBlock",
        "cidr",
        "except",
        "endPort",
        "policyTypes",
        "addressType",
        "endpoints",
        "addresses",
        "sessionAffinity",
        "sessionAffinityConfig",
        "clientIP",
        "timeoutSeconds",
        "externalTrafficPolicy",
        "healthCheckNodePort",
        "loadBalancer",
        "ip",
        "podSelector",
    ];

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            prop_oneof![
                Just(0i64),
                Just(-1),
                Just(80),
                Just(30080),
                Just(65536),
                Just(i64::MAX),
                any::<i64>()
            ]
            .prop_map(|n| json!(n)),
            prop_oneof![
                Just("v1"),
                Just("Service"),
                Just("None"),
                Just("NodePort"),
                Just("LoadBalancer"),
                Just("Local"),
                Just("ClientIP"),
                Just("In"),
                Just("Exists"),
                Just("10.0.0.5"),
                Just("10.0.0.0/8"),
                Just("web"),
                Just(""),
                Just("a/b/c"),
                Just("TCP"),
                Just("IPv4"),
            ]
            .prop_map(|s| json!(s)),
        ]
    }

    fn tree() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::vec((proptest::sample::select(KEYS), inner), 0..6).prop_map(
                    |kv| {
                        Value::Object(
                            kv.into_iter()
                                .map(|(k, v)| (k.to_string(), v))
                                .collect::<Map<_, _>>(),
                        )
                    }
                ),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn any_document_is_answered(
            kind in proptest::sample::select(&["Service", "Pod", "Deployment", "Namespace", "EndpointSlice", "NetworkPolicy"][..]),
            body in tree(),
        ) {
            let mut v = match body {
                Value::Object(m) => Value::Object(m),
                other => json!({"spec": other}),
            };
            let api = match kind {
                "Deployment" => "apps/v1",
                "EndpointSlice" => "discovery.k8s.io/v1",
                "NetworkPolicy" => "networking.k8s.io/v1",
                _ => "v1",
            };
            v["apiVersion"] = json!(api);
            v["kind"] = json!(kind);
            if let Ok(crate::k8s::documents::Parsed::Object { object, source }) =
                read(Document { source: "fuzz".into(), value: v })
            {
                let mut st = K8sState::default();
                if let Ok(plan) = plan_apply(&st, &net(), &ctx(1), vec![Input { object: *object, source }]) {
                    commit(&mut st, &plan);
                    let _ = all_slices(&st, None);
                }
            }
        }
    }
}
