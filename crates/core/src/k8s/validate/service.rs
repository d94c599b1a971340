//! `ValidateService`: the rules of one Service on its own.

use std::collections::HashSet;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::k8s::errors::{child, index, Errs};
use crate::k8s::meta::{validate_int_or_port_name, validate_labels, validate_protocol};
use crate::k8s::names;
use crate::k8s::service::{
    Service, ServiceType, CLUSTER_IP_NONE, MAX_AFFINITY_TIMEOUT, SERVICE_TYPES,
};

pub fn validate(svc: &Service, errs: &mut Errs) {
    let s = &svc.spec;
    let ty = match s.type_.as_deref().map(|t| (t, ServiceType::parse(t))) {
        Some((_, Some(t))) => t,
        Some((t, None)) => {
            errs.unsupported("spec.type", t, &SERVICE_TYPES);
            return;
        }
        None => ServiceType::ClusterIp,
    };
    let headless = svc.is_headless();

    if ty == ServiceType::ExternalName {
        match s.external_name.as_deref() {
            None | Some("") => errs.required("spec.externalName", ""),
            Some(n) => {
                let n = n.trim_end_matches('.');
                errs.syntax("spec.externalName", n, names::dns1123_subdomain(n));
            }
        }
        if s.cluster_ip.as_deref().is_some_and(|c| !c.is_empty()) {
            errs.forbidden("spec.clusterIP", "may not be set for ExternalName services");
        }
    } else if s.ports.is_empty() && !headless {
        errs.required("spec.ports", "");
    }

    // clusterIP and clusterIPs: IPv4 single stack is all aksnet's service CIDR holds.
    if let Some(ip) = s.cluster_ip.as_deref().filter(|c| !c.is_empty()) {
        if ip == CLUSTER_IP_NONE {
            if ty.is_external() {
                errs.invalid(
                    "spec.clusterIP",
                    ip,
                    &format!("may not be set to 'None' for {} services", ty.as_str()),
                );
            }
        } else if ty != ServiceType::ExternalName {
            match ip.parse::<IpAddr>() {
                Ok(IpAddr::V4(_)) => {}
                Ok(IpAddr::V6(_)) => errs.invalid(
                    "spec.clusterIP",
                    ip,
                    "aksnet's service CIDR is IPv4; IPv6 ClusterIPs are not supported",
                ),
                Err(_) => errs.invalid(
                    "spec.clusterIP",
                    ip,
                    "must be a valid IP address (e.g. 10.0.0.10), or 'None' for a headless service",
                ),
            }
        }
    }
    if s.cluster_ips.len() > 1 {
        errs.invalid(
            "spec.clusterIPs",
            &s.cluster_ips.join(","),
            "aksnet's service CIDR is single-stack IPv4: at most one clusterIP",
        );
    }
    if let (Some(first), Some(ip)) = (s.cluster_ips.first(), s.cluster_ip.as_deref()) {
        if !ip.is_empty() && first != ip {
            errs.invalid("spec.clusterIPs[0]", first, "must be same as clusterIP");
        }
    }
    for (i, fam) in s.ip_families.iter().enumerate() {
        if fam != "IPv4" {
            let p = index("spec.ipFamilies", i);
            if fam == "IPv6" {
                errs.invalid(&p, fam, "aksnet's service CIDR is IPv4 only");
            } else {
                errs.unsupported(&p, fam, &["IPv4", "IPv6"]);
            }
        }
    }
    match s.ip_family_policy.as_deref() {
        None | Some("SingleStack" | "PreferDualStack") => {}
        Some("RequireDualStack") => errs.invalid(
            "spec.ipFamilyPolicy",
            "RequireDualStack",
            "aksnet's service CIDR is IPv4 only; use SingleStack or PreferDualStack",
        ),
        Some(o) => errs.unsupported(
            "spec.ipFamilyPolicy",
            o,
            &["SingleStack", "PreferDualStack", "RequireDualStack"],
        ),
    }

    ports(svc, ty, errs);

    if let Some(sel) = &s.selector {
        validate_labels(sel, "spec.selector", errs);
    }

    match s.session_affinity.as_deref() {
        None | Some("None") => {
            if s.session_affinity_config.is_some() {
                errs.forbidden(
                    "spec.sessionAffinityConfig",
                    "must not be set when `sessionAffinity` is None",
                );
            }
        }
        Some("ClientIP") => {
            let t = s
                .session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds);
            if let Some(t) = t {
                if t <= 0 || t > MAX_AFFINITY_TIMEOUT {
                    errs.invalid(
                        "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                        &t,
                        &format!("must be greater than 0 and less than {MAX_AFFINITY_TIMEOUT}"),
                    );
                }
            }
        }
        Some(o) => errs.unsupported("spec.sessionAffinity", o, &["ClientIP", "None"]),
    }

    if let Some(p) = s.external_traffic_policy.as_deref() {
        if !ty.is_external() {
            errs.invalid(
                "spec.externalTrafficPolicy",
                p,
                "may only be set for externally-accessible services",
            );
        } else if !matches!(p, "Cluster" | "Local") {
            errs.unsupported("spec.externalTrafficPolicy", p, &["Cluster", "Local"]);
        }
    }
    if let Some(p) = s.internal_traffic_policy.as_deref() {
        if !matches!(p, "Cluster" | "Local") {
            errs.unsupported("spec.internalTrafficPolicy", p, &["Cluster", "Local"]);
        }
    }
    if let Some(h) = s.health_check_node_port.filter(|h| *h != 0) {
        if !svc.wants_health_check_node_port() {
            errs.invalid(
                "spec.healthCheckNodePort",
                &h,
                "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
            );
        } else if let Some(m) = names::port_number(h) {
            errs.invalid("spec.healthCheckNodePort", &h, &m);
        }
    }

    if let Some(ip) = s.load_balancer_ip.as_deref().filter(|i| !i.is_empty()) {
        if ty != ServiceType::LoadBalancer {
            errs.forbidden(
                "spec.loadBalancerIP",
                "may only be used when `type` is 'LoadBalancer'",
            );
        } else if ip.parse::<IpAddr>().is_err() {
            errs.invalid("spec.loadBalancerIP", ip, "must be a valid IP address");
        }
    }
    if !s.load_balancer_source_ranges.is_empty() {
        if ty != ServiceType::LoadBalancer {
            errs.forbidden(
                "spec.loadBalancerSourceRanges",
                "may only be used when `type` is 'LoadBalancer'",
            );
        }
        for (i, r) in s.load_balancer_source_ranges.iter().enumerate() {
            if r.trim().parse::<IpNet>().is_err() {
                errs.invalid(
                    &index("spec.loadBalancerSourceRanges", i),
                    r,
                    "must be a list of IP ranges. For example, 10.240.0.0/24,10.250.0.0/24 ",
                );
            }
        }
    }
    if s.allocate_load_balancer_node_ports.is_some() && ty != ServiceType::LoadBalancer {
        errs.forbidden(
            "spec.allocateLoadBalancerNodePorts",
            "may only be used when `type` is 'LoadBalancer'",
        );
    }
    for (i, ip) in s.external_ips.iter().enumerate() {
        if ip.parse::<IpAddr>().is_err() {
            errs.invalid(
                &index("spec.externalIPs", i),
                ip,
                "must be a valid IP address",
            );
        }
    }
    if let Some(lb) = svc.status.as_ref().and_then(|s| s.load_balancer.as_ref()) {
        for (i, ing) in lb.ingress.iter().enumerate() {
            let p = index("status.loadBalancer.ingress", i);
            if let Some(ip) = ing.ip.as_deref() {
                if ip.parse::<IpAddr>().is_err() {
                    errs.invalid(&child(&p, "ip"), ip, "must be a valid IP address");
                }
            }
        }
    }
}

fn ports(svc: &Service, ty: ServiceType, errs: &mut Errs) {
    let many = svc.spec.ports.len() > 1;
    let mut names_seen = HashSet::new();
    let mut port_proto = HashSet::new();
    let mut node_proto = HashSet::new();
    for (i, p) in svc.spec.ports.iter().enumerate() {
        let path = index("spec.ports", i);
        match p.name.as_deref() {
            None | Some("") => {
                if many {
                    errs.required(&child(&path, "name"), "");
                }
            }
            Some(n) => {
                errs.syntax(&child(&path, "name"), n, names::dns1123_label(n));
                if !names_seen.insert(n) {
                    errs.duplicate(&child(&path, "name"), n);
                }
            }
        }
        if let Some(m) = names::port_number(p.port) {
            errs.invalid(&child(&path, "port"), &p.port, &m);
        }
        validate_protocol(p.protocol.as_deref(), &child(&path, "protocol"), errs);
        if let Some(t) = &p.target_port {
            validate_int_or_port_name(t, &child(&path, "targetPort"), errs);
        }
        if !port_proto.insert((p.port, p.protocol())) {
            errs.duplicate(
                &path,
                &format!("{{Port:{} Protocol:{}}}", p.port, p.protocol()),
            );
        }
        if let Some(np) = p.node_port.filter(|n| *n != 0) {
            if !ty.is_external() {
                errs.forbidden(
                    &child(&path, "nodePort"),
                    &format!("may not be used when `type` is '{}'", ty.as_str()),
                );
            } else if let Some(m) = names::port_number(np) {
                errs.invalid(&child(&path, "nodePort"), &np, &m);
            } else if !node_proto.insert((np, p.protocol())) {
                errs.duplicate(&child(&path, "nodePort"), &np);
            }
        }
    }
}
