//! `Service` (v1): the API's shape, its defaults and the accessors the
//! dataplane reads. Validation is in [`super::validate::service`].

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::meta::{Extra, IntOrString, Labels, ObjectMeta};

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: ServiceSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ServiceStatus>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ServicePort>,
    /// `None` and `{}` both mean "no selector": the user supplies the
    /// EndpointSlices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<Labels>,
    #[serde(rename = "clusterIP", default, skip_serializing_if = "Option::is_none")]
    pub cluster_ip: Option<String>,
    #[serde(rename = "clusterIPs", default, skip_serializing_if = "Vec::is_empty")]
    pub cluster_ips: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_families: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_family_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity_config: Option<SessionAffinityConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_traffic_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_traffic_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_node_port: Option<i64>,
    #[serde(
        rename = "loadBalancerIP",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub load_balancer_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub load_balancer_source_ranges: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer_class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocate_load_balancer_node_ports: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_name: Option<String>,
    #[serde(rename = "externalIPs", default, skip_serializing_if = "Vec::is_empty")]
    pub external_ips: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_not_ready_addresses: Option<bool>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
    /// `i64` so that an out-of-range number is a validation error naming
    /// the field, not a decode error.
    #[serde(default)]
    pub port: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<IntOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_port: Option<i64>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionAffinityConfig {
    #[serde(rename = "clientIP", default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<ClientIpConfig>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientIpConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancerStatus>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<LoadBalancerIngress>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerIngress {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceType {
    ClusterIp,
    NodePort,
    LoadBalancer,
    ExternalName,
}

pub const SERVICE_TYPES: [&str; 4] = ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"];

impl ServiceType {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ClusterIP" => ServiceType::ClusterIp,
            "NodePort" => ServiceType::NodePort,
            "LoadBalancer" => ServiceType::LoadBalancer,
            "ExternalName" => ServiceType::ExternalName,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        SERVICE_TYPES[self as usize]
    }

    /// NodePort and LoadBalancer Services are reachable from outside.
    pub fn is_external(self) -> bool {
        matches!(self, ServiceType::NodePort | ServiceType::LoadBalancer)
    }
}

/// `clusterIP: None`.
pub const CLUSTER_IP_NONE: &str = "None";
/// kube-proxy's default `sessionAffinityConfig.clientIP.timeoutSeconds` (3 h).
pub const DEFAULT_AFFINITY_TIMEOUT: i64 = 10_800;
/// The API server's largest affinity timeout (one day).
pub const MAX_AFFINITY_TIMEOUT: i64 = 86_400;

impl Service {
    pub fn service_type(&self) -> ServiceType {
        self.spec
            .type_
            .as_deref()
            .and_then(ServiceType::parse)
            .unwrap_or(ServiceType::ClusterIp)
    }

    /// `clusterIP: None`.
    pub fn is_headless(&self) -> bool {
        self.spec.cluster_ip.as_deref() == Some(CLUSTER_IP_NONE)
    }

    /// The allocated ClusterIP (none for headless and ExternalName).
    pub fn cluster_ipv4(&self) -> Option<Ipv4Addr> {
        self.spec.cluster_ip.as_deref().and_then(|s| s.parse().ok())
    }

    /// The selector, if the Service has a non-empty one (an empty selector
    /// means the user supplies EndpointSlices, as upstream).
    pub fn selector(&self) -> Option<&Labels> {
        self.spec.selector.as_ref().filter(|s| !s.is_empty())
    }

    /// `sessionAffinity: ClientIP`'s timeout, when the Service asks for it.
    pub fn affinity_timeout(&self) -> Option<i64> {
        (self.spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
            self.spec
                .session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .unwrap_or(DEFAULT_AFFINITY_TIMEOUT)
        })
    }

    /// `externalTrafficPolicy: Local`.
    pub fn external_local(&self) -> bool {
        self.spec.external_traffic_policy.as_deref() == Some("Local")
    }

    /// `internalTrafficPolicy: Local`.
    pub fn internal_local(&self) -> bool {
        self.spec.internal_traffic_policy.as_deref() == Some("Local")
    }

    /// Whether a LoadBalancer Service gets NodePorts
    /// (`allocateLoadBalancerNodePorts`, default true).
    pub fn wants_node_ports(&self) -> bool {
        match self.service_type() {
            ServiceType::NodePort => true,
            ServiceType::LoadBalancer => self.spec.allocate_load_balancer_node_ports != Some(false),
            _ => false,
        }
    }

    /// Whether the Service needs a `healthCheckNodePort` (LoadBalancer with
    /// `externalTrafficPolicy: Local`).
    pub fn wants_health_check_node_port(&self) -> bool {
        self.service_type() == ServiceType::LoadBalancer && self.external_local()
    }

    /// `status.loadBalancer.ingress[].ip` that parse as IPv4.
    pub fn ingress_ips(&self) -> Vec<Ipv4Addr> {
        self.status
            .iter()
            .flat_map(|s| s.load_balancer.iter())
            .flat_map(|lb| lb.ingress.iter())
            .filter_map(|i| i.ip.as_deref()?.parse().ok())
            .collect()
    }

    /// Fills in what the API server defaults (protocol TCP, targetPort =
    /// port, type ClusterIP, sessionAffinity None, the traffic policies,
    /// the affinity timeout, IPv4 single stack). Allocation (clusterIP,
    /// nodePorts) is separate: [`super::apply`].
    pub fn set_defaults(&mut self) {
        let s = &mut self.spec;
        if s.type_.is_none() {
            s.type_ = Some("ClusterIP".into());
        }
        if s.session_affinity.is_none() {
            s.session_affinity = Some("None".into());
        }
        if s.session_affinity.as_deref() == Some("ClientIP") {
            let cfg = s
                .session_affinity_config
                .get_or_insert_with(Default::default);
            let cip = cfg.client_ip.get_or_insert_with(Default::default);
            cip.timeout_seconds.get_or_insert(DEFAULT_AFFINITY_TIMEOUT);
        }
        let ty = s.type_.as_deref().and_then(ServiceType::parse);
        if ty != Some(ServiceType::ExternalName) {
            if s.internal_traffic_policy.is_none() {
                s.internal_traffic_policy = Some("Cluster".into());
            }
            if s.ip_families.is_empty() && s.cluster_ip.as_deref() != Some(CLUSTER_IP_NONE) {
                s.ip_families = vec!["IPv4".into()];
            }
            if s.ip_family_policy.is_none() {
                s.ip_family_policy = Some("SingleStack".into());
            }
        }
        if ty.is_some_and(ServiceType::is_external) && s.external_traffic_policy.is_none() {
            s.external_traffic_policy = Some("Cluster".into());
        }
        for p in &mut s.ports {
            if p.protocol.is_none() {
                p.protocol = Some("TCP".into());
            }
            // targetPort 0 or unset means "the same as port".
            if matches!(p.target_port, None | Some(IntOrString::Int(0))) {
                p.target_port = Some(IntOrString::Int(p.port));
            }
        }
    }
}

impl ServicePort {
    pub fn protocol(&self) -> &str {
        self.protocol.as_deref().unwrap_or("TCP")
    }
}
