//! `ValidateNetworkPolicy`: selectors, ports (protocol, named or numbered
//! port, `endPort`), peers (one kind per peer for `ipBlock`), `ipBlock`
//! CIDRs with `except` strictly inside, `policyTypes`.

use ipnet::IpNet;

use crate::k8s::errors::{child, index, Errs};
use crate::k8s::meta::{
    validate_int_or_port_name, validate_protocol, validate_selector, IntOrString,
};
use crate::k8s::names;
use crate::k8s::netpol::{IpBlock, NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};

pub fn validate(np: &NetworkPolicy, errs: &mut Errs) {
    let s = &np.spec;
    validate_selector(&s.pod_selector, "spec.podSelector", errs);
    for (i, r) in s.ingress.iter().flatten().enumerate() {
        let p = index("spec.ingress", i);
        ports(&r.ports, &child(&p, "ports"), errs);
        peers(&r.from, &child(&p, "from"), errs);
    }
    for (i, r) in s.egress.iter().flatten().enumerate() {
        let p = index("spec.egress", i);
        ports(&r.ports, &child(&p, "ports"), errs);
        peers(&r.to, &child(&p, "to"), errs);
    }
    if s.policy_types.len() > 2 {
        errs.invalid(
            "spec.policyTypes",
            &s.policy_types.join(","),
            "may not specify more than two policyTypes",
        );
    }
    for (i, t) in s.policy_types.iter().enumerate() {
        if !matches!(t.as_str(), "Ingress" | "Egress") {
            errs.unsupported(&index("spec.policyTypes", i), t, &["Ingress", "Egress"]);
        }
    }
}

fn ports(list: &[NetworkPolicyPort], path: &str, errs: &mut Errs) {
    for (i, p) in list.iter().enumerate() {
        let pp = index(path, i);
        validate_protocol(p.protocol.as_deref(), &child(&pp, "protocol"), errs);
        if let Some(port) = &p.port {
            validate_int_or_port_name(port, &child(&pp, "port"), errs);
        }
        if let Some(end) = p.end_port {
            let ep = child(&pp, "endPort");
            match &p.port {
                None => errs.required(
                    &child(&pp, "port"),
                    "must be specified when endPort is specified",
                ),
                Some(IntOrString::Str(_)) => {
                    errs.forbidden(&ep, "may not be specified when `port` is non-numeric")
                }
                Some(IntOrString::Int(start)) => {
                    if let Some(m) = names::port_number(end) {
                        errs.invalid(&ep, &end, &m);
                    } else if end < *start {
                        errs.invalid(&ep, &end, "must be greater than or equal to `port`");
                    }
                }
            }
        }
    }
}

fn peers(list: &[NetworkPolicyPeer], path: &str, errs: &mut Errs) {
    for (i, peer) in list.iter().enumerate() {
        let pp = index(path, i);
        let n = [
            peer.pod_selector.is_some(),
            peer.namespace_selector.is_some(),
            peer.ip_block.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if n == 0 {
            errs.required(&pp, "must specify a peer");
        } else if n > 1 && peer.ip_block.is_some() {
            errs.forbidden(&pp, "may not specify both ipBlock and another peer");
        }
        if let Some(s) = &peer.pod_selector {
            validate_selector(s, &child(&pp, "podSelector"), errs);
        }
        if let Some(s) = &peer.namespace_selector {
            validate_selector(s, &child(&pp, "namespaceSelector"), errs);
        }
        if let Some(b) = &peer.ip_block {
            ip_block(b, &child(&pp, "ipBlock"), errs);
        }
    }
}

fn ip_block(b: &IpBlock, path: &str, errs: &mut Errs) {
    let cp = child(path, "cidr");
    if b.cidr.is_empty() {
        errs.required(&cp, "");
        return;
    }
    let cidr = match b.cidr.parse::<IpNet>() {
        Ok(c) => c,
        Err(_) => {
            errs.invalid(&cp, &b.cidr, "must be a valid CIDR (e.g. 10.0.0.0/16)");
            return;
        }
    };
    for (i, e) in b.except.iter().enumerate() {
        let ep = index(&child(path, "except"), i);
        match e.parse::<IpNet>() {
            Err(_) => errs.invalid(&ep, e, "must be a valid CIDR (e.g. 10.0.1.0/24)"),
            Ok(ex) => {
                let inside = ex.prefix_len() > cidr.prefix_len() && cidr.trunc().contains(&ex);
                if !inside {
                    errs.invalid(
                        &ep,
                        e,
                        &format!("must be a strict subset of `cidr` ({})", b.cidr),
                    );
                }
            }
        }
    }
}
