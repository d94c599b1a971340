//! The one place that turns the store's Kubernetes objects into
//! [`ClusterRecords`]: Services with their endpoints as the k8s code derives
//! them (`aksnet_core::k8s::endpoints::service_slices`: slices computed
//! from the Pods, plus stored slices labelled with the Service), Pods with
//! their IPs, and the namespaces that exist.

use std::collections::BTreeSet;
use std::net::IpAddr;

use aksnet_core::k8s::endpoints::service_slices;
use aksnet_core::k8s::namespace::SYSTEM_NAMESPACES;
use aksnet_core::k8s::service::ServiceType;
use aksnet_core::k8s::store::K8S_PREFIX;
use aksnet_core::k8s::{EndpointSlice, K8sState, Kind, Object, Pod, Service};
use aksnet_store::Store;

use crate::records::{
    ClusterRecords, EndpointRecord, PodRecord, PortRecord, Protocol, ServiceKind, ServiceRecord,
};
use crate::DnsError;

/// Reads every Kubernetes object of the store at one revision.
pub fn read(store: &dyn Store) -> Result<ClusterRecords, DnsError> {
    let listing = store.range(K8S_PREFIX)?;
    let mut state = K8sState::default();
    for kv in &listing.kvs {
        state.insert(&kv.key, &kv.value, kv.mod_revision);
    }
    for bad in &state.bad {
        tracing::warn!(key = %bad.key, reason = %bad.reason, "a stored object does not decode; left out of DNS");
    }
    Ok(from_state(&state, listing.revision))
}

/// The records of one listing.
pub fn from_state(state: &K8sState, revision: i64) -> ClusterRecords {
    // The system namespaces exist in every cluster without being stored.
    let mut namespaces: BTreeSet<String> =
        SYSTEM_NAMESPACES.iter().map(|n| n.to_string()).collect();
    namespaces.extend(
        state
            .of_kind(Kind::Namespace, None)
            .map(|o| o.name().to_string()),
    );
    let services = state
        .of_kind(Kind::Service, None)
        .filter_map(Object::as_service)
        .map(|svc| service(state, svc))
        .collect();
    let pods = state
        .of_kind(Kind::Pod, None)
        .filter_map(Object::as_pod)
        .filter(|p| !p.is_finished())
        .filter_map(pod)
        .collect();
    ClusterRecords {
        revision,
        namespaces: namespaces.into_iter().collect(),
        services,
        pods,
    }
}

fn service(state: &K8sState, svc: &Service) -> ServiceRecord {
    let kind = if svc.service_type() == ServiceType::ExternalName {
        ServiceKind::ExternalName(svc.spec.external_name.clone().unwrap_or_default())
    } else if svc.is_headless() {
        ServiceKind::Headless
    } else {
        let mut ips: Vec<IpAddr> = svc
            .spec
            .cluster_ips
            .iter()
            .chain(svc.spec.cluster_ip.iter())
            .filter_map(|s| s.parse().ok())
            .collect();
        ips.sort();
        ips.dedup();
        ServiceKind::ClusterIp(ips)
    };
    let ports = svc
        .spec
        .ports
        .iter()
        .filter_map(|p| {
            Some(PortRecord {
                name: p.name.clone().unwrap_or_default(),
                protocol: Protocol::parse(p.protocol())?,
                port: u16::try_from(p.port).ok()?,
            })
        })
        .collect();
    let endpoints = match kind {
        ServiceKind::ExternalName(_) => vec![],
        _ => service_slices(state, svc)
            .iter()
            .flat_map(slice_endpoints)
            .collect(),
    };
    ServiceRecord {
        namespace: svc.metadata.namespace.clone().unwrap_or_default(),
        name: svc.metadata.name.clone(),
        kind,
        ports,
        endpoints,
    }
}

fn slice_endpoints(slice: &EndpointSlice) -> Vec<EndpointRecord> {
    // FQDN slices name no address DNS could publish.
    if !matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
        return vec![];
    }
    let ports: Vec<PortRecord> = slice
        .ports
        .iter()
        .filter_map(|p| {
            Some(PortRecord {
                name: p.name.clone().unwrap_or_default(),
                protocol: Protocol::parse(p.protocol.as_deref().unwrap_or("TCP"))?,
                port: u16::try_from(p.port?).ok()?,
            })
        })
        .collect();
    slice
        .endpoints
        .iter()
        .map(|e| EndpointRecord {
            addresses: e.addresses.iter().filter_map(|a| a.parse().ok()).collect(),
            hostname: e.hostname.clone().filter(|h| !h.is_empty()),
            ready: e.conditions.is_ready(),
            ports: ports.clone(),
        })
        .collect()
}

fn pod(p: &Pod) -> Option<PodRecord> {
    let st = p.status.as_ref()?;
    let mut ips: Vec<IpAddr> = st
        .pod_ips
        .iter()
        .map(|i| i.ip.as_str())
        .chain(st.pod_ip.as_deref())
        .filter_map(|s| s.parse().ok())
        .collect();
    ips.sort();
    ips.dedup();
    (!ips.is_empty()).then(|| PodRecord {
        namespace: p.metadata.namespace.clone().unwrap_or_default(),
        name: p.metadata.name.clone(),
        ips,
    })
}
