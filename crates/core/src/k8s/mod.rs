//! Kubernetes objects as aksnet stores them: the API's own shapes
//! (`apiVersion`, `kind`, `metadata`, `spec`, `status`) for the kinds that
//! carry networking — Namespace, Pod, Deployment, Service, EndpointSlice,
//! NetworkPolicy — their validation as the API server does it, the store
//! key layout, planning an apply (allocation of ClusterIPs and NodePorts
//! included) and the endpoints derived from Pods. Pure: no I/O.
//!
//! The types are written by hand rather than taken from `k8s-openapi`: that
//! crate generates every kind of every group (a large compile for six
//! kinds), needs a Kubernetes version chosen by a cargo feature, and drops
//! fields it does not know, while aksnet wants to keep what users wrote
//! (`extra` on every struct) and to validate with its own field paths. The
//! shapes follow `k8s.io/api` field for field where aksnet reads them.

pub mod alloc;
pub mod apply;
pub mod delete;
pub mod documents;
pub mod endpoints;
pub mod endpointslice;
pub mod errors;
pub mod kind;
pub mod meta;
pub mod names;
pub mod namespace;
pub mod netpol;
pub mod object;
pub mod pod;
pub mod policy_eval;
pub mod service;
pub mod store;
pub mod time;
pub mod validate;

pub use endpointslice::EndpointSlice;
pub use kind::Kind;
pub use namespace::Namespace;
pub use netpol::NetworkPolicy;
pub use object::{Object, ObjectId};
pub use pod::{Deployment, Pod};
pub use service::Service;
pub use store::K8sState;

#[cfg(test)]
mod tests;
