//! `aksnet dns`: the cluster DNS server. Authoritative for the cluster
//! domain (Kubernetes DNS specification, schema 1.1.0) from the store's
//! Kubernetes objects; every other name is forwarded to the upstreams.

pub mod error;
pub mod names;
pub mod records;

pub use error::DnsError;
