//! What cluster DNS needs to know about the cluster, as plain data.
//!
//! The DNS index (the index) is built from these types only,
//! so it can be tested without a store and does not depend on how
//! Kubernetes objects are stored: the store source is the one place that
//! turns store keys into a [`ClusterRecords`].

use std::net::IpAddr;

/// Everything the cluster DNS answers from, at one store revision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterRecords {
    /// The store revision the records were read at (the SOA serial).
    pub revision: i64,
    /// Namespaces that exist (`NS.svc.DOMAIN` is then NODATA, not NXDOMAIN).
    /// Namespaces named by a Service or a Pod count too.
    pub namespaces: Vec<String>,
    pub services: Vec<ServiceRecord>,
    pub pods: Vec<PodRecord>,
}

/// One Service with its endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRecord {
    pub namespace: String,
    pub name: String,
    pub kind: ServiceKind,
    /// The Service's ports (`spec.ports`): the SRV records of a ClusterIP
    /// Service.
    pub ports: Vec<PortRecord>,
    /// Every endpoint, ready or not (only ready ones are published).
    pub endpoints: Vec<EndpointRecord>,
}

/// How a Service is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceKind {
    /// `spec.clusterIPs` (one per IP family).
    ClusterIp(Vec<IpAddr>),
    /// `clusterIP: None`: the name answers the ready endpoints.
    Headless,
    /// `type: ExternalName`: a CNAME to `spec.externalName`.
    ExternalName(String),
}

/// A port of a Service or of an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRecord {
    /// Empty for an unnamed port (no `_port._proto` SRV name).
    pub name: String,
    pub protocol: Protocol,
    pub port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// The SRV label, without its underscore.
    pub fn label(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }

    /// `TCP`, `udp`, … as Kubernetes spells them (any case).
    pub fn parse(s: &str) -> Option<Protocol> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Some(Protocol::Tcp),
            "udp" => Some(Protocol::Udp),
            "sctp" => Some(Protocol::Sctp),
            _ => None,
        }
    }
}

/// One endpoint of a Service (an EndpointSlice endpoint with its slice's
/// ports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointRecord {
    pub addresses: Vec<IpAddr>,
    /// `hostname` of the endpoint; without one the endpoint is named by its
    /// dashed IP (`10-244-1-5`).
    pub hostname: Option<String>,
    /// `conditions.ready` (absent counts as ready, as the API says).
    pub ready: bool,
    /// The ports of the slice the endpoint is in (target ports, named as the
    /// Service's ports).
    pub ports: Vec<PortRecord>,
}

/// One Pod with its IPs (`status.podIPs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRecord {
    pub namespace: String,
    pub name: String,
    pub ips: Vec<IpAddr>,
}
