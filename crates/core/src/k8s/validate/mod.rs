//! Validation as the API server does it, on an object whose defaults are
//! set: names, labels, selectors, and each kind's own rules. What depends
//! on the rest of the cluster (the service CIDR, ports other Services hold,
//! namespaces, immutable fields) is checked when an apply is planned
//! ([`super::apply`]).

pub mod netpol;
pub mod service;
pub mod slice;
pub mod workload;

use super::errors::{Errs, FieldError};
use super::kind::Kind;
use super::meta::validate_meta_maps;
use super::names;
use super::object::Object;

/// Every problem of one object, in field order.
pub fn validate(obj: &Object) -> Vec<FieldError> {
    let mut errs = Errs::default();
    validate_meta(obj, &mut errs);
    match obj {
        Object::Namespace(_) => {}
        Object::Pod(p) => workload::pod(p, &mut errs),
        Object::Deployment(d) => workload::deployment(d, &mut errs),
        Object::Service(s) => service::validate(s, &mut errs),
        Object::EndpointSlice(s) => slice::validate(s, &mut errs),
        Object::NetworkPolicy(n) => netpol::validate(n, &mut errs),
    }
    errs.0
}

/// Which name syntax a kind's names follow (upstream `Validate*Name`).
fn name_rule(kind: Kind) -> fn(&str) -> Vec<String> {
    match kind {
        Kind::Namespace => names::dns1123_label,
        Kind::Service => names::dns1035_label,
        Kind::Pod | Kind::Deployment | Kind::EndpointSlice | Kind::NetworkPolicy => {
            names::dns1123_subdomain
        }
    }
}

fn validate_meta(obj: &Object, errs: &mut Errs) {
    let meta = obj.meta();
    if meta.name.is_empty() {
        let detail = if meta.generate_name.is_some() {
            "name or generateName is required; aksnet apply needs a name (generateName is not supported by apply)"
        } else {
            "name or generateName is required"
        };
        errs.required("metadata.name", detail);
    } else {
        errs.syntax(
            "metadata.name",
            &meta.name,
            name_rule(obj.kind())(&meta.name),
        );
    }
    if obj.kind().namespaced() {
        match meta.namespace.as_deref() {
            Some(ns) => errs.syntax("metadata.namespace", ns, names::dns1123_label(ns)),
            None => errs.required("metadata.namespace", ""),
        }
    } else if meta.namespace.as_deref().is_some_and(|n| !n.is_empty()) {
        errs.forbidden("metadata.namespace", "not allowed on this type");
    }
    validate_meta_maps(meta, "metadata", errs);
}
