//! `aksnet dns`: the cluster DNS server. Authoritative for the cluster
//! domain (Kubernetes DNS specification, schema 1.1.0) from the store's
//! Kubernetes objects; every other name is forwarded to the upstreams.
//!
//! The pieces, in the order a change travels: [`source`] reads the store's
//! objects into plain [`records`]; [`index`] turns them into the records a
//! query is answered from; [`follow`] rebuilds the index on every store
//! change; [`handler`] answers queries from the current index or hands them
//! to [`forward`]; [`server`] owns the sockets. The wire format and the
//! UDP/TCP serving loops are hickory-proto's and hickory-server's.

pub mod client;
pub mod error;
pub mod follow;
pub mod forward;
pub mod handler;
pub mod index;
pub mod names;
pub mod records;
pub mod server;
pub mod source;
pub mod zone;

pub use error::DnsError;
pub use index::{Index, PodMode, Settings};
pub use server::{DnsConfig, DnsServer};
