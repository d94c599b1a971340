//! aksnet-core: everything that can be decided without the kernel.
//!
//! CIDR arithmetic, the cluster network spec and its planner, and the maths
//! shared by the IPAM and the agent. No I/O happens here.

pub mod cidr;
pub mod cluster;
pub mod cni;
pub mod dynamic_pool;
pub mod finding;
pub mod k8s;
pub mod planner;
pub mod spec;
