//! aksnet-agent: the node agent of aksnet.
//!
//! One agent per node joins the cluster store, claims the node's addresses
//! (a /24 block for kubenet and overlay, VNet addresses for Azure CNI),
//! writes the node's CNI conflist, and keeps the managed network
//! namespace's routes and SNAT equal to what the store says.
//!
//! Decisions are plain functions tested without root ([`claims`],
//! [`routes`], [`snat`], [`conflist`]). The cluster store is
//! `aksnet_store::Store` (SQLite or etcd, `aksnet_store::open(url)`); the
//! kernel sits behind a narrow trait ([`kernel::Kernel`]).

pub mod agent;
pub mod claims;
pub mod conflist;
pub mod error;
pub mod ipam_disk;
pub mod kernel;
pub mod purge;
pub mod routes;
pub mod signals;
pub mod snat;
pub mod view;

pub use agent::{Agent, AgentConfig, Report};
pub use error::AgentError;
