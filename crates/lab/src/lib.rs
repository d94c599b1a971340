//! aksnet-lab: an Azure VNet with nodes and pods in network namespaces on
//! one machine (DESIGN §3).
//!
//! A lab is a set of network namespaces whose names all start with
//! `aksnet-lab-<name>-`: the **fabric** (Azure's SDN: per-NIC host routes,
//! proxy ARP, the kubenet route table, the overlay routing domain, NSG rules,
//! outbound SNAT), one namespace per **node** (managed by a real
//! `aksnet agent`), one per **pod** (set up by the real CNI plugins through
//! the conflist the node's agent wrote), a **VM** in a second subnet of the
//! VNet and an **internet** host. None is ever linked to the root namespace.
//! The CLI reaches a lab through its directory (state file, SQLite store)
//! or by entering one of its namespaces.

pub mod apiserver;
pub mod bench;
pub mod check;
pub mod check_dns_api;
pub mod cluster_dns;
pub mod cni;
pub mod diagram;
pub mod error;
pub mod expect;
pub mod explain;
pub mod fabric;
pub mod ip;
pub mod kubelet;
pub mod lab;
pub mod lb;
pub mod netns;
pub mod nodes;
pub mod nsg;
pub mod pods;
pub mod policy_check;
pub mod probe;
pub mod process;
pub mod routes;
pub mod snapshot;
pub mod state;
pub mod store;
pub mod targets;
pub mod teardown;
pub mod topology;

pub use error::LabError;
