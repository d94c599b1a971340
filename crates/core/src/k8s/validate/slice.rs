//! `ValidateEndpointSlice`: address type, addresses of that type, ports.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::k8s::endpointslice::{EndpointSlice, CONTROLLER_NAME, MANAGED_BY_LABEL};
use crate::k8s::errors::{child, index, Errs};
use crate::k8s::meta::validate_protocol;
use crate::k8s::names;

const ADDRESS_TYPES: [&str; 3] = ["IPv4", "IPv6", "FQDN"];
const MAX_ADDRESSES: usize = 100;
const MAX_ENDPOINTS: usize = 1000;
const MAX_PORTS: usize = 100;

pub fn validate(s: &EndpointSlice, errs: &mut Errs) {
    let at = s.address_type.as_str();
    if at.is_empty() {
        errs.required("addressType", "");
    } else if !ADDRESS_TYPES.contains(&at) {
        errs.unsupported("addressType", at, &ADDRESS_TYPES);
    }
    if s.metadata.labels.get(MANAGED_BY_LABEL).map(String::as_str) == Some(CONTROLLER_NAME) {
        errs.invalid(
            &format!("metadata.labels[{MANAGED_BY_LABEL}]"),
            CONTROLLER_NAME,
            "aksnet derives the slices of Services with a selector from their Pods under this manager; \
             a slice you apply must name another manager (or none)",
        );
    }
    if s.endpoints.len() > MAX_ENDPOINTS {
        errs.too_many("endpoints", s.endpoints.len(), MAX_ENDPOINTS);
    }
    for (i, e) in s.endpoints.iter().enumerate() {
        let p = index("endpoints", i);
        let ap = child(&p, "addresses");
        if e.addresses.is_empty() {
            errs.required(&ap, "must contain at least 1 address");
        } else if e.addresses.len() > MAX_ADDRESSES {
            errs.too_many(&ap, e.addresses.len(), MAX_ADDRESSES);
        }
        for (j, a) in e.addresses.iter().enumerate() {
            let ok = match at {
                "IPv4" => a.parse::<Ipv4Addr>().is_ok(),
                "IPv6" => a.parse::<Ipv6Addr>().is_ok(),
                "FQDN" => names::dns1123_subdomain(a).is_empty(),
                _ => true,
            };
            if !ok {
                let what = if at == "FQDN" {
                    "must be a valid DNS subdomain".to_string()
                } else {
                    format!("must be a valid {at} address")
                };
                errs.invalid(&index(&ap, j), a, &what);
            } else if at != "FQDN" && a.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()) {
                errs.invalid(
                    &index(&ap, j),
                    a,
                    "may not be in the loopback range (127.0.0.0/8, ::1/128)",
                );
            }
        }
        if let Some(n) = e.node_name.as_deref() {
            errs.syntax(&child(&p, "nodeName"), n, names::dns1123_subdomain(n));
        }
        if let Some(h) = e.hostname.as_deref() {
            errs.syntax(&child(&p, "hostname"), h, names::dns1123_label(h));
        }
    }
    if s.ports.len() > MAX_PORTS {
        errs.too_many("ports", s.ports.len(), MAX_PORTS);
    }
    let mut seen = HashSet::new();
    for (i, p) in s.ports.iter().enumerate() {
        let pp = index("ports", i);
        let name = p.name.as_deref().unwrap_or("");
        if !name.is_empty() {
            errs.syntax(&child(&pp, "name"), name, names::dns1123_label(name));
        }
        if !seen.insert(name) {
            errs.duplicate(&child(&pp, "name"), name);
        }
        validate_protocol(p.protocol.as_deref(), &child(&pp, "protocol"), errs);
        if let Some(n) = p.port {
            if let Some(m) = names::port_number(n) {
                errs.invalid(&child(&pp, "port"), &n, &m);
            }
        }
    }
}
