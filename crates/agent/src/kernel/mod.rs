//! The kernel state the agent manages in its node's network namespace,
//! behind a trait so every decision above it is tested with [`fake::FakeKernel`].
//!
//! The agent process never moves into the node namespace: the
//! implementation, [`netlink::NetlinkKernel`] on `aksnet-linux`, talks
//! rtnetlink through a socket created inside it (a thread enters under a
//! guard just for the socket's creation), reads sysctls from short-lived
//! threads that enter it the same way, and starts `nft` inside it. The agent's own
//! sockets, such as its store connection, stay in the agent's namespace.

pub mod fake;
pub mod netlink;

use std::net::Ipv4Addr;

use crate::routes::vxlan::{Fdb, Neigh, VxlanDevice};
use crate::routes::Route;

#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// A request to the kernel through `aksnet-linux` failed.
    #[error("netlink: {0}")]
    Linux(#[source] aksnet_linux::Error),
    #[error("{0}")]
    Prefix(#[source] ipnet::PrefixLenError),
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

/// nftables is reached through the [`aksnet_nft::Driver`] every kernel is:
/// the real `nft` in the managed namespace, or the in-memory fake.
pub trait Kernel: Send + aksnet_nft::Driver {
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
    /// Reads a sysctl under /proc/sys (dotted name).
    fn sysctl(&mut self, name: &str) -> Result<String, KernelError>;
    fn set_sysctl(&mut self, name: &str, value: &str) -> Result<(), KernelError>;
    /// The link carrying `ip`, if any.
    fn link_with_address(&mut self, ip: Ipv4Addr) -> Result<Option<AddressedLink>, KernelError>;
    /// Deletes the conntrack entries `stale` selects (one listing of the
    /// table); returns how many went.
    fn flush_conntrack(
        &mut self,
        stale: &dyn Fn(&aksnet_linux::conntrack::Flow) -> bool,
    ) -> Result<usize, KernelError>;
}
