//! aksnet-agent: the node agent of aksnet.
//!
//! One agent per node joins the cluster store, claims the node's addresses
//! (a /24 block for kubenet and overlay, VNet addresses for Azure CNI),
//! writes the node's CNI conflist, and keeps the managed network
//! namespace's routes and SNAT equal to what the store says.
//!
//! Each part of the node is a controller ([`controllers`]: pool, routes,
//! SNAT) that computes its desired state from the cluster view and applies
//! the difference; decisions are plain functions tested without root
//! ([`routes`], [`snat`], [`conflist`], and the claims of
//! `aksnet_cluster`). The cluster store is
//! `aksnet_store::Store` (SQLite or etcd, `aksnet_store::open(url)`); the
//! kernel sits behind a narrow trait ([`kernel::Kernel`]).

pub mod agent;
pub mod conflist;
pub mod error;
pub mod healthcheck;
pub mod http;
pub mod ipam_disk;
pub mod kernel;
pub mod metrics;
pub mod policy;
pub mod purge;
pub mod routes;
pub mod services;
pub mod signals;
pub mod snat;
pub mod stale_udp;

pub use agent::{controllers, Agent, AgentConfig, Report};
pub use error::AgentError;
