//! The kernel state the agent manages in its node's network namespace,
//! behind a trait so every decision above it is tested with [`fake::FakeKernel`].
//!
//! The agent process never moves into the node namespace: the default
//! implementation ([`netlink::NetlinkKernel`]) talks rtnetlink through a
//! socket created inside it (a thread enters under a guard just for the
//! socket's creation), and runs `nft` and `sysctl` as children that `setns`
//! before `exec` ([`exec`]). [`iproute::IprouteKernel`] does everything with
//! iproute2 the same way; the tests run both. The agent's own sockets, such
//! as its store connection, stay in the agent's namespace.

pub mod exec;
pub mod fake;
pub mod iproute;
pub mod netlink;

use std::net::Ipv4Addr;

use serde_json::Value;

use crate::routes::vxlan::{Fdb, Neigh, VxlanDevice};
use crate::routes::Route;

#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("{command}: {message}")]
    Command { command: String, message: String },
    #[error("{0}")]
    Parse(String),
}

/// A link with an IPv4 address in the managed namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressedLink {
    pub name: String,
    pub mtu: u32,
    pub address: Ipv4Addr,
}

pub trait Kernel: Send {
    /// Routes aksnet owns (protocol [`crate::routes::RTPROT_AKSNET`]).
    fn routes(&mut self) -> Result<Vec<Route>, KernelError>;
    /// Replaces and deletes routes (deletes first).
    fn program_routes(&mut self, replace: &[Route], delete: &[Route]) -> Result<(), KernelError>;
    /// Creates the VTEP, or recreates it when it differs; brings it up with
    /// its address. Returns whether it changed anything.
    fn ensure_vxlan(&mut self, dev: &VxlanDevice) -> Result<bool, KernelError>;
    /// Removes a link if it exists.
    fn remove_link(&mut self, name: &str) -> Result<(), KernelError>;
    /// Permanent neighbours and FDB entries on a device.
    fn l2_entries(&mut self, dev: &str) -> Result<(Vec<Neigh>, Vec<Fdb>), KernelError>;
    fn program_l2(
        &mut self,
        dev: &str,
        add_neighs: &[Neigh],
        del_neighs: &[Neigh],
        add_fdb: &[Fdb],
        del_fdb: &[Fdb],
    ) -> Result<(), KernelError>;
    /// `nft -j list table FAMILY NAME`, or `None` when it does not exist.
    fn nft_list_table(&mut self, family: &str, name: &str) -> Result<Option<Value>, KernelError>;
    /// Applies a batch atomically (`nft -j -f -`).
    fn nft_apply(&mut self, batch: &Value) -> Result<(), KernelError>;
    /// Reads a sysctl under /proc/sys (dotted name).
    fn sysctl(&mut self, name: &str) -> Result<String, KernelError>;
    fn set_sysctl(&mut self, name: &str, value: &str) -> Result<(), KernelError>;
    /// The link carrying `ip`, if any.
    fn link_with_address(&mut self, ip: Ipv4Addr) -> Result<Option<AddressedLink>, KernelError>;
}
