//! A Service's endpoints, derived from its Pods as the EndpointSlice
//! controller derives them, computed on read from one listing.
//!
//! Why computed, not stored: the slices of a Service with a selector are a
//! pure function of the Service and the Pods of its namespace. Storing them
//! would need a controller to rewrite them after every Pod, label or Service
//! change, in the same transaction as that change or late (and then
//! inconsistent for a while). Computing them from the one listing every
//! reader takes anyway (`aksnet get`, the agent's Services controller) is
//! consistent with the Pods by construction, at the listing's revision.
//! Slices users apply for Services without a selector are stored objects;
//! a Service's endpoints are its derived slices plus any stored slice that
//! names it in `kubernetes.io/service-name` (kube-proxy reads every slice
//! with that label, whoever manages it).

use std::collections::BTreeMap;

use serde_json::json;

use super::endpointslice::{
    Endpoint, EndpointConditions, EndpointPort, EndpointSlice, ObjectReference, CONTROLLER_NAME,
    HEADLESS_LABEL, MANAGED_BY_LABEL, MAX_ENDPOINTS_PER_SLICE, SERVICE_NAME_LABEL,
};
use super::kind::Kind;
use super::meta::{Extra, IntOrString, ObjectMeta};
use super::object::Object;
use super::pod::Pod;
use super::service::{Service, ServiceType};
use super::store::K8sState;

fn fnv(data: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Five characters of `[a-z0-9]`, like the upstream generated suffixes,
/// but stable: a slice keeps its name while its port set does.
fn suffix(seed: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut h = fnv(seed);
    (0..5)
        .map(|_| {
            let c = ALPHABET[(h % ALPHABET.len() as u64) as usize] as char;
            h /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

/// The ports of the Service as one Pod serves them; a named `targetPort`
/// the Pod lacks is left out (upstream skips it, so that Pod lands in a
/// slice of its own port set).
fn pod_ports(svc: &Service, pod: &Pod) -> Vec<EndpointPort> {
    svc.spec
        .ports
        .iter()
        .filter_map(|p| {
            let target = p.target_port.clone().unwrap_or(IntOrString::Int(p.port));
            let n = pod.find_port(&target, p.protocol())?;
            Some(EndpointPort {
                name: Some(p.name.clone().unwrap_or_default()),
                protocol: Some(p.protocol().to_string()),
                port: Some(i64::from(n)),
                app_protocol: p.app_protocol.clone(),
            })
        })
        .collect()
}

fn endpoint(svc: &Service, pod: &Pod, ip: String) -> Endpoint {
    let r = pod.readiness();
    let publish = svc.spec.publish_not_ready_addresses == Some(true);
    let serving = publish || pod.ready_condition();
    let hostname = pod
        .spec
        .hostname
        .clone()
        .filter(|_| pod.spec.subdomain.as_deref() == Some(svc.metadata.name.as_str()));
    Endpoint {
        addresses: vec![ip],
        conditions: EndpointConditions {
            ready: Some(publish || (serving && !r.terminating)),
            serving: Some(serving),
            terminating: Some(r.terminating),
        },
        hostname,
        node_name: pod.spec.node_name.clone(),
        zone: None,
        target_ref: Some(ObjectReference {
            kind: Some("Pod".into()),
            namespace: pod.metadata.namespace.clone(),
            name: Some(pod.metadata.name.clone()),
            uid: pod.metadata.uid.clone(),
            extra: Extra::new(),
        }),
        extra: Extra::new(),
    }
}

fn slice(
    svc: &Service,
    name: String,
    endpoints: Vec<Endpoint>,
    ports: Vec<EndpointPort>,
) -> EndpointSlice {
    let mut labels = svc.metadata.labels.clone();
    labels.insert(SERVICE_NAME_LABEL.into(), svc.metadata.name.clone());
    labels.insert(MANAGED_BY_LABEL.into(), CONTROLLER_NAME.into());
    if svc.is_headless() {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    }
    let mut extra = Extra::new();
    if let Some(uid) = &svc.metadata.uid {
        extra.insert(
            "ownerReferences".into(),
            json!([{
                "apiVersion": "v1",
                "kind": "Service",
                "name": svc.metadata.name,
                "uid": uid,
                "controller": true,
                "blockOwnerDeletion": true,
            }]),
        );
    }
    EndpointSlice {
        api_version: Kind::EndpointSlice.api_version().into(),
        kind: Kind::EndpointSlice.name().into(),
        metadata: ObjectMeta {
            name,
            namespace: svc.metadata.namespace.clone(),
            labels,
            generation: Some(1),
            creation_timestamp: svc.metadata.creation_timestamp.clone(),
            resource_version: svc.metadata.resource_version.clone(),
            extra,
            ..Default::default()
        },
        address_type: "IPv4".into(),
        endpoints,
        ports,
        extra: Extra::new(),
    }
}

/// The slices of a Service with a selector, from the Pods given (those of
/// its namespace; others are skipped). A Service without a selector, or
/// of type ExternalName, gets none; one with a selector and no matching Pod
/// gets one empty slice, as upstream (readers see "no endpoints").
pub fn derive<'a>(svc: &Service, pods: impl IntoIterator<Item = &'a Pod>) -> Vec<EndpointSlice> {
    let Some(selector) = svc.selector() else {
        return vec![];
    };
    if svc.service_type() == ServiceType::ExternalName {
        return vec![];
    }
    let ns = svc.metadata.namespace.as_deref().unwrap_or_default();
    let mut selected: Vec<&Pod> = pods
        .into_iter()
        .filter(|p| p.metadata.namespace.as_deref().unwrap_or_default() == ns)
        .filter(|p| {
            selector
                .iter()
                .all(|(k, v)| p.metadata.labels.get(k) == Some(v))
        })
        .filter(|p| !p.is_finished())
        .collect();
    selected.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    // Group by port set; the map keeps the groups in a stable order.
    let mut groups: BTreeMap<String, (Vec<EndpointPort>, Vec<Endpoint>)> = BTreeMap::new();
    for pod in selected {
        let Some(ip) = pod.pod_ipv4() else { continue };
        let ports = pod_ports(svc, pod);
        let key = serde_json::to_string(&ports).unwrap_or_default();
        let g = groups.entry(key).or_insert_with(|| (ports, vec![]));
        g.1.push(endpoint(svc, pod, ip.to_string()));
    }
    let name = &svc.metadata.name;
    if groups.is_empty() {
        return vec![slice(
            svc,
            format!("{name}-{}", suffix(name)),
            vec![],
            vec![],
        )];
    }
    let mut out = vec![];
    for (key, (ports, endpoints)) in groups {
        for (i, chunk) in endpoints.chunks(MAX_ENDPOINTS_PER_SLICE).enumerate() {
            let seed = format!("{name}/{key}/{i}");
            out.push(slice(
                svc,
                format!("{name}-{}", suffix(&seed)),
                chunk.to_vec(),
                ports.clone(),
            ));
        }
    }
    out
}

/// Every slice of the cluster (or one namespace): the stored ones and the
/// derived ones, sorted by namespace and name.
pub fn all_slices(state: &K8sState, namespace: Option<&str>) -> Vec<EndpointSlice> {
    let mut out: Vec<EndpointSlice> = state
        .of_kind(Kind::EndpointSlice, namespace)
        .filter_map(|o| match o {
            Object::EndpointSlice(s) => Some(s.clone()),
            _ => None,
        })
        .collect();
    let pods: Vec<&Pod> = state
        .of_kind(Kind::Pod, namespace)
        .filter_map(Object::as_pod)
        .collect();
    for svc in state
        .of_kind(Kind::Service, namespace)
        .filter_map(Object::as_service)
    {
        out.extend(derive(svc, pods.iter().copied()));
    }
    out.sort_by(|a, b| {
        (a.metadata.namespace.as_deref(), a.metadata.name.as_str())
            .cmp(&(b.metadata.namespace.as_deref(), b.metadata.name.as_str()))
    });
    out
}

/// A Service's endpoints as the dataplane reads them: its derived slices
/// and every stored slice labelled with its name.
pub fn service_slices(state: &K8sState, svc: &Service) -> Vec<EndpointSlice> {
    let ns = svc.metadata.namespace.as_deref().unwrap_or_default();
    let pods = state
        .of_kind(Kind::Pod, Some(ns))
        .filter_map(Object::as_pod);
    let mut out = derive(svc, pods);
    out.extend(
        state
            .of_kind(Kind::EndpointSlice, Some(ns))
            .filter_map(|o| match o {
                Object::EndpointSlice(s)
                    if s.service_name() == Some(svc.metadata.name.as_str()) =>
                {
                    Some(s.clone())
                }
                _ => None,
            }),
    );
    out
}

/// One backend of one Service port, as kube-proxy programs it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Backend {
    pub ip: std::net::Ipv4Addr,
    pub port: u16,
    pub node: Option<String>,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
}

/// The backends of each port of a Service (in the Service's port order),
/// from its slices, as kube-proxy picks them: slice ports match Service
/// ports by name and protocol; IPv4 slices only; an endpoint listed twice
/// (two slices) counts once; ready endpoints are used, and when none is
/// ready the serving-and-terminating ones (KEP-1669), so connections drain
/// instead of being refused during a rollout.
pub fn backends(
    svc: &Service,
    slices: &[EndpointSlice],
) -> Vec<(super::service::ServicePort, Vec<Backend>)> {
    svc.spec
        .ports
        .iter()
        .map(|sp| {
            let name = sp.name.clone().unwrap_or_default();
            let mut all: Vec<Backend> = vec![];
            for s in slices.iter().filter(|s| s.address_type == "IPv4") {
                let Some(port) = s
                    .ports
                    .iter()
                    .find(|p| {
                        p.name.clone().unwrap_or_default() == name
                            && p.protocol.as_deref().unwrap_or("TCP") == sp.protocol()
                    })
                    .and_then(|p| p.port)
                    .and_then(|p| u16::try_from(p).ok())
                    .filter(|p| *p > 0)
                else {
                    continue;
                };
                for e in &s.endpoints {
                    let Some(ip) = e.addresses.first().and_then(|a| a.parse().ok()) else {
                        continue;
                    };
                    let b = Backend {
                        ip,
                        port,
                        node: e.node_name.clone(),
                        ready: e.conditions.is_ready(),
                        serving: e.conditions.is_serving(),
                        terminating: e.conditions.is_terminating(),
                    };
                    if !all.iter().any(|x| x.ip == b.ip && x.port == b.port) {
                        all.push(b);
                    }
                }
            }
            let ready: Vec<Backend> = all.iter().filter(|b| b.ready).cloned().collect();
            let chosen = if ready.is_empty() {
                all.into_iter()
                    .filter(|b| b.serving && b.terminating)
                    .collect()
            } else {
                ready
            };
            let mut chosen = chosen;
            chosen.sort();
            (sp.clone(), chosen)
        })
        .collect()
}
