//! Pods and Deployments: containers and their ports, the node name, status
//! addresses, and a Deployment's selector against its template.

use std::collections::HashSet;
use std::net::IpAddr;

use crate::k8s::errors::{child, index, Errs};
use crate::k8s::meta::{validate_meta_maps, validate_protocol, validate_selector};
use crate::k8s::names;
use crate::k8s::pod::{Container, Deployment, Pod, PodSpec};

pub fn pod(p: &Pod, errs: &mut Errs) {
    pod_spec(&p.spec, "spec", errs);
    if let Some(st) = &p.status {
        if let Some(ip) = st.pod_ip.as_deref() {
            if ip.parse::<IpAddr>().is_err() {
                errs.invalid("status.podIP", ip, "must be a valid IP address");
            }
        }
        for (i, ip) in st.pod_ips.iter().enumerate() {
            if ip.ip.parse::<IpAddr>().is_err() {
                errs.invalid(
                    &child(&index("status.podIPs", i), "ip"),
                    &ip.ip,
                    "must be a valid IP address",
                );
            }
        }
        if let (Some(a), Some(b)) = (st.pod_ip.as_deref(), st.pod_ips.first()) {
            if a != b.ip {
                errs.invalid("status.podIPs[0].ip", &b.ip, "must be equal to podIP");
            }
        }
        if let Some(ip) = st.host_ip.as_deref() {
            if ip.parse::<IpAddr>().is_err() {
                errs.invalid("status.hostIP", ip, "must be a valid IP address");
            }
        }
    }
}

pub fn pod_spec(spec: &PodSpec, path: &str, errs: &mut Errs) {
    if spec.containers.is_empty() {
        errs.required(&child(path, "containers"), "");
    }
    let mut container_names = HashSet::new();
    for (field, list) in [
        ("containers", &spec.containers),
        ("initContainers", &spec.init_containers),
    ] {
        for (i, c) in list.iter().enumerate() {
            container(
                c,
                &index(&child(path, field), i),
                &mut container_names,
                errs,
            );
        }
    }
    if let Some(n) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        errs.syntax(&child(path, "nodeName"), n, names::dns1123_subdomain(n));
    }
    if let Some(h) = spec.hostname.as_deref() {
        errs.syntax(&child(path, "hostname"), h, names::dns1123_label(h));
    }
    if let Some(s) = spec.subdomain.as_deref() {
        errs.syntax(&child(path, "subdomain"), s, names::dns1123_label(s));
    }
}

fn container<'a>(
    c: &'a Container,
    path: &str,
    container_names: &mut HashSet<&'a str>,
    errs: &mut Errs,
) {
    // Port names are unique within a container (upstream
    // `validateContainerPorts`), not across the pod.
    let mut port_names = HashSet::new();
    if c.name.is_empty() {
        errs.required(&child(path, "name"), "");
    } else {
        errs.syntax(&child(path, "name"), &c.name, names::dns1123_label(&c.name));
        if !container_names.insert(&c.name) {
            errs.duplicate(&child(path, "name"), &c.name);
        }
    }
    if c.image.as_deref().is_none_or(|i| i.trim().is_empty()) {
        errs.required(&child(path, "image"), "");
    }
    for (j, p) in c.ports.iter().enumerate() {
        let pp = index(&child(path, "ports"), j);
        if let Some(n) = p.name.as_deref() {
            errs.syntax(&child(&pp, "name"), n, names::port_name(n));
            if !port_names.insert(n) {
                errs.duplicate(&child(&pp, "name"), n);
            }
        }
        if let Some(m) = names::port_number(p.container_port) {
            errs.invalid(&child(&pp, "containerPort"), &p.container_port, &m);
        }
        if let Some(h) = p.host_port.filter(|h| *h != 0) {
            if let Some(m) = names::port_number(h) {
                errs.invalid(&child(&pp, "hostPort"), &h, &m);
            }
        }
        validate_protocol(p.protocol.as_deref(), &child(&pp, "protocol"), errs);
    }
}

pub fn deployment(d: &Deployment, errs: &mut Errs) {
    if let Some(r) = d.spec.replicas {
        if r < 0 {
            errs.invalid("spec.replicas", &r, "must be greater than or equal to 0");
        }
    }
    let tmeta = &d.spec.template.metadata;
    validate_meta_maps(tmeta, "spec.template.metadata", errs);
    match &d.spec.selector {
        None => errs.required("spec.selector", ""),
        Some(sel) if sel.is_empty() => errs.invalid(
            "spec.selector",
            "{}",
            "empty selector is invalid for deployment",
        ),
        Some(sel) => {
            let before = errs.0.len();
            validate_selector(sel, "spec.selector", errs);
            if errs.0.len() == before && !sel.matches(&tmeta.labels) {
                errs.invalid(
                    "spec.template.metadata.labels",
                    &crate::k8s::meta::selector_string(&tmeta.labels),
                    &format!("`selector` does not match template `labels` (selector {sel})"),
                );
            }
        }
    }
    pod_spec(&d.spec.template.spec, "spec.template.spec", errs);
}
