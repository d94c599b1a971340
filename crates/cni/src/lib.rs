//! The aksnet CNI plugins as a library: the three binaries are thin
//! wrappers around [`skel::run`] with a [`skel::Plugin`] each.
//!
//! * [`plugin::MainPlugin`] (`aksnet-cni`): `mode: bridge` (kubenet) in
//!   [`bridge`], `mode: transparent` (Azure CNI node subnet / Overlay) in
//!   [`transparent`].
//! * [`ipam::IpamPlugin`] (`aksnet-ipam`): host-local compatible, also
//!   called in-process by `aksnet-cni` when its IPAM type is `aksnet-ipam`.
//! * [`portmap::PortmapPlugin`] (`aksnet-portmap`): chained host ports in
//!   nftables.

pub mod bridge;
pub mod check;
pub mod common;
pub mod delegate;
pub mod ipam;
pub mod masq;
pub mod netconf;
pub mod plugin;
pub mod portmap;
pub mod skel;
pub mod tag;
pub mod transparent;
